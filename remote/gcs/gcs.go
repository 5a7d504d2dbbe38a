// Package gcs is the remote.Client for Google Cloud Storage, in the layout
// Litestream v0.5 writes:
//
//	gs://BUCKET/<path>/ltx/<level decimal>/<%016x-%016x>.ltx
//
// Credentials are Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS,
// gcloud's, or the metadata server), or a credentials file given in Config.
// An Endpoint (or STORAGE_EMULATOR_HOST) points the client at an emulator
// such as fake-gcs-server; emulators get no authentication.
//
// A file's creation time (the LTX header timestamp) is stored as the object
// metadata "litestream-timestamp" in RFC 3339, as Litestream does, and
// listing reads it from the listing itself.
//
// Listing from a TXID is numeric: file names are fixed-width lower-case hex,
// so their byte order is their numeric order, and the listing starts at the
// name of the seek TXID with the API's startOffset rather than treating the
// TXID as a name prefix (a known Litestream bug on GCS). Reads are ranged
// reads that resume from the byte reached when they fail or stall in the
// middle (retry.Policy.OpenRange). Uploads are spooled and sent whole on
// each try (large ones as a resumable upload whose chunks the library
// retries); one that fails is cancelled, never finalized, so a partial
// object is never visible, and before a write is reported failed or tried
// again the client checks whether it landed after all (size and CRC32C),
// as it does when the answer to the last chunk was lost. Rewriting an
// immutable LTX file is idempotent.
//
// Retries follow Config.Retry (package remote/retry): every listing,
// read, write and delete is bounded by its AttemptTimeout and retried on
// transient failures (429, 5xx, connection resets, bodies cut short); the
// library's own retries are off except for the chunks of resumable
// uploads.
package gcs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"github.com/superfly/ltx"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/internal/backend"
	"github.com/litestream-go/litestream/remote/retry"
)

// MetadataTimestamp is the object metadata key holding a file's creation time.
const MetadataTimestamp = "litestream-timestamp"

// DefaultTimeout bounds one request, and each pause in the body it sends
// or receives, when Config.Retry.AttemptTimeout is zero.
const DefaultTimeout = 30 * time.Second

// Config configures a Client. Only Bucket is required.
type Config struct {
	Bucket string
	// Path is the replica root inside the bucket.
	Path string
	// Endpoint overrides the service URL, e.g. an emulator's
	// "http://127.0.0.1:4443/storage/v1/". Without it, STORAGE_EMULATOR_HOST
	// is honoured by the library.
	Endpoint string
	// CredentialsFile is a service account or other credentials JSON file;
	// empty means Application Default Credentials.
	CredentialsFile string
	// ChunkSize is the upload chunk size (default 8 MiB): files up to it go
	// in one request, larger ones as a resumable upload of such chunks.
	ChunkSize int
	// Retry is the policy of every request (zero fields: retry.Default's
	// numbers, and DefaultTimeout as AttemptTimeout).
	Retry retry.Policy
	// Logger receives debug messages (nil: slog.Default()).
	Logger *slog.Logger
	// ClientOptions are passed to storage.NewClient after the above (tests).
	ClientOptions []option.ClientOption
}

// Client is a replica in a GCS bucket. It creates its storage client on
// first use and is safe for concurrent use.
type Client struct {
	cfg  Config
	keys remote.Keys
	log  *slog.Logger
	what string

	mu  sync.Mutex
	gcs *storage.Client

	// reqs counts the requests sent, by kind.
	reqs remote.Requests
}

// RequestCounts returns the requests sent so far, by kind: each listing
// page, read, upload request (a resumable upload's chunks each), metadata
// read and delete.
func (c *Client) RequestCounts() remote.RequestCounts { return c.reqs.RequestCounts() }

var _ remote.Client = (*Client)(nil)

// New returns a client for cfg. It does not contact the service.
func New(cfg Config) (*Client, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("gs replica: bucket is required (gs://bucket/path)")
	}
	cfg.Path = remote.CleanRoot(cfg.Path)
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = 8 << 20
	}
	log := backend.Logger(cfg.Logger, &cfg.Retry, "backend", "gs", "bucket", cfg.Bucket)
	cfg.Retry = cfg.Retry.WithDefaults()
	if cfg.Retry.AttemptTimeout <= 0 {
		cfg.Retry.AttemptTimeout = DefaultTimeout
	}
	return &Client{cfg: cfg, keys: remote.Keys{Root: cfg.Path, Layout: remote.LayoutLTX}, log: log,
		what: fmt.Sprintf("gs bucket %q", cfg.Bucket)}, nil
}

// Type returns "gs".
func (c *Client) Type() string { return "gs" }

// Config returns the client's configuration, defaults applied.
func (c *Client) Config() Config { return c.cfg }

// Close releases the storage client.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gcs != nil {
		err := c.gcs.Close()
		c.gcs = nil
		return err
	}
	return nil
}

func (c *Client) bucket(ctx context.Context) (*storage.BucketHandle, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gcs == nil {
		var opts []option.ClientOption
		switch {
		case c.cfg.Endpoint != "":
			opts = append(opts, option.WithEndpoint(c.cfg.Endpoint), option.WithoutAuthentication(), storage.WithJSONReads())
		case os.Getenv("STORAGE_EMULATOR_HOST") != "":
			// Emulators serve reads on the JSON API only.
			opts = append(opts, storage.WithJSONReads())
		case c.cfg.CredentialsFile != "":
			opts = append(opts, option.WithAuthCredentialsFile(option.ServiceAccount, c.cfg.CredentialsFile))
		}
		opts = append(opts, c.cfg.ClientOptions...)
		gcs, err := storage.NewClient(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("create client: %w", err)
		}
		// The library's retries apply to the chunks of resumable
		// uploads only (see once); everything else is retried by
		// Config.Retry.
		r := c.cfg.Retry
		gcs.SetRetry(
			storage.WithPolicy(storage.RetryAlways),
			storage.WithMaxAttempts(r.Attempts),
			storage.WithBackoff(gax.Backoff{Initial: r.Base, Max: r.Max, Multiplier: 2}),
			storage.WithErrorFunc(transient),
		)
		c.gcs = gcs
	}
	return c.gcs.Bucket(c.cfg.Bucket), nil
}

// transient reports whether a GCS failure is worth retrying.
func transient(err error) bool {
	return backend.TransientStatus(err, func(e *googleapi.Error) int { return e.Code }, storage.ShouldRetry)
}

// once is the retry option for a request that Config.Retry retries: the
// library sends it once.
var once = storage.WithPolicy(storage.RetryNever)

// do runs fn under policy p; what names the operation and key.
func (c *Client) do(ctx context.Context, p retry.Policy, what string, fn func(context.Context) error) error {
	return p.Do(ctx, c.what+": "+what, transient, fn)
}

// Key returns the object name of one LTX file.
func (c *Client) Key(level int, minTXID, maxTXID ltx.TXID) string {
	return c.keys.File(level, minTXID, maxTXID)
}

func (c *Client) fail(op, key string, err error) error {
	return fmt.Errorf("%s: %s %q: %w", c.what, op, key, err)
}

// LTXFiles lists the files of level with MinTXID >= seek, by MinTXID.
func (c *Client) LTXFiles(ctx context.Context, level int, seek ltx.TXID) ([]*ltx.FileInfo, error) {
	prefix := c.keys.LevelPrefix(level)
	if err := backend.CheckLevel(level); err != nil {
		return nil, c.fail("list", prefix, err)
	}
	b, err := c.bucket(ctx)
	if err != nil {
		return nil, c.fail("list", prefix, err)
	}
	q := &storage.Query{Prefix: prefix, Delimiter: "/", StartOffset: c.keys.SeekKey(level, seek)}
	if err := q.SetAttrSelection([]string{"Name", "Size", "Metadata", "Created"}); err != nil {
		return nil, c.fail("list", prefix, err)
	}
	var infos []*ltx.FileInfo
	err = c.list(ctx, b, q, func() { infos = infos[:0] }, func(attrs *storage.ObjectAttrs) {
		if attrs.Prefix != "" {
			return // a "subdirectory"
		}
		if info := c.infoOf(attrs); info != nil && info.Level == level && info.MinTXID >= seek {
			infos = append(infos, info)
		}
	})
	if err != nil {
		return nil, c.fail("list", prefix, err)
	}
	backend.SortInfos(infos)
	return infos, nil
}

var _ remote.AllLister = (*Client)(nil)

// LTXFilesAll lists every level with one paginated listing of <path>/ltx/.
// Listings carry the metadata, so the times are exact either way.
func (c *Client) LTXFilesAll(ctx context.Context, exactTimes bool) ([]*ltx.FileInfo, error) {
	prefix := c.keys.AllPrefix()
	b, err := c.bucket(ctx)
	if err != nil {
		return nil, c.fail("list", prefix, err)
	}
	q := &storage.Query{Prefix: prefix}
	if err := q.SetAttrSelection([]string{"Name", "Size", "Metadata", "Created"}); err != nil {
		return nil, c.fail("list", prefix, err)
	}
	var infos []*ltx.FileInfo
	err = c.list(ctx, b, q, func() { infos = infos[:0] }, func(attrs *storage.ObjectAttrs) {
		if info := c.infoOf(attrs); info != nil {
			infos = append(infos, info)
		}
	})
	if err != nil {
		return nil, c.fail("list", prefix, err)
	}
	backend.SortAll(infos)
	return infos, nil
}

// infoOf returns the file a listed object is, or nil for an object outside
// the layout.
func (c *Client) infoOf(attrs *storage.ObjectAttrs) *ltx.FileInfo {
	id, ok := c.keys.ParseKey(attrs.Name)
	if !ok {
		return nil
	}
	createdAt := attrs.Created.UTC()
	if ts, ok := backend.ParseTimestamp(attrs.Metadata[MetadataTimestamp]); ok {
		createdAt = ts
	}
	return &ltx.FileInfo{Level: id.Level, MinTXID: id.MinTXID, MaxTXID: id.MaxTXID, Size: attrs.Size, CreatedAt: createdAt}
}

// list calls fn with every object q finds. A failed listing starts over
// (after reset) under Config.Retry.
func (c *Client) list(ctx context.Context, b *storage.BucketHandle, q *storage.Query, reset func(), fn func(*storage.ObjectAttrs)) error {
	return c.do(ctx, c.cfg.Retry, "list "+q.Prefix, func(ctx context.Context) error {
		reset()
		it := b.Retryer(once).Objects(ctx, q)
		c.reqs.Add(remote.ReqList)
		for {
			if pi := it.PageInfo(); pi.Remaining() == 0 && pi.Token != "" {
				c.reqs.Add(remote.ReqList) // Next fetches the next page
			}
			attrs, err := it.Next()
			if err == iterator.Done {
				return nil
			} else if err != nil {
				return err
			}
			fn(attrs)
		}
	})
}

// OpenLTXFile opens bytes [offset, offset+size) of a file (size 0: to the
// end) with a ranged read.
func (c *Client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	key := c.Key(level, minTXID, maxTXID)
	if err := backend.CheckOpen(c.fail, key, level, offset, size); err != nil {
		return nil, err
	}
	b, err := c.bucket(ctx)
	if err != nil {
		return nil, c.fail("open", key, err)
	}
	desc := fmt.Sprintf("%s: read %q", c.what, key)
	rc, err := c.cfg.Retry.OpenRange(ctx, desc, transient, offset, size, func(ctx context.Context, offset, size int64) (io.ReadCloser, int64, error) {
		return c.read(ctx, b, key, offset, size)
	})
	if err != nil {
		return nil, c.fail("open", key, err)
	}
	return rc, nil
}

// read opens one ranged read and returns the reader and its exact length.
func (c *Client) read(ctx context.Context, b *storage.BucketHandle, key string, offset, size int64) (io.ReadCloser, int64, error) {
	length := size
	if size == 0 {
		length = -1
	}
	c.reqs.Add(remote.ReqGet)
	r, err := b.Object(key).Retryer(once).NewRangeReader(ctx, offset, length)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return nil, 0, fmt.Errorf("%w: %w", remote.ErrNotExist, err)
	} else if rangeNotSatisfiable(err) {
		return nil, 0, retry.Permanent(fmt.Errorf("range offset=%d size=%d is outside the file: %w", offset, size, err))
	} else if err != nil {
		return nil, 0, err
	}
	end, err := backend.RangeEnd(offset, size, r.Attrs.Size)
	if err != nil {
		_ = r.Close()
		return nil, 0, retry.Permanent(err)
	}
	if r.Attrs.StartOffset != offset {
		_ = r.Close()
		return nil, 0, retry.Permanent(fmt.Errorf("server returned data from offset %d, want %d", r.Attrs.StartOffset, offset))
	}
	return r, end - offset, nil
}

func rangeNotSatisfiable(err error) bool {
	// The library reports every non-2xx answer to a read as a
	// *googleapi.Error. Never look for "416" in the message: a port or a byte
	// count in a connection error has those digits too.
	ge, ok := errors.AsType[*googleapi.Error](err)
	return ok && ge.Code == http.StatusRequestedRangeNotSatisfiable
}

// WriteLTXFile uploads the LTX file read from r with its header timestamp
// in the object metadata.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	key := c.Key(level, minTXID, maxTXID)
	return backend.WriteSpooled(ctx, c.fail, key, level, minTXID, maxTXID, r, int64(c.cfg.ChunkSize), func(ctx context.Context, spool *backend.Spool, createdAt time.Time) error {
		b, err := c.bucket(ctx)
		if err != nil {
			return err
		}
		crc, err := spool.CRC32C()
		if err != nil {
			return err
		}
		size := spool.Size()
		tries := 0
		err = c.do(ctx, c.cfg.Retry, "write "+key, func(ctx context.Context) error {
			if tries++; tries > 1 && c.landed(ctx, b, key, size, crc) {
				return nil
			}
			err := c.upload(ctx, b, key, spool, crc, createdAt)
			if err != nil && ctx.Err() == nil && c.landed(ctx, b, key, size, crc) {
				// The upload happened but its answer was lost (the last
				// chunk's retry then finds no upload session: 404).
				return nil
			}
			return err
		})
		if errors.Is(err, storage.ErrBucketNotExist) || isNotFound(err) {
			return fmt.Errorf("bucket does not exist: %w", err)
		} else if err != nil {
			return err
		}
		c.log.Debug("wrote ltx file", "key", key, "size", size)
		return nil
	})
}

// upload sends the spooled file once: in one request up to ChunkSize, as
// a resumable upload whose chunks the library retries above it. The
// server checks the CRC32C.
func (c *Client) upload(ctx context.Context, b *storage.BucketHandle, key string, spool *backend.Spool, crc uint32, createdAt time.Time) error {
	// Cancelling wctx aborts the upload; Close then fails and nothing is
	// finalized. A failed read must never reach Close with a live context.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	obj := b.Object(key)
	chunk := c.cfg.ChunkSize
	if spool.Size() <= int64(chunk) {
		obj, chunk = obj.Retryer(once), 0 // one request, retried by Config.Retry
	}
	if chunk == 0 {
		c.reqs.Add(remote.ReqPut)
	} else {
		for range (spool.Size() + int64(chunk) - 1) / int64(chunk) {
			c.reqs.Add(remote.ReqPut) // one request per chunk, the session's start apart
		}
	}
	w := obj.NewWriter(wctx)
	w.ChunkSize = chunk
	w.ChunkRetryDeadline = c.cfg.Retry.AttemptTimeout
	w.ContentType = "application/octet-stream"
	w.Metadata = map[string]string{MetadataTimestamp: backend.FormatTimestamp(createdAt)}
	w.CRC32C, w.SendCRC32C = crc, true
	if n, err := io.Copy(w, retry.Progress(ctx, spool.Reader())); err != nil {
		cancel()
		_ = w.Close()
		return fmt.Errorf("upload after %d bytes: %w", n, err)
	}
	return w.Close()
}

// landed reports whether the object is in place with the upload's size and
// CRC32C.
func (c *Client) landed(ctx context.Context, b *storage.BucketHandle, key string, size int64, crc uint32) bool {
	c.reqs.Add(remote.ReqHead)
	attrs, err := b.Object(key).Retryer(once).Attrs(ctx)
	return err == nil && attrs.Size == size && attrs.CRC32C == crc
}

func isNotFound(err error) bool {
	var ge *googleapi.Error
	return errors.As(err, &ge) && ge.Code == http.StatusNotFound
}

// DeleteLTXFiles removes files; missing ones are skipped. It tries every
// file and returns all failures.
func (c *Client) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	return backend.DeleteFiles(ctx, files, c.Key, c.fail, c.deleteKeys)
}

// deleteKeys deletes objects, several at a time (GCS has no batch delete
// in this API).
func (c *Client) deleteKeys(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	b, err := c.bucket(ctx)
	if err != nil {
		return c.fail("delete", keys[0], err)
	}
	return backend.DeleteParallel(ctx, keys, 8, func(ctx context.Context, key string) error {
		err := c.do(ctx, c.cfg.Retry, "delete "+key, func(ctx context.Context) error {
			c.reqs.Add(remote.ReqDelete)
			return b.Object(key).Retryer(once).Delete(ctx)
		})
		if err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
			return c.fail("delete", key, err)
		}
		return nil
	})
}

// DeleteAll removes every object under <path>/ltx/.
func (c *Client) DeleteAll(ctx context.Context) error {
	prefix := c.keys.DeletePrefixes()[0]
	b, err := c.bucket(ctx)
	if err != nil {
		return c.fail("delete all", prefix, err)
	}
	q := &storage.Query{Prefix: prefix}
	_ = q.SetAttrSelection([]string{"Name"})
	var keys []string
	err = c.list(ctx, b, q, func() { keys = keys[:0] }, func(attrs *storage.ObjectAttrs) { keys = append(keys, attrs.Name) })
	if err != nil {
		return c.fail("delete all: list", prefix, err)
	}
	return c.deleteKeys(ctx, keys)
}
