// Package abs is the remote.Client for Azure Blob Storage, in the layout
// Litestream v0.5 writes:
//
//	container blobs "<path>/ltx/<level decimal>/<%016x-%016x>.ltx"
//
// URL form. Litestream v0.5 documents abs://ACCOUNT@CONTAINER/PATH: the
// user part is the storage account and the host the container. This
// package follows Litestream so that existing configurations keep working,
// which means the form abs://container@account/path (as an early issue
// wrote it) is read as account "container" and container "account". The
// YAML keys `account-name` and `bucket` (the container) set the same
// values, as in Litestream.
//
// Credentials, first found: a shared account key (`account-key`, or
// LITESTREAM_AZURE_ACCOUNT_KEY), a SAS token (`sas-token`, or
// LITESTREAM_AZURE_SAS_TOKEN), else azidentity's default credential chain
// (environment, workload and managed identity, Azure CLI). The service URL
// is https://ACCOUNT.blob.core.windows.net/ unless Endpoint is set (Azurite:
// http://127.0.0.1:10000/devstoreaccount1).
//
// A file's creation time (the LTX header timestamp) is stored as the blob
// metadata "litestreamtimestamp" (Azure metadata names cannot contain "-"),
// RFC 3339, as Litestream does; listings return metadata, so it costs
// nothing to read. Azure's listing cannot start at a name, so the seek TXID
// filters the level's listing numerically (never as a name prefix, the
// Litestream bug). Reads are ranged downloads. Uploads stage blocks and
// commit the block list last, so a failed upload never becomes visible.
// Transient failures (408, 429, 5xx, resets) are retried with backoff by
// the SDK's retry policy; permanent ones are not.
package abs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/internal/backend"
	"github.com/litestream-go/litestream/remote/retry"
)

// MetadataTimestamp is the blob metadata name holding a file's creation time.
const MetadataTimestamp = "litestreamtimestamp"

// Config configures a Client. Container is required, and AccountName
// unless Endpoint is given.
type Config struct {
	AccountName string
	Container   string
	// Path is the replica root inside the container.
	Path string
	// Endpoint is the blob service URL; empty means
	// https://<AccountName>.blob.core.windows.net/.
	Endpoint string
	// AccountKey (shared key) or SASToken; neither means the default
	// Azure credential chain.
	AccountKey string
	SASToken   string
	// BlockSize is the upload block size (default 4 MiB); Concurrency the
	// blocks sent at once (default 4).
	BlockSize   int64
	Concurrency int
	// Retry sets the attempts and backoff of the SDK's retry policy (zero:
	// retry.Default's numbers).
	Retry retry.Policy
	// TryTimeout bounds each request (default 5 minutes).
	TryTimeout time.Duration
	// Logger receives debug messages (nil: slog.Default()).
	Logger *slog.Logger
}

// Client is a replica in an Azure Blob Storage container. It sets up its
// SDK client on first use and is safe for concurrent use.
type Client struct {
	cfg     Config
	keys    remote.Keys
	log     *slog.Logger
	what    string
	secrets []string

	mu  sync.Mutex
	azb *azblob.Client

	// reqs counts the HTTP requests sent, by kind (countPolicy).
	reqs remote.Requests
}

// RequestCounts returns the HTTP requests sent so far, by kind, retries
// included.
func (c *Client) RequestCounts() remote.RequestCounts { return c.reqs.RequestCounts() }

// countPolicy counts each HTTP request the SDK sends, each retry included.
type countPolicy struct{ reqs *remote.Requests }

func (p countPolicy) Do(req *policy.Request) (*http.Response, error) {
	p.reqs.Add(backend.RequestKind(req.Raw()))
	return req.Next()
}

var _ remote.Client = (*Client)(nil)

// New returns a client for cfg. It does not contact the service.
func New(cfg Config) (*Client, error) {
	if cfg.Container == "" {
		return nil, errors.New("abs replica: container is required (abs://ACCOUNT@CONTAINER/path)")
	}
	if cfg.AccountName == "" && cfg.Endpoint == "" {
		return nil, fmt.Errorf("abs replica: container %q: account name is required (abs://ACCOUNT@CONTAINER/path or account-name)", cfg.Container)
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = fmt.Sprintf("https://%s.blob.core.windows.net/", cfg.AccountName)
	}
	cfg.Path = remote.CleanRoot(cfg.Path)
	cfg.SASToken = strings.TrimPrefix(cfg.SASToken, "?")
	if cfg.BlockSize <= 0 {
		cfg.BlockSize = 4 << 20
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.Retry.Attempts <= 0 {
		cfg.Retry.Attempts = retry.Default.Attempts
	}
	if cfg.Retry.Base <= 0 {
		cfg.Retry.Base = retry.Default.Base
	}
	if cfg.Retry.Max <= 0 {
		cfg.Retry.Max = retry.Default.Max
	}
	if cfg.TryTimeout <= 0 {
		cfg.TryTimeout = 5 * time.Minute
	}
	secrets := []string{cfg.AccountKey, cfg.SASToken}
	if q, err := url.ParseQuery(cfg.SASToken); err == nil {
		secrets = append(secrets, q.Get("sig"), url.QueryEscape(q.Get("sig")))
	}
	account := cfg.AccountName
	if account == "" {
		account = endpointHost(cfg.Endpoint)
	}
	log := backend.Logger(cfg.Logger, &cfg.Retry, "backend", "abs", "account", account, "container", cfg.Container)
	return &Client{
		cfg:     cfg,
		keys:    remote.Keys{Root: cfg.Path, Layout: remote.LayoutLTX},
		log:     log,
		what:    fmt.Sprintf("abs account %q container %q", account, cfg.Container),
		secrets: secrets,
	}, nil
}

func endpointHost(e string) string {
	if u, err := url.Parse(e); err == nil && u.Host != "" {
		return u.Host + strings.TrimSuffix(u.Path, "/")
	}
	return e
}

// Type returns "abs".
func (c *Client) Type() string { return "abs" }

// Config returns the client's configuration, defaults applied.
func (c *Client) Config() Config { return c.cfg }

func (c *Client) client() (*azblob.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.azb != nil {
		return c.azb, nil
	}
	r := c.cfg.Retry
	opts := &azblob.ClientOptions{ClientOptions: azcore.ClientOptions{
		Retry: policy.RetryOptions{
			MaxRetries:    int32(r.Attempts - 1),
			RetryDelay:    r.Base,
			MaxRetryDelay: r.Max,
			TryTimeout:    c.cfg.TryTimeout,
			StatusCodes: []int{http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
				http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout},
		},
		Telemetry:        policy.TelemetryOptions{ApplicationID: "litestream"},
		PerRetryPolicies: []policy.Policy{countPolicy{&c.reqs}},
	}}
	var azb *azblob.Client
	var err error
	switch {
	case c.cfg.AccountKey != "":
		account := c.cfg.AccountName
		if account == "" {
			return nil, errors.New("an account key needs the account name")
		}
		cred, cerr := azblob.NewSharedKeyCredential(account, c.cfg.AccountKey)
		if cerr != nil {
			return nil, fmt.Errorf("account key: %w", cerr)
		}
		azb, err = azblob.NewClientWithSharedKeyCredential(c.cfg.Endpoint, cred, opts)
	case c.cfg.SASToken != "":
		u := c.cfg.Endpoint
		if strings.Contains(u, "?") {
			u += "&" + c.cfg.SASToken
		} else {
			u += "?" + c.cfg.SASToken
		}
		azb, err = azblob.NewClientWithNoCredential(u, opts)
	default:
		cred, cerr := azidentity.NewDefaultAzureCredential(nil)
		if cerr != nil {
			return nil, fmt.Errorf("default Azure credential (set account-key or sas-token, or sign in): %w", cerr)
		}
		azb, err = azblob.NewClient(c.cfg.Endpoint, cred, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("create client: %w", err)
	}
	c.azb = azb
	return azb, nil
}

// BlobName returns the blob name of one LTX file.
func (c *Client) BlobName(level int, minTXID, maxTXID ltx.TXID) string {
	return c.keys.File(level, minTXID, maxTXID)
}

func (c *Client) fail(op, name string, err error) error {
	switch {
	case bloberror.HasCode(err, bloberror.ContainerNotFound):
		err = fmt.Errorf("container does not exist: %w", err)
	case bloberror.HasCode(err, bloberror.AuthenticationFailed, bloberror.AuthorizationFailure, bloberror.InsufficientAccountPermissions):
		err = fmt.Errorf("access denied (check the credentials): %w", err)
	}
	return backend.Redact(fmt.Errorf("%s: %s %q: %w", c.what, op, name, err), c.secrets...)
}

// LTXFiles lists the files of level with MinTXID >= seek, by MinTXID.
func (c *Client) LTXFiles(ctx context.Context, level int, seek ltx.TXID) ([]*ltx.FileInfo, error) {
	return backend.ListLevel(ctx, c.fail, c.keys, c.listPrefix, level, seek)
}

var _ remote.AllLister = (*Client)(nil)

// LTXFilesAll lists every level with one paginated listing of <path>/ltx/.
// Listings carry the metadata, so the times are exact either way.
func (c *Client) LTXFilesAll(ctx context.Context, exactTimes bool) ([]*ltx.FileInfo, error) {
	return backend.ListEvery(ctx, c.keys, c.listPrefix)
}

// listPrefix returns the LTX files under prefix that want accepts, with
// their metadata, in the listing's order.
func (c *Client) listPrefix(ctx context.Context, prefix string, want func(remote.FileID) bool) ([]*ltx.FileInfo, error) {
	azb, err := c.client()
	if err != nil {
		return nil, c.fail("list", prefix, err)
	}
	var infos []*ltx.FileInfo
	pager := azb.NewListBlobsFlatPager(c.cfg.Container, &azblob.ListBlobsFlatOptions{
		Prefix:  &prefix,
		Include: azblob.ListBlobsInclude{Metadata: true},
	})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, c.fail("list", prefix, err)
		}
		for _, item := range page.Segment.BlobItems {
			if item.Name == nil || item.Properties == nil {
				continue
			}
			id, ok := c.keys.ParseKey(*item.Name)
			if !ok || !want(id) {
				continue
			}
			info := &ltx.FileInfo{Level: id.Level, MinTXID: id.MinTXID, MaxTXID: id.MaxTXID}
			if item.Properties.ContentLength != nil {
				info.Size = *item.Properties.ContentLength
			}
			if t := item.Properties.CreationTime; t != nil {
				info.CreatedAt = t.UTC()
			} else if t := item.Properties.LastModified; t != nil {
				info.CreatedAt = t.UTC()
			}
			for k, v := range item.Metadata {
				if strings.EqualFold(k, MetadataTimestamp) && v != nil {
					if ts, ok := backend.ParseTimestamp(*v); ok {
						info.CreatedAt = ts
					}
				}
			}
			infos = append(infos, info)
		}
	}
	return infos, nil
}

// OpenLTXFile opens bytes [offset, offset+size) of a file (size 0: to the
// end) with a ranged download. A read that fails or stalls in the middle
// resumes with a download of the rest (retry.Policy.OpenRange, which does
// all the retrying of reads; TryTimeout bounds the wait for the answer and
// every pause in its body).
func (c *Client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	name := c.BlobName(level, minTXID, maxTXID)
	if err := backend.CheckOpen(c.fail, name, level, offset, size); err != nil {
		return nil, err
	}
	azb, err := c.client()
	if err != nil {
		return nil, c.fail("open", name, err)
	}
	desc := fmt.Sprintf("%s: read %q", c.what, name)
	p := c.cfg.Retry.WithAttemptTimeout(c.cfg.TryTimeout)
	rc, err := p.OpenRange(ctx, desc, transient, offset, size, func(ctx context.Context, offset, size int64) (io.ReadCloser, int64, error) {
		return c.download(ctx, azb, name, offset, size)
	})
	if err != nil {
		return nil, c.fail("open", name, err)
	}
	return rc, nil
}

// download sends one ranged download, without the SDK's retries, and
// returns the body and its exact length.
func (c *Client) download(ctx context.Context, azb *azblob.Client, name string, offset, size int64) (io.ReadCloser, int64, error) {
	ctx = policy.WithRetryOptions(ctx, policy.RetryOptions{MaxRetries: -1})
	resp, err := azb.DownloadStream(ctx, c.cfg.Container, name, &azblob.DownloadStreamOptions{
		Range: blob.HTTPRange{Offset: offset, Count: size},
	})
	switch {
	case bloberror.HasCode(err, bloberror.BlobNotFound):
		return nil, 0, fmt.Errorf("%w: %w", remote.ErrNotExist, err)
	case bloberror.HasCode(err, bloberror.InvalidRange):
		return nil, 0, retry.Permanent(fmt.Errorf("range offset=%d size=%d is outside the file: %w", offset, size, err))
	case err != nil:
		return nil, 0, err
	}
	if cr := deref(resp.ContentRange); cr != "" {
		n, err := backend.CheckContentRange(cr, offset, size)
		if err != nil {
			resp.Body.Close()
			return nil, 0, err
		}
		return resp.Body, n, nil
	}
	if resp.ContentLength == nil || offset != 0 {
		resp.Body.Close()
		return nil, 0, retry.Permanent(errors.New("no Content-Range in a ranged download"))
	}
	// A whole-blob answer.
	want, err := backend.RangeEnd(offset, size, *resp.ContentLength)
	if err != nil {
		resp.Body.Close()
		return nil, 0, retry.Permanent(err)
	}
	return resp.Body, want, nil
}

// transient reports whether a failed request is worth another try: a
// transient HTTP status, or what retry.Transient accepts.
func transient(err error) bool {
	return backend.TransientStatus(err, func(e *azcore.ResponseError) int { return e.StatusCode })
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// WriteLTXFile uploads the LTX file read from r as a block blob with its
// header timestamp in the metadata.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	name := c.BlobName(level, minTXID, maxTXID)
	createdAt, r, err := backend.StartWrite(ctx, c.fail, name, level, minTXID, maxTXID, r)
	if err != nil {
		return nil, err
	}
	azb, err := c.client()
	if err != nil {
		return nil, c.fail("write", name, err)
	}
	ts := backend.FormatTimestamp(createdAt)
	contentType := "application/octet-stream"
	cr := &remote.CountingReader{R: r}
	_, err = azb.UploadStream(ctx, c.cfg.Container, name, cr, &azblob.UploadStreamOptions{
		BlockSize:   c.cfg.BlockSize,
		Concurrency: c.cfg.Concurrency,
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: &contentType},
		Metadata:    map[string]*string{MetadataTimestamp: &ts},
	})
	if err != nil {
		return nil, c.fail("write", name, err)
	}
	c.log.Debug("wrote ltx file", "blob", name, "size", cr.N)
	return &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: cr.N, CreatedAt: createdAt}, nil
}

// DeleteLTXFiles removes files; missing ones are skipped. It tries every
// file and returns all failures.
func (c *Client) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	return backend.DeleteFiles(ctx, files, c.BlobName, c.fail, c.deleteNames)
}

func (c *Client) deleteNames(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	azb, err := c.client()
	if err != nil {
		return c.fail("delete", names[0], err)
	}
	return backend.DeleteParallel(ctx, names, 8, func(ctx context.Context, name string) error {
		_, err := azb.DeleteBlob(ctx, c.cfg.Container, name, nil)
		if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
			return c.fail("delete", name, err)
		}
		return nil
	})
}

// DeleteAll removes every blob under <path>/ltx/.
func (c *Client) DeleteAll(ctx context.Context) error {
	prefix := c.keys.DeletePrefixes()[0]
	azb, err := c.client()
	if err != nil {
		return c.fail("delete all", prefix, err)
	}
	var names []string
	pager := azb.NewListBlobsFlatPager(c.cfg.Container, &azblob.ListBlobsFlatOptions{Prefix: &prefix})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return c.fail("delete all: list", prefix, err)
		}
		for _, item := range page.Segment.BlobItems {
			if item.Name != nil {
				names = append(names, *item.Name)
			}
		}
	}
	return c.deleteNames(ctx, names)
}
