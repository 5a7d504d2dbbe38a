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
	cfg.Path = remote.CleanRoot(cfg.Path)
	if cfg.Endpoint != "" && !strings.Contains(cfg.Endpoint, "://") {
		cfg.Endpoint = "https://" + cfg.Endpoint
	}
	if cfg.PartSize < manager.MinUploadPartSize {
		cfg.PartSize = manager.MinUploadPartSize
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = manager.DefaultUploadConcurrency
	}
	log := backend.Logger(cfg.Logger, &cfg.Retry, "backend", "s3", "bucket", cfg.Bucket)
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

// OpenLTXFile opens bytes [offset, offset+size) of a file (size 0: to the
// end) with a ranged GET. A read that fails or stalls in the middle resumes
// with a GET of the rest (see retry.Policy.OpenRange).
func (c *Client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	key := c.Key(level, minTXID, maxTXID)
	if err := backend.CheckOpen(c.fail, key, level, offset, size); err != nil {
		return nil, err
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

// DeleteLTXFiles removes files, up to 1000 per request; missing ones are
// not an error. It tries every batch and returns all failures.
func (c *Client) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	return backend.DeleteFiles(ctx, files, c.Key, c.fail, func(ctx context.Context, keys []string) error {
		if c.cfg.Path == "" {
			// Both forms of a bucket-root key (see LTXFiles).
			for _, k := range keys[:len(keys):len(keys)] {
				keys = append(keys, strings.TrimPrefix(k, "/"))
			}
		}
		return c.deleteKeys(ctx, keys)
	})
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
