// Package writer is the replicating side: it tails a SQLite database's
// write-ahead log, turns the committed transactions of each sync into one
// level-0 LTX file, uploads it through a remote.Client, and owns
// checkpointing so that no frame reaches the database file before it is in an
// uploaded LTX file.
//
// The WAL is read directly from the file (package writer/wal), bounded by what
// SQLite's wal-index publishes (published.go); SQLite, through
// mattn/go-sqlite3, is used only to put the database in WAL mode, to hold a
// read transaction that pins the log (see the invariants in sync.go), to run
// checkpoints, and, when writers never pause, to hold the write lock for the
// few milliseconds a forced restart of the log takes (checkpoint.go). The
// writer never writes to the database and adds no tables.
package writer

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/writer/wal"
)

// Defaults for Options.
const (
	DefaultMonitorInterval    = time.Second
	DefaultSyncInterval       = time.Second
	DefaultCheckpointInterval = time.Minute
	DefaultMinCheckpointPageN = 1000
	DefaultTruncatePageN      = 121359 // about 500 MB of 4 KiB pages
	DefaultBusyTimeout        = time.Second
	// Compaction, snapshot and retention defaults are Litestream v0.5's.
	DefaultSnapshotInterval  = 24 * time.Hour
	DefaultSnapshotRetention = 24 * time.Hour
	DefaultL0Retention       = 5 * time.Minute
	DefaultRetentionCheck    = 15 * time.Second
	DefaultRetentionGrace    = time.Minute
	DefaultConsistencyCheck  = 10 * time.Minute
)

// DefaultLevels are the compaction intervals of levels 1, 2 and 3.
var DefaultLevels = []time.Duration{30 * time.Second, 5 * time.Minute, time.Hour}

// Options configures a DB. Zero values take the defaults.
type Options struct {
	// MonitorInterval is how often the background loop wakes up to examine
	// the WAL (config key monitor-interval). Default 1s.
	MonitorInterval time.Duration
	// SyncInterval is how often new frames are uploaded as one L0 file
	// (config key sync-interval). Default 1s.
	SyncInterval time.Duration
	// CheckpointInterval: a checkpoint runs at least this often while the
	// WAL holds frames not yet checkpointed (config key
	// checkpoint-interval). Default 1m; negative disables time-based
	// checkpoints (Litestream's checkpoint-interval: 0).
	CheckpointInterval time.Duration
	// MinCheckpointPageN: a checkpoint runs when the WAL holds more than
	// this many frames not yet checkpointed (config key
	// min-checkpoint-page-count). Default 1000. It is passive; if a passive
	// checkpoint already ran in this generation of the log and the log
	// holds this many frames, the application never paused for it to
	// restart, and the checkpoint restarts the log by force, blocking
	// writers for a few milliseconds (checkpoint.go).
	MinCheckpointPageN int
	// TruncatePageN: when the WAL file is larger than this many pages, it
	// is truncated after the log restarts, if that takes no wait (config
	// key truncate-page-n). Default 121359 (about 500 MB of 4 KiB pages).
	TruncatePageN int
	// BusyTimeout is how long our SQLite connections wait for a lock: when
	// taking the write lock for a forced restart, or beginning a read
	// transaction while another connection recovers the WAL index (config
	// key busy-timeout). Default 1s.
	BusyTimeout time.Duration
	// StagingDir is where LTX files are written before upload. Default
	// "<dir>/.<name>-litestream" next to the database.
	StagingDir string
	// Logger receives the writer's logs. Default slog.Default().
	Logger *slog.Logger
	// Observer, if set, is told about every sync and checkpoint.
	Observer Observer

	// Levels are the compaction intervals of levels 1..len(Levels) (at
	// most 8); each level runs on wall-clock multiples of its interval
	// (config key levels). nil takes DefaultLevels; an empty non-nil slice
	// disables compaction. See compact.go.
	Levels []time.Duration
	// SnapshotInterval is how often a level-9 snapshot is written, on
	// wall-clock multiples (config key snapshot.interval); the first one at
	// the first multiple at least one interval after the first sync's
	// level-0 file, which is already a full copy (maintain.go). Default 24h;
	// negative disables scheduled snapshots.
	SnapshotInterval time.Duration
	// SnapshotRetention: snapshots older than this are deleted, the newest
	// always kept (snapshot.retention). Default 24h.
	SnapshotRetention time.Duration
	// L0Retention: level-0 files a higher level covers are deleted once
	// older than this (l0-retention). Default 5m.
	L0Retention time.Duration
	// RetentionCheckInterval is how often retention runs
	// (l0-retention-check-interval). Default 15s.
	RetentionCheckInterval time.Duration
	// RetentionGrace: a file is deleted only after retention has seen it
	// deletable for this long, so that restores and readers that planned it
	// can finish. Default 1m; negative means none.
	RetentionGrace time.Duration
	// RetentionDisabled deletes nothing remotely (retention.enabled: false).
	RetentionDisabled bool
	// ConsistencyCheckInterval is how long the writer trusts what it knows
	// the replica holds (one listing at start-up, then its own writes and
	// deletes) before it lists the replica again (known.go): compaction,
	// snapshots and retention do not list on every tick, so an idle daemon
	// sends one LIST per interval. A file someone else added or removed is
	// noticed at the next check, and at once by any request that fails.
	// Default 10m; negative lists on every use (no knowledge kept).
	ConsistencyCheckInterval time.Duration
}

func (o Options) withDefaults(path string) Options {
	// A zero value takes the default, and so does a negative one where it
	// has no meaning of its own (positiveOr); the fields set with cmp.Or
	// give negative values a meaning (see each field).
	o.MonitorInterval = positiveOr(o.MonitorInterval, DefaultMonitorInterval)
	o.SyncInterval = positiveOr(o.SyncInterval, DefaultSyncInterval)
	o.CheckpointInterval = cmp.Or(o.CheckpointInterval, DefaultCheckpointInterval)
	o.MinCheckpointPageN = positiveOr(o.MinCheckpointPageN, DefaultMinCheckpointPageN)
	o.TruncatePageN = positiveOr(o.TruncatePageN, DefaultTruncatePageN)
	o.BusyTimeout = positiveOr(o.BusyTimeout, DefaultBusyTimeout)
	if o.StagingDir == "" {
		o.StagingDir = filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"-litestream")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Levels == nil {
		o.Levels = DefaultLevels
	}
	if len(o.Levels) > remote.SnapshotLevel-1 {
		o.Levels = o.Levels[:remote.SnapshotLevel-1]
	}
	o.SnapshotInterval = cmp.Or(o.SnapshotInterval, DefaultSnapshotInterval)
	o.SnapshotRetention = positiveOr(o.SnapshotRetention, DefaultSnapshotRetention)
	o.L0Retention = positiveOr(o.L0Retention, DefaultL0Retention)
	o.RetentionCheckInterval = positiveOr(o.RetentionCheckInterval, DefaultRetentionCheck)
	o.ConsistencyCheckInterval = cmp.Or(o.ConsistencyCheckInterval, DefaultConsistencyCheck)
	if o.RetentionGrace < 0 {
		o.RetentionGrace = 0
	} else if o.RetentionGrace == 0 {
		o.RetentionGrace = DefaultRetentionGrace
	}
	return o
}

// positiveOr returns v if it is positive, else def.
func positiveOr[T ~int | ~int64](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// Status is a snapshot of a DB's replication state.
type Status struct {
	Path string
	// TXID is the last transaction ID uploaded (0: nothing yet).
	TXID ltx.TXID
	// Commit is the database size in pages at TXID.
	Commit uint32
	// LastSync is when the last successful sync finished (with or without
	// a new file); LastUpload when the last file was uploaded.
	LastSync   time.Time
	LastUpload time.Time
	// LastError is the error of the last sync or checkpoint, "" if it
	// succeeded.
	LastError string
	// WALSize is the size of the WAL file in bytes at the last sync.
	WALSize int64
	// WALFrames counts the frames of the current WAL generation uploaded.
	WALFrames int64
	PageSize  uint32
	// LastCheckpoint is when the writer last ran a checkpoint.
	LastCheckpoint time.Time
	// Snapshots counts full snapshots written by this DB since Open.
	Snapshots int
	// Pending is true while a staged file waits for a retried upload.
	Pending bool
	// ForcedRestarts counts the log restarts forced since Open, and
	// LongestWriteLock is the longest time one held SQLite's write lock
	// (writers waited that long at most).
	ForcedRestarts   int
	LongestWriteLock time.Duration
}

// DB replicates one SQLite database to one remote.
type DB struct {
	path    string
	walPath string
	client  remote.Client
	opts    Options
	log     *slog.Logger

	// mu serializes Open, Sync, Checkpoint and Close; everything below it
	// is guarded by it.
	mu     sync.Mutex
	opened bool
	closed bool
	sqldb  *sql.DB
	ctl    *sql.Conn // pragmas and checkpoints; never inside a transaction
	pin    *sql.Conn // holds the pinning read transaction
	spare  *sql.Conn // begins the next read transaction; see sync.go
	lock   *sql.Conn // takes the write lock for a forced restart (checkpoint.go)
	// dbFile is read for snapshot pages. It stays open until every SQLite
	// connection of this process to the database is closed: closing any
	// descriptor of a file drops all of the process's POSIX locks on it,
	// including the shared lock SQLite holds for our connections.
	dbFile *os.File
	// shmFile is the wal-index, read for the published end of the log
	// (published.go); kept open like dbFile, for the same reason.
	shmFile  *os.File
	pageSize uint32

	txid ltx.TXID
	pos  position
	// pages maps each page written in the current WAL generation up to pos
	// to the offset of its newest frame there; snapshots read these pages
	// from the WAL and all others from the database file.
	pages map[uint32]int64
	// pinCovered is true when everything visible to the pinning read
	// transaction has been uploaded (pos is at or past its end of log).
	pinCovered bool
	// snapshotNext forces the next file to be a full snapshot.
	snapshotNext bool
	pending      *pending

	lastCheckpoint time.Time
	// ckptFrames is how many frames of the current generation the last
	// checkpoint left backfilled.
	ckptFrames int64
	// ckptGen is the generation (salts) of the log the last passive
	// checkpoint ran in.
	ckptGen [2]uint32

	// loopMu guards loopCancel and loopDone (set once by Start, read by
	// Close without d.mu: see stopLoop).
	loopMu     sync.Mutex
	loopCancel context.CancelFunc
	loopDone   chan struct{}

	// Compaction, snapshots and retention (compact.go, snapshot.go,
	// retention.go) run in their own goroutines, tracked by bg. maintMu
	// serializes compaction and retention; snapMu serializes snapshots.
	// Neither is held with mu except where snapshot.go says.
	bg       sync.WaitGroup
	maintMu  sync.Mutex
	snapMu   sync.Mutex
	obsolete map[remote.FileID]time.Time // guarded by maintMu; see retention.go

	statusMu sync.Mutex
	status   Status

	// hook, set only by tests, runs at the named steps of a forced restart
	// (checkpoint.go); an error it returns is that step's failure.
	hook func(ctx context.Context, step string) error
}

// step runs the test hook, if any, at a named step.
func (d *DB) step(ctx context.Context, name string) error {
	if d.hook == nil {
		return nil
	}
	return d.hook(ctx, name)
}

// position is the point of the WAL uploaded through.
type position struct {
	// hasWAL is false when the log was empty (no valid header) when read.
	hasWAL bool
	hdr    wal.Header
	wal.Position
	// commit is the database size in pages at this position; unlike
	// Position.Commit it is carried over from earlier generations.
	commit uint32
}

// New returns a DB for the database at path replicating to client. Nothing is
// opened until Open.
func New(path string, client remote.Client, opts Options) *DB {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	opts = opts.withDefaults(path)
	d := &DB{
		path:    path,
		walPath: path + "-wal",
		client:  newKnownClient(client, opts.ConsistencyCheckInterval),
		opts:    opts,
		log:     opts.Logger.With("db", path),
		pages:   map[uint32]int64{},
	}
	d.status.Path = path
	return d
}

// Path returns the absolute path of the database.
func (d *DB) Path() string { return d.path }

// Status returns the current replication state.
func (d *DB) Status() Status {
	d.statusMu.Lock()
	defer d.statusMu.Unlock()
	return d.status
}

func (d *DB) updateStatus(fn func(*Status)) {
	d.statusMu.Lock()
	defer d.statusMu.Unlock()
	fn(&d.status)
}

// Open opens the database, which must exist, puts it in WAL mode, begins the
// read transaction that pins the WAL, and finds where replication resumes:
// after the replica's last TXID, without a snapshot if the WAL still continues
// it.
func (d *DB) Open(ctx context.Context) (err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.opened || d.closed {
		return fmt.Errorf("open database %s: already opened", d.path)
	}
	defer func() {
		if err != nil {
			d.updateStatus(func(s *Status) { s.LastError = err.Error() })
			d.releaseAll()
		}
	}()

	fi, err := os.Stat(d.path)
	if err != nil {
		return fmt.Errorf("open database %s: %w", d.path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("open database %s: not a regular file", d.path)
	}
	if d.dbFile, err = os.Open(d.path); err != nil {
		return fmt.Errorf("open database %s: %w", d.path, err)
	}
	if err := d.openConns(ctx); err != nil {
		return err
	}
	if err := d.beginRead(ctx, &d.pin); err != nil {
		return err
	}
	if err := d.openShm(); err != nil {
		return err
	}
	if err := d.resume(ctx); err != nil {
		return err
	}
	if err := os.MkdirAll(d.opts.StagingDir, 0o755); isNoSpace(err) {
		// Syncs stream their files while the volume is full (stage.go).
		d.log.Warn("cannot create the staging directory: volume full", "path", d.opts.StagingDir, "err", err)
	} else if err != nil {
		return fmt.Errorf("create staging directory %s: %w", d.opts.StagingDir, err)
	}
	d.removeStaleStaging()
	d.opened = true
	d.updateStatus(func(s *Status) {
		s.TXID = d.txid
		s.Commit = d.pos.commit
		s.PageSize = d.pageSize
	})
	return nil
}

// Close stops the background loop, runs a final sync and releases the
// database. The final sync's error, if any, is returned; frames it could not
// upload stay in the WAL for the next Open.
func (d *DB) Close(ctx context.Context) error {
	d.stopLoop()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	var errs []error
	if d.opened {
		err := d.sync(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("final sync: %w", err))
		}
		d.recordSync(err)
	}
	if d.pending != nil {
		if d.pending.path != "" {
			_ = os.Remove(d.pending.path)
		}
		d.pending = nil
	}
	d.updateStatus(func(s *Status) { s.Pending = false })
	if err := d.releaseAll(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// releaseAll closes the SQLite connections, then the wal-index and database
// file descriptors (last, for the POSIX-lock reason given on dbFile).
func (d *DB) releaseAll() error {
	var errs []error
	for _, c := range []**sql.Conn{&d.pin, &d.spare, &d.lock, &d.ctl} {
		if *c == nil {
			continue
		}
		// A read transaction may be open; closing the connection ends it.
		if err := (*c).Close(); err != nil {
			errs = append(errs, fmt.Errorf("close connection to %s: %w", d.path, err))
		}
		*c = nil
	}
	if d.sqldb != nil {
		if err := d.sqldb.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close database %s: %w", d.path, err))
		}
		d.sqldb = nil
	}
	if d.shmFile != nil {
		if err := d.shmFile.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close wal-index %s: %w", d.shmPath(), err))
		}
		d.shmFile = nil
	}
	if d.dbFile != nil {
		if err := d.dbFile.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close database file %s: %w", d.path, err))
		}
		d.dbFile = nil
	}
	return errors.Join(errs...)
}
