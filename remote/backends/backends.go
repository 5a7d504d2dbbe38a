// Package backends turns a replica URL into a remote.Client. It is the one
// place that knows which backends are compiled in; everything else (the
// command line, the extension, the VFS) goes through Open.
//
// Settings come from three places, later ones winning: the URL (host,
// user, password, path and query parameters such as ?endpoint= or
// ?region=), the environment variables Litestream v0.5 reads
// (LITESTREAM_ACCESS_KEY_ID, LITESTREAM_AZURE_ACCOUNT_KEY, ...), and
// Options, which carries the YAML configuration's keys.
package backends

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/abs"
	"github.com/litestream-go/litestream/remote/file"
	"github.com/litestream-go/litestream/remote/gcs"
	"github.com/litestream-go/litestream/remote/nats"
	"github.com/litestream-go/litestream/remote/s3"
	"github.com/litestream-go/litestream/remote/sftp"
	"github.com/litestream-go/litestream/remote/webdav"
)

// Options carries per-backend settings that do not belong in a URL, such
// as credentials from the YAML configuration. Non-zero fields take
// precedence over the URL's query parameters and the environment. The
// field comments name the Litestream v0.5 configuration key.
//
// Secrets given here never appear in errors or logs.
type Options struct {
	// Logger receives the backends' debug and retry messages
	// (nil: slog.Default()).
	Logger *slog.Logger

	// Bucket overrides the URL's bucket (s3, gs), container (abs) or
	// object store bucket (nats). `bucket`
	Bucket string
	// Path overrides the URL's path. `path`
	Path string

	// S3 and S3-compatible stores.
	AccessKeyID     string // `access-key-id`
	SecretAccessKey string // `secret-access-key`
	Region          string // `region`
	Endpoint        string // `endpoint` (also abs: a custom blob endpoint)
	ForcePathStyle  *bool  // `force-path-style`
	SkipVerify      bool   // `skip-verify`: do not verify the TLS certificate
	PartSize        int64  // `part-size`: multipart part size (default 5 MiB)
	Concurrency     int    // `concurrency`: parts uploaded at once
	// S3 compatibility settings (`sign-payload`, `sign-accept-encoding`,
	// `require-content-md5`, `put-object-content-md5`, `storage-class`,
	// `sse-customer-*`, `sse-kms-key-id`); nil booleans take Litestream's
	// defaults or the URL's query parameters.
	SignPayload          *bool
	SignAcceptEncoding   *bool
	RequireContentMD5    *bool
	PutObjectContentMD5  *bool
	StorageClass         string
	SSECustomerAlgorithm string
	SSECustomerKey       string
	SSEKMSKeyID          string

	// Azure Blob Storage.
	AccountName string // `account-name`
	AccountKey  string // `account-key`
	SASToken    string // `sas-token`

	// SFTP, WebDAV and NATS credentials.
	User     string // `user` (sftp, webdav), `username` (nats)
	Password string // `password`
	// SFTP.
	KeyPath string // `key-path`: private key file
	HostKey string // `host-key`: the server's public key, authorized_keys format
	// InsecureIgnoreHostKey skips host key verification. Only for tests
	// and throwaway setups; never implied.
	InsecureIgnoreHostKey bool
	// ConcurrentWrites: false writes each file sequentially
	// (`concurrent-writes`; default true).
	ConcurrentWrites *bool

	// NATS.
	JWT           string        // `jwt`
	Seed          string        // `seed`
	Creds         string        // `creds`: credentials file
	NKey          string        // `nkey`: nkey seed file
	Token         string        // `token`
	TLS           bool          // `tls`
	RootCAs       []string      // `root-cas`
	ClientCert    string        // `client-cert`
	ClientKey     string        // `client-key`
	MaxReconnects *int          // `max-reconnects`
	ReconnectWait time.Duration // `reconnect-wait`
	Timeout       time.Duration // `timeout`
}

// Supported returns the schemes this build can open.
func Supported() []string {
	return []string{"file", "s3", "gs", "abs", "sftp", "nats", "webdav", "webdavs"}
}

// Open parses rawURL (a URL or a plain path) and returns its client.
func Open(ctx context.Context, rawURL string) (remote.Client, error) {
	return OpenWithOptions(ctx, rawURL, Options{})
}

// OpenWithOptions is Open with per-backend settings.
func OpenWithOptions(ctx context.Context, rawURL string, opts Options) (remote.Client, error) {
	u, err := remote.ParseURL(rawURL)
	if err != nil {
		if errors.Is(err, remote.ErrUnknownScheme) {
			return nil, fmt.Errorf("%w; this build supports: %s", err, strings.Join(Supported(), ", "))
		}
		return nil, err
	}
	return OpenURL(ctx, u, opts)
}

// OpenURL returns the client for an already parsed URL. A scheme that
// remote.ParseURL knows but whose backend is not compiled in is an error
// wrapping errors.ErrUnsupported. Clients connect lazily: a server that is
// down makes the first operation fail, not OpenURL.
func OpenURL(ctx context.Context, u *remote.URL, opts Options) (remote.Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var c remote.Client
	var err error
	switch u.Scheme {
	case "file":
		return file.New(u.Path), nil
	case "s3":
		c, err = openS3(u, opts)
	case "gs":
		c, err = openGCS(u, opts)
	case "abs":
		c, err = openABS(u, opts)
	case "sftp":
		c, err = openSFTP(u, opts)
	case "nats":
		c, err = openNATS(u, opts)
	case "webdav", "webdavs":
		c, err = openWebDAV(u, opts)
	default:
		return nil, fmt.Errorf("replica URL %q: the %s backend is not yet supported in this build (supported: %s): %w",
			u.Redacted(), u.Scheme, strings.Join(Supported(), ", "), errors.ErrUnsupported)
	}
	if err != nil {
		return nil, fmt.Errorf("replica URL %q: %w", u.Redacted(), err)
	}
	return c, nil
}

// pick returns the first non-empty value.
func pick(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// query returns the first non-empty value of the URL query parameters
// keys, so that both Litestream's camelCase and kebab-case names work.
func query(u *remote.URL, keys ...string) string {
	for _, k := range keys {
		if v := u.QueryValue(k); v != "" {
			return v
		}
	}
	return ""
}

// queryBool parses a boolean query parameter; ok is false when it is absent.
func queryBool(u *remote.URL, keys ...string) (v, ok bool, err error) {
	s := query(u, keys...)
	switch strings.ToLower(s) {
	case "":
		return false, false, nil
	case "true", "1", "yes", "t":
		return true, true, nil
	case "false", "0", "no", "f":
		return false, true, nil
	}
	return false, false, fmt.Errorf("query parameter %s=%q: want true or false", keys[0], s)
}

func openNATS(u *remote.URL, opts Options) (remote.Client, error) {
	bucket, p, _ := strings.Cut(u.Path, "/")
	if opts.Bucket != "" {
		// A configured bucket means the URL path is all replica path.
		bucket, p = opts.Bucket, u.Path
	}
	if opts.Path != "" {
		p = opts.Path
	}
	scheme := "nats"
	if opts.TLS {
		scheme = "tls"
	}
	pw, _ := u.Password()
	cfg := nats.Config{
		URL:           scheme + "://" + u.Host,
		Bucket:        bucket,
		Path:          p,
		Username:      pick(opts.User, u.User),
		Password:      pick(opts.Password, pw),
		Token:         opts.Token,
		Creds:         opts.Creds,
		JWT:           opts.JWT,
		Seed:          opts.Seed,
		NKey:          opts.NKey,
		TLS:           opts.TLS,
		RootCAs:       opts.RootCAs,
		ClientCert:    opts.ClientCert,
		ClientKey:     opts.ClientKey,
		ReconnectWait: opts.ReconnectWait,
		Timeout:       opts.Timeout,
		Logger:        opts.Logger,
	}
	if opts.MaxReconnects != nil {
		cfg.MaxReconnects = *opts.MaxReconnects
	}
	return nats.New(cfg)
}

func openWebDAV(u *remote.URL, opts Options) (remote.Client, error) {
	scheme := "http"
	if u.Scheme == "webdavs" {
		scheme = "https"
	}
	skip, _, err := queryBool(u, "skip-verify", "skipVerify")
	if err != nil {
		return nil, err
	}
	pw, _ := u.Password()
	return webdav.New(webdav.Config{
		URL:        scheme + "://" + u.Host,
		Path:       pick(opts.Path, u.Path),
		Username:   pick(opts.User, u.User),
		Password:   pick(opts.Password, pw),
		SkipVerify: opts.SkipVerify || skip,
		Timeout:    opts.Timeout,
		Logger:     opts.Logger,
	})
}

func openSFTP(u *remote.URL, opts Options) (remote.Client, error) {
	insecure, _, err := queryBool(u, "insecure-ignore-host-key", "insecureIgnoreHostKey")
	if err != nil {
		return nil, err
	}
	pw, _ := u.Password()
	return sftp.New(sftp.Config{
		Host:                  u.Host,
		User:                  pick(opts.User, u.User),
		Password:              pick(opts.Password, pw),
		KeyPath:               pick(opts.KeyPath, query(u, "key-path", "keyPath")),
		HostKey:               pick(opts.HostKey, query(u, "host-key", "hostKey")),
		InsecureIgnoreHostKey: opts.InsecureIgnoreHostKey || insecure,
		Path:                  pick(opts.Path, u.Path),
		Timeout:               opts.Timeout,
		Logger:                opts.Logger,
		SequentialWrites:      opts.ConcurrentWrites != nil && !*opts.ConcurrentWrites,
	})
}

func openGCS(u *remote.URL, opts Options) (remote.Client, error) {
	return gcs.New(gcs.Config{
		Bucket:   pick(opts.Bucket, u.Host),
		Path:     pick(opts.Path, u.Path),
		Endpoint: pick(opts.Endpoint, query(u, "endpoint")),
		Logger:   opts.Logger,
	})
}

func openS3(u *remote.URL, opts Options) (remote.Client, error) {
	cfg := s3.Config{
		Bucket:          pick(opts.Bucket, u.Host),
		Path:            pick(opts.Path, u.Path),
		Region:          pick(opts.Region, query(u, "region")),
		Endpoint:        opts.Endpoint,
		AccessKeyID:     pick(opts.AccessKeyID, os.Getenv("LITESTREAM_ACCESS_KEY_ID")),
		SecretAccessKey: pick(opts.SecretAccessKey, os.Getenv("LITESTREAM_SECRET_ACCESS_KEY")),
		ForcePathStyle:  opts.ForcePathStyle,
		SkipVerify:      opts.SkipVerify,
		PartSize:        opts.PartSize,
		Concurrency:     opts.Concurrency,
		Logger:          opts.Logger,
	}
	if cfg.Endpoint == "" {
		// As in Litestream, an endpoint in the URL without a scheme is
		// plain HTTP (a local MinIO); one from the configuration is HTTPS.
		if e := query(u, "endpoint"); e != "" {
			if !strings.Contains(e, "://") {
				e = "http://" + e
			}
			cfg.Endpoint = e
		}
	}
	if cfg.ForcePathStyle == nil {
		v, ok, err := queryBool(u, "force-path-style", "forcePathStyle")
		if err != nil {
			return nil, err
		}
		if ok {
			cfg.ForcePathStyle = &v
		}
	}
	skip, _, err := queryBool(u, "skip-verify", "skipVerify")
	if err != nil {
		return nil, err
	}
	cfg.SkipVerify = cfg.SkipVerify || skip
	// Litestream's compatibility settings: the option, else the URL's
	// query parameter (camelCase or kebab-case), else its default.
	flag := func(opt *bool, def bool, keys ...string) (bool, error) {
		if opt != nil {
			return *opt, nil
		}
		v, ok, err := queryBool(u, keys...)
		if err != nil || !ok {
			return def, err
		}
		return v, nil
	}
	// Litestream's provider defaults: Tigris takes no Content-MD5 on
	// deletes; Google's S3 API must not have Accept-Encoding signed.
	host := cfg.Endpoint
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	host, _, _ = strings.Cut(host, "/")
	if h, _, ok := strings.Cut(host, ":"); ok {
		host = h
	}
	tigris := host == "fly.storage.tigris.dev" || host == "t3.storage.dev"
	gcs := host == "storage.googleapis.com"
	var signPayload, signAE, deleteMD5 bool
	if signPayload, err = flag(opts.SignPayload, true, "signPayload", "sign-payload"); err != nil {
		return nil, err
	}
	if signAE, err = flag(opts.SignAcceptEncoding, !gcs, "signAcceptEncoding", "sign-accept-encoding"); err != nil {
		return nil, err
	}
	if deleteMD5, err = flag(opts.RequireContentMD5, !tigris, "requireContentMD5", "require-content-md5"); err != nil {
		return nil, err
	}
	if cfg.Compat.PutContentMD5, err = flag(opts.PutObjectContentMD5, false, "putObjectContentMD5", "put-object-content-md5"); err != nil {
		return nil, err
	}
	cfg.Compat.UnsignedPayload, cfg.Compat.NoSignAcceptEncoding, cfg.Compat.NoDeleteContentMD5 = !signPayload, !signAE, !deleteMD5
	cfg.Compat.StorageClass = pick(opts.StorageClass, query(u, "storageClass", "storage-class"))
	cfg.Compat.SSECustomerAlgorithm = pick(opts.SSECustomerAlgorithm, query(u, "sseCustomerAlgorithm", "sse-customer-algorithm"))
	cfg.Compat.SSECustomerKey = pick(opts.SSECustomerKey, query(u, "sseCustomerKey", "sse-customer-key"))
	cfg.Compat.SSEKMSKeyID = pick(opts.SSEKMSKeyID, query(u, "sseKmsKeyId", "sse-kms-key-id"))
	return s3.New(cfg)
}

// openABS reads the URL the Litestream way: abs://ACCOUNT@CONTAINER/PATH
// (see package abs).
func openABS(u *remote.URL, opts Options) (remote.Client, error) {
	return abs.New(abs.Config{
		AccountName: pick(opts.AccountName, u.User),
		Container:   pick(opts.Bucket, u.Host),
		Path:        pick(opts.Path, u.Path),
		Endpoint:    pick(opts.Endpoint, query(u, "endpoint")),
		AccountKey:  pick(opts.AccountKey, os.Getenv("LITESTREAM_AZURE_ACCOUNT_KEY")),
		SASToken:    pick(opts.SASToken, os.Getenv("LITESTREAM_AZURE_SAS_TOKEN")),
		Logger:      opts.Logger,
	})
}
