// Package s3 is the remote.Client for Amazon S3 and S3-compatible stores
// (MinIO, R2, Tigris, B2, ...), in the layout Litestream v0.5 writes:
//
//	s3://BUCKET/<path>/<level as %04x>/<%016x-%016x>.ltx
//
// A replica at the bucket root (empty path, s3://BUCKET/) has keys
// "/<level>/<name>", with a leading slash, because Litestream v0.5 writes
// them so (path + "/" + ...): on AWS that is a key distinct from
// "<level>/<name>", and both tools must use the same one to share the
// replica. (MinIO stores the key without the slash and lists it under
// either prefix.) Replicas with a path are identical in both tools.
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
// Uploads are spooled (memory, then a temporary file) and go in one PUT up
// to PartSize (5 MiB by default) and as a multipart upload above it, each
// part retried on its own; a failed multipart upload is aborted, so a
// partial object is never visible. Reads are ranged GETs whose returned
// range and length are checked; a read that fails or stalls in the middle
// of its body resumes from the byte it reached (retry.Policy.OpenRange).
//
// Retries follow Config.Retry (package remote/retry), not the SDK's
// retryer, which is switched off: every request, and every pause in its
// body, is bounded by the policy's AttemptTimeout, and a transient failure anywhere (5xx, throttling,
// connection resets, a response body cut short, which the SDK reports as
// "failed to decode response body, unexpected EOF") is retried with
// backoff; permanent ones (denied, bad credentials, missing bucket or key)
// are not.
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
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/internal/backend"
	"github.com/litestream-go/litestream/remote/retry"
)

// MetadataTimestamp is the user metadata key holding a file's creation time.
const MetadataTimestamp = "litestream-timestamp"

// DefaultRegion is used with custom endpoints when no region is given.
const DefaultRegion = "us-east-1"

// maxDeleteKeys is the most keys one DeleteObjects request takes.
const maxDeleteKeys = 1000

// DefaultTimeout bounds one request, and each pause in the body it sends
// or receives, when Config.Retry.AttemptTimeout is zero.
const DefaultTimeout = 30 * time.Second

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
	// retry.Default's numbers).
	Retry retry.Policy
	// Logger receives debug messages (nil: slog.Default()).
	Logger *slog.Logger
	// Compat holds Litestream's S3 compatibility settings (compat.go).
	Compat Compat
}

// Client is a replica in an S3 bucket. It sets up its SDK client on first
// use and is safe for concurrent use.
type Client struct {
	cfg  Config
	keys remote.Keys
	log  *slog.Logger
	what string
	// keyMD5 is the SSE-C key's MD5 (base64), when one is set.
	keyMD5 string

	mu sync.Mutex
	s3 *s3.Client

	// reqs counts the HTTP requests sent, by kind (countRequests).
	reqs remote.Requests

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
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("backend", "s3", "bucket", cfg.Bucket)
	if cfg.Retry.Logger == nil {
		cfg.Retry.Logger = log
	}
	cfg.Retry = cfg.Retry.WithDefaults()
	if cfg.Retry.AttemptTimeout <= 0 {
		cfg.Retry.AttemptTimeout = DefaultTimeout
	}
	keyMD5, err := cfg.Compat.validate()
	if err != nil {
		return nil, err
	}
	return &Client{
		cfg:    cfg,
		keys:   remote.Keys{Root: cfg.Path, Layout: remote.LayoutS3},
		log:    log,
		what:   fmt.Sprintf("s3 bucket %q", cfg.Bucket),
		keyMD5: keyMD5,
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
	// Requests are bounded by the retry policy's attempt timeout.
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		if c.cfg.SkipVerify {
			if tr.TLSClientConfig == nil {
				tr.TLSClientConfig = &tls.Config{}
			}
			tr.TLSClientConfig.InsecureSkipVerify = true
		}
	})
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(hc),
		// One retry loop, ours (see the package doc): the SDK's would
		// multiply with it, and it does not retry bodies cut short.
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
		config.WithLogger(logging.LoggerFunc(func(cls logging.Classification, format string, v ...any) {
			c.log.Debug("aws sdk: "+fmt.Sprintf(format, v...), "class", string(cls))
		})),
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
		o.APIOptions = append(o.APIOptions, c.cfg.Compat.apply(c.keyMD5), c.countRequests)
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
	return c.s3, nil
}

// RequestCounts returns the requests sent so far, by kind.
func (c *Client) RequestCounts() remote.RequestCounts { return c.reqs.RequestCounts() }

// countRequests counts every HTTP request the SDK sends (the SDK's own
// retries are off, so one operation call is one request), by the kind S3
// bills it as.
func (c *Client) countRequests(st *middleware.Stack) error {
	return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("LitestreamCountRequests",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			c.reqs.Add(requestKind(awsmiddleware.GetOperationName(ctx)))
			return next.HandleFinalize(ctx, in)
		}), middleware.After)
}

// requestKind is the billing class of an S3 operation.
func requestKind(op string) remote.RequestKind {
	switch op {
	case "ListObjectsV2", "ListObjects":
		return remote.ReqList
	case "HeadObject", "HeadBucket":
		return remote.ReqHead
	case "GetObject", "GetBucketLocation":
		return remote.ReqGet
	case "DeleteObjects", "DeleteObject", "AbortMultipartUpload":
		return remote.ReqDelete
	}
	return remote.ReqPut // PutObject and the multipart upload's requests
}

// Key returns the object key of one LTX file (remote.LayoutS3: at the
// bucket root, with a leading slash).
func (c *Client) Key(level int, minTXID, maxTXID ltx.TXID) string {
	return c.keys.File(level, minTXID, maxTXID)
}

// fail wraps err with the bucket, operation and key, hides secrets, and
// marks the failures no retry can fix as retry.Permanent for the layers
// above.
func (c *Client) fail(op, key string, err error) error {
	if permanent(err) {
		err = retry.Permanent(err)
	}
	err = fmt.Errorf("%s: %s %q: %w", c.what, op, key, explain(err))
	return backend.Redact(err, c.cfg.SecretAccessKey, c.cfg.SessionToken, c.cfg.Compat.SSECustomerKey)
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

// permanent reports whether err is a failure no retry can fix: denied
// access, bad credentials, a missing bucket.
func permanent(err error) bool {
	switch errorCode(err) {
	case "NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidBucketName",
		"AllAccessDisabled", "AccountProblem", "InvalidToken", "ExpiredToken":
		return true
	}
	return false
}

// transient reports whether a failed request is worth another try: what
// retry.Transient accepts (network failures, 5xx and 429, timeouts), a
// request that never completed, a response whose body could not be read or
// decoded (a body cut short arrives as a deserialization error), and S3's
// own transient error codes.
func transient(err error) bool {
	if !retry.Retryable(err) || permanent(err) {
		return false
	}
	if retry.Transient(err) || errors.Is(err, io.EOF) {
		return true
	}
	var de *smithy.DeserializationError
	var se *smithyhttp.RequestSendError
	if errors.As(err, &de) || errors.As(err, &se) {
		return true
	}
	switch errorCode(err) {
	case "SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "RequestTimeTooSkewed", "Throttling", "ThrottlingException":
		return true
	}
	return false
}

func notFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	return errors.As(err, &nsk) || errors.As(err, &nf) || errorCode(err) == "NoSuchKey" || errorCode(err) == "NotFound"
}

// do runs one request under the client's retry policy; what names the
// operation and key in retry warnings.
func (c *Client) do(ctx context.Context, p retry.Policy, what string, fn func(context.Context) error) error {
	return p.Do(ctx, c.what+": "+what, transient, fn)
}

// list calls fn with every object under prefix, one page of up to 1000 at
// a time, each page retried on its own. startAfter, if set, skips the keys
// up to it; delimiter "/" leaves out deeper keys.
func (c *Client) list(ctx context.Context, cl *s3.Client, prefix, startAfter, delimiter string, fn func(types.Object)) error {
	return c.listUntil(ctx, cl, prefix, startAfter, delimiter, "", fn)
}

// listUntil is list that stops before the first key at or after end (""
// for no end): keys come in byte order, so no later page can hold one
// before it.
func (c *Client) listUntil(ctx context.Context, cl *s3.Client, prefix, startAfter, delimiter, end string, fn func(types.Object)) error {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(c.cfg.Bucket), Prefix: aws.String(prefix)}
	if startAfter != "" {
		in.StartAfter = aws.String(startAfter)
	}
	if delimiter != "" {
		in.Delimiter = aws.String(delimiter)
	}
	for {
		var page *s3.ListObjectsV2Output
		err := c.do(ctx, c.cfg.Retry, "list "+prefix, func(ctx context.Context) error {
			var err error
			page, err = cl.ListObjectsV2(ctx, in)
			return err
		})
		if err != nil {
			return err
		}
		for _, o := range page.Contents {
			if end != "" && aws.ToString(o.Key) >= end {
				return nil
			}
			fn(o)
		}
		if !aws.ToBool(page.IsTruncated) {
			return nil
		}
		if page.NextContinuationToken == nil {
			return errors.New("truncated listing without a continuation token")
		}
		in.ContinuationToken = page.NextContinuationToken
	}
}

// LTXFiles lists the files of level with MinTXID >= seek, by MinTXID. The
// listing starts after the seek TXID's name (names are fixed-width hex, so
// byte order is numeric order), never using the TXID as a name prefix.
func (c *Client) LTXFiles(ctx context.Context, level int, seek ltx.TXID) ([]*ltx.FileInfo, error) {
	prefix := c.keys.LevelPrefix(level)
	if err := backend.CheckLevel(level); err != nil {
		return nil, c.fail("list", prefix, err)
	}
	cl, err := c.client(ctx)
	if err != nil {
		return nil, c.fail("list", prefix, err)
	}
	// "%016x" sorts before "%016x-...ltx" and after every smaller TXID.
	startAfter := c.keys.SeekKey(level, seek)
	objs := newListing(c.keys, func(id remote.FileID) bool { return id.Level == level && id.MinTXID >= seek })
	if err := c.list(ctx, cl, prefix, startAfter, "/", objs.add); err != nil {
		return nil, c.fail("list", prefix, err)
	}
	if c.cfg.Path == "" {
		// At the bucket root, also the keys without the leading slash:
		// MinIO stores Litestream's "/0009/..." so when it arrives by
		// multipart upload, and replicas written before this build used
		// that layout. Reads and deletes go to the key as listed.
		alt := strings.TrimPrefix(prefix, "/")
		if err := c.list(ctx, cl, alt, strings.TrimPrefix(startAfter, "/"), "/", objs.add); err != nil {
			return nil, c.fail("list", alt, err)
		}
	}
	return c.stamped(ctx, cl, objs.objs, true)
}

var _ remote.AllLister = (*Client)(nil)

// LTXFilesAll lists every level with one paginated listing of the replica
// path (1000 keys a request) instead of one listing per level. With
// exactTimes false it sends no HEAD: a file whose stored timestamp the
// client has not seen (written or listed before) gets its upload time. At
// the bucket root it falls back to listing level by level (the keys may
// lack their leading slash there, and a prefix listing would be the whole
// bucket).
func (c *Client) LTXFilesAll(ctx context.Context, exactTimes bool) ([]*ltx.FileInfo, error) {
	if c.cfg.Path == "" {
		return nil, errors.ErrUnsupported
	}
	prefix := c.keys.AllPrefix()
	cl, err := c.client(ctx)
	if err != nil {
		return nil, c.fail("list", prefix, err)
	}
	objs := newListing(c.keys, func(remote.FileID) bool { return true })
	// The level directories "0000".."0009" sort before anything else a
	// path may hold ("generations/" of a v0.3 replica, say): stop there.
	end := c.keys.LevelPrefix(remote.MaxLevel + 1)
	if err := c.listUntil(ctx, cl, prefix, "", "", end, objs.add); err != nil {
		return nil, c.fail("list", prefix, err)
	}
	return c.stamped(ctx, cl, objs.objs, exactTimes)
}

// listed is one LTX object of a listing.
type listed struct {
	info *ltx.FileInfo
	key  string
	etag string
}

// listing collects the LTX objects of a listing that want accepts, each
// file once.
type listing struct {
	keys remote.Keys
	want func(remote.FileID) bool
	seen map[remote.FileID]bool
	objs []listed
}

func newListing(keys remote.Keys, want func(remote.FileID) bool) *listing {
	return &listing{keys: keys, want: want, seen: map[remote.FileID]bool{}}
}

func (l *listing) add(o types.Object) {
	key := aws.ToString(o.Key)
	id, ok := l.keys.ParseKey(key)
	if !ok || !l.want(id) || l.seen[id] {
		return
	}
	l.seen[id] = true
	info := &ltx.FileInfo{Level: id.Level, MinTXID: id.MinTXID, MaxTXID: id.MaxTXID, Size: aws.ToInt64(o.Size),
		CreatedAt: aws.ToTime(o.LastModified).UTC()}
	l.objs = append(l.objs, listed{info: info, key: key, etag: aws.ToString(o.ETag)})
}

// stamped sets the files' stored timestamps, from memory where the ETag
// matches, else (exact only) with a HEAD each, and returns them ordered by
// level, then as LTXFiles orders a level. Without exact, a file not in
// memory keeps its upload time. A file gone since the listing is left out.
func (c *Client) stamped(ctx context.Context, cl *s3.Client, objs []listed, exact bool) ([]*ltx.FileInfo, error) {
	var missing []int
	c.stampsMu.Lock()
	for i, o := range objs {
		if s, ok := c.stamps[o.key]; ok && s.etag == o.etag {
			o.info.CreatedAt = s.ts
		} else if exact {
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
			var head *s3.HeadObjectOutput
			err := c.do(gctx, c.cfg.Retry, "head "+o.key, func(ctx context.Context) error {
				var err error
				head, err = cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(c.cfg.Bucket), Key: aws.String(o.key)})
				return err
			})
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
	backend.SortAll(infos)
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
// end) with a ranged GET. A read that fails or stalls in the middle resumes
// with a GET of the rest (see retry.Policy.OpenRange).
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
	desc := fmt.Sprintf("%s: read %q", c.what, key)
	rc, err := c.cfg.Retry.OpenRange(ctx, desc, transient, offset, size, func(ctx context.Context, offset, size int64) (io.ReadCloser, int64, error) {
		return c.get(ctx, cl, key, offset, size)
	})
	if errors.Is(err, remote.ErrNotExist) && c.cfg.Path == "" {
		// A bucket-root file stored without the leading slash (see
		// LTXFiles).
		alt := strings.TrimPrefix(key, "/")
		rc, err = c.cfg.Retry.OpenRange(ctx, desc, transient, offset, size, func(ctx context.Context, offset, size int64) (io.ReadCloser, int64, error) {
			return c.get(ctx, cl, alt, offset, size)
		})
	}
	if err != nil {
		return nil, c.fail("open", key, err)
	}
	return rc, nil
}

// get sends one ranged GET and checks that the answer is the range asked
// for: it returns the body and its exact length.
func (c *Client) get(ctx context.Context, cl *s3.Client, key string, offset, size int64) (io.ReadCloser, int64, error) {
	rng := fmt.Sprintf("bytes=%d-", offset)
	if size > 0 {
		rng = fmt.Sprintf("bytes=%d-%d", offset, offset+size-1)
	}
	out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(c.cfg.Bucket), Key: aws.String(key), Range: aws.String(rng)})
	if notFound(err) {
		return nil, 0, fmt.Errorf("%w: %w", remote.ErrNotExist, err)
	} else if errorCode(err) == "InvalidRange" {
		return nil, 0, retry.Permanent(fmt.Errorf("range offset=%d size=%d is outside the file: %w", offset, size, err))
	} else if err != nil {
		return nil, 0, err
	}
	n, err := backend.CheckContentRange(aws.ToString(out.ContentRange), offset, size)
	if err != nil {
		out.Body.Close()
		return nil, 0, err
	}
	if cl := aws.ToInt64(out.ContentLength); cl != n {
		out.Body.Close()
		return nil, 0, retry.Permanent(fmt.Errorf("Content-Length %d for a range of %d bytes (%s)", cl, n, aws.ToString(out.ContentRange)))
	}
	return out.Body, n, nil
}

// WriteLTXFile uploads the LTX file read from r with its header timestamp
// in the object metadata. The file is spooled first, so that every try
// sends it whole: one PUT up to PartSize, a multipart upload above it.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	key := c.Key(level, minTXID, maxTXID)
	if err := backend.CheckWrite(level, minTXID, maxTXID); err != nil {
		return nil, c.fail("write", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, c.fail("write", key, err)
	}
	createdAt, r, err := backend.ReadHeader(ctx, r, minTXID, maxTXID)
	if err != nil {
		return nil, c.fail("write", key, err)
	}
	cl, err := c.client(ctx)
	if err != nil {
		return nil, c.fail("write", key, err)
	}
	spool, err := backend.NewSpool(ctx, r, c.cfg.PartSize, "")
	if err != nil {
		return nil, c.fail("write", key, err)
	}
	defer spool.Close()
	meta := map[string]string{MetadataTimestamp: backend.FormatTimestamp(createdAt)}
	var etag string
	parts := 1
	if spool.Size() <= c.cfg.PartSize {
		err = c.do(ctx, c.cfg.Retry, "put "+key, func(ctx context.Context) error {
			out, err := cl.PutObject(ctx, &s3.PutObjectInput{
				Bucket:        aws.String(c.cfg.Bucket),
				Key:           aws.String(key),
				Body:          retry.Progress(ctx, spool.Reader()),
				ContentLength: aws.Int64(spool.Size()),
				ContentType:   aws.String("application/octet-stream"),
				Metadata:      meta,
			})
			if err == nil {
				etag = aws.ToString(out.ETag)
			}
			return err
		})
	} else {
		etag, parts, err = c.putMultipart(ctx, cl, key, spool, meta)
	}
	if err != nil {
		c.forget(key)
		return nil, c.fail("write", key, err)
	}
	c.remember(key, etag, createdAt)
	c.log.Debug("wrote ltx file", "key", key, "size", spool.Size(), "parts", parts)
	return &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: spool.Size(), CreatedAt: createdAt}, nil
}

// putMultipart uploads spool as a multipart upload of PartSize parts,
// Concurrency at a time, each part retried on its own. On failure the
// upload is aborted, so no partial object appears. It returns the ETag and
// the number of parts.
func (c *Client) putMultipart(ctx context.Context, cl *s3.Client, key string, spool *backend.Spool, meta map[string]string) (string, int, error) {
	var id string
	err := c.do(ctx, c.cfg.Retry, "create multipart upload "+key, func(ctx context.Context) error {
		out, err := cl.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
			Bucket:      aws.String(c.cfg.Bucket),
			Key:         aws.String(key),
			ContentType: aws.String("application/octet-stream"),
			Metadata:    meta,
		})
		if err == nil {
			id = aws.ToString(out.UploadId)
		}
		return err
	})
	if err != nil {
		return "", 0, err
	}
	abort := func() {
		// The upload's parts cost storage until aborted: try even if
		// ctx ended, briefly.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Retry.AttemptTimeout)
		defer cancel()
		_ = c.do(actx, c.cfg.Retry, "abort multipart upload "+key, func(ctx context.Context) error {
			_, err := cl.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(c.cfg.Bucket), Key: aws.String(key), UploadId: aws.String(id)})
			if errorCode(err) == "NoSuchUpload" {
				return nil
			}
			return err
		})
	}

	size, partSize := spool.Size(), c.cfg.PartSize
	n := int((size + partSize - 1) / partSize)
	parts := make([]types.CompletedPart, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.cfg.Concurrency)
	for i := range n {
		off := int64(i) * partSize
		length := min(partSize, size-off)
		num := int32(i + 1)
		g.Go(func() error {
			return c.do(gctx, c.cfg.Retry, fmt.Sprintf("put part %d of %s", num, key), func(ctx context.Context) error {
				out, err := cl.UploadPart(ctx, &s3.UploadPartInput{
					Bucket:        aws.String(c.cfg.Bucket),
					Key:           aws.String(key),
					UploadId:      aws.String(id),
					PartNumber:    aws.Int32(num),
					Body:          retry.Progress(ctx, spool.Section(off, length)),
					ContentLength: aws.Int64(length),
				})
				if err == nil {
					parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)}
				}
				return err
			})
		})
	}
	if err := g.Wait(); err != nil {
		abort()
		return "", 0, err
	}
	var etag string
	tries := 0
	err = c.do(ctx, c.cfg.Retry, "complete multipart upload "+key, func(ctx context.Context) error {
		tries++
		out, err := cl.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket:          aws.String(c.cfg.Bucket),
			Key:             aws.String(key),
			UploadId:        aws.String(id),
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		})
		if errorCode(err) == "NoSuchUpload" && tries > 1 {
			// An earlier try completed the upload but its answer was
			// lost: the object is there if it has the upload's size.
			head, herr := cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(c.cfg.Bucket), Key: aws.String(key)})
			if herr == nil && aws.ToInt64(head.ContentLength) == size && strings.HasSuffix(strings.Trim(aws.ToString(head.ETag), `"`), fmt.Sprintf("-%d", n)) {
				etag = aws.ToString(head.ETag)
				return nil
			}
			return err
		}
		if err == nil {
			etag = aws.ToString(out.ETag)
		}
		return err
	})
	if err != nil {
		abort()
		return "", 0, err
	}
	return etag, n, nil
}

// DeleteLTXFiles removes files, up to 1000 per request; missing ones are
// not an error. It tries every batch and returns all failures.
func (c *Client) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	keys, errs := backend.DeleteKeys(files, c.Key, c.fail)
	if c.cfg.Path == "" {
		// Both forms of a bucket-root key (see LTXFiles).
		for _, k := range keys[:len(keys):len(keys)] {
			keys = append(keys, strings.TrimPrefix(k, "/"))
		}
	}
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
		var out *s3.DeleteObjectsOutput
		err := c.do(ctx, c.cfg.Retry, fmt.Sprintf("delete %d objects from %s", len(batch), batch[0]), func(ctx context.Context) error {
			var err error
			out, err = cl.DeleteObjects(ctx, &s3.DeleteObjectsInput{
				Bucket: aws.String(c.cfg.Bucket),
				Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
			})
			return err
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
	for _, prefix := range c.keys.DeletePrefixes() {
		if err := c.list(ctx, cl, prefix, "", "", func(o types.Object) { keys = append(keys, aws.ToString(o.Key)) }); err != nil {
			return c.fail("delete all: list", prefix, err)
		}
	}
	return c.deleteKeys(ctx, keys)
}

var _ remote.RawReader = (*Client)(nil)

// rawKey is the object key of a key relative to the replica path.
func (c *Client) rawKey(rel string) string {
	if c.cfg.Path == "" {
		return rel
	}
	return c.cfg.Path + "/" + rel
}

// ListRaw lists the objects under <path>/prefix, for reading Litestream
// v0.3's generations/ tree.
func (c *Client) ListRaw(ctx context.Context, prefix string) ([]remote.RawObject, error) {
	full := c.rawKey(prefix)
	cl, err := c.client(ctx)
	if err != nil {
		return nil, c.fail("list", full, err)
	}
	var out []remote.RawObject
	err = c.list(ctx, cl, full, "", "", func(o types.Object) {
		key := aws.ToString(o.Key)
		rel := key
		if c.cfg.Path != "" {
			rel = strings.TrimPrefix(key, c.cfg.Path+"/")
		}
		out = append(out, remote.RawObject{Key: rel, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified).UTC()})
	})
	if err != nil {
		return nil, c.fail("list", full, err)
	}
	return out, nil
}

// OpenRaw opens the object <path>/key.
func (c *Client) OpenRaw(ctx context.Context, key string) (io.ReadCloser, error) {
	full := c.rawKey(key)
	cl, err := c.client(ctx)
	if err != nil {
		return nil, c.fail("open", full, err)
	}
	desc := fmt.Sprintf("%s: read %q", c.what, full)
	rc, err := c.cfg.Retry.OpenRange(ctx, desc, transient, 0, 0, func(ctx context.Context, offset, size int64) (io.ReadCloser, int64, error) {
		return c.get(ctx, cl, full, offset, size)
	})
	if err != nil {
		return nil, c.fail("open", full, err)
	}
	return rc, nil
}
