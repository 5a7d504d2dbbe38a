// Package vfs is the read-replica SQLite VFS: it answers SQLite's page reads
// from the LTX files of a remote replica, through a shared page index and
// page cache, without a local copy of the database.
//
// One VFS serves any number of replicas; every connection to the same replica
// URL shares one Replica (index, cache, poller). A connection pins the
// replica's current index version when SQLite takes its SHARED lock and
// releases it when SQLite drops to NONE, so a read transaction sees exactly
// one TXID. Page 1 is stamped with that TXID (change counter) and with
// rollback-mode header bytes; writes fail with SQLITE_READONLY.
//
// The package never imports a SQLite driver: psanford/sqlite3vfs registers
// into whichever SQLite the process links (mattn/go-sqlite3 in a Go program;
// the host's SQLite when built into the loadable extension with the tag
// SQLITE3VFS_LOADABLE_EXT).
package vfs

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/psanford/sqlite3vfs"

	"github.com/litestream-go/litestream/internal/userinput"
	"github.com/litestream-go/litestream/remote"
)

// DefaultName is the VFS name the extension registers.
const DefaultName = "litestream"

// openTimeout bounds opening a replica (listing and page-index reads).
const openTimeout = 2 * time.Minute

// Options configure a VFS.
type Options struct {
	// ReplicaURL is the replica of a database opened without a "replica"
	// URI parameter. Empty: such opens fail.
	ReplicaURL string
	// OpenClient opens the remote of a replica URL (e.g. backends.Open).
	// Required.
	OpenClient func(ctx context.Context, url string) (remote.Client, error)
	// Replica holds the defaults for every replica; the URI parameters
	// cache_size, poll_interval and list_interval override them for the first connection
	// that opens a replica (later connections share it as it is).
	Replica ReplicaOptions
	// Logger receives errors (default slog.Default()).
	Logger *slog.Logger
}

// VFS is a read-replica VFS. Create it with New and make it visible to
// SQLite with Register (or RegisterAs).
type VFS struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	replicas map[string]*replicaSlot
}

// replicaSlot lets concurrent first opens of one URL share one open.
type replicaSlot struct {
	ready chan struct{}
	r     *Replica
	err   error
}

// New returns a VFS that is not registered with SQLite yet.
func New(opts Options) *VFS {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Replica.Logger == nil {
		opts.Replica.Logger = opts.Logger
	}
	return &VFS{opts: opts, log: opts.Logger, replicas: make(map[string]*replicaSlot)}
}

// Register creates a VFS and registers it with SQLite under name. SQLite
// keeps a registered VFS for the life of the process; a name can be
// registered once.
func Register(name string, opts Options) (*VFS, error) {
	v := New(opts)
	if err := v.RegisterAs(name); err != nil {
		return nil, err
	}
	return v, nil
}

// RegisterAs registers v with SQLite under name.
func (v *VFS) RegisterAs(name string) error {
	if v.opts.OpenClient == nil {
		return fmt.Errorf("register VFS %q: Options.OpenClient is required", name)
	}
	if err := sqlite3vfs.RegisterVFS(name, v); err != nil {
		return fmt.Errorf("register VFS %q: %w", name, err)
	}
	return nil
}

// Replica returns the shared replica for url, opening it on first use.
// Callers that keep using it must Acquire it (the VFS does this for every
// open database).
func (v *VFS) Replica(ctx context.Context, url string) (*Replica, error) {
	return v.replica(ctx, url, nil)
}

// replicaKey identifies a replica: spellings of one URL that ParseURL
// reads the same (file:///a/b and /a/b) share one Replica.
func replicaKey(raw string) string {
	u, err := remote.ParseURL(raw)
	if err != nil {
		return raw
	}
	pw, _ := u.Password()
	return strings.Join([]string{u.Scheme, u.User, pw, u.Host, u.Path, u.Query().Encode()}, "\x00")
}

func (v *VFS) replica(ctx context.Context, url string, params map[string]string) (*Replica, error) {
	key := replicaKey(url)
	v.mu.Lock()
	s, ok := v.replicas[key]
	if !ok {
		s = &replicaSlot{ready: make(chan struct{})}
		v.replicas[key] = s
	}
	v.mu.Unlock()
	if ok {
		select {
		case <-s.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if s.err == nil {
			return s.r, nil
		}
		// The open that was in progress failed; try again ourselves.
		v.mu.Lock()
		if v.replicas[key] == s {
			delete(v.replicas, key)
		}
		v.mu.Unlock()
		return v.replica(ctx, url, params)
	}

	func() {
		// A panic must not leave the slot open: later opens would wait
		// on it forever.
		defer func() {
			if p := recover(); p != nil {
				s.r, s.err = nil, fmt.Errorf("open replica %s: panic: %v\n%s", redact(url), p, debug.Stack())
			}
		}()
		s.r, s.err = v.openReplica(ctx, url, params)
	}()
	if s.err != nil {
		v.mu.Lock()
		delete(v.replicas, key)
		v.mu.Unlock()
	}
	close(s.ready)
	return s.r, s.err
}

func (v *VFS) openReplica(ctx context.Context, url string, params map[string]string) (*Replica, error) {
	ropts := v.opts.Replica
	if s, ok := params["cache_size"]; ok {
		n, err := userinput.ParseSize(s)
		if err != nil {
			return nil, fmt.Errorf("URI parameter cache_size: %w", err)
		}
		ropts.CacheSize = n
	}
	if s, ok := params["poll_interval"]; ok {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("URI parameter poll_interval %q: want a positive duration such as 1s or 250ms", s)
		}
		ropts.PollInterval = d
	}
	if s, ok := params["list_interval"]; ok {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("URI parameter list_interval %q: want a positive duration such as 1m or 30s", s)
		}
		ropts.ListInterval = d
	}
	c, err := v.opts.OpenClient(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("open replica %s: %w", redact(url), err)
	}
	r, err := OpenReplica(ctx, redact(url), c, ropts)
	if err != nil {
		return nil, err
	}
	v.log.Info("opened replica", "replica", redact(url), "txid", r.Version().TXID(),
		"pages", r.Version().Commit(), "page_size", r.Version().PageSize())
	return r, nil
}

// Close stops every replica's poller. Databases still open keep working
// from the state they have; SQLite cannot unregister a VFS.
func (v *VFS) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, s := range v.replicas {
		select {
		case <-s.ready:
			if s.r != nil {
				s.r.stop()
			}
		default:
		}
	}
	return nil
}

// Open implements sqlite3vfs.VFS.
func (v *VFS) Open(name string, flags sqlite3vfs.OpenFlag) (sqlite3vfs.File, sqlite3vfs.OpenFlag, error) {
	return v.OpenURI(name, nil, flags)
}

// OpenURI implements sqlite3vfs.URIOpener. The main database is served from
// the replica named by the "replica" URI parameter (or Options.ReplicaURL);
// temporary files SQLite needs for sorting and the like live in memory; a
// journal or WAL cannot be opened (the database is read-only).
func (v *VFS) OpenURI(name string, params map[string]string, flags sqlite3vfs.OpenFlag) (f sqlite3vfs.File, out sqlite3vfs.OpenFlag, err error) {
	defer v.recover("xOpen", &err, sqlite3vfs.CantOpenError)
	const temp = sqlite3vfs.OpenTempDB | sqlite3vfs.OpenTransientDB | sqlite3vfs.OpenTempJournal | sqlite3vfs.OpenSubJournal
	switch {
	case flags&sqlite3vfs.OpenMainDB != 0:
	case flags&temp != 0 || name == "":
		return &memFile{}, flags, nil
	default:
		return nil, 0, sqlite3vfs.CantOpenError
	}

	url := params["replica"]
	if url == "" {
		url = v.opts.ReplicaURL
	}
	if url == "" {
		v.log.Error("cannot open database: no replica URL (set LITESTREAM_REPLICA_URL or add ?replica=URL to the file URI)", "name", name)
		return nil, 0, sqlite3vfs.CantOpenError
	}
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	r, err := v.replica(ctx, url, params)
	if err != nil {
		v.log.Error("cannot open database", "name", name, "replica", redact(url), "error", err)
		return nil, 0, sqlite3vfs.CantOpenError
	}
	r.Acquire(ctx)
	out = flags&^(sqlite3vfs.OpenReadWrite|sqlite3vfs.OpenCreate) | sqlite3vfs.OpenReadOnly
	return &file{vfs: v, r: r, name: name}, out, nil
}

// Delete implements sqlite3vfs.VFS. Nothing this VFS serves can be deleted;
// SQLite only asks for journals, which never exist.
func (v *VFS) Delete(name string, dirSync bool) (err error) {
	return nil
}

// Access implements sqlite3vfs.VFS: journals, WAL and shared-memory files
// never exist, so SQLite never looks for a hot journal.
func (v *VFS) Access(name string, flags sqlite3vfs.AccessFlag) (ok bool, err error) {
	defer v.recover("xAccess", &err, sqlite3vfs.IOError)
	for _, suffix := range []string{"-journal", "-wal", "-shm"} {
		if strings.HasSuffix(name, suffix) {
			return false, nil
		}
	}
	return flags == sqlite3vfs.AccessExists || flags == sqlite3vfs.AccessRead, nil
}

// FullPathname implements sqlite3vfs.VFS. Names are not local paths, so
// they are kept as given.
func (v *VFS) FullPathname(name string) string {
	return name
}

// recover turns a panic in a callback into an error SQLite understands, so
// a bug never takes the host process down.
func (v *VFS) recover(op string, err *error, fallback error) {
	if p := recover(); p != nil {
		v.log.Error("panic in VFS callback", "op", op, "panic", p, "stack", string(debug.Stack()))
		*err = fallback
	}
}

// redact returns a replica URL fit for logs: without its password and
// secret-looking query values.
func redact(url string) string {
	u, err := remote.ParseURL(url)
	if err != nil {
		return "(unparsable replica URL)"
	}
	return u.Redacted()
}
