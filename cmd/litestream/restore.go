package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/vfs"
)

const restoreSynopsis = `	litestream restore [arguments] -o OUTPUT_PATH REPLICA_URL
	litestream restore -dry-run [-json] [-txid TXID | -timestamp TIME] REPLICA_URL
	litestream restore -f -o OUTPUT_PATH REPLICA_URL   (follow: keep applying new files)
	litestream restore [arguments] [-o OUTPUT_PATH] DB_PATH   (replica found through the config file)`

// errEmptyReplica is returned (wrapped) when a replica holds no database.
var errEmptyReplica = errors.New("no backups found in replica")

// restoreParams are the resolved restore options.
type restoreParams struct {
	output      string
	txid        ltx.TXID
	timestamp   time.Time
	force       bool
	allowGap    bool
	parallelism int
	integrity   string // none, quick, full
	progress    func(done, total int64)
}

func (m *Main) runRestore(ctx context.Context, args []string) error {
	fs := m.newFlagSet("restore", restoreSynopsis)
	var cf configFlags
	cf.register(fs)
	output := fs.String("o", "", "output path of the restored database (default: the database's own path, from the config)")
	txidStr := fs.String("txid", "", "restore to this transaction ID (hex, e.g. 0000000000000010 or 10)")
	tsStr := fs.String("timestamp", "", "restore to the state at this time (RFC 3339, e.g. 2024-01-15T10:30:00Z)")
	parallelism := fs.Int("parallelism", 0, "parallel remote reads (default: the restorer's own)")
	ifDBNotExists := fs.Bool("if-db-not-exists", false, "do nothing (exit 0) if the output database already exists")
	ifReplicaExists := fs.Bool("if-replica-exists", false, "do nothing (exit 0) if the replica has no backup")
	force := fs.Bool("force", false, "overwrite an existing output database")
	allowGap := fs.Bool("allow-gap", false, "if TXIDs are missing from the replica's history (a gap: a level-0 file was lost and no compaction covers it), restore the newest state before the gap instead of failing; without it, restoring the latest state (or a time after the gap) over a gap fails and names the missing TXIDs")
	integrity := fs.String("integrity-check", "quick", "check the restored database: none, quick or full")
	dryRun := fs.Bool("dry-run", false, "print the restore plan (files, levels, sizes) and restore nothing")
	asJSON := fs.Bool("json", false, "with -dry-run: print the plan as JSON")
	follow := fs.Bool("f", false, "follow: after restoring, keep applying new files to the output in place until interrupted; resumes from the output's recorded TXID")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *asJSON && !*dryRun {
		return fmt.Errorf("%w: -json needs -dry-run", errUsage)
	}
	if *follow && (*dryRun || *txidStr != "" || *tsStr != "" || *allowGap) {
		return fmt.Errorf("%w: -f follows the latest state; it cannot be combined with -dry-run, -txid, -timestamp or -allow-gap", errUsage)
	}
	switch {
	case fs.NArg() == 0:
		return fmt.Errorf("%w: a database path or replica URL is required", errUsage)
	case fs.NArg() > 1:
		return fmt.Errorf("%w: too many arguments", errUsage)
	}
	p := restoreParams{force: *force, allowGap: *allowGap, parallelism: *parallelism, integrity: *integrity}
	switch p.integrity {
	case "none", "quick", "full":
	default:
		return fmt.Errorf("%w: -integrity-check must be none, quick or full, not %q", errUsage, p.integrity)
	}
	if *txidStr != "" && *tsStr != "" {
		return fmt.Errorf("%w: use -txid or -timestamp, not both", errUsage)
	}
	if *txidStr != "" {
		v, err := parseTXID(*txidStr)
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		p.txid = v
	}
	if *tsStr != "" {
		ts, err := time.Parse(time.RFC3339Nano, *tsStr)
		if err != nil {
			return fmt.Errorf("%w: invalid -timestamp %q: use RFC 3339, e.g. 2024-01-15T10:30:00Z", errUsage, *tsStr)
		}
		p.timestamp = ts
	}

	tgt, err := m.resolveTarget(fs.Arg(0), &cf)
	if err != nil {
		return err
	}
	if *dryRun {
		return m.restoreDryRun(ctx, tgt.replicaRef, p, *asJSON)
	}
	p.output = *output
	if p.output == "" {
		if tgt.DBPath == "" {
			return fmt.Errorf("%w: -o OUTPUT_PATH is required when restoring from a replica URL", errUsage)
		}
		p.output = tgt.DBPath
	}
	if p.output, err = expandPath(p.output); err != nil {
		return err
	}
	if *follow {
		return m.restoreFollow(ctx, tgt.replicaRef, p)
	}
	if _, err := os.Stat(p.output); err == nil {
		if *ifDBNotExists {
			fmt.Fprintf(m.Stdout, "database %s already exists, skipping restore\n", p.output)
			return nil
		}
		if !p.force {
			return fmt.Errorf("output database %s already exists (use -force to overwrite it)", p.output)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("output database %s: %w", p.output, err)
	}

	logger := newLogger(m.Stderr, m.Getenv("LOG_LEVEL"), "text")
	client, err := openReplica(ctx, tgt.replicaRef, logger)
	if err != nil {
		return err
	}
	if m.StderrIsTerminal {
		pr := &progressPrinter{w: m.Stderr}
		p.progress = pr.update
		defer pr.finish()
	}
	start := time.Now()
	res, err := m.restore(ctx, client, p, logger)
	if errors.Is(err, errEmptyReplica) && *ifReplicaExists {
		fmt.Fprintf(m.Stdout, "no backups found in %s, skipping restore\n", tgt.redacted())
		return nil
	}
	if errors.Is(err, index.ErrGap) {
		err = fmt.Errorf("%w (restore -txid at or before the gap, or pass -allow-gap to accept the state before it)", err)
	}
	if err != nil {
		return tgt.redactErr(fmt.Errorf("restore from %s: %w", tgt.URL, err))
	}
	if res.Gap != nil {
		logger.Warn("restored the state before a gap in the replica's history (-allow-gap)", "txid", res.TXID.String(),
			"missing", res.Gap.First.String()+"-"+res.Gap.Last.String())
	}
	logger.Info("restore complete", "output", p.output, "replica", tgt.redacted(), "txid", res.TXID.String(),
		"created", res.Timestamp.UTC().Format(time.RFC3339), "pages", res.Commit, "page-size", res.PageSize,
		"files", res.Files, "bytes", res.Bytes, "integrity-check", p.integrity,
		"elapsed", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// restore writes the database at p's target to p.output (with Force,
// vfs.Restore also removes a replaced database's stale -wal and -shm), then
// runs the integrity check.
func (m *Main) restore(ctx context.Context, client remote.Client, p restoreParams, logger *slog.Logger) (*vfs.RestoreResult, error) {
	// A writer's retention may delete a planned file while it is read:
	// plan once more before failing.
	res, err := vfs.RestoreReplanning(ctx, client, vfs.RestoreOptions{
		OutputPath:  p.output,
		TXID:        p.txid,
		Timestamp:   p.timestamp,
		AllowGap:    p.allowGap,
		Force:       p.force,
		Parallelism: p.parallelism,
		Progress:    p.progress,
		Logger:      logger,
	})
	if errors.Is(err, index.ErrNoSnapshot) {
		return nil, fmt.Errorf("%w: %w", errEmptyReplica, err)
	}
	if err != nil {
		return nil, err
	}
	if err := integrityCheck(ctx, p.output, p.integrity); err != nil {
		return nil, err
	}
	return res, nil
}

// parseTXID accepts a TXID in hex, with or without leading zeros (Litestream
// prints them as 16 hex digits).
func parseTXID(s string) (ltx.TXID, error) {
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(s), "0x"), 16, 64)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("invalid -txid %q: expected a non-zero hex transaction ID such as 000000000000000a", s)
	}
	return ltx.TXID(v), nil
}

// progressPrinter draws "restoring: 12.0/48.0 MiB of LTX files (25%)" on
// one terminal line, at most ten times a second. vfs.Restore reports bytes
// of LTX files read.
type progressPrinter struct {
	w     io.Writer
	mu    sync.Mutex
	last  time.Time
	drawn bool // something is on the line
	done  bool // the line has been ended
}

func (p *progressPrinter) update(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	now := time.Now()
	complete := done >= total
	if !complete && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	pct := 100.0
	if total > 0 {
		pct = float64(done) * 100 / float64(total)
	}
	fmt.Fprintf(p.w, "\rrestoring: %.1f/%.1f MiB of LTX files (%.0f%%)", float64(done)/(1<<20), float64(total)/(1<<20), pct)
	p.drawn = true
	if complete {
		// End the line now, before the restore logs its result.
		fmt.Fprintln(p.w)
		p.done = true
	}
}

func (p *progressPrinter) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn && !p.done {
		fmt.Fprintln(p.w)
	}
	p.done = true
}
