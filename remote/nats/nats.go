// Package nats is the remote.Client for a NATS JetStream object store, in
// the layout Litestream v0.5 writes:
//
//	object "<path>/ltx/<level decimal>/<%016x-%016x>.ltx" in the bucket
//
// The replica URL is nats://[user[:password]@]host:4222/BUCKET[/PATH]: the
// first path segment is the object store bucket, the rest the replica path
// inside it. The bucket must exist (`nats object add BUCKET`); the client
// never creates one, because its storage, replication and limits are the
// operator's choice.
//
// A file's creation time (the LTX header timestamp) is stored as the object
// header "Litestream-Timestamp" in RFC 3339, as Litestream does; listing
// reads it back at no extra cost since object infos carry their headers.
//
// The object store has no range reads: OpenLTXFile streams the object from
// its start, discards the bytes before the range and stops after it. A put
// is atomic (the object appears when its metadata is published and a failed
// put purges its chunks), and uploads are spooled so a transient failure is
// retried with the whole file.
package nats

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/internal/backend"
	"github.com/litestream-go/litestream/remote/retry"
)

// HeaderTimestamp is the object header holding a file's creation time.
const HeaderTimestamp = "Litestream-Timestamp"

// Config configures a Client. Only URL and Bucket are required.
type Config struct {
	// URL is the server, e.g. "nats://127.0.0.1:4222"; several may be
	// given separated by commas. Credentials do not belong here.
	URL string
	// Bucket is the object store bucket; Path the replica root inside it.
	Bucket, Path string

	// Authentication, at most one kind: Username and Password, Token,
	// Creds (a credentials file), JWT and Seed, or NKey (an nkey seed file).
	Username, Password string
	Token              string
	Creds              string
	JWT, Seed          string
	NKey               string

	// TLS: RootCAs and a client certificate; TLS requires TLS even without
	// them.
	TLS                   bool
	RootCAs               []string
	ClientCert, ClientKey string

	// Connection behaviour; zero values take the defaults noted.
	MaxReconnects int           // default -1 (forever)
	ReconnectWait time.Duration // default 2s
	Timeout       time.Duration // connect timeout, default 10s

	// OpTimeout bounds each try of a request (default 30s); an upload gets
	// one more second per MiB. A try that runs out is retried.
	OpTimeout time.Duration

	// Retry is the policy for transient failures (zero: retry.Default).
	Retry retry.Policy
	// Logger receives debug and retry messages (nil: slog.Default()).
	Logger *slog.Logger
}

// Client is a replica in a NATS object store. It connects on first use and
// is safe for concurrent use. Close releases the connection.
type Client struct {
	cfg  Config
	keys remote.Keys
	log  *slog.Logger
	what string // "nats 127.0.0.1:4222 bucket \"b\"", for errors

	mu  sync.Mutex
	nc  *nats.Conn
	obs jetstream.ObjectStore

	// reqs counts the object store operations tried, by kind.
	reqs remote.Requests
}

// RequestCounts returns the object store operations tried so far, by
// kind, retries included.
func (c *Client) RequestCounts() remote.RequestCounts { return c.reqs.RequestCounts() }

var _ remote.Client = (*Client)(nil)

// New returns a client for cfg. It does not connect yet.
func New(cfg Config) (*Client, error) {
	if cfg.URL == "" {
		return nil, errors.New("nats replica: server URL is required")
	}
	if cfg.Bucket == "" {
		return nil, errors.New("nats replica: object store bucket is required (nats://host:4222/BUCKET/path)")
	}
	cfg.Path = remote.CleanRoot(cfg.Path)
	if cfg.MaxReconnects == 0 {
		cfg.MaxReconnects = -1
	}
	if cfg.ReconnectWait <= 0 {
		cfg.ReconnectWait = 2 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 30 * time.Second
	}
	log := backend.Logger(cfg.Logger, &cfg.Retry, "backend", "nats", "bucket", cfg.Bucket)
	return &Client{
		cfg:  cfg,
		keys: remote.Keys{Root: cfg.Path, Layout: remote.LayoutLTX},
		log:  log,
		what: fmt.Sprintf("nats %s bucket %q", serverHosts(cfg.URL), cfg.Bucket),
	}, nil
}

// serverHosts returns the host:port list of a server URL list, without any
// userinfo, for messages.
func serverHosts(urls string) string {
	var hosts []string
	for _, s := range strings.Split(urls, ",") {
		if u, err := url.Parse(strings.TrimSpace(s)); err == nil && u.Host != "" {
			hosts = append(hosts, u.Host)
		}
	}
	return strings.Join(hosts, ",")
}

// Type returns "nats".
func (c *Client) Type() string { return "nats" }

// Config returns the client's configuration, defaults applied.
func (c *Client) Config() Config { return c.cfg }

// Close closes the connection, if one is open. The client reconnects if it
// is used again.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nc != nil {
		c.nc.Close()
		c.nc, c.obs = nil, nil
	}
	return nil
}

// store returns the object store, connecting first if needed. A failed
// connection is not cached: the next call tries again.
func (c *Client) store(ctx context.Context) (jetstream.ObjectStore, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.obs != nil {
		return c.obs, nil
	}
	opts, err := c.options()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(c.cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	obs, err := js.ObjectStore(ctx, c.cfg.Bucket)
	if err != nil {
		nc.Close()
		if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("object store bucket does not exist (create it with `nats object add %s`): %w", c.cfg.Bucket, err)
		}
		return nil, fmt.Errorf("open object store: %w", err)
	}
	c.nc, c.obs = nc, obs
	return obs, nil
}

func (c *Client) options() ([]nats.Option, error) {
	cfg := c.cfg
	opts := []nats.Option{
		nats.Name("litestream"),
		nats.MaxReconnects(cfg.MaxReconnects),
		nats.ReconnectWait(cfg.ReconnectWait),
		nats.Timeout(cfg.Timeout),
	}
	switch {
	case cfg.JWT != "" && cfg.Seed != "":
		opts = append(opts, nats.UserJWTAndSeed(cfg.JWT, cfg.Seed))
	case cfg.Creds != "":
		opts = append(opts, nats.UserCredentials(cfg.Creds))
	case cfg.NKey != "":
		o, err := nats.NkeyOptionFromSeed(cfg.NKey)
		if err != nil {
			return nil, fmt.Errorf("nkey seed file %s: %w", cfg.NKey, err)
		}
		opts = append(opts, o)
	case cfg.Username != "":
		opts = append(opts, nats.UserInfo(cfg.Username, cfg.Password))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	}
	if cfg.TLS {
		opts = append(opts, nats.Secure())
	}
	if len(cfg.RootCAs) > 0 {
		opts = append(opts, nats.RootCAs(cfg.RootCAs...))
	}
	if cfg.ClientCert != "" || cfg.ClientKey != "" {
		opts = append(opts, nats.ClientCert(cfg.ClientCert, cfg.ClientKey))
	}
	return opts, nil
}

// retry returns the retry policy with the per-try timeout.
func (c *Client) retry() retry.Policy { return c.cfg.Retry.WithAttemptTimeout(c.cfg.OpTimeout) }

// ObjectName returns the object name of one LTX file.
func (c *Client) ObjectName(level int, minTXID, maxTXID ltx.TXID) string {
	return c.keys.File(level, minTXID, maxTXID)
}

// fail builds an error naming the backend, bucket, operation and object,
// with any credential removed from the cause's message.
func (c *Client) fail(op, name string, err error) error {
	if name != "" {
		err = fmt.Errorf("%s: %s %q: %w", c.what, op, name, err)
	} else {
		err = fmt.Errorf("%s: %s: %w", c.what, op, err)
	}
	return backend.Redact(err, c.cfg.Password, c.cfg.Token, c.cfg.Seed, c.cfg.JWT)
}

// transient reports whether a NATS failure is worth retrying.
func transient(err error) bool {
	if retry.IsTransientNet(err) {
		return true
	}
	for _, e := range []error{nats.ErrTimeout, nats.ErrConnectionClosed, nats.ErrDisconnected,
		nats.ErrConnectionReconnecting, nats.ErrNoResponders, nats.ErrNoServers, jetstream.ErrNoHeartbeat,
		jetstream.ErrJetStreamNotEnabled} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func notFound(err error) bool {
	return errors.Is(err, jetstream.ErrObjectNotFound)
}

// list returns the infos of every object whose name starts with prefix.
func (c *Client) list(ctx context.Context, prefix string) ([]*jetstream.ObjectInfo, error) {
	var out []*jetstream.ObjectInfo
	err := c.retry().Do(ctx, c.what+": list", transient, func(ctx context.Context) error {
		c.reqs.Add(remote.ReqList)
		obs, err := c.store(ctx)
		if err != nil {
			return err
		}
		all, err := obs.List(ctx)
		if errors.Is(err, jetstream.ErrNoObjectsFound) {
			out = nil
			return nil
		} else if err != nil {
			return err
		}
		out = out[:0]
		for _, info := range all {
			if strings.HasPrefix(info.Name, prefix) && !info.Deleted {
				out = append(out, info)
			}
		}
		return nil
	})
	return out, err
}

// LTXFiles lists the files of level with MinTXID >= seek, by MinTXID. The
// object store lists a whole bucket at once, so seek filters numerically
// after parsing each name.
func (c *Client) LTXFiles(ctx context.Context, level int, seek ltx.TXID) ([]*ltx.FileInfo, error) {
	return backend.ListLevel(ctx, c.fail, c.keys, c.listFiles, level, seek)
}

var _ remote.AllLister = (*Client)(nil)

// LTXFilesAll lists every level at once: the object store lists its whole
// bucket whatever is asked, so one listing serves every level.
func (c *Client) LTXFilesAll(ctx context.Context, exactTimes bool) ([]*ltx.FileInfo, error) {
	return backend.ListEvery(ctx, c.keys, c.listFiles)
}

// listFiles returns the LTX files under prefix that want accepts.
func (c *Client) listFiles(ctx context.Context, prefix string, want func(remote.FileID) bool) ([]*ltx.FileInfo, error) {
	objs, err := c.list(ctx, prefix)
	if err != nil {
		return nil, c.fail("list", prefix, err)
	}
	var infos []*ltx.FileInfo
	for _, o := range objs {
		id, ok := c.keys.ParseKey(o.Name)
		if !ok || !want(id) {
			continue
		}
		createdAt := o.ModTime.UTC()
		if ts, ok := backend.ParseTimestamp(o.Headers.Get(HeaderTimestamp)); ok {
			createdAt = ts
		}
		infos = append(infos, &ltx.FileInfo{Level: id.Level, MinTXID: id.MinTXID, MaxTXID: id.MaxTXID, Size: int64(o.Size), CreatedAt: createdAt})
	}
	return infos, nil
}

// OpenLTXFile opens bytes [offset, offset+size) of a file (size 0: to the
// end). See the package doc: the bytes before offset are read and dropped.
func (c *Client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	name := c.ObjectName(level, minTXID, maxTXID)
	if err := backend.CheckOpen(c.fail, name, level, offset, size); err != nil {
		return nil, err
	}
	desc := fmt.Sprintf("%s: read %q", c.what, name)
	// The object store has no ranged read: each try reads from the start
	// and skips to the offset. A read that stalls or fails in the middle
	// resumes with a new try (retry.Policy.OpenRange); the stall is found
	// by objectReader, since the store's own reader cannot be cut off.
	rc, err := c.cfg.Retry.OpenRange(ctx, desc, transient, offset, size, func(ctx context.Context, offset, size int64) (io.ReadCloser, int64, error) {
		return c.get(ctx, name, offset, size)
	})
	if notFound(err) {
		return nil, c.fail("open", name, fmt.Errorf("%w: %w", remote.ErrNotExist, err))
	} else if err != nil {
		return nil, c.fail("open", name, err)
	}
	return rc, nil
}

// get opens bytes [offset, offset+size) of object name (size 0: to the
// end) with one Get, and returns the body and its length.
func (c *Client) get(ctx context.Context, name string, offset, size int64) (io.ReadCloser, int64, error) {
	c.reqs.Add(remote.ReqGet)
	obs, err := c.store(ctx)
	if err != nil {
		return nil, 0, err
	}
	res, err := getObject(ctx, obs, name, c.cfg.OpTimeout)
	if err != nil {
		return nil, 0, err
	}
	info, err := res.Info()
	if err != nil {
		_ = res.Close()
		return nil, 0, err
	}
	end, err := backend.RangeEnd(offset, size, int64(info.Size))
	if err != nil {
		_ = res.Close()
		return nil, 0, retry.Permanent(err)
	}
	body := newObjectReader(ctx, res, int64(info.Size), c.cfg.OpTimeout)
	if offset > 0 {
		if _, err := io.CopyN(io.Discard, body, offset); err != nil {
			_ = body.Close()
			return nil, 0, fmt.Errorf("skip to offset %d: %w", offset, err)
		}
	}
	return body, end - offset, nil
}

// WriteLTXFile stores the LTX file read from r, with its header timestamp
// in the Litestream-Timestamp header.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	name := c.ObjectName(level, minTXID, maxTXID)
	return backend.WriteSpooled(ctx, c.fail, name, level, minTXID, maxTXID, r, 0, func(ctx context.Context, spool *backend.Spool, createdAt time.Time) error {
		meta := jetstream.ObjectMeta{
			Name:    name,
			Headers: nats.Header{HeaderTimestamp: []string{backend.FormatTimestamp(createdAt)}},
		}
		timeout := backend.UploadTimeout(c.cfg.OpTimeout, spool.Size())
		err := c.retry().WithAttemptTimeout(timeout).Do(ctx, c.what+": put "+name, transient, func(ctx context.Context) error {
			c.reqs.Add(remote.ReqPut)
			obs, err := c.store(ctx)
			if err != nil {
				return err
			}
			_, err = obs.Put(ctx, meta, backend.ContextReader(ctx, spool.Reader()))
			return err
		})
		if err == nil {
			c.log.Debug("wrote ltx file", "object", name, "size", spool.Size())
		}
		return err
	})
}

// DeleteLTXFiles removes files; missing ones are skipped. It tries every
// file and returns all failures.
func (c *Client) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	return backend.DeleteFiles(ctx, files, c.ObjectName, c.fail, c.deleteNames)
}

func (c *Client) deleteNames(ctx context.Context, names []string) error {
	return backend.DeleteEach(ctx, c.fail, names, func(ctx context.Context, name string) error {
		err := c.retry().Do(ctx, c.what+": delete "+name, transient, func(ctx context.Context) error {
			c.reqs.Add(remote.ReqDelete)
			obs, err := c.store(ctx)
			if err != nil {
				return err
			}
			return obs.Delete(ctx, name)
		})
		if err != nil && !notFound(err) {
			return c.fail("delete", name, err)
		}
		return nil
	})
}

// DeleteAll removes every object under <path>/ltx/. Other objects in the
// bucket (other replicas' paths) stay.
func (c *Client) DeleteAll(ctx context.Context) error {
	prefix := c.keys.DeletePrefixes()[0]
	objs, err := c.list(ctx, prefix)
	if err != nil {
		return c.fail("delete all: list", prefix, err)
	}
	names := make([]string, len(objs))
	for i, o := range objs {
		names[i] = o.Name
	}
	return c.deleteNames(ctx, names)
}
