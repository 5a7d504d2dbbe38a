// Package s3 is the remote.Client for Amazon S3 and S3-compatible stores
// (MinIO, R2, Tigris, B2, ...), in the layout Litestream v0.5 writes:
//
//	s3://BUCKET/<path>/<level as %04x>/<%016x-%016x>.ltx
//
// A replica at the bucket root (empty path) has keys "<level>/<name>".
// Litestream v0.5 writes "/<level>/<name>" there (path + "/" + ...); MinIO
// strips the leading slash on write but not from a listing prefix, so that
// form cannot be listed back on MinIO, and on AWS it is a distinct key.
// Replicas with a path, the documented form, are identical in both tools.
//
// Credentials come from Config, else the AWS SDK's default chain
// (environment, shared files, SSO, instance and task roles). With a custom
// Endpoint (MinIO and other S3-compatible stores) requests are path style
// unless told otherwise, the region defaults to us-east-1, and request
// checksums are sent only where the API requires them (many stores reject
// the SDK's aws-chunked trailing checksums); payloads stay SigV4-signed.
// Without a region, AWS S3's bucket region is looked up. The SDK's HTTP
// client is kept (only tuned), so AWS_CA_BUNDLE keeps working.
//
// A file's creation time (the LTX header timestamp) is stored as the
// metadata "litestream-timestamp" (RFC 3339), as Litestream does. Listings
// do not carry user metadata, so LTXFiles fetches it with HEAD requests for
// the files it has not seen before; the client remembers the timestamps of
// what it wrote and listed (keyed by ETag), so steady-state listings cost
// one LIST request per 1000 files.
//
// Uploads go in one PUT up to PartSize (5 MiB by default) and as a
// multipart upload above it; a failed multipart upload is aborted, so a
// partial object is never visible. Reads are ranged GETs whose returned
// range is checked. Transient failures (5xx, throttling, connection resets)
// are retried with backoff by the SDK's retryer; permanent ones (denied,
// missing bucket) are not.
package s3

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/internal/backend"
)

// MetadataTimestamp is the user metadata key holding a file's creation time.
const MetadataTimestamp = "litestream-timestamp"

// DefaultRegion is used with custom endpoints when no region is given.
const DefaultRegion = "us-east-1"

// maxDeleteKeys is the most keys one DeleteObjects request takes.
const maxDeleteKeys = 1000

// Config configures a Client. Only Bucket is required.
type Config struct {
	Bucket string
	// Path is the replica root inside the bucket.
	Path string
	// Region; empty means the SDK's (AWS_REGION, shared config), then the
	// bucket's own region on AWS, or us-east-1 with a custom endpoint.
	Region string
	// Endpoint is the base URL of an S3-compatible store, e.g.
	// "http://127.0.0.1:9000"; empty means AWS.
	Endpoint string
	// ForcePathStyle selects path-style requests (bucket in the path);
	// nil means true with a custom Endpoint, false on AWS.
	ForcePathStyle *bool
	// AccessKeyID and SecretAccessKey (and SessionToken) are static
	// credentials; empty means the SDK's default chain.
	AccessKeyID, SecretAccessKey, SessionToken string
	// SkipVerify disables TLS certificate verification.
	SkipVerify bool
	// PartSize is the multipart part size and single-PUT limit (default
	// and minimum 5 MiB); Concurrency the parts sent at once (default 5).
	PartSize    int64
	Concurrency int
	// Retry sets the attempts and backoff of the SDK's retryer (zero:
	// backend.DefaultRetry's numbers).
	Retry backend.Retry
	// Logger receives debug messages (nil: slog.Default()).
	Logger *slog.Logger
}

// Client is a replica in an S3 bucket. It sets up its SDK client on first
// use and is safe for concurrent use.
type Client struct {
	cfg  Config
	log  *slog.Logger
	what string

	mu       sync.Mutex
	s3       *s3.Client
	uploader *manager.Uploader

	// stamps remembers the stored timestamps of objects, by key, with the
	// ETag they belong to.
	stampsMu sync.Mutex
	stamps   map[string]stamp
}

type stamp struct {
	etag string
	ts   time.Time
}

var _ remote.Client = (*Client)(nil)

// New returns a client for cfg. It does not contact the service.
func New(cfg Config) (*Client, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3 replica: bucket is required (s3://bucket/path)")
	}
	cfg.Path = strings.Trim(path.Clean("/"+cfg.Path), "/")
	if cfg.Endpoint != "" && !strings.Contains(cfg.Endpoint, "://") {
		cfg.Endpoint = "https://" + cfg.Endpoint
	}
	if cfg.PartSize < manager.MinUploadPartSize {
		cfg.PartSize = manager.MinUploadPartSize
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = manager.DefaultUploadConcurrency
	}
	if cfg.Retry.Attempts <= 0 {
		cfg.Retry.Attempts = backend.DefaultRetry.Attempts
	}
	if cfg.Retry.Max <= 0 {
		cfg.Retry.Max = backend.DefaultRetry.Max
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Client{
		cfg:    cfg,
		log:    log.With("backend", "s3", "bucket", cfg.Bucket),
		what:   fmt.Sprintf("s3 bucket %q", cfg.Bucket),
		stamps: make(map[string]stamp),
	}, nil
}

// Type returns "s3".
func (c *Client) Type() string { return "s3" }

// Config returns the client's configuration, defaults applied.
func (c *Client) Config() Config { return c.cfg }

func (c *Client) pathStyle() bool {
	if c.cfg.ForcePathStyle != nil {
		return *c.cfg.ForcePathStyle
	}
	return c.cfg.Endpoint != ""
}

// client returns the SDK client, setting it up on first use.
func (c *Client) client(ctx context.Context) (*s3.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.s3 != nil {
		return c.s3, nil
	}
	// Keep the SDK's buildable client: LoadDefaultConfig adds
	// AWS_CA_BUNDLE to it, which a replaced *http.Client would refuse.
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		// A server that accepts a request and never answers must not
		// hang a sync forever; bodies may still stream for long.
		tr.ResponseHeaderTimeout = 2 * time.Minute
		if c.cfg.SkipVerify {
			if tr.TLSClientConfig == nil {
				tr.TLSClientConfig = &tls.Config{}
			}
			tr.TLSClientConfig.InsecureSkipVerify = true
		}
	})
	r := c.cfg.Retry
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(hc),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = r.Attempts
				o.MaxBackoff = r.Max
				o.Backoff = retry.NewExponentialJitterBackoff(r.Max)
				// No client-side retry quota: a burst of throttling
				// must not turn into "retry quota exceeded".
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if c.cfg.Region != "" {
		opts = append(opts, config.WithRegion(c.cfg.Region))
	}
	if c.cfg.AccessKeyID != "" || c.cfg.SecretAccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(c.cfg.AccessKeyID, c.cfg.SecretAccessKey, c.cfg.SessionToken)))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	s3opts := func(o *s3.Options) {
		o.UsePathStyle = c.pathStyle()
		if c.cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.cfg.Endpoint)
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
	}
	if awsCfg.Region == "" {
		if c.cfg.Endpoint != "" {
			awsCfg.Region = DefaultRegion
		} else {
			probe := awsCfg.Copy()
			probe.Region = DefaultRegion
			region, err := manager.GetBucketRegion(ctx, s3.NewFromConfig(probe, s3opts), c.cfg.Bucket)
			if err != nil {
				return nil, fmt.Errorf("look up the bucket's region (set region to skip): %w", err)
			}
			awsCfg.Region = region
		}
	}
	c.s3 = s3.NewFromConfig(awsCfg, s3opts)
	c.uploader = manager.NewUploader(c.s3, func(u *manager.Uploader) {
		u.PartSize = c.cfg.PartSize
		u.Concurrency = c.cfg.Concurrency
	})
	return c.s3, nil
}

func (c *Client) levelPrefix(level int) string {
	if c.cfg.Path == "" {
		return fmt.Sprintf("%04x/", level)
	}
	return c.cfg.Path + "/" + fmt.Sprintf("%04x", level) + "/"
}

// Key returns the object key of one LTX file.
func (c *Client) Key(level int, minTXID, maxTXID ltx.TXID) string {
	return c.levelPrefix(level) + remote.FileName(minTXID, maxTXID)
}

func (c *Client) fail(op, key string, err error) error {
	err = fmt.Errorf("%s: %s %q: %w", c.what, op, key, explain(err))
	return backend.Redact(err, c.cfg.SecretAccessKey, c.cfg.SessionToken)
}

// explain adds a plain statement to the errors users most often meet.
func explain(err error) error {
	switch errorCode(err) {
	case "NoSuchBucket":
		return fmt.Errorf("bucket does not exist: %w", err)
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch":
		return fmt.Errorf("access denied (check the credentials): %w", err)
	}
	return err
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func notFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	return errors.As(err, &nsk) || errors.As(err, &nf) || errorCode(err) == "NoSuchKey" || errorCode(err) == "NotFound"
}

// LTXFiles lists the files of level with MinTXID >= seek, by MinTXID. The
// listing starts after the seek TXID's name (names are fixed-width hex, so
// byte order is numeric order), never using the TXID as a name prefix.
func (c *Client) LTXFiles(ctx context.Context, level int, seek ltx.TXID) ([]*ltx.FileInfo, error) {
	prefix := c.levelPrefix(level)
	if err := backend.CheckLevel(level); err != nil {
		return nil, c.fail("list", prefix, err)
	}
	cl, err := c.client(ctx)
	if err != nil {
		return nil, c.fail("list", prefix, err)
	}
	in := &s3.ListObjectsV2Input{Bucket: aws.String(c.cfg.Bucket), Prefix: aws.String(prefix), Delimiter: aws.String("/")}
	if seek > 0 {
		// "%016x" sorts before "%016x-...ltx" and after every smaller TXID.
		in.StartAfter = aws.String(prefix + fmt.Sprintf("%016x", uint64(seek)))
	}
	type listed struct {
		info *ltx.FileInfo
		key  string
		etag string
	}
	var objs []listed
	p := s3.NewListObjectsV2Paginator(cl, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, c.fail("list", prefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			name := strings.TrimPrefix(key, prefix)
			minTXID, maxTXID, err := ltx.ParseFilename(name)
			if err != nil || minTXID < seek || remote.FileName(minTXID, maxTXID) != name {
				continue
			}
			info := &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: aws.ToInt64(o.Size),
				CreatedAt: aws.ToTime(o.LastModified).UTC()}
			objs = append(objs, listed{info: info, key: key, etag: aws.ToString(o.ETag)})
		}
	}

	// Timestamps: from memory where the ETag matches, else HEAD.
	var missing []int
	c.stampsMu.Lock()
	for i, o := range objs {
		if s, ok := c.stamps[o.key]; ok && s.etag == o.etag {
			o.info.CreatedAt = s.ts
		} else {
			missing = append(missing, i)
		}
	}
	c.stampsMu.Unlock()
	gone := make([]bool, len(objs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, i := range missing {
		o := objs[i]
		g.Go(func() error {
			head, err := cl.HeadObject(gctx, &s3.HeadObjectInput{Bucket: aws.String(c.cfg.Bucket), Key: aws.String(o.key)})
			if notFound(err) {
				gone[i] = true // deleted since the listing
				return nil
			} else if err != nil {
				return c.fail("list: head", o.key, err)
			}
			if ts, ok := backend.ParseTimestamp(head.Metadata[MetadataTimestamp]); ok {
				o.info.CreatedAt = ts
			}
			c.remember(o.key, aws.ToString(head.ETag), o.info.CreatedAt)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	infos := make([]*ltx.FileInfo, 0, len(objs))
	for i, o := range objs {
		if !gone[i] {
			infos = append(infos, o.info)
		}
	}
	backend.SortInfos(infos)
	return infos, nil
}

func (c *Client) remember(key, etag string, ts time.Time) {
	if etag == "" {
		return
	}
	c.stampsMu.Lock()
	c.stamps[key] = stamp{etag: etag, ts: ts}
	c.stampsMu.Unlock()
}

func (c *Client) forget(keys ...string) {
	c.stampsMu.Lock()
	for _, k := range keys {
		delete(c.stamps, k)
	}
	c.stampsMu.Unlock()
}

// OpenLTXFile opens bytes [offset, offset+size) of a file (size 0: to the
// end) with a ranged GET.
func (c *Client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	key := c.Key(level, minTXID, maxTXID)
	if err := backend.CheckLevel(level); err != nil {
		return nil, c.fail("open", key, err)
	}
	if err := backend.CheckRange(offset, size); err != nil {
		return nil, c.fail("open", key, err)
	}
	cl, err := c.client(ctx)
	if err != nil {
		return nil, c.fail("open", key, err)
	}
	rng := fmt.Sprintf("bytes=%d-", offset)
	if size > 0 {
		rng = fmt.Sprintf("bytes=%d-%d", offset, offset+size-1)
	}
	out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(c.cfg.Bucket), Key: aws.String(key), Range: aws.String(rng)})
	if notFound(err) {
		return nil, c.fail("open", key, fmt.Errorf("%w: %w", remote.ErrNotExist, err))
	} else if errorCode(err) == "InvalidRange" {
		return nil, c.fail("open", key, fmt.Errorf("range offset=%d size=%d is outside the file: %w", offset, size, err))
	} else if err != nil {
		return nil, c.fail("open", key, err)
	}
	start, end, total, err := parseContentRange(aws.ToString(out.ContentRange))
	if err != nil || start != offset {
		out.Body.Close()
		return nil, c.fail("open", key, fmt.Errorf("bad Content-Range %q for offset %d", aws.ToString(out.ContentRange), offset))
	}
	want, err := backend.RangeEnd(offset, size, total)
	if err != nil {
		out.Body.Close()
		return nil, c.fail("open", key, err)
	}
	if end+1 != want {
		out.Body.Close()
		return nil, c.fail("open", key, fmt.Errorf("server returned bytes %d-%d, want %d-%d", start, end, offset, want-1))
	}
	return backend.ExactReader(out.Body, want-offset, fmt.Sprintf("%s object %q", c.what, key)), nil
}

func parseContentRange(s string) (start, end, total int64, err error) {
	n, err := fmt.Sscanf(s, "bytes %d-%d/%d", &start, &end, &total)
	if err == nil && n != 3 {
		err = errors.New("short Content-Range")
	}
	return
}

// WriteLTXFile uploads the LTX file read from r (one PUT, or multipart
// above PartSize) with its header timestamp in the object metadata.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	key := c.Key(level, minTXID, maxTXID)
	if err := backend.CheckWrite(level, minTXID, maxTXID); err != nil {
		return nil, c.fail("write", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, c.fail("write", key, err)
	}
	createdAt, r, err := backend.ReadHeader(r, minTXID, maxTXID)
	if err != nil {
		return nil, c.fail("write", key, err)
	}
	if _, err := c.client(ctx); err != nil {
		return nil, c.fail("write", key, err)
	}
	cr := &backend.CountingReader{R: r}
	out, err := c.uploader.Upload(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(c.cfg.Bucket),
		Key:         aws.String(key),
		Body:        cr,
		ContentType: aws.String("application/octet-stream"),
		Metadata:    map[string]string{MetadataTimestamp: backend.FormatTimestamp(createdAt)},
	})
	if err != nil {
		c.forget(key)
		return nil, c.fail("write", key, err)
	}
	c.remember(key, aws.ToString(out.ETag), createdAt)
	c.log.Debug("wrote ltx file", "key", key, "size", cr.N, "parts", max(1, len(out.CompletedParts)))
	return &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: cr.N, CreatedAt: createdAt}, nil
}

// DeleteLTXFiles removes files, up to 1000 per request; missing ones are
// not an error. It tries every batch and returns all failures.
func (c *Client) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	keys, errs := backend.DeleteKeys(files, c.Key, c.fail)
	return errors.Join(append(errs, c.deleteKeys(ctx, keys))...)
}

func (c *Client) deleteKeys(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	cl, err := c.client(ctx)
	if err != nil {
		return c.fail("delete", keys[0], err)
	}
	var errs []error
	for len(keys) > 0 {
		n := min(len(keys), maxDeleteKeys)
		batch := keys[:n]
		keys = keys[n:]
		ids := make([]types.ObjectIdentifier, len(batch))
		for i, k := range batch {
			ids[i] = types.ObjectIdentifier{Key: aws.String(k)}
		}
		c.forget(batch...)
		out, err := cl.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(c.cfg.Bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			errs = append(errs, c.fail(fmt.Sprintf("delete %d objects from", len(batch)), batch[0], err))
			continue
		}
		for _, e := range out.Errors {
			if aws.ToString(e.Code) == "NoSuchKey" {
				continue
			}
			errs = append(errs, c.fail("delete", aws.ToString(e.Key), fmt.Errorf("%s: %s", aws.ToString(e.Code), aws.ToString(e.Message))))
		}
	}
	return errors.Join(errs...)
}

// DeleteAll removes every object of the replica's level directories
// (<path>/0000/ through <path>/0009/). Other keys under the path stay.
func (c *Client) DeleteAll(ctx context.Context) error {
	cl, err := c.client(ctx)
	if err != nil {
		return c.fail("delete all", c.cfg.Path+"/", err)
	}
	var keys []string
	for level := 0; level <= remote.MaxLevel; level++ {
		prefix := c.levelPrefix(level)
		p := s3.NewListObjectsV2Paginator(cl, &s3.ListObjectsV2Input{Bucket: aws.String(c.cfg.Bucket), Prefix: aws.String(prefix)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return c.fail("delete all: list", prefix, err)
			}
			for _, o := range page.Contents {
				keys = append(keys, aws.ToString(o.Key))
			}
		}
	}
	return c.deleteKeys(ctx, keys)
}
