// Package restore rebuilds a database file from a replica: at the latest
// state, at a TXID or at a point in time (Run, RunReplanning), and keeps a
// restored file up to date in place (Follow, for `restore -f`). It plans with
// package index and reads through remote.Client; it never links a SQLite,
// so the command line does not need cgo's VFS to restore.
//
// Restore and the VFS read the same replica differently, on purpose.
//
// The VFS answers one page at a time, so it reads single frames (or small
// coalesced runs) by byte range through the page index. A range read cannot
// verify the file's CRC64 checksum, which covers the whole file: the VFS
// reads small files whole and verifies them (vfs/verify.go), and for larger
// files relies on each frame: its page number, LZ4 framing and decoded
// size, and for the LZ4 frame encoding (this project's writer) the frame's
// content checksum, which verifies the page itself.
//
// Restore produces a file that will be trusted as the database, and
// docs/ARCHITECTURE.md invariant 5 requires every input file's checksum to be
// verified: a corrupted file must fail the restore with an error naming it,
// never yield silently wrong pages. So restore streams every file of the plan
// whole, once, through a decoder that makes every check ltx.Decoder makes
// (the CRC64 over the header, page headers, decompressed pages, page index
// and trailer, and the page index against the frames actually read, and for
// pages in the LZ4 frame encoding each frame's content checksum), and writes
// only the pages the index version assigns to that file, in parallel
// (verifyFile, decode.go). Reading whole files also suits a restore's access
// pattern: it needs almost every byte of the plan anyway, and large
// sequential reads (several in flight per file, several files at once) are
// bound by bandwidth rather than request latency.
//
// The output is atomic (docs/ARCHITECTURE.md invariant 9): a temporary file,
// fsynced, renamed into place, the directory fsynced.
package restore

import (
	"context"
	"errors"
	"fmt"
	"hash/crc64"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/remote"
)

// Options configure Run.
type Options struct {
	// OutputPath is the database file to create.
	OutputPath string
	// TXID restores exactly this transaction; Timestamp restores the newest
	// state created at or before it. Neither set: the latest state. Both set
	// is an error.
	TXID      ltx.TXID
	Timestamp time.Time
	// AllowGap accepts, when the latest state (or the newest state at
	// Timestamp) is cut short by a gap in the replica's history, the
	// consistent state before the gap. Without it such a restore fails with
	// an *index.GapError naming the missing TXIDs (index.ErrGap).
	AllowGap bool
	// Force replaces an existing OutputPath and removes a stale
	// OutputPath-wal, -shm or -journal, which SQLite would otherwise apply
	// to (and so corrupt) the restored database.
	Force bool
	// Parallelism is how many files are read and decoded at once (default
	// 4). Each file additionally has a few range requests in flight.
	Parallelism int
	// Progress, if set, is called with the bytes of LTX files read so far
	// and the plan's total; calls are serialized and done never decreases.
	Progress func(done, total int64)
	// Logger receives progress and warnings (default slog.Default()).
	Logger *slog.Logger
}

// Result describes a completed restore.
type Result struct {
	// Gap is set when AllowGap let the restore stop before missing history.
	Gap       *index.GapError
	TXID      ltx.TXID
	Timestamp time.Time // CreatedAt of the plan's last file
	PageSize  uint32
	Commit    uint32 // database size in pages
	Files     int    // LTX files read
	Bytes     int64  // bytes of LTX files read (and checksummed)
}

// Tuning of the restore pipeline.
const (
	defaultRestoreParallelism = 4
	// restoreChunk is the size of one range request when a file is read
	// whole; restoreAhead chunks of one file are in flight at once.
	restoreChunk = 4 << 20
	restoreAhead = 4
	// restoreBatch is the page bytes decoded, written and hashed as one unit.
	restoreBatch = 1 << 20
	// restoreRetries is how often a failed chunk read is retried.
	restoreRetries  = 3
	restoreBackoff  = 200 * time.Millisecond
	progressEveryMB = 1 << 20
)

// Run writes the database at the target TXID or time to
// opts.OutputPath: it plans the files, builds the page index version, and
// streams every plan file whole through a verifying LTX decoder (file
// checksum included), writing each page the version assigns to that file into
// OutputPath+".tmp". The lock page and pages no file holds stay holes
// (zeros). The temporary file is fsynced and renamed over OutputPath, and the
// directory is fsynced. On any error no output file is left behind.
//
// Run does not run an integrity check: package restore must not link a
// SQLite; the caller (the CLI) does that.
func Run(ctx context.Context, c remote.Client, opts Options) (*Result, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	out := opts.OutputPath
	if out == "" {
		return nil, errors.New("restore: no output path")
	}
	if err := checkOutput(out, opts.Force); err != nil {
		return nil, err
	}

	start := time.Now()
	plan, err := index.PlanAt(ctx, c, opts.TXID, opts.Timestamp)
	var gap *index.GapError
	if errors.As(err, &gap) && opts.AllowGap {
		log.Warn("restoring the state before a gap in the replica's history, as allowed", "txid", gap.TXID, "gap", err)
		plan, err = gap.Plan, nil
	} else {
		gap = nil
	}
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	v, err := index.Build(ctx, c, plan)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	log.Info("restoring", "txid", plan.TXID, "timestamp", plan.Timestamp, "files", len(plan.Files),
		"page_size", v.PageSize(), "pages", v.Commit(), "output", out)

	tmp := out + ".tmp"
	// A .tmp left by a crashed restore is replaced: it was never renamed, so
	// nothing depends on it.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("restore: remove stale %s: %w", tmp, err)
	}
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("restore: create %s: %w", tmp, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// Sizing the file first leaves the lock page and never-written pages as
	// holes and lets writers fill pages in any order.
	if err := f.Truncate(int64(v.Commit()) * int64(v.PageSize())); err != nil {
		return nil, fmt.Errorf("restore: size %s: %w", tmp, err)
	}

	par := opts.Parallelism
	if par <= 0 {
		par = defaultRestoreParallelism
	}
	r := &restorer{c: c, v: v, f: f, path: tmp, log: log, parallelism: par,
		crcTable: crc64.MakeTable(crc64.ISO), crcComb: newCRCCombiner(crc64.ISO)}
	for _, info := range plan.Files {
		r.prog.total += info.Size
	}
	r.prog.fn = opts.Progress
	indexed := time.Now()
	if err := r.run(ctx, plan.Files); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	written := time.Now()

	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("restore: fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("restore: close %s: %w", tmp, err)
	}
	renamed, err := Publish(tmp, out, opts.Force)
	ok = renamed // tmp is gone once renamed, whatever follows
	if err != nil {
		return nil, err
	}

	res := &Result{
		Gap:  gap,
		TXID: plan.TXID, Timestamp: plan.Timestamp, PageSize: v.PageSize(), Commit: v.Commit(),
		Files: len(plan.Files), Bytes: r.prog.done.Load(),
	}
	log.Info("restored", "txid", res.TXID, "output", out, "bytes_read", res.Bytes, "missing_pages", r.missing,
		"index_time", indexed.Sub(start), "write_time", written.Sub(indexed), "sync_time", time.Since(written))
	return res, nil
}

// Publish puts the complete, fsynced tmp in place of out and fsyncs the
// directory (docs/ARCHITECTURE.md invariant 9). It re-checks out just before
// replacing it: the output may have appeared while the restore ran. Stale
// WAL/journal files go before the rename, never after: a crash in between
// must not leave an old WAL beside the new database. It reports whether tmp
// was renamed.
func Publish(tmp, out string, force bool) (renamed bool, err error) {
	if err := checkOutput(out, force); err != nil {
		return false, err
	}
	if force {
		for _, sfx := range []string{"-wal", "-shm", "-journal"} {
			if err := os.Remove(out + sfx); err != nil && !errors.Is(err, os.ErrNotExist) {
				return false, fmt.Errorf("restore: remove stale %s: %w", out+sfx, err)
			}
		}
	}
	if err := os.Rename(tmp, out); err != nil {
		return false, fmt.Errorf("restore: rename %s to %s: %w", tmp, out, err)
	}
	if err := syncDir(filepath.Dir(out)); err != nil {
		return true, fmt.Errorf("restore: %w", err)
	}
	return true, nil
}

// checkOutput refuses to overwrite a database (or to create one beside a
// stale WAL or journal) unless force is set.
func checkOutput(out string, force bool) error {
	fi, err := os.Lstat(out)
	switch {
	case err == nil && fi.IsDir():
		return fmt.Errorf("restore: output path %s is a directory", out)
	case err == nil && !force:
		return fmt.Errorf("restore: output path %s already exists (use force to replace it)", out)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("restore: check output path %s: %w", out, err)
	}
	if force {
		return nil
	}
	for _, sfx := range []string{"-wal", "-journal"} {
		if _, err := os.Lstat(out + sfx); err == nil {
			return fmt.Errorf("restore: %s exists beside the output path; SQLite would apply it to the restored database (remove it or use force)", out+sfx)
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// restorer runs one restore: up to parallelism files at once, each through
// verifyFile's pipeline.
type restorer struct {
	c           remote.Client
	v           *index.Version
	f           *os.File
	path        string
	log         *slog.Logger
	parallelism int
	workers     int // decompress+write goroutines per file
	crcTable    *crc64.Table
	crcComb     *crcCombiner
	prog        progress
	missing     int // pages 1..commit no file holds (excluding the lock page)
}

func (r *restorer) run(ctx context.Context, files []*ltx.FileInfo) error {
	// How many pages each file must contribute; checked after decoding so a
	// file that lacks a page its index promised cannot pass unnoticed.
	want := make(map[*ltx.FileInfo]int, len(files))
	lock := ltx.LockPgno(r.v.PageSize())
	for pgno := uint32(1); pgno <= r.v.Commit(); pgno++ {
		if e, ok := r.v.Lookup(pgno); ok {
			want[e.File]++
		} else if pgno != lock {
			r.missing++
		}
	}
	if r.missing > 0 {
		r.log.Warn("pages missing from every file of the plan are left as zeros", "pages", r.missing, "output", r.path)
	}
	r.workers = max(1, min(4, runtime.GOMAXPROCS(0)))

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.parallelism)
	for _, info := range files {
		g.Go(func() error {
			err := r.verifyFile(gctx, info, want[info])
			if err != nil {
				return fmt.Errorf("%s: %w", remote.FileDesc(info.Level, info.MinTXID, info.MaxTXID), err)
			}
			return nil
		})
	}
	return g.Wait()
}

// checkHeader checks a plan file's header, as streamed, against its name
// and the database being built. (The page index read for planning checked
// the same; the stream is what is written, so it is checked again.)
func (r *restorer) checkHeader(info *ltx.FileInfo, hdr ltx.Header) error {
	if err := index.CheckHeader(info, hdr); err != nil {
		return err
	}
	if hdr.PageSize != r.v.PageSize() {
		return fmt.Errorf("page size %d differs from the database's %d", hdr.PageSize, r.v.PageSize())
	}
	return nil
}
