package main

// Turning a replica's configuration (its URL or Litestream's older
// type/bucket/path form, plus the credential and tuning keys) into what
// backends.OpenWithOptions takes, and keeping the secrets among them out of
// every message.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/backends"
	"github.com/litestream-go/litestream/remote/s3"
)

// replicaRef is a replica to open: its URL and the backend options the
// configuration gives. Both may hold secrets: print redacted(), and pass
// errors that may quote them through redactErr.
type replicaRef struct {
	URL  string
	Opts backends.Options
	// Age, when set, encrypts the replica (remote/crypt): openReplica
	// never returns the bare backend of such a replica.
	Age *ageKeys
}

// redacted is the URL for logs and output.
func (r replicaRef) redacted() string { return redactURL(r.URL) }

// redactErr hides the URL's and the options' secrets in err's message.
func (r replicaRef) redactErr(err error) error {
	return redactErr(err, r.URL, optionSecrets(r.Opts)...)
}

// redactString hides the replica's secrets in msg (an error already
// turned into text, such as a status's last error).
func redactString(msg string, r replicaRef) string {
	if msg == "" {
		return ""
	}
	return r.redactErr(errors.New(msg)).Error()
}

// openReplica opens the replica's client. Backend messages go to logger
// (nil: slog.Default()). Errors never show a secret.
func openReplica(ctx context.Context, ref replicaRef, logger *slog.Logger) (remote.Client, error) {
	opts := ref.Opts
	if logger != nil {
		opts.Logger = logger
	}
	c, err := backends.OpenWithOptions(ctx, ref.URL, opts)
	if err != nil {
		return nil, ref.redactErr(fmt.Errorf("open replica %s: %w", ref.URL, err))
	}
	if c, err = ref.Age.wrap(c); err != nil {
		return nil, ref.redactErr(fmt.Errorf("open replica %s: age: %w", ref.URL, err))
	}
	return c, nil
}

// optionSecrets lists the secret values among opts, for redaction. The
// access key ID is not secret but is hidden too, as in URLs; values shorter
// than 4 bytes are left out because replacing them would mangle messages.
func optionSecrets(o backends.Options) []string {
	var out []string
	for _, s := range []string{o.AccessKeyID, o.SecretAccessKey, o.AccountKey, o.SASToken, o.Password,
		o.Token, o.JWT, o.Seed, o.SSECustomerKey} {
		if len(s) >= 4 {
			out = append(out, s)
		}
	}
	return out
}

// Replica returns the replica to open: the URL (see ReplicaURL) and the
// backend options its keys set. Which keys apply depends on the backend, as
// in Litestream v0.5: a key meant for another backend (say a global
// access-key-id on an sftp replica) is not passed on. Settings the URL also
// carries are overridden by the keys.
func (rc *ReplicaConfig) Replica() (replicaRef, error) {
	if err := rc.checkURLConflicts(); err != nil {
		return replicaRef{}, err
	}
	raw, err := rc.ReplicaURL()
	if err != nil {
		return replicaRef{}, err
	}
	ak, err := parseAge(rc.Age)
	if err != nil {
		return replicaRef{}, err
	}
	u, err := remote.ParseURL(raw)
	if err != nil {
		// No options for a URL that does not parse (or names a backend
		// this build lacks): opening it reports why, per database, rather
		// than failing the whole configuration here.
		return replicaRef{URL: raw, Age: ak}, nil
	}
	o := rc.options(u.Scheme)
	if u.Scheme == "s3" && o.SSECustomerKey == "" && rc.SSECustomerKeyPath != "" {
		p, err := expandPath(rc.SSECustomerKeyPath)
		if err != nil {
			return replicaRef{}, err
		}
		if o.SSECustomerKey, err = s3.ReadSSECustomerKeyFile(p); err != nil {
			return replicaRef{}, err
		}
	}
	return replicaRef{URL: raw, Opts: o, Age: ak}, nil
}

// options maps the keys that apply to scheme's backend.
func (rc *ReplicaConfig) options(scheme string) backends.Options {
	var o backends.Options
	switch scheme {
	case "s3":
		o = backends.Options{
			AccessKeyID: rc.AccessKeyID, SecretAccessKey: rc.SecretAccessKey, Region: rc.Region, Endpoint: rc.Endpoint,
			ForcePathStyle: rc.ForcePathStyle, SkipVerify: rc.SkipVerify,
			PartSize: int64(deref(rc.PartSize)), Concurrency: deref(rc.Concurrency),
			SignPayload: rc.SignPayload, SignAcceptEncoding: rc.SignAcceptEncoding,
			RequireContentMD5: rc.RequireContentMD5, PutObjectContentMD5: rc.PutObjectContentMD5,
			StorageClass: rc.StorageClass, SSECustomerAlgorithm: rc.SSECustomerAlgorithm,
			SSECustomerKey: rc.SSECustomerKey, SSEKMSKeyID: rc.SSEKMSKeyID,
		}
	case "gs":
		// Not a Litestream key for gs; here it points at an emulator
		// (without authentication), so only the replica's own setting
		// counts, never a global endpoint meant for S3.
		o.Endpoint = rc.own().Endpoint
	case "abs":
		o = backends.Options{AccountName: rc.AccountName, AccountKey: rc.AccountKey, SASToken: rc.SASToken, Endpoint: rc.Endpoint}
	case "sftp":
		o = backends.Options{User: rc.User, Password: rc.Password, KeyPath: rc.KeyPath, HostKey: rc.HostKey,
			ConcurrentWrites: rc.ConcurrentWrites, Timeout: deref(rc.Timeout)}
	case "webdav", "webdavs":
		// Litestream's keys are webdav-username and webdav-password. The
		// generic user, password and skip-verify are accepted when the
		// replica sets them itself; global ones are meant for sftp and S3,
		// and must not reach (or weaken TLS towards) another server.
		own := rc.own()
		o = backends.Options{User: pick(rc.WebDAVUsername, own.User), Password: pick(rc.WebDAVPassword, own.Password),
			SkipVerify: own.SkipVerify, Timeout: deref(rc.Timeout)}
	case "nats":
		o = backends.Options{
			User: rc.Username, Password: rc.Password, JWT: rc.JWT, Seed: rc.Seed, Creds: rc.Creds, NKey: rc.NKey, Token: rc.Token,
			TLS: deref(rc.TLS), RootCAs: rc.RootCAs, ClientCert: rc.ClientCert, ClientKey: rc.ClientKey,
			MaxReconnects: rc.MaxReconnects, ReconnectWait: deref(rc.ReconnectWait), Timeout: deref(rc.Timeout),
		}
	}
	return o
}

// checkURLConflicts rejects location keys that the replica sets next to
// `url:` (Litestream rejects them too): the URL already says where the
// replica is. Keys inherited from the global settings are ignored instead,
// since a global default cannot be unset per replica.
func (rc *ReplicaConfig) checkURLConflicts() error {
	if rc.URL == "" {
		return nil
	}
	own := rc.own()
	if own.Host != "" {
		return fmt.Errorf("cannot specify both 'url' and 'host'")
	}
	if own.WebDAVURL != "" {
		return fmt.Errorf("cannot specify both 'url' and 'webdav-url'")
	}
	if own.Bucket != "" && !isNATSWithoutBucket(rc.URL) {
		return fmt.Errorf("cannot specify both 'url' and 'bucket' (the URL names the bucket)")
	}
	return nil
}

// own returns the settings the replica sets itself, without those it
// inherited from the global settings.
func (rc *ReplicaConfig) own() ReplicaSettings {
	own := rc.ReplicaSettings
	if rc.global != nil {
		own.clearInherited(rc.global)
	}
	return own
}

// isNATSWithoutBucket reports whether raw is a nats:// URL with no path, the
// form Litestream allows when `bucket:` names the object store.
func isNATSWithoutBucket(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && strings.EqualFold(u.Scheme, "nats") && strings.Trim(u.Path, "/") == ""
}

// withBucketPath returns the nats:// URL raw with bucket as its path (the
// backend reads the bucket from the URL's first path segment).
func withBucketPath(raw, bucket string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	u.Path = "/" + strings.Trim(bucket, "/")
	u.RawPath = ""
	return u.String(), nil
}

func pick(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// setFrom sets *dst to *p when p is set (a configuration key given).
func setFrom[T any](dst, p *T) {
	if p != nil {
		*dst = *p
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
