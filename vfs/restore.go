package vfs

// Restore and the VFS read the same replica differently, on purpose.
//
// The VFS answers one page at a time, so it reads single frames (or small
// coalesced runs) by byte range through the page index. A range read cannot
// verify the file's CRC64 checksum, which covers the whole file; the VFS
// relies on the frame's page number, its LZ4 framing and its decoded size.
//
// Restore produces a file that will be trusted as the database, and DESIGN.md
// invariant 5 requires every input file's checksum to be verified: a
// corrupted file must fail the restore with an error naming it, never yield
// silently wrong pages. So restore streams every file of the plan whole, once,
// through ltx.Decoder, which hashes everything it decodes and compares with
// the trailer at Close, and writes only the pages the index version assigns
// to that file. Reading whole files also suits a restore's access pattern:
// it needs almost every byte of the plan anyway, and large sequential reads
// (several in flight per file, several files at once) are bound by bandwidth
// rather than request latency.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/remote"
)

// RestoreOptions configure Restore.
type RestoreOptions struct {
	// OutputPath is the database file to create.
	OutputPath string
	// TXID restores exactly this transaction; Timestamp restores the newest
	// state created at or before it. Neither set: the latest state. Both set
	// is an error.
	TXID      ltx.TXID
	Timestamp time.Time
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

// RestoreResult describes a completed restore.
type RestoreResult struct {
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
	// restoreBatch is the most page bytes one WriteAt writes.
	restoreBatch = 1 << 20
	// restoreWriters write batches to the output concurrently with decoding.
	restoreWriters = 2
	// restoreRetries is how often a failed chunk read is retried.
	restoreRetries  = 3
	restoreBackoff  = 200 * time.Millisecond
	progressEveryMB = 1 << 20
)

// Restore writes the database at the target TXID or time to
// opts.OutputPath: it plans the files, builds the page index version, and
// streams every plan file whole through the LTX decoder (verifying its
// checksum), writing each page the version assigns to that file into
// OutputPath+".tmp". The lock page and pages no file holds stay holes
// (zeros). The temporary file is fsynced and renamed over OutputPath, and the
// directory is fsynced. On any error no output file is left behind.
//
// Restore does not run an integrity check: package vfs must not link a
// SQLite; the caller (the CLI) does that.
func Restore(ctx context.Context, c remote.Client, opts RestoreOptions) (*RestoreResult, error) {
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

	plan, err := index.PlanAt(ctx, c, opts.TXID, opts.Timestamp)
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
	r := &restorer{c: c, v: v, f: f, path: tmp, log: log, parallelism: par}
	for _, info := range plan.Files {
		r.prog.total += info.Size
	}
	r.prog.fn = opts.Progress
	if err := r.run(ctx, plan.Files); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}

	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("restore: fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("restore: close %s: %w", tmp, err)
	}
	// Re-check just before replacing: the output may have appeared while the
	// restore ran. Stale WAL/journal files go before the rename, never after:
	// a crash in between must not leave an old WAL beside the new database.
	if err := checkOutput(out, opts.Force); err != nil {
		return nil, err
	}
	if opts.Force {
		for _, sfx := range []string{"-wal", "-shm", "-journal"} {
			if err := os.Remove(out + sfx); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("restore: remove stale %s: %w", out+sfx, err)
			}
		}
	}
	if err := os.Rename(tmp, out); err != nil {
		return nil, fmt.Errorf("restore: rename %s to %s: %w", tmp, out, err)
	}
	ok = true
	if err := syncDir(filepath.Dir(out)); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}

	res := &RestoreResult{
		TXID: plan.TXID, Timestamp: plan.Timestamp, PageSize: v.PageSize(), Commit: v.Commit(),
		Files: len(plan.Files), Bytes: r.prog.done.Load(),
	}
	log.Info("restored", "txid", res.TXID, "output", out, "bytes_read", res.Bytes, "missing_pages", r.missing)
	return res, nil
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

// restorer runs one restore's pipeline: up to parallelism files are decoded
// concurrently (each fed by a few in-flight range reads), and decoded pages
// go in page-run batches to restoreWriters goroutines that WriteAt them. No
// goroutine handles all pages, so decoding one large snapshot overlaps with
// writing it.
type restorer struct {
	c           remote.Client
	v           *index.Version
	f           *os.File
	path        string
	log         *slog.Logger
	parallelism int
	prog        progress
	missing     int // pages 1..commit no file holds (excluding the lock page)

	free    chan *batch
	batches chan *batch
}

// batch is a run buffer of decoded pages bound for the output file; pgnos[i]
// is the page in buf[i*pageSize:].
type batch struct {
	buf   []byte
	pgnos []uint32
}

func (r *restorer) run(ctx context.Context, files []*ltx.FileInfo) error {
	ps := int(r.v.PageSize())
	perBatch := max(1, restoreBatch/ps)

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

	nbuf := 2*r.parallelism + restoreWriters
	r.free = make(chan *batch, nbuf)
	for i := 0; i < nbuf; i++ {
		r.free <- &batch{buf: make([]byte, perBatch*ps), pgnos: make([]uint32, 0, perBatch)}
	}
	r.batches = make(chan *batch, restoreWriters)

	g, gctx := errgroup.WithContext(ctx)
	for i := 0; i < restoreWriters; i++ {
		g.Go(func() error { return r.write(gctx) })
	}
	g.Go(func() error {
		defer close(r.batches)
		dg, dctx := errgroup.WithContext(gctx)
		dg.SetLimit(r.parallelism)
		for _, info := range files {
			dg.Go(func() error {
				if err := r.decodeFile(dctx, info, want[info]); err != nil {
					return fmt.Errorf("%s: %w", remote.FileDesc(info.Level, info.MinTXID, info.MaxTXID), err)
				}
				return nil
			})
		}
		return dg.Wait()
	})
	return g.Wait()
}

// write writes batches until the channel closes, then returns the buffers.
func (r *restorer) write(ctx context.Context) error {
	ps := int64(r.v.PageSize())
	for {
		var b *batch
		var ok bool
		select {
		case b, ok = <-r.batches:
			if !ok {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
		// One WriteAt per run of consecutive pages.
		for i := 0; i < len(b.pgnos); {
			j := i + 1
			for j < len(b.pgnos) && b.pgnos[j] == b.pgnos[j-1]+1 {
				j++
			}
			if _, err := r.f.WriteAt(b.buf[int64(i)*ps:int64(j)*ps], int64(b.pgnos[i]-1)*ps); err != nil {
				return fmt.Errorf("write pages %d..%d to %s: %w", b.pgnos[i], b.pgnos[j-1], r.path, err)
			}
			i = j
		}
		b.pgnos = b.pgnos[:0]
		r.free <- b
	}
}

// decodeFile streams one file through the decoder and sends the pages the
// version assigns to it to the writers.
func (r *restorer) decodeFile(ctx context.Context, info *ltx.FileInfo, want int) error {
	src := newChunkReader(ctx, r.c, info, &r.prog, r.log)
	defer src.Close()
	dec := ltx.NewDecoder(src)
	dec.SetRetainPageIndex(false)
	if err := dec.DecodeHeader(); err != nil {
		return fmt.Errorf("decode header: %w", err)
	}
	hdr := dec.Header()
	if hdr.MinTXID != info.MinTXID || hdr.MaxTXID != info.MaxTXID || hdr.PageSize != r.v.PageSize() {
		return fmt.Errorf("header (TXIDs %s-%s, page size %d) does not match the plan", hdr.MinTXID, hdr.MaxTXID, hdr.PageSize)
	}

	ps := int(hdr.PageSize)
	var b *batch
	send := func() error {
		if b == nil || len(b.pgnos) == 0 {
			return nil
		}
		select {
		case r.batches <- b:
			b = nil
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	wrote := 0
	for {
		if b == nil {
			select {
			case b = <-r.free:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		slot := len(b.pgnos)
		dst := b.buf[slot*ps : (slot+1)*ps]
		var ph ltx.PageHeader
		err := dec.DecodePage(&ph, dst)
		if err == io.EOF {
			break
		} else if err != nil {
			r.free <- b // never sent; return it so other files can go on
			return fmt.Errorf("decode page after %d pages: %w", dec.PageN(), err)
		}
		if e, ok := r.v.Lookup(ph.Pgno); !ok || e.File != info {
			// A later file of the plan holds this page. It was decoded and
			// hashed (the checksum needs it); the next page overwrites its slot.
			continue
		}
		b.pgnos = append(b.pgnos, ph.Pgno)
		wrote++
		if len(b.pgnos) == cap(b.pgnos) {
			if err := send(); err != nil {
				return err
			}
		}
	}
	// The checksum is only known at the end: pages already handed to the
	// writers are discarded with the temporary file if it fails.
	if err := dec.Close(); err != nil {
		if b != nil {
			r.free <- b
		}
		return fmt.Errorf("verify: %w", err)
	}
	if err := send(); err != nil {
		return err
	}
	if b != nil {
		r.free <- b
	}
	if wrote != want {
		return fmt.Errorf("file holds %d of the %d pages the page index assigns to it", wrote, want)
	}
	return nil
}

// progress counts bytes read and reports them, throttled, to fn.
type progress struct {
	fn    func(done, total int64)
	total int64
	done  atomic.Int64

	mu       sync.Mutex
	reported int64
}

func (p *progress) add(n int64) {
	d := p.done.Add(n)
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if d > p.reported && (d-p.reported >= progressEveryMB || d >= p.total) {
		p.reported = d
		p.fn(d, p.total)
	}
}

// chunkReader reads a whole file as consecutive range requests of
// restoreChunk bytes, with up to restoreAhead of them in flight, so that one
// large file is not limited to one connection's throughput. Chunks are
// delivered in order.
type chunkReader struct {
	ctx    context.Context
	cancel context.CancelFunc
	c      remote.Client
	info   *ltx.FileInfo
	prog   *progress
	log    *slog.Logger

	next    int64 // offset of the next chunk to request
	pending []chan chunkResult
	cur     []byte
	err     error

	// whole is used instead when the file's size is unknown.
	whole io.ReadCloser
}

type chunkResult struct {
	b   []byte
	err error
}

func newChunkReader(ctx context.Context, c remote.Client, info *ltx.FileInfo, prog *progress, log *slog.Logger) *chunkReader {
	ctx, cancel := context.WithCancel(ctx)
	return &chunkReader{ctx: ctx, cancel: cancel, c: c, info: info, prog: prog, log: log}
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.info.Size <= 0 {
		return r.readWhole(p)
	}
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		for len(r.pending) < restoreAhead && r.next < r.info.Size {
			r.pending = append(r.pending, r.fetch(r.next, min(restoreChunk, r.info.Size-r.next)))
			r.next += restoreChunk
		}
		if len(r.pending) == 0 {
			return 0, io.EOF
		}
		res := <-r.pending[0]
		r.pending = r.pending[1:]
		if res.err != nil {
			r.err = res.err
			return 0, r.err
		}
		r.cur = res.b
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// fetch reads one chunk in the background, retrying transient failures.
func (r *chunkReader) fetch(off, size int64) chan chunkResult {
	ch := make(chan chunkResult, 1)
	go func() {
		backoff := restoreBackoff
		for attempt := 0; ; attempt++ {
			b, err := r.readChunk(off, size)
			if err == nil {
				r.prog.add(size)
				ch <- chunkResult{b: b}
				return
			}
			if r.ctx.Err() != nil || errors.Is(err, remote.ErrNotExist) || attempt >= restoreRetries {
				ch <- chunkResult{err: err}
				return
			}
			r.log.Warn("restore read failed, retrying", "file", remote.FileDesc(r.info.Level, r.info.MinTXID, r.info.MaxTXID),
				"offset", off, "size", size, "attempt", attempt+1, "error", err)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-r.ctx.Done():
				t.Stop()
				ch <- chunkResult{err: r.ctx.Err()}
				return
			}
			backoff *= 2
		}
	}()
	return ch
}

func (r *chunkReader) readChunk(off, size int64) ([]byte, error) {
	rc, err := r.c.OpenLTXFile(r.ctx, r.info.Level, r.info.MinTXID, r.info.MaxTXID, off, size)
	if err != nil {
		return nil, fmt.Errorf("open bytes %d+%d: %w", off, size, err)
	}
	defer rc.Close()
	b := make([]byte, size)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, fmt.Errorf("read bytes %d+%d: %w", off, size, err)
	}
	return b, nil
}

func (r *chunkReader) readWhole(p []byte) (int, error) {
	if r.whole == nil {
		rc, err := r.c.OpenLTXFile(r.ctx, r.info.Level, r.info.MinTXID, r.info.MaxTXID, 0, 0)
		if err != nil {
			return 0, fmt.Errorf("open: %w", err)
		}
		r.whole = rc
	}
	n, err := r.whole.Read(p)
	r.prog.add(int64(n))
	return n, err
}

// Close stops chunk reads still in flight.
func (r *chunkReader) Close() error {
	r.cancel()
	if r.whole != nil {
		return r.whole.Close()
	}
	return nil
}
