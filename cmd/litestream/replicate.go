package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/litestream-go/litestream/remote"
)

// DefaultShutdownTimeout bounds the whole shutdown (shutdown-timeout).
const DefaultShutdownTimeout = 30 * time.Second

// runReplicate is `replicate`: parse (replicate_args.go), open the daemon
// (daemon.go), run until a signal, the -exec subprocess's exit or ctx's
// end, then shut down with a final sync of every database.
func (m *Main) runReplicate(ctx context.Context, args []string) error {
	a, err := m.parseReplicateArgs(ctx, args)
	if err != nil {
		return err
	}
	cfg := a.cfg
	level := cfg.Logging.Level
	if v := m.Getenv("LOG_LEVEL"); v != "" {
		level = v
	}
	if a.logLevel != "" {
		level = a.logLevel
	}
	var logOut io.Writer = m.Stdout
	if cfg.Logging.Stderr {
		logOut = m.Stderr
	}
	logger := newLogger(logOut, level, cfg.Logging.Type, cfg.Logging.Source)
	if level == "" {
		level = "INFO"
	}
	if cfg.Path != "" {
		logger.Info("litestream", "version", Version, "level", level, "config", cfg.Path)
	} else {
		logger.Info("litestream", "version", Version, "level", level)
	}
	for _, n := range cfg.notes() {
		logger.Info(n)
	}
	shutdownTimeout := cfg.shutdownTimeout(logger)

	d := newDaemon(m, a, logger)
	if err := d.open(ctx); err != nil {
		return errors.Join(err, d.abort(context.WithoutCancel(ctx)))
	}
	if a.once {
		err := d.runOnce(ctx)
		return errors.Join(err, d.abort(context.WithoutCancel(ctx)))
	}

	result, sig := d.serve(ctx)

	// The shutdown is bounded by shutdown-timeout, and a second signal
	// abandons it at once.
	shutCtx, shutCancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer shutCancel()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case sig2 := <-m.Signals:
			logger.Error("second signal received, exiting without waiting for the final sync", "signal", sig2.String())
			shutCancel()
			if m.Exit != nil {
				m.Exit(1)
			}
		case <-stop:
		}
	}()
	_ = sig
	err = d.shutdown(shutCtx)
	if err == nil {
		logger.Info("litestream shut down")
	}
	return errors.Join(result, err)
}

// shutdownTimeout reads shutdown-timeout the way Litestream does: a value
// that is not a positive duration is logged and the default used.
func (c *Config) shutdownTimeout(logger *slog.Logger) time.Duration {
	if c.ShutdownTimeout == nil {
		return DefaultShutdownTimeout
	}
	s, ok := c.ShutdownTimeout.(string)
	d, err := time.ParseDuration(s)
	if !ok || err != nil || d <= 0 {
		logger.Warn("invalid shutdown-timeout; using default", "value", c.ShutdownTimeout, "default", DefaultShutdownTimeout)
		return DefaultShutdownTimeout
	}
	return d
}

// notes says how keys whose Litestream purpose this build meets by other
// means are taken, so that none of them is a silent no-op.
func (c *Config) notes() []string {
	var out []string
	for i, db := range c.DBs {
		if db.MaxSyncWALBytes != nil {
			out = append(out, fmt.Sprintf("dbs[%d].max-sync-wal-bytes: each sync is staged to disk and streamed, so its memory is bounded without splitting it", i))
		}
	}
	return out
}

// abort closes whatever open and -once opened: every open database (with
// its final sync), the services, the background work.
func (d *daemon) abort(ctx context.Context) error {
	if d.ctl != nil {
		_ = d.ctl.Close()
	}
	var errs []error
	for _, e := range d.entries() {
		if _, err := e.close(ctx); err != nil {
			errs = append(errs, err)
			d.log.Error("final sync failed", "db", e.path, "replica", e.red, "error", err)
		}
	}
	d.runCancel()
	d.bg.Wait()
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	return errors.Join(errs...)
}

func errString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
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
