package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/litestream-go/litestream/metrics"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/writer"
)

const replicateSynopsis = `	litestream replicate [arguments]                      (databases from the config file)
	litestream replicate [arguments] DB_PATH REPLICA_URL  (one database; REPLICA_URL may be a plain path)`

// replicated is one database being replicated.
type replicated struct {
	path   string
	url    string // redacted
	db     *writer.DB
	client remote.Client // counted by the metrics when they are on
	ref    replicaRef    // for redact
}

// redact hides the replica's credentials in an error from its client.
// Backends keep secrets out of their errors; this is the second line.
func (r *replicated) redact(err error) error {
	if err == nil {
		return nil
	}
	return r.ref.redactErr(err)
}

func (m *Main) runReplicate(ctx context.Context, args []string) error {
	fs := m.newFlagSet("replicate", replicateSynopsis)
	var cf configFlags
	cf.register(fs)
	logLevel := fs.String("log-level", "", "log level: debug, info, warn, error (overrides the config and $LOG_LEVEL)")
	once := fs.Bool("once", false, "sync every database once, then exit")
	restoreIfNotExists := fs.Bool("restore-if-db-not-exists", false, "restore a missing database from its replica before replicating")
	execCmd := fs.String("exec", "", "run this command as a subprocess; replicate exits, after a final sync, when it exits (overrides the config's exec)")
	forceSnapshot := fs.Bool("force-snapshot", false, "take a snapshot with -once (not supported yet)")
	enforceRetention := fs.Bool("enforce-retention", false, "enforce retention with -once (not supported yet)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *forceSnapshot || *enforceRetention:
		return fmt.Errorf("%w: -force-snapshot and -enforce-retention are not supported yet", errUsage)
	}

	var cfg *Config
	switch fs.NArg() {
	case 0:
		var err error
		if cfg, err = m.loadConfig(&cf); err != nil {
			return err
		}
	case 1:
		return fmt.Errorf("%w: a replica URL is required after %s", errUsage, fs.Arg(0))
	case 2:
		if cf.path != "" {
			return fmt.Errorf("%w: cannot use DB_PATH REPLICA_URL arguments and -config together", errUsage)
		}
		path, err := expandPath(fs.Arg(0))
		if err != nil {
			return err
		}
		u, err := replicaArg(fs.Arg(1))
		if err != nil {
			return err
		}
		cfg = &Config{DBs: []*DBConfig{{Path: path, Replica: &ReplicaConfig{URL: u}}}}
	default:
		return fmt.Errorf("%w: one replica URL per database (multiple replicas are not supported)", errUsage)
	}
	if *execCmd == "" {
		*execCmd = cfg.Exec
	}
	if *execCmd != "" && *once {
		return fmt.Errorf("%w: -exec and -once cannot be used together", errUsage)
	}
	if args, err := splitCommand(*execCmd); err != nil || (*execCmd != "" && len(args) == 0) {
		return fmt.Errorf("%w: -exec %q: not a command (%v)", errUsage, *execCmd, err)
	}
	if *restoreIfNotExists {
		for _, db := range cfg.DBs {
			db.RestoreIfDBNotExists = true
		}
	}

	level := cfg.Logging.Level
	if v := m.Getenv("LOG_LEVEL"); v != "" {
		level = v
	}
	if *logLevel != "" {
		level = *logLevel
	}
	if _, err := parseLogLevel(level); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	var logOut io.Writer = m.Stdout
	if cfg.Logging.Stderr {
		logOut = m.Stderr
	}
	logger := newLogger(logOut, level, cfg.Logging.Type)
	if cfg.Path != "" {
		logger.Info("litestream", "version", Version, "config", cfg.Path)
	} else {
		logger.Info("litestream", "version", Version)
	}

	for _, key := range cfg.Unsupported() {
		logger.Warn("config key not supported yet, ignored", "key", key)
	}

	var dbCfgs []*DBConfig
	for i, db := range cfg.DBs {
		if db.Path == "" {
			logger.Warn("database entry without 'path' (directory replication is not supported yet), ignored", "entry", fmt.Sprintf("dbs[%d]", i), "dir", db.Dir)
			continue
		}
		dbCfgs = append(dbCfgs, db)
	}
	if len(dbCfgs) == 0 {
		return fmt.Errorf("no databases to replicate in config %s", cfg.Path)
	}

	// Open every database before starting any, so a configuration error
	// does not leave some databases replicating.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mtr *metrics.Metrics
	if cfg.Addr != "" {
		mtr = metrics.New()
	}
	var dbs []*replicated
	closeAll := func(ctx context.Context) error {
		var errs []error
		for _, r := range dbs {
			if err := r.redact(r.db.Close(ctx)); err != nil {
				logger.Error("final sync failed", "db", r.path, "replica", r.url, "error", err)
				errs = append(errs, fmt.Errorf("close %s: %w", r.path, err))
			} else {
				logger.Info("database closed, final sync done", "db", r.path)
			}
		}
		return errors.Join(errs...)
	}
	for _, dbc := range dbCfgs {
		r, err := m.openReplicated(runCtx, dbc, &cfg.ReplicaSettings, mtr, logger)
		if err != nil {
			_ = closeAll(context.WithoutCancel(ctx))
			return err
		}
		dbs = append(dbs, r)
	}

	if *once {
		var errs []error
		for _, r := range dbs {
			if err := r.db.Sync(runCtx); err != nil {
				errs = append(errs, r.redact(fmt.Errorf("sync %s to %s: %w", r.path, r.url, err)))
			}
		}
		errs = append(errs, closeAll(context.WithoutCancel(ctx)))
		return errors.Join(errs...)
	}

	started := time.Now()
	if mtr != nil {
		srv, err := startHTTP(cfg.Addr, metricsMux(mtr), logger, "metrics")
		if err != nil {
			_ = closeAll(context.WithoutCancel(ctx))
			return err
		}
		defer srv.Close()
	}
	if cfg.MCPAddr != "" {
		srv, err := startHTTP(cfg.MCPAddr, mcpHandler(m.newMCPServer(dbs, started, logger)), logger, "mcp")
		if err != nil {
			_ = closeAll(context.WithoutCancel(ctx))
			return err
		}
		defer srv.Close()
	}
	if cfg.Socket.Enabled {
		srv, err := startControl(&cfg.Socket, dbs, started, logger)
		if err != nil {
			_ = closeAll(context.WithoutCancel(ctx))
			return err
		}
		defer srv.Close()
	}
	for _, r := range dbs {
		r.db.Start(runCtx)
	}
	if cfg.HeartbeatURL != "" {
		interval := DefaultHeartbeatInterval
		if cfg.HeartbeatInterval != nil {
			interval = *cfg.HeartbeatInterval
		}
		hbDone := make(chan struct{})
		go func() {
			defer close(hbDone)
			heartbeat(runCtx, cfg.HeartbeatURL, interval, dbs, logger)
		}()
		defer func() { cancel(); <-hbDone }()
		logger.Info("heartbeat enabled", "url", redactURL(cfg.HeartbeatURL), "interval", interval.String())
	}

	var childDone <-chan error
	var child *exec.Cmd
	if *execCmd != "" {
		var err error
		if child, childDone, err = m.startChild(*execCmd, logger); err != nil {
			_ = closeAll(context.WithoutCancel(ctx))
			return err
		}
	}

	// Shut down on the first signal (after the subprocess, which receives
	// it too, has exited), when the subprocess exits, or when ctx ends. The
	// final sync is bounded by shutdown-sync-timeout; a second signal
	// abandons it.
	timeout := DefaultShutdownSyncTimeout
	if cfg.ShutdownSyncTimeout != nil {
		timeout = *cfg.ShutdownSyncTimeout
	}
	interval := DefaultShutdownSyncInterval
	if cfg.ShutdownSyncInterval != nil {
		interval = *cfg.ShutdownSyncInterval
	}
	shutCtx, shutCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer shutCancel()
	stop := make(chan struct{})
	defer close(stop)
	watchSecond := func() {
		go func() {
			select {
			case sig := <-m.Signals:
				logger.Error("second signal received, exiting without waiting for the final sync", "signal", sig.String())
				if child != nil {
					_ = child.Process.Signal(sig) // an error only if it already exited
				}
				shutCancel()
				if m.Exit != nil {
					m.Exit(1)
				}
			case <-stop:
			}
		}()
	}
	var result error
	select {
	case sig := <-m.Signals:
		watchSecond()
		if child != nil {
			logger.Info("signal received, forwarding it to the subprocess and waiting for it to exit", "signal", sig.String())
			_ = child.Process.Signal(sig)
			select {
			case err := <-childDone:
				result = childExit(err)
			case <-shutCtx.Done():
			}
		}
		logger.Info("shutting down: final sync of every database", "signal", sig.String(), "timeout", timeout.String())
	case err := <-childDone:
		watchSecond()
		result = childExit(err)
		logger.Info("subprocess exited, shutting down: final sync of every database", "result", errString(err), "timeout", timeout.String())
	case <-ctx.Done():
		watchSecond()
		if child != nil {
			_ = child.Process.Signal(syscall.SIGTERM)
			<-childDone
		}
		logger.Info("context done, shutting down", "cause", context.Cause(ctx))
	}
	syncCtx, syncCancel := context.WithTimeout(shutCtx, timeout)
	defer syncCancel()
	err := shutdownSync(syncCtx, dbs, interval, logger)
	cancel()
	if err == nil {
		logger.Info("litestream shut down")
	}
	return errors.Join(result, err)
}

func errString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// openReplicated opens the replica client and the writer for one database.
func (m *Main) openReplicated(ctx context.Context, dbc *DBConfig, global *ReplicaSettings, mtr *metrics.Metrics, logger *slog.Logger) (*replicated, error) {
	rc, err := dbc.ReplicaConfig()
	if err != nil {
		return nil, err
	}
	ref, err := rc.Replica()
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", dbc.Path, err)
	}
	client, err := openReplica(ctx, ref, logger)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", dbc.Path, err)
	}
	red := ref.redacted()
	if mtr != nil {
		client = mtr.Client(dbc.Path, client)
	}

	if _, err := os.Stat(dbc.Path); errors.Is(err, os.ErrNotExist) {
		if !dbc.RestoreIfDBNotExists {
			return nil, fmt.Errorf("database %s does not exist (create it first, or use -restore-if-db-not-exists to restore it from %s)", dbc.Path, red)
		}
		if err := m.restoreMissing(ctx, client, dbc.Path, red, logger); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("database %s: %w", dbc.Path, err)
	}

	opts := writer.Options{
		StagingDir: dbc.MetaPath,
		Logger:     logger,
	}
	if dbc.MonitorInterval != nil {
		opts.MonitorInterval = *dbc.MonitorInterval
	}
	if dbc.CheckpointInterval != nil {
		opts.CheckpointInterval = *dbc.CheckpointInterval
	}
	if dbc.MinCheckpointPageN != nil {
		opts.MinCheckpointPageN = *dbc.MinCheckpointPageN
	}
	syncInterval := rc.SyncInterval
	if syncInterval == nil {
		syncInterval = global.SyncInterval
	}
	if syncInterval != nil {
		opts.SyncInterval = *syncInterval
	}
	if mtr != nil {
		opts.Observer = mtr.Observer(dbc.Path)
	}
	dbc.global.applyMaintenance(&opts) // levels, snapshot, retention (maintenance.go)
	db := writer.New(dbc.Path, client, opts)
	if mtr != nil {
		mtr.AddDB(dbc.Path, db.Status)
	}
	if err := db.Open(ctx); err != nil {
		return nil, ref.redactErr(fmt.Errorf("open database %s (replica %s): %w", dbc.Path, red, err))
	}
	logger.Info("replicating", "db", dbc.Path, "replica", red, "type", client.Type(),
		"sync-interval", durationOrDefault(opts.SyncInterval))
	return &replicated{path: dbc.Path, url: red, db: db, client: client, ref: ref}, nil
}

func durationOrDefault(d time.Duration) string {
	if d == 0 {
		return "default"
	}
	return d.String()
}

// restoreMissing restores a database that does not exist yet from its
// replica; an empty replica is not an error (first start).
func (m *Main) restoreMissing(ctx context.Context, client remote.Client, path, red string, logger *slog.Logger) error {
	logger.Info("database does not exist, restoring from replica", "db", path, "replica", red)
	res, err := m.restore(ctx, client, restoreParams{output: path, integrity: "quick"}, logger)
	if errors.Is(err, errEmptyReplica) {
		// First start: nothing to restore. The writer replicates an
		// existing database only, so create an empty one in WAL mode.
		logger.Info("replica is empty, starting with a new, empty database", "db", path)
		return createEmptyDB(ctx, path)
	}
	if err != nil {
		return fmt.Errorf("restore missing database %s from %s: %w", path, red, err)
	}
	logger.Info("database restored", "db", path, "txid", res.TXID.String())
	return nil
}
