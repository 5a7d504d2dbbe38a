package main

// One database of the running daemon: its replica, its writer while open,
// and the retries that open it when the replica is unreachable at start.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/writer"
)

// dbState is where a database is in its life in the daemon.
type dbState int

const (
	// stateStopped: not open (stopped over the control socket, or not
	// opened yet).
	stateStopped dbState = iota
	// stateOpening: the first open failed (say the replica was
	// unreachable); it is retried in the background.
	stateOpening
	// stateReplicating: open; the writer syncs, checkpoints and compacts.
	stateReplicating
)

func (s dbState) String() string {
	switch s {
	case stateOpening:
		return "opening"
	case stateReplicating:
		return "replicating"
	default:
		return "stopped"
	}
}

// Bounds of the open retries' backoff.
const (
	openRetryMin = time.Second
	openRetryMax = 30 * time.Second
)

// dbEntry is one database the daemon manages.
type dbEntry struct {
	d      *daemon
	path   string
	cfg    *DBConfig // nil for a database registered over the control socket
	ref    replicaRef
	red    string        // the replica URL, redacted
	client remote.Client // wrapped for metrics and compaction checks
	opts   writer.Options

	// opMu serialises open, close, start, stop and unregister.
	opMu sync.Mutex

	// mu guards the fields below; it is held only briefly (status reads).
	mu      sync.Mutex
	db      *writer.DB
	state   dbState
	openErr string
	// last is the status of the writer last closed, reported while
	// stopped.
	last        writer.Status
	retryCancel context.CancelFunc
	retryDone   chan struct{}
}

// redact hides the replica's credentials in an error.
func (e *dbEntry) redact(err error) error {
	if err == nil {
		return nil
	}
	return e.ref.redactErr(err)
}

// writer returns the open writer, or nil.
func (e *dbEntry) writer() *writer.DB {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.db
}

// current returns the database's state and status: the writer's while
// open; while not, the last one with the reason it is not open.
func (e *dbEntry) current() (dbState, writer.Status) {
	e.mu.Lock()
	db, state, st, openErr := e.db, e.state, e.last, e.openErr
	e.mu.Unlock()
	if db != nil {
		return state, db.Status()
	}
	st.Path = e.path
	if openErr != "" {
		st.LastError = openErr
	}
	return state, st
}

// status is current's status alone (for the metrics).
func (e *dbEntry) status() writer.Status {
	_, st := e.current()
	return st
}

// localTXID is the TXID of the newest file made from the local database:
// the uploaded one, plus one while a staged file waits for its upload.
func localTXID(s writer.Status) ltx.TXID {
	if s.Pending {
		return s.TXID + 1
	}
	return s.TXID
}

// open opens the writer and, unless once, starts its background loop. The
// database file must exist.
func (e *dbEntry) open(ctx context.Context) error {
	if _, err := os.Stat(e.path); err != nil {
		return fmt.Errorf("database %s: %w", e.path, err)
	}
	db := writer.New(e.path, e.client, e.opts)
	if err := db.Open(ctx); err != nil {
		return e.redact(fmt.Errorf("open database %s (replica %s): %w", e.path, e.red, err))
	}
	if !e.d.once {
		db.Start(e.d.runCtx)
	}
	e.mu.Lock()
	e.db, e.state, e.openErr = db, stateReplicating, ""
	e.mu.Unlock()
	e.d.log.Info("replicating", "db", e.path, "replica", e.red, "type", e.client.Type(),
		"sync-interval", durationOrDefault(e.opts.SyncInterval))
	return nil
}

// openFirstWait bounds how long the daemon waits for a database's first
// open before it goes on (starting the -exec application, say): an
// unreachable replica may take long to fail.
const openFirstWait = 5 * time.Second

// openRetrying opens the database in the background, retrying with a
// growing delay while it fails, and reports each failure (log, status,
// metrics), so that a replica unreachable at start delays replication, not
// the application. It waits for the first attempt, at most openFirstWait.
func (e *dbEntry) openRetrying(ctx context.Context) {
	rctx, cancel := context.WithCancel(e.d.runCtx)
	done := make(chan struct{})
	first := make(chan struct{})
	e.mu.Lock()
	e.state, e.openErr = stateOpening, ""
	e.retryCancel, e.retryDone = cancel, done
	e.mu.Unlock()
	go func() {
		defer close(done)
		var once sync.Once
		signal := func() { once.Do(func() { close(first) }) }
		defer signal()
		delay := openRetryMin
		for attempt := 1; ; attempt++ {
			e.opMu.Lock()
			if rctx.Err() != nil {
				e.opMu.Unlock()
				return
			}
			err := e.open(rctx)
			if err == nil {
				e.mu.Lock()
				e.retryCancel, e.retryDone = nil, nil
				e.mu.Unlock()
				e.opMu.Unlock()
				if attempt > 1 {
					e.d.log.Info("database opened after retrying", "db", e.path, "attempts", attempt)
				}
				return
			}
			e.mu.Lock()
			e.openErr = err.Error()
			e.mu.Unlock()
			e.opMu.Unlock()
			if rctx.Err() != nil {
				return
			}
			e.d.log.Error("cannot open database; retrying in the background", "db", e.path, "replica", e.red,
				"attempt", attempt, "next", delay.String(), "error", err)
			signal()
			select {
			case <-rctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, openRetryMax)
		}
	}()
	select {
	case <-first:
	case <-time.After(openFirstWait):
		e.d.log.Warn("database still opening; going on, it replicates once open", "db", e.path, "replica", e.red)
	case <-ctx.Done():
	}
}

// stopRetry ends the background open retries, if any, and waits for
// them. It is called without opMu, which the retry loop takes.
func (e *dbEntry) stopRetry() {
	e.mu.Lock()
	cancel, done := e.retryCancel, e.retryDone
	e.retryCancel, e.retryDone = nil, nil
	e.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// close closes the writer (its final sync) and leaves the database
// stopped. It reports whether a writer was open.
func (e *dbEntry) close(ctx context.Context) (bool, error) {
	e.stopRetry()
	e.opMu.Lock()
	defer e.opMu.Unlock()
	e.mu.Lock()
	db := e.db
	e.mu.Unlock()
	if db == nil {
		e.mu.Lock()
		e.state, e.openErr = stateStopped, ""
		e.mu.Unlock()
		return false, nil
	}
	err := e.redact(db.Close(ctx))
	st := db.Status()
	e.mu.Lock()
	e.db, e.state, e.last, e.openErr = nil, stateStopped, st, ""
	e.mu.Unlock()
	if err != nil {
		return true, fmt.Errorf("close database %s: %w", e.path, err)
	}
	return true, nil
}

// start opens a stopped database; running reports that it was not stopped.
func (e *dbEntry) start(ctx context.Context) (running bool, err error) {
	e.opMu.Lock()
	defer e.opMu.Unlock()
	e.mu.Lock()
	state := e.state
	e.mu.Unlock()
	if state != stateStopped {
		return true, nil
	}
	return false, e.open(ctx)
}

// errNeverOpened is the final sync's error for a database whose open
// never succeeded.
var errNeverOpened = errors.New("the database was never opened")
