package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/internal/userinput"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/restore"
)

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

// restoreResult is restore -json's summary (Litestream's stable fields,
// then this program's).
type restoreResult struct {
	DBPath         string `json:"db_path"`
	Replica        string `json:"replica"` // the replica client type
	TXID           string `json:"txid"`
	DurationMS     int64  `json:"duration_ms"`
	IntegrityCheck string `json:"integrity_check"`

	Timestamp string `json:"timestamp,omitempty"` // creation time of the restored state, RFC 3339
	Pages     uint32 `json:"pages"`
	PageSize  uint32 `json:"page_size"`
	Files     int    `json:"files"`
	Bytes     int64  `json:"bytes"`
}

// restoreFlags is restore's command line, parsed and checked.
type restoreFlags struct {
	cf              configFlags
	source          string // the database path or replica URL argument
	p               restoreParams
	dryRun, follow  bool
	followInterval  time.Duration
	asJSON          bool
	ifDBNotExists   bool
	ifReplicaExists bool
}

func (m *Main) runRestore(ctx context.Context, args []string) error {
	f, err := m.parseRestoreFlags(args)
	if err != nil {
		return err
	}
	p := f.p
	tgt, err := m.resolveTarget(f.source, &f.cf)
	if err != nil {
		return err
	}
	if p.output == "" && tgt.DBPath != "" {
		p.output = tgt.DBPath
	}
	if p.output == "" && !f.dryRun {
		return usageErrorf("litestream restore -o /path/to/db "+redactURL(f.source), "-o is required when restoring from a replica URL")
	}
	if p.output != "" {
		if p.output, err = expandPath(p.output); err != nil {
			return err
		}
	}
	if f.dryRun {
		return m.restoreDryRun(ctx, f.source, tgt, p, f.asJSON)
	}
	if f.follow {
		return m.restoreFollow(ctx, tgt.replicaRef, p, f.followInterval)
	}
	if skip, err := m.prepareRestoreOutput(&p, f.ifDBNotExists); skip || err != nil {
		return err
	}
	return m.restoreAndReport(ctx, tgt, p, f)
}

// parseRestoreFlags parses restore's arguments and checks the combinations.
func (m *Main) parseRestoreFlags(args []string) (*restoreFlags, error) {
	f := &restoreFlags{}
	fs := m.newFlagSet("restore", m.restoreUsage)
	f.cf.register(fs)
	fs.StringVar(&f.p.output, "o", "", "output path")
	txidStr := fs.String("txid", "", "transaction ID")
	fs.IntVar(&f.p.parallelism, "parallelism", 0, "parallel remote reads (default: the restorer's own)")
	fs.BoolVar(&f.ifDBNotExists, "if-db-not-exists", false, "")
	fs.BoolVar(&f.ifReplicaExists, "if-replica-exists", false, "")
	tsStr := fs.String("timestamp", "", "timestamp")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print restore plan without writing")
	fs.BoolVar(&f.p.force, "force", false, "overwrite existing output database")
	fs.BoolVar(&f.p.allowGap, "allow-gap", false, "if TXIDs are missing from the replica's history (a gap: a level-0 file was lost and no compaction covers it), restore the newest state before the gap instead of failing")
	fs.BoolVar(&f.asJSON, "json", false, "output raw JSON")
	fs.BoolVar(&f.follow, "f", false, "follow mode")
	fs.DurationVar(&f.followInterval, "follow-interval", time.Second, "polling interval for follow mode")
	fs.StringVar(&f.p.integrity, "integrity-check", "none", "post-restore integrity check: none, quick, or full")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if err := checkOneArg(fs, "database path or replica URL", "litestream restore -o /path/to/db s3://bucket/prefix"); err != nil {
		return nil, err
	}
	f.source = fs.Arg(0)
	switch f.p.integrity {
	case "none", "quick", "full":
	default:
		return nil, fmt.Errorf("invalid -integrity-check value: %s", f.p.integrity)
	}
	if f.follow && (f.dryRun || *txidStr != "" || *tsStr != "" || f.p.allowGap) {
		return nil, errors.New("cannot use -f with -dry-run, -txid, -timestamp or -allow-gap: follow mode applies the latest state")
	}
	if *txidStr != "" && *tsStr != "" {
		return nil, errors.New("cannot specify both -txid and -timestamp")
	}
	if *txidStr != "" {
		v, err := parseTXID(*txidStr)
		if err != nil {
			return nil, fmt.Errorf("invalid value %q for flag -txid: %w", *txidStr, err)
		}
		f.p.txid = v
	}
	if *tsStr != "" {
		ts, err := time.Parse(time.RFC3339Nano, *tsStr)
		if err != nil {
			return nil, errors.New("invalid -timestamp, must specify in ISO 8601 format (e.g. 2000-01-01T00:00:00Z)")
		}
		f.p.timestamp = ts
	}
	return f, nil
}

// prepareRestoreOutput checks what is at p.output, as Litestream does: an
// existing database skips the restore under -if-db-not-exists and is refused
// without -force, unless it is empty (then replaced); a missing directory of
// the output is created.
func (m *Main) prepareRestoreOutput(p *restoreParams, ifDBNotExists bool) (skip bool, err error) {
	if fi, err := os.Stat(p.output); err == nil {
		switch {
		case ifDBNotExists:
			fmt.Fprintf(m.Stdout, "database %s already exists, skipping restore\n", p.output)
			return true, nil
		case fi.IsDir():
			return false, fmt.Errorf("cannot restore, output path is a directory: %s", p.output)
		case !p.force && fi.Size() > 0:
			return false, fmt.Errorf("cannot restore, output path already exists and is not empty: %s. Use -force to overwrite", p.output)
		case !p.force:
			// An empty file is replaced, as Litestream does.
			p.force = true
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("cannot access output path: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(p.output), 0o755); err != nil {
		return false, fmt.Errorf("create the output's directory: %w", err)
	}
	return false, nil
}

// restoreAndReport restores tgt's replica to p.output and reports the
// result: the log line, and restore -json's summary.
func (m *Main) restoreAndReport(ctx context.Context, tgt *target, p restoreParams, f *restoreFlags) error {
	logger := m.cmdLogger()
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
	if errors.Is(err, errEmptyReplica) && f.ifReplicaExists {
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
	elapsed := time.Since(start)
	logger.Info("restore complete", "output", p.output, "replica", tgt.redacted(), "txid", res.TXID.String(),
		"created", res.Timestamp.UTC().Format(time.RFC3339), "pages", res.Commit, "page-size", res.PageSize,
		"files", res.Files, "bytes", res.Bytes, "integrity-check", p.integrity,
		"elapsed", elapsed.Round(time.Millisecond).String())
	if !f.asJSON {
		return nil
	}
	return printJSON(m, restoreResult{
		DBPath: p.output, Replica: client.Type(), TXID: res.TXID.String(), DurationMS: elapsed.Milliseconds(),
		IntegrityCheck: p.integrity, Timestamp: res.Timestamp.UTC().Format(time.RFC3339Nano),
		Pages: res.Commit, PageSize: res.PageSize, Files: res.Files, Bytes: res.Bytes,
	})
}

func (m *Main) restoreUsage() {
	fmt.Fprintf(m.Stdout, `The restore command recovers a database from a previous snapshot and WAL.

Usage:

	litestream restore [arguments] DB_PATH

	litestream restore [arguments] REPLICA_URL

Arguments:

`+argConfig+"\n"+argNoExpandEnv+`
	-txid TXID
	    Restore up to a specific hex-encoded transaction ID (inclusive).
	    Defaults to use the highest available transaction.
	    Leading zeros may be left out (000000000000000a or a).

	-timestamp TIMESTAMP
	    Restore to a specific point-in-time.
	    Defaults to use the latest available backup.

	-o PATH
	    Output path of the restored database.
	    Defaults to original DB path.

	-if-db-not-exists
	    Returns exit code of 0 if the database already exists.

	-if-replica-exists
	    Returns exit code of 0 if no backups found.

	-dry-run
	    Print the restore plan and exit without writing a database.

	-force
	    Overwrite an existing output database and SQLite sidecar files.

	-allow-gap
	    If TXIDs are missing from the replica's history (a lost level-0
	    file no compaction covers), restore the newest state before the
	    gap instead of failing.

	-json
	    Output raw JSON summary on successful restore.

	-f
	    Follow mode. After restoring, continuously poll for and apply
	    new changes. Similar to tail -f. The restored database should
	    only be opened in read-only mode by consumers.
	    Cannot be used with -txid or -timestamp.

	-follow-interval DURATION
	    Polling interval for follow mode.
	    Defaults to 1s.

	-parallelism NUM
	    Number of files read and decoded at once (default 4). Litestream
	    0.5.x accepts this flag without effect; this build uses it.

	-integrity-check MODE
	    Run a post-restore integrity check on the database.
	    MODE is one of: none, quick, full.
	    Defaults to none.


Examples:

	# Restore latest replica for database to original location.
	$ litestream restore /path/to/db

	# Restore replica for database to a given point in time.
	$ litestream restore -timestamp 2020-01-01T00:00:00Z /path/to/db

	# Restore latest replica for database to new /tmp directory
	$ litestream restore -o /tmp/db /path/to/db

	# Restore database from S3 replica URL.
	$ litestream restore -o /tmp/db s3://mybucket/db

	# Preview restore plan without writing a database.
	$ litestream restore -dry-run -o /tmp/db s3://mybucket/db

	# Continuously restore (follow) a database from a replica.
	$ litestream restore -f -o /tmp/read-replica.db s3://mybucket/db

`, m.defaultConfigPath())
}

// restore writes the database at p's target to p.output (with Force,
// restore.Run also removes a replaced database's stale -wal and -shm), then
// runs the integrity check.
func (m *Main) restore(ctx context.Context, client remote.Client, p restoreParams, logger *slog.Logger) (*restore.Result, error) {
	// A writer's retention may delete a planned file while it is read:
	// plan once more before failing.
	res, err := restore.RunReplanning(ctx, client, restore.Options{
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
		// No LTX files: a Litestream v0.3 replica (generations/), if any.
		res, v3err := m.restoreV3(ctx, client, p, logger)
		if errors.Is(v3err, errNoV3Backup) {
			return nil, fmt.Errorf("%w: %w", errEmptyReplica, err)
		}
		if v3err != nil {
			return nil, v3err
		}
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	if err := integrityCheck(ctx, p.output, p.integrity); err != nil {
		return nil, err
	}
	return res, nil
}

// parseTXID parses a TXID typed by the user (-txid, the MCP restore tool's
// txid) by the project's one TXID rule, userinput.ParseTXID: hex as
// Litestream prints it, leading zeros and 0x optional.
func parseTXID(s string) (ltx.TXID, error) {
	return userinput.ParseTXID(s)
}

// progressPrinter draws "restoring: 12.0/48.0 MiB of LTX files (25%)" on
// one terminal line, at most ten times a second. restore.Run reports bytes
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
