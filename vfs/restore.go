package vfs

// Restore and the VFS read the same replica differently, on purpose.
//
// The VFS answers one page at a time, so it reads single frames (or small
// coalesced runs) by byte range through the page index. A range read cannot
// verify the file's CRC64 checksum, which covers the whole file: the VFS
// reads small files whole and verifies them (verify.go), and for larger
// files relies on each frame: its page number, LZ4 framing and decoded
// size, and for the LZ4 frame encoding (this project's writer) the frame's
// content checksum, which verifies the page itself.
//
// Restore produces a file that will be trusted as the database, and DESIGN.md
// invariant 5 requires every input file's checksum to be verified: a
// corrupted file must fail the restore with an error naming it, never yield
// silently wrong pages. So restore streams every file of the plan whole, once,
// through a decoder that makes every check ltx.Decoder makes (the CRC64 over
// the header, page headers, decompressed pages, page index and trailer, and
// the page index against the frames actually read, and for pages in the LZ4
// frame encoding each frame's content checksum), and writes only the pages
// the index version assigns to that file, in parallel (verifyFile). Reading
// whole files also suits a restore's access pattern:
// it needs almost every byte of the plan anyway, and large sequential reads
// (several in flight per file, several files at once) are bound by bandwidth
// rather than request latency.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pierrec/lz4/v4"
	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/internal/ltxframe"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/retry"
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

// RestoreResult describes a completed restore.
type RestoreResult struct {
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

// Restore writes the database at the target TXID or time to
// opts.OutputPath: it plans the files, builds the page index version, and
// streams every plan file whole through a verifying LTX decoder (file
// checksum included), writing each page the version assigns to that file into
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
		Gap:  gap,
		TXID: plan.TXID, Timestamp: plan.Timestamp, PageSize: v.PageSize(), Commit: v.Commit(),
		Files: len(plan.Files), Bytes: r.prog.done.Load(),
	}
	log.Info("restored", "txid", res.TXID, "output", out, "bytes_read", res.Bytes, "missing_pages", r.missing,
		"index_time", indexed.Sub(start), "write_time", written.Sub(indexed), "sync_time", time.Since(written))
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
			err := r.restoreFile(gctx, info, want[info])
			if err != nil {
				return fmt.Errorf("%s: %w", remote.FileDesc(info.Level, info.MinTXID, info.MaxTXID), err)
			}
			return nil
		})
	}
	return g.Wait()
}

// restoreFile verifies one file and writes the pages the version assigns to
// it.
func (r *restorer) restoreFile(ctx context.Context, info *ltx.FileInfo, want int) error {
	_, err := r.verifyFile(ctx, info, want)
	return err
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

// pageJob is a batch of consecutive frames of one file: the splitter fills
// the compressed payloads, a worker decompresses and writes them, and the
// hasher then hashes them in file order.
type pageJob struct {
	comp   []byte       // compressed payloads, back to back
	frames []jobFrame   // in file order
	pages  []byte       // decompressed pages; frames[i] at i*pageSize
	crc    uint64       // CRC64 of the job's hashed bytes: each frame's header and size, then its page
	sum    ltx.Checksum // XOR of the pages' ltx.ChecksumPage (snapshots with checksums)
	err    error
	done   chan struct{} // closed when pages, sum and err are set

	tail []byte // the final job: the bytes after the last frame (no frames)
}

type jobFrame struct {
	hdr   [ltx.PageHeaderSize + 4]byte // page header and size field, as hashed
	hlen  int                          // bytes of hdr hashed: 6 for the frame encoding (no size field)
	frame bool                         // the LZ4 frame encoding (ltxframe)
	pgno  uint32
	comp  int  // offset of the payload in comp
	n     int  // payload length
	write bool // the version assigns this page to this file
}

// frameRec is where the splitter found a frame, to check the page index.
type frameRec struct {
	pgno uint32
	off  int64
	size int64
}

// verifyFile reads one file whole and checks exactly what ltx.Decoder
// checks (a valid header and page headers, ascending pages within the
// commit, a page index that describes exactly the frames read, nothing after
// the trailer, the CRC64 file checksum over the same bytes, and for
// snapshots that track checksums the post-apply checksum), while spreading
// the work over goroutines: one splits frames out of the byte stream,
// workers decompress them, hash them and WriteAt the assigned pages, and
// this goroutine combines the jobs' CRCs in file order (CRC64 runs at about
// 1.3 GB/s on one core, the largest cost of a restore, so it must not be
// serial). One large snapshot thus does not run at the speed of one core.
//
// It returns the bytes it read.
func (r *restorer) verifyFile(ctx context.Context, info *ltx.FileInfo, want int) (read int64, err error) {
	ctx, cancel := context.WithCancel(ctx)
	src := newChunkReader(ctx, r.c, info, &r.prog, 0, r.log)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait() // no worker may touch the file or buffers after return
		src.Close()
		read = src.taken // only the splitter reads src; it has stopped
	}()

	head := make([]byte, ltx.HeaderSize)
	if _, err := io.ReadFull(src, head); err != nil {
		return 0, fmt.Errorf("read header: %w", err)
	}
	var hdr ltx.Header
	if err := hdr.UnmarshalBinary(head); err != nil {
		return 0, fmt.Errorf("decode header: %w", err)
	}
	if err := r.checkHeader(info, hdr); err != nil {
		return 0, err
	}
	ps := int(hdr.PageSize)
	perJob := max(1, restoreBatch/ps)
	trackSum := hdr.IsSnapshot() && !hdr.NoChecksum()

	// At most njobs jobs bound memory to about (2*workers+2) MiB per file.
	// The splitter creates them as needed, and decodeJob sizes their page
	// buffers to the frames they hold, so a small L0 file costs little.
	njobs := 2*r.workers + 2
	free := make(chan *pageJob, njobs)
	work := make(chan *pageJob, njobs)
	ordered := make(chan *pageJob, njobs)

	for i := 0; i < r.workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				r.decodeJob(j, ps, trackSum)
				close(j.done)
			}
		}()
	}

	var recs []frameRec
	var splitErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(work)
		defer close(ordered)
		recs, splitErr = r.split(ctx, src, info, hdr, perJob, njobs, free, work, ordered)
	}()

	// Combine the jobs' CRCs in file order. The file checksum covers the
	// header, every page header and size field, every decompressed page, the
	// end-of-pages header, the page index and its length, and the trailer's
	// first 8 bytes; each job hashed its own part.
	crc := crc64.Update(0, r.crcTable, head)
	var sum ltx.Checksum // XOR of the page checksums
	wrote := 0
	var tail []byte
	for j := range ordered {
		if j.tail != nil {
			tail = j.tail
			break
		}
		select {
		case <-j.done:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if j.err != nil {
			return 0, j.err
		}
		hashed := int64(0)
		for i := range j.frames {
			hashed += int64(j.frames[i].hlen + ps)
		}
		crc = r.crcComb.combine(crc, j.crc, hashed)
		for i := range j.frames {
			if j.frames[i].write {
				wrote++
			}
		}
		sum ^= j.sum
		j.comp, j.frames, j.err, j.sum, j.crc = j.comp[:0], j.frames[:0], nil, 0, 0
		free <- j
	}
	if tail == nil {
		// The splitter stopped early; its error says why.
		cancel()
		wg.Wait()
		if splitErr != nil {
			return 0, splitErr
		}
		return 0, ctx.Err()
	}
	wg.Wait() // the splitter has finished once it sent the tail
	if splitErr != nil {
		return 0, splitErr
	}

	// tail = zero page header | index records | end marker | index length |
	// trailer (post-apply checksum, file checksum).
	idx := tail[ltx.PageHeaderSize : len(tail)-ltx.TrailerSize]
	pages, err := index.ParsePageIndex(idx)
	if err != nil {
		return 0, fmt.Errorf("page index: %w", err)
	}
	if len(pages) != len(recs) {
		return 0, fmt.Errorf("page index has %d entries but the file holds %d pages", len(pages), len(recs))
	}
	for i, p := range pages {
		if rec := recs[i]; p.Pgno != rec.pgno || p.Offset != rec.off || p.Size != rec.size {
			return 0, fmt.Errorf("page index entry %d (page %d at %d+%d) does not match the frame (page %d at %d+%d)", i, p.Pgno, p.Offset, p.Size, rec.pgno, rec.off, rec.size)
		}
	}
	hashed := tail[:len(tail)-ltx.ChecksumSize]
	crc = r.crcComb.combine(crc, crc64.Update(0, r.crcTable, hashed), int64(len(hashed)))
	var trailer ltx.Trailer
	if err := trailer.UnmarshalBinary(tail[len(tail)-ltx.TrailerSize:]); err != nil {
		return 0, fmt.Errorf("trailer: %w", err)
	}
	if got := ltx.ChecksumFlag | ltx.Checksum(crc); got != trailer.FileChecksum {
		return 0, fmt.Errorf("verify: %w (computed %s, trailer says %s)", ltx.ErrChecksumMismatch, got, trailer.FileChecksum)
	}
	if trackSum && ltx.ChecksumFlag|sum != trailer.PostApplyChecksum {
		return 0, fmt.Errorf("verify: post-apply checksum in trailer (%s) does not match the pages (%s)", trailer.PostApplyChecksum, ltx.ChecksumFlag|sum)
	}
	if wrote != want {
		return 0, fmt.Errorf("file holds %d of the %d pages the page index assigns to it", wrote, want)
	}
	return 0, nil
}

// split cuts the page frames out of src into jobs, sending each to a worker
// (work) and, in order, to the hasher (ordered); the bytes after the frames
// go to the hasher last, as a tail job. It returns where each frame was.
func (r *restorer) split(ctx context.Context, src io.Reader, info *ltx.FileInfo, hdr ltx.Header, perJob, njobs int, free <-chan *pageJob, work, ordered chan<- *pageJob) ([]frameRec, error) {
	send := func(j *pageJob) error {
		j.done = make(chan struct{})
		for _, ch := range []chan<- *pageJob{ordered, work} {
			select {
			case ch <- j:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	lock := ltx.LockPgno(hdr.PageSize)
	maxComp := lz4.CompressBlockBound(int(hdr.PageSize))
	// A frame of an LZ4 frame-encoded page: ours are at most
	// ltxframe.MaxFrameSize; others may use more blocks or block checksums.
	maxFrame := 2*ltxframe.MaxFrameSize(int(hdr.PageSize)) + 64
	var recs []frameRec
	var prev uint32
	pos := int64(ltx.HeaderSize)
	var j *pageJob
	created := 0
	for {
		if j == nil && created < njobs {
			select {
			case j = <-free:
			default:
				j = &pageJob{}
				created++
			}
		}
		if j == nil {
			select {
			case j = <-free:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		var fr jobFrame
		if _, err := io.ReadFull(src, fr.hdr[:ltx.PageHeaderSize]); err != nil {
			return nil, fmt.Errorf("read page header at offset %d: %w", pos, err)
		}
		var ph ltx.PageHeader
		_ = ph.UnmarshalBinary(fr.hdr[:])
		if ph.IsZero() {
			break
		}
		switch err := ph.Validate(); {
		case err != nil:
			return nil, fmt.Errorf("page header at offset %d: %w", pos, err)
		case ph.Pgno <= prev:
			return nil, fmt.Errorf("page %d after page %d: pages out of order", ph.Pgno, prev)
		case ph.Pgno > hdr.Commit:
			return nil, fmt.Errorf("page %d beyond the database size of %d pages", ph.Pgno, hdr.Commit)
		case ph.Pgno == lock:
			return nil, fmt.Errorf("file holds the lock page %d", ph.Pgno)
		}
		prev = ph.Pgno
		fr.pgno, fr.comp = ph.Pgno, len(j.comp)
		if ph.Flags&ltx.PageHeaderFlagSize == 0 {
			// The LZ4 frame encoding: cut the frame out by its block
			// sizes; the worker decodes and verifies it.
			fr.frame, fr.hlen = true, ltx.PageHeaderSize
			var err error
			if j.comp, err = ltxframe.ReadFrame(j.comp, src, maxFrame); err != nil {
				return nil, fmt.Errorf("read page %d: %w", ph.Pgno, err)
			}
			fr.n = len(j.comp) - fr.comp
		} else {
			fr.hlen = len(fr.hdr)
			if _, err := io.ReadFull(src, fr.hdr[ltx.PageHeaderSize:]); err != nil {
				return nil, fmt.Errorf("read size of page %d: %w", ph.Pgno, err)
			}
			n := int(binary.BigEndian.Uint32(fr.hdr[ltx.PageHeaderSize:]))
			if n > maxComp {
				return nil, fmt.Errorf("page %d: compressed size %d exceeds the bound %d for %d-byte pages", ph.Pgno, n, maxComp, hdr.PageSize)
			}
			fr.n = n
			j.comp = slices.Grow(j.comp, n)[:len(j.comp)+n]
			if _, err := io.ReadFull(src, j.comp[fr.comp:]); err != nil {
				return nil, fmt.Errorf("read page %d: %w", ph.Pgno, err)
			}
		}
		if e, ok := r.v.Lookup(ph.Pgno); ok && e.File == info {
			fr.write = true
		}
		size := int64(fr.hlen + fr.n)
		recs = append(recs, frameRec{pgno: ph.Pgno, off: pos, size: size})
		pos += size
		j.frames = append(j.frames, fr)
		if len(j.frames) == perJob {
			if err := send(j); err != nil {
				return nil, err
			}
			j = nil
		}
	}
	if len(j.frames) > 0 {
		if err := send(j); err != nil {
			return nil, err
		}
	}
	rest, err := io.ReadAll(src)
	if err != nil {
		return nil, fmt.Errorf("read page index and trailer: %w", err)
	}
	if len(rest) < 1+8+ltx.TrailerSize {
		return nil, fmt.Errorf("file ends %d bytes after its pages, too short for a page index and trailer", len(rest))
	}
	tail := append(make([]byte, ltx.PageHeaderSize, ltx.PageHeaderSize+len(rest)), rest...)
	select {
	case ordered <- &pageJob{tail: tail}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return recs, nil
}

// decodeJob decompresses a job's frames, writes the assigned ones, and sets
// j.err on failure.
func (r *restorer) decodeJob(j *pageJob, ps int, trackSum bool) {
	if need := len(j.frames) * ps; cap(j.pages) < need {
		j.pages = make([]byte, need)
	}
	j.pages = j.pages[:len(j.frames)*ps]
	for i := range j.frames {
		fr := &j.frames[i]
		page := j.pages[i*ps : (i+1)*ps]
		if fr.frame {
			if err := ltxframe.Decode(page, j.comp[fr.comp:fr.comp+fr.n]); err != nil {
				j.err = fmt.Errorf("page %d: %w", fr.pgno, err)
				return
			}
		} else {
			m, err := lz4.UncompressBlock(j.comp[fr.comp:fr.comp+fr.n], page)
			if err != nil {
				j.err = fmt.Errorf("page %d: decompress: %w", fr.pgno, err)
				return
			}
			if m != ps {
				j.err = fmt.Errorf("page %d: decompressed to %d bytes, page size is %d", fr.pgno, m, ps)
				return
			}
		}
		j.crc = crc64.Update(j.crc, r.crcTable, fr.hdr[:fr.hlen])
		j.crc = crc64.Update(j.crc, r.crcTable, page)
		if trackSum {
			j.sum ^= ltx.ChecksumPage(fr.pgno, page)
		}
	}
	// One WriteAt per run of consecutive assigned pages.
	for i := 0; i < len(j.frames); {
		if !j.frames[i].write {
			i++
			continue
		}
		k := i + 1
		for k < len(j.frames) && j.frames[k].write && j.frames[k].pgno == j.frames[k-1].pgno+1 {
			k++
		}
		off := int64(j.frames[i].pgno-1) * int64(ps)
		if _, err := r.f.WriteAt(j.pages[i*ps:k*ps], off); err != nil {
			j.err = fmt.Errorf("write pages %d..%d to %s: %w", j.frames[i].pgno, j.frames[k-1].pgno, r.path, err)
			return
		}
		i = k
	}
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

	skip    int64 // progress was already counted for bytes before this offset
	taken   int64 // bytes of the chunks Read has started on (or returned, for whole)
	next    int64 // offset of the next chunk to request
	pending []chan chunkResult
	cur     []byte // unread part of the current chunk
	curBuf  []byte // the current chunk's whole buffer, reused when consumed
	err     error

	// Consumed chunk buffers are reused: allocating (and zeroing) a fresh
	// buffer per chunk costs as much CPU as copying the data.
	mu   sync.Mutex
	bufs [][]byte

	// whole is used instead when the file's size is unknown.
	whole io.ReadCloser
}

type chunkResult struct {
	b   []byte
	err error
}

// newChunkReader reads info whole. Bytes before skip are not counted as
// progress again (a second read of a file after a first attempt).
func newChunkReader(ctx context.Context, c remote.Client, info *ltx.FileInfo, prog *progress, skip int64, log *slog.Logger) *chunkReader {
	ctx, cancel := context.WithCancel(ctx)
	return &chunkReader{ctx: ctx, cancel: cancel, c: c, info: info, prog: prog, skip: skip, log: log}
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
		if r.curBuf != nil {
			r.putBuf(r.curBuf)
		}
		r.cur, r.curBuf = res.b, res.b
		// Progress counts chunks as they are consumed, so an abandoned
		// first attempt (see skip) has counted exactly r.taken bytes.
		size := int64(len(res.b))
		r.prog.add(max(0, min(size, r.taken+size-r.skip)))
		r.taken += size
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
				ch <- chunkResult{b: b}
				return
			}
			// A failure the backend marked permanent (a 403) or already
			// retried to exhaustion is not retried again here.
			if r.ctx.Err() != nil || errors.Is(err, remote.ErrNotExist) || !retry.Retryable(err) || attempt >= restoreRetries {
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
	b := r.getBuf(size)
	if _, err := io.ReadFull(rc, b); err != nil {
		r.putBuf(b)
		return nil, fmt.Errorf("read bytes %d+%d: %w", off, size, err)
	}
	return b, nil
}

// getBuf returns a buffer of size bytes (at most restoreChunk), reusing a
// consumed chunk's buffer when there is one.
func (r *chunkReader) getBuf(size int64) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.bufs); n > 0 && int64(cap(r.bufs[n-1])) >= size {
		b := r.bufs[n-1]
		r.bufs = r.bufs[:n-1]
		return b[:size]
	}
	return make([]byte, size)
}

func (r *chunkReader) putBuf(b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bufs = append(r.bufs, b[:cap(b)])
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
	r.prog.add(max(0, min(int64(n), r.taken+int64(n)-r.skip)))
	r.taken += int64(n)
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

// crcCombiner computes CRC(A||B) from CRC(A), CRC(B) and len(B), for the
// reflected CRC-64 with inverted initial value and output that hash/crc64
// implements. CRC(A||B) = CRC(A)·x^(8·len(B)) ⊕ CRC(B) in GF(2)[x] modulo
// the polynomial, and x^(8n) is assembled from precomputed x^(2^k) factors
// (the method zlib's crc32_combine uses), so a combine costs
// O(log len) 64-bit carry-less multiplications.
type crcCombiner struct {
	poly uint64     // reflected polynomial
	x2n  [64]uint64 // x2n[k] = x^(2^k) mod poly
}

func newCRCCombiner(poly uint64) *crcCombiner {
	c := &crcCombiner{poly: poly}
	p := uint64(1) << 62 // x^1 (bit 63 is x^0 in reflected order)
	c.x2n[0] = p
	for k := 1; k < 64; k++ {
		p = c.mulmod(p, p)
		c.x2n[k] = p
	}
	return c
}

// mulmod returns a·b modulo the polynomial, both in reflected order.
func (c *crcCombiner) mulmod(a, b uint64) uint64 {
	var p uint64
	for m := uint64(1) << 63; m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
			if a&(m-1) == 0 {
				break
			}
		}
		if b&1 != 0 {
			b = b>>1 ^ c.poly
		} else {
			b >>= 1
		}
	}
	return p
}

// combine returns the CRC of A||B.
func (c *crcCombiner) combine(crcA, crcB uint64, lenB int64) uint64 {
	if lenB <= 0 {
		return crcA
	}
	// x^(8·lenB): walk lenB's bits, starting at x^(2^3) = x^8.
	p := uint64(1) << 63 // x^0
	for k, n := 3, uint64(lenB); n != 0; k, n = k+1, n>>1 {
		if n&1 != 0 {
			p = c.mulmod(c.x2n[k&63], p)
		}
	}
	return c.mulmod(p, crcA) ^ crcB
}
