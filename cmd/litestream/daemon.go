package main

// The running `replicate`: the set of databases it replicates (the config
// file's, those found under dir: entries, and those registered at run time
// over the control socket) and the services around them. open builds and
// opens it, serve runs until it should stop, shutdown brings every replica
// up to date and releases everything.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/litestream-go/litestream/control"
	"github.com/litestream-go/litestream/metrics"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/writer"
)

type daemon struct {
	m       *Main
	cfg     *Config
	args    *replicateArgs
	log     *slog.Logger
	once    bool
	mtr     *metrics.Metrics // nil unless addr is set
	started time.Time

	// runCtx lives until shutdown; the writers' loops, the directory
	// watchers and the open retries run under it.
	runCtx    context.Context
	runCancel context.CancelFunc

	mu  sync.Mutex
	dbs []*dbEntry // in configuration order, then registration order

	closers []func() // servers to close at shutdown, in reverse order
	ctl     *control.Server
	bg      sync.WaitGroup
}

func newDaemon(m *Main, args *replicateArgs, logger *slog.Logger) *daemon {
	d := &daemon{m: m, cfg: args.cfg, args: args, log: logger, once: args.once, started: time.Now()}
	d.runCtx, d.runCancel = context.WithCancel(context.Background())
	if d.cfg.Addr != "" {
		d.mtr = metrics.New()
	}
	return d
}

// entries returns the databases, in order.
func (d *daemon) entries() []*dbEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.dbs)
}

// find returns the database at path, or nil.
func (d *daemon) find(path string) *dbEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range d.dbs {
		if e.path == path {
			return e
		}
	}
	return nil
}

// newEntry builds a database's entry from its configuration: its replica
// client (wrapped for the metrics and, with verify-compaction, the
// compaction check) and its writer options. Nothing is opened.
func (d *daemon) newEntry(ctx context.Context, dbc *DBConfig) (*dbEntry, error) {
	rc, err := dbc.ReplicaConfig()
	if err != nil {
		return nil, err
	}
	ref, err := rc.Replica()
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", dbc.Path, err)
	}
	if err := ref.Age.checkReplicate(); err != nil {
		return nil, fmt.Errorf("database %s: replica: %w", dbc.Path, err)
	}
	client, err := openReplica(ctx, ref, d.log)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", dbc.Path, err)
	}
	e := &dbEntry{d: d, path: dbc.Path, cfg: dbc, ref: ref, red: ref.redacted()}
	e.client = d.wrapClient(dbc.Path, client)
	e.opts = d.writerOptions(dbc, rc)
	if d.mtr != nil {
		e.opts.Observer = d.mtr.Observer(dbc.Path)
	}
	return e, nil
}

// wrapClient adds the metrics and the compaction check to a client.
func (d *daemon) wrapClient(path string, c remote.Client) remote.Client {
	if d.cfg.VerifyCompaction {
		c = &verifyClient{Client: c, db: path, log: d.log, onError: func() {
			if d.mtr != nil {
				d.mtr.CompactionVerifyError(path)
			}
		}}
	}
	if d.mtr != nil {
		c = d.mtr.Client(path, c)
	}
	return c
}

// writerOptions maps a database's keys to the writer's options.
func (d *daemon) writerOptions(dbc *DBConfig, rc *ReplicaConfig) writer.Options {
	opts := writer.Options{Logger: d.log}
	setFrom(&opts.StagingDir, dbc.MetaPath)
	setFrom(&opts.MonitorInterval, dbc.MonitorInterval)
	if dbc.CheckpointInterval != nil {
		opts.CheckpointInterval = *dbc.CheckpointInterval
		if opts.CheckpointInterval <= 0 {
			// Litestream's 0 turns time-based checkpoints off; the
			// writer's off is negative (its 0 is the default).
			opts.CheckpointInterval = -1
		}
	}
	setFrom(&opts.MinCheckpointPageN, dbc.MinCheckpointPageN)
	if dbc.TruncatePageN != nil {
		// As in Litestream: 0 keeps the default threshold (the writer's
		// 0 is its default too), a negative value turns truncation off.
		opts.TruncatePageN = *dbc.TruncatePageN
		if opts.TruncatePageN < 0 {
			opts.TruncatePageN = math.MaxInt32
		}
	}
	if dbc.BusyTimeout != nil {
		opts.BusyTimeout = *dbc.BusyTimeout
		if opts.BusyTimeout == 0 {
			// Litestream's 0 is SQLite's busy_timeout=0 (no wait); the
			// writer's 0 is its default, and it passes milliseconds to
			// SQLite, so 1ns is busy_timeout=0.
			opts.BusyTimeout = time.Nanosecond
		}
	}
	if rc != nil && rc.SyncInterval != nil {
		opts.SyncInterval = *rc.SyncInterval
	}
	d.cfg.applyMaintenance(&opts) // levels, snapshot, retention (maintenance.go)
	if d.args.enforceRetention {
		// -once -enforce-retention deletes now what retention would
		// delete: no grace period to wait out.
		opts.RetentionGrace = -1
	}
	return opts
}

// add makes e one of the daemon's databases (and the metrics'). It
// reports false when a database with that path is already there.
func (d *daemon) add(e *dbEntry) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, x := range d.dbs {
		if x.path == e.path {
			return false
		}
	}
	d.dbs = append(d.dbs, e)
	if d.mtr != nil {
		d.mtr.AddDB(e.path, e.status)
	}
	return true
}

// remove drops e from the daemon's databases (and the metrics').
func (d *daemon) remove(e *dbEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dbs = slices.DeleteFunc(d.dbs, func(x *dbEntry) bool { return x == e })
	if d.mtr != nil {
		d.mtr.RemoveDB(e.path)
	}
}

// open builds every configured database (directories scanned), restores
// the missing ones that ask for it, opens them, and starts the services.
// A configuration error, a missing database or a failed restore is an
// error; a replica unreachable at start is not (the open is retried in the
// background) except with -once.
func (d *daemon) open(ctx context.Context) error {
	if len(d.cfg.DBs) == 0 {
		d.log.Error("no databases specified in configuration")
	}
	var dirs []*dirWatcher
	for _, dbc := range d.cfg.DBs {
		if dbc.Dir != "" {
			w, err := d.addDir(ctx, dbc)
			if err != nil {
				return err
			}
			if dbc.Watch {
				dirs = append(dirs, w)
			}
			continue
		}
		if err := d.addPath(ctx, dbc); err != nil {
			return err
		}
	}

	// Open every database before starting any service, so that -once and
	// configuration errors leave nothing half started.
	for _, e := range d.entries() {
		if d.once {
			e.opMu.Lock()
			err := e.open(ctx)
			e.opMu.Unlock()
			if err != nil {
				return err
			}
			continue
		}
		e.openRetrying(ctx)
	}
	if d.once {
		return nil
	}
	return d.startServices(dirs)
}

// addDir adds the databases a directory entry finds now; the caller starts
// the returned watcher (with watch: true) once every database is open.
func (d *daemon) addDir(ctx context.Context, dbc *DBConfig) (*dirWatcher, error) {
	w, err := d.newDirWatcher(dbc)
	if err != nil {
		return nil, err
	}
	found, err := w.scan()
	if err != nil {
		return nil, err
	}
	if len(found) == 0 && !dbc.Watch {
		return nil, fmt.Errorf("no SQLite databases found in directory %s with pattern %s", dbc.Dir, dbc.Pattern)
	}
	d.log.Info("found databases in directory", "dir", dbc.Dir, "count", len(found), "watch", dbc.Watch)
	for _, p := range found {
		if err := w.addDB(ctx, p, false); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// addPath adds one configured database, restoring it first when it is
// missing and restore-if-db-not-exists asks for that.
func (d *daemon) addPath(ctx context.Context, dbc *DBConfig) error {
	if _, err := os.Stat(dbc.Path); errors.Is(err, os.ErrNotExist) && !dbc.RestoreIfDBNotExists {
		return fmt.Errorf("database %s does not exist (create it first, or use -restore-if-db-not-exists to restore it from its replica)", dbc.Path)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("database %s: %w", dbc.Path, err)
	}
	e, err := d.newEntry(ctx, dbc)
	if err != nil {
		return err
	}
	if !d.add(e) {
		return fmt.Errorf("database %s is listed twice", dbc.Path)
	}
	if dbc.RestoreIfDBNotExists {
		if _, err := os.Stat(dbc.Path); errors.Is(err, os.ErrNotExist) {
			if err := d.m.restoreMissing(ctx, e.client, dbc.Path, e.red, d.log); err != nil {
				return e.redact(err)
			}
		}
	}
	return nil
}

// startServices starts what runs around the databases: the control socket,
// the directory watchers, the metrics and MCP endpoints, the heartbeat and
// validation.
func (d *daemon) startServices(dirs []*dirWatcher) error {
	if d.cfg.Socket.Enabled {
		if err := d.startControl(); err != nil {
			// Litestream goes on without its socket; so does this daemon,
			// loudly.
			d.log.Warn("failed to start control server", "error", err)
		}
	}
	for _, w := range dirs {
		w.start()
	}
	if d.cfg.Addr != "" {
		srv, err := startHTTP(d.cfg.Addr, metricsMux(d.mtr), d.log, "metrics")
		if err != nil {
			return err
		}
		d.closers = append(d.closers, srv.Close)
	}
	if d.cfg.MCPAddr != "" {
		srv, err := startHTTP(localAddr(d.cfg.MCPAddr), mcpHandler(d.m.newMCPServer(d, d.log)), d.log, "mcp")
		if err != nil {
			return err
		}
		d.closers = append(d.closers, srv.Close)
	}
	if d.cfg.HeartbeatURL != "" {
		if err := d.startHeartbeat(); err != nil {
			return err
		}
	}
	d.startValidation()
	if d.cfg.Retention.Enabled != nil && !*d.cfg.Retention.Enabled {
		d.log.Warn("retention disabled; cloud provider lifecycle policies must handle retention",
			"hint", "idle databases that stop receiving writes will not generate new snapshots and may lose backup coverage if cloud retention expires")
	}
	return nil
}

// startHeartbeat starts pinging heartbeat-url every heartbeat-interval
// (at least a minute, as in Litestream; tests may lower the floor).
func (d *daemon) startHeartbeat() error {
	interval := DefaultHeartbeatInterval
	setFrom(&interval, d.cfg.HeartbeatInterval)
	least := d.m.minHeartbeat
	if least == 0 {
		least = time.Minute
	}
	if interval < least {
		return d.cfg.keyError("heartbeat-interval", "must be at least %s (got %s)", least, interval)
	}
	d.goBackground(func() { heartbeat(d.runCtx, d.cfg.HeartbeatURL, interval, d, d.log) })
	d.log.Info("heartbeat enabled", "url", redactURL(d.cfg.HeartbeatURL), "interval", interval.String())
	return nil
}

// goBackground runs fn until runCtx ends; shutdown waits for it.
func (d *daemon) goBackground(fn func()) {
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		fn()
	}()
}

// runOnce is -once: one sync of every database, then, if asked, a
// snapshot and retention.
func (d *daemon) runOnce(ctx context.Context) error {
	for _, e := range d.entries() {
		db := e.writer()
		d.log.Info("syncing database", "path", e.path)
		if err := db.Sync(ctx); err != nil {
			return e.redact(fmt.Errorf("sync database %s: %w", e.path, err))
		}
		if d.args.forceSnapshot {
			d.log.Info("taking snapshot", "path", e.path)
			if _, err := db.Snapshot(ctx); err != nil {
				return e.redact(fmt.Errorf("snapshot %s: %w", e.path, err))
			}
		}
		if d.args.enforceRetention {
			d.log.Info("enforcing retention", "path", e.path)
			if _, err := db.EnforceRetention(ctx); err != nil {
				return e.redact(fmt.Errorf("enforce retention for %s: %w", e.path, err))
			}
		}
	}
	d.log.Info("one-shot replication complete")
	return nil
}

// serve runs until the daemon should stop: the first signal (forwarded to
// the -exec subprocess, which is then waited for), the subprocess's exit,
// or ctx's end. It returns the subprocess's result and the signal, if any.
func (d *daemon) serve(ctx context.Context) (result error, sig os.Signal) {
	var child *exec.Cmd
	var childDone <-chan error
	if d.cfg.Exec != "" {
		var err error
		if child, childDone, err = d.m.startChild(d.cfg.Exec, d.log); err != nil {
			return err, nil
		}
	}
	select {
	case sig = <-d.m.Signals:
		if child != nil {
			d.log.Info("signal received, forwarding it to the subprocess and waiting for it to exit", "signal", sig.String())
			_ = child.Process.Signal(sig) // an error only if it already exited
			select {
			case err := <-childDone:
				result = childExit(err)
			case sig2 := <-d.m.Signals:
				d.log.Error("second signal received, exiting without waiting", "signal", sig2.String())
				_ = child.Process.Signal(sig2)
				if d.m.Exit != nil {
					d.m.Exit(1)
				}
			}
		} else {
			d.log.Info("signal received, litestream shutting down", "signal", sig.String())
		}
	case err := <-childDone:
		result = childExit(err)
		d.log.Info("subprocess exited, litestream shutting down", "result", errString(err))
	case <-ctx.Done():
		if child != nil {
			_ = child.Process.Signal(syscall.SIGTERM)
			<-childDone
		}
		d.log.Info("context done, shutting down", "cause", context.Cause(ctx))
	}
	return result, sig
}

// shutdown stops taking control requests and discovering databases, brings
// every open database's replica up to date (bounded by
// shutdown-sync-timeout; a second signal gives up) and closes everything.
func (d *daemon) shutdown(ctx context.Context) error {
	if d.ctl != nil {
		_ = d.ctl.Close()
	}
	timeout := DefaultShutdownSyncTimeout
	setFrom(&timeout, d.cfg.ShutdownSyncTimeout)
	interval := DefaultShutdownSyncInterval
	setFrom(&interval, d.cfg.ShutdownSyncInterval)
	entries := d.entries()
	for _, e := range entries {
		e.stopRetry()
	}
	d.log.Info("shutting down: final sync of every database", "timeout", timeout.String())
	syncCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := shutdownSync(syncCtx, ctx, entries, interval, d.log)
	d.runCancel()
	d.bg.Wait()
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	return err
}

// liveStatus is the daemon's answer to `status` over the control socket.
func (d *daemon) liveStatus() control.Status {
	st := control.Status{Version: Version, PID: os.Getpid(), StartedAt: d.started.UTC(), DBs: []control.DBStatus{}}
	now := time.Now()
	for _, e := range d.entries() {
		state, s := e.current()
		st.DBs = append(st.DBs, control.DBStatus{
			Database:    e.path,
			Replica:     e.red,
			State:       state.String(),
			LocalTXID:   localTXID(s).String(),
			ReplicaTXID: s.TXID.String(),
			LagSeconds:  metrics.Lag(s, d.started, now).Seconds(),
			WALSize:     s.WALSize,
			LastSync:    utc(s.LastSync),
			LastUpload:  utc(s.LastUpload),
			LastError:   redactString(s.LastError, e.ref),
			Pending:     s.Pending,
		})
	}
	return st
}
