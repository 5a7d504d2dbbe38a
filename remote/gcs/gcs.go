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
// reads. Uploads that fail (the caller's reader or the connection) are
// cancelled, never finalized, so a partial object is never visible; the
// client retries transient failures (429, 5xx, connection resets) with
// backoff, uploads included, since rewriting an immutable LTX file is
// idempotent.
package gcs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/internal/backend"
	"github.com/litestream-go/litestream/remote/retry"
)

// MetadataTimestamp is the object metadata key holding a file's creation time.
const MetadataTimestamp = "litestream-timestamp"

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
	// Retry sets the attempts and backoff of the library's retries; its
	// zero value means retry.Default's numbers.
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
	log  *slog.Logger
	what string

	mu  sync.Mutex
	gcs *storage.Client
}

var _ remote.Client = (*Client)(nil)

// New returns a client for cfg. It does not contact the service.
func New(cfg Config) (*Client, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("gs replica: bucket is required (gs://bucket/path)")
	}
	cfg.Path = strings.Trim(path.Clean("/"+cfg.Path), "/")
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = 8 << 20
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Client{cfg: cfg, log: log.With("backend", "gs", "bucket", cfg.Bucket), what: fmt.Sprintf("gs bucket %q", cfg.Bucket)}, nil
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
		r := c.cfg.Retry
		if r.Attempts <= 0 {
			r = retry.Default
		}
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
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return retry.IsTransientStatus(ge.Code)
	}
	return retry.IsTransientNet(err) || storage.ShouldRetry(err)
}

func (c *Client) levelPrefix(level int) string {
	return path.Join(c.cfg.Path, "ltx", strconv.Itoa(level)) + "/"
}

// Key returns the object name of one LTX file.
func (c *Client) Key(level int, minTXID, maxTXID ltx.TXID) string {
	return c.levelPrefix(level) + remote.FileName(minTXID, maxTXID)
}

func (c *Client) fail(op, key string, err error) error {
	return fmt.Errorf("%s: %s %q: %w", c.what, op, key, err)
}

// LTXFiles lists the files of level with MinTXID >= seek, by MinTXID.
func (c *Client) LTXFiles(ctx context.Context, level int, seek ltx.TXID) ([]*ltx.FileInfo, error) {
	prefix := c.levelPrefix(level)
	if err := backend.CheckLevel(level); err != nil {
		return nil, c.fail("list", prefix, err)
	}
	b, err := c.bucket(ctx)
	if err != nil {
		return nil, c.fail("list", prefix, err)
	}
	q := &storage.Query{Prefix: prefix, Delimiter: "/"}
	if seek > 0 {
		q.StartOffset = prefix + fmt.Sprintf("%016x", uint64(seek))
	}
	if err := q.SetAttrSelection([]string{"Name", "Size", "Metadata", "Created"}); err != nil {
		return nil, c.fail("list", prefix, err)
	}
	var infos []*ltx.FileInfo
	it := b.Objects(ctx, q)
	for {
		attrs, err := it.Next()
		if err == iterator.Done {
			break
		} else if err != nil {
			return nil, c.fail("list", prefix, err)
		}
		if attrs.Prefix != "" {
			continue // a "subdirectory"
		}
		name := strings.TrimPrefix(attrs.Name, prefix)
		minTXID, maxTXID, err := ltx.ParseFilename(name)
		if err != nil || minTXID < seek || remote.FileName(minTXID, maxTXID) != name {
			continue
		}
		createdAt := attrs.Created.UTC()
		if ts, ok := backend.ParseTimestamp(attrs.Metadata[MetadataTimestamp]); ok {
			createdAt = ts
		}
		infos = append(infos, &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: attrs.Size, CreatedAt: createdAt})
	}
	backend.SortInfos(infos)
	return infos, nil
}

// OpenLTXFile opens bytes [offset, offset+size) of a file (size 0: to the
// end) with a ranged read.
func (c *Client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	key := c.Key(level, minTXID, maxTXID)
	if err := backend.CheckLevel(level); err != nil {
		return nil, c.fail("open", key, err)
	}
	if err := backend.CheckRange(offset, size); err != nil {
		return nil, c.fail("open", key, err)
	}
	b, err := c.bucket(ctx)
	if err != nil {
		return nil, c.fail("open", key, err)
	}
	length := size
	if size == 0 {
		length = -1
	}
	r, err := b.Object(key).NewRangeReader(ctx, offset, length)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return nil, c.fail("open", key, fmt.Errorf("%w: %w", remote.ErrNotExist, err))
	} else if rangeNotSatisfiable(err) {
		return nil, c.fail("open", key, fmt.Errorf("range offset=%d size=%d is outside the file: %w", offset, size, err))
	} else if err != nil {
		return nil, c.fail("open", key, err)
	}
	end, err := backend.RangeEnd(offset, size, r.Attrs.Size)
	if err != nil {
		_ = r.Close()
		return nil, c.fail("open", key, err)
	}
	if r.Attrs.StartOffset != offset {
		_ = r.Close()
		return nil, c.fail("open", key, fmt.Errorf("server returned data from offset %d, want %d", r.Attrs.StartOffset, offset))
	}
	return backend.ExactReader(r, end-offset, fmt.Sprintf("%s object %q", c.what, key)), nil
}

func rangeNotSatisfiable(err error) bool {
	var ge *googleapi.Error
	if errors.As(err, &ge) && ge.Code == http.StatusRequestedRangeNotSatisfiable {
		return true
	}
	return err != nil && strings.Contains(err.Error(), "416")
}

// WriteLTXFile uploads the LTX file read from r with its header timestamp
// in the object metadata.
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
	b, err := c.bucket(ctx)
	if err != nil {
		return nil, c.fail("write", key, err)
	}

	// Cancelling wctx aborts the upload; Close then fails and nothing is
	// finalized. A failed read must never reach Close with a live context.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := b.Object(key).NewWriter(wctx)
	w.ChunkSize = c.cfg.ChunkSize
	w.ContentType = "application/octet-stream"
	w.Metadata = map[string]string{MetadataTimestamp: backend.FormatTimestamp(createdAt)}
	n, err := io.Copy(w, r)
	if err != nil {
		cancel()
		_ = w.Close()
		return nil, c.fail("write", key, fmt.Errorf("upload after %d bytes: %w", n, err))
	}
	if err := w.Close(); err != nil {
		if errors.Is(err, storage.ErrBucketNotExist) || isNotFound(err) {
			return nil, c.fail("write", key, fmt.Errorf("bucket does not exist: %w", err))
		}
		return nil, c.fail("write", key, err)
	}
	c.log.Debug("wrote ltx file", "key", key, "size", n)
	return &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: n, CreatedAt: createdAt}, nil
}

func isNotFound(err error) bool {
	var ge *googleapi.Error
	return errors.As(err, &ge) && ge.Code == http.StatusNotFound
}

// DeleteLTXFiles removes files; missing ones are skipped. It tries every
// file and returns all failures.
func (c *Client) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	keys, errs := backend.DeleteKeys(files, c.Key, c.fail)
	return errors.Join(append(errs, c.deleteKeys(ctx, keys))...)
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
	var mu sync.Mutex
	var errs []error
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, key := range keys {
		g.Go(func() error {
			err := b.Object(key).Delete(gctx)
			if err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
				mu.Lock()
				errs = append(errs, c.fail("delete", key, err))
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	return errors.Join(errs...)
}

// DeleteAll removes every object under <path>/ltx/.
func (c *Client) DeleteAll(ctx context.Context) error {
	prefix := path.Join(c.cfg.Path, "ltx") + "/"
	b, err := c.bucket(ctx)
	if err != nil {
		return c.fail("delete all", prefix, err)
	}
	q := &storage.Query{Prefix: prefix}
	_ = q.SetAttrSelection([]string{"Name"})
	var keys []string
	it := b.Objects(ctx, q)
	for {
		attrs, err := it.Next()
		if err == iterator.Done {
			break
		} else if err != nil {
			return c.fail("delete all: list", prefix, err)
		}
		keys = append(keys, attrs.Name)
	}
	return c.deleteKeys(ctx, keys)
}
