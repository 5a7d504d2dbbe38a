package restore

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc64"
	"io"
	"slices"
	"sync"

	"github.com/pierrec/lz4/v4"
	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/internal/ltxframe"
	"github.com/litestream-go/litestream/remote"
)

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
// want is how many pages the version assigns to this file: a file that
// holds fewer than its page index promised cannot pass unnoticed.
func (r *restorer) verifyFile(ctx context.Context, info *ltx.FileInfo, want int) error {
	ctx, cancel := context.WithCancel(ctx)
	src := newChunkReader(ctx, r.c, info, &r.prog, r.log)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait() // no worker may touch the file or buffers after return
		src.Close()
	}()

	head, hdr, err := r.readHeader(src, info)
	if err != nil {
		return err
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
			return ctx.Err()
		}
		if j.err != nil {
			return j.err
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
			return splitErr
		}
		return ctx.Err()
	}
	wg.Wait() // the splitter has finished once it sent the tail
	if splitErr != nil {
		return splitErr
	}

	if err := r.checkTail(tail, recs, crc, sum, trackSum); err != nil {
		return err
	}
	if wrote != want {
		return fmt.Errorf("file holds %d of the %d pages the page index assigns to it", wrote, want)
	}
	return nil
}

// readHeader reads and checks the file's header (see checkHeader) and
// returns it with its bytes, which the file checksum covers.
func (r *restorer) readHeader(src io.Reader, info *ltx.FileInfo) ([]byte, ltx.Header, error) {
	head := make([]byte, ltx.HeaderSize)
	var hdr ltx.Header
	if _, err := io.ReadFull(src, head); err != nil {
		return nil, hdr, fmt.Errorf("read header: %w", err)
	}
	if err := hdr.UnmarshalBinary(head); err != nil {
		return nil, hdr, fmt.Errorf("decode header: %w", remote.ExplainHeader(head, err))
	}
	if err := r.checkHeader(info, hdr); err != nil {
		return nil, hdr, err
	}
	return head, hdr, nil
}

// checkTail checks the bytes after the frames against what was read: the
// page index must describe exactly the frames recs, and the trailer's file
// checksum must be crc (the CRC of everything before the tail) extended by
// the tail, and, when trackSum, its post-apply checksum sum.
//
// tail = zero page header | index records | end marker | index length |
// trailer (post-apply checksum, file checksum).
func (r *restorer) checkTail(tail []byte, recs []frameRec, crc uint64, sum ltx.Checksum, trackSum bool) error {
	idx := tail[ltx.PageHeaderSize : len(tail)-ltx.TrailerSize]
	pages, err := index.ParsePageIndex(idx)
	if err != nil {
		return fmt.Errorf("page index: %w", err)
	}
	if len(pages) != len(recs) {
		return fmt.Errorf("page index has %d entries but the file holds %d pages", len(pages), len(recs))
	}
	for i, p := range pages {
		if rec := recs[i]; p.Pgno != rec.pgno || p.Offset != rec.off || p.Size != rec.size {
			return fmt.Errorf("page index entry %d (page %d at %d+%d) does not match the frame (page %d at %d+%d)", i, p.Pgno, p.Offset, p.Size, rec.pgno, rec.off, rec.size)
		}
	}
	hashed := tail[:len(tail)-ltx.ChecksumSize]
	crc = r.crcComb.combine(crc, crc64.Update(0, r.crcTable, hashed), int64(len(hashed)))
	var trailer ltx.Trailer
	if err := trailer.UnmarshalBinary(tail[len(tail)-ltx.TrailerSize:]); err != nil {
		return fmt.Errorf("trailer: %w", err)
	}
	if got := ltx.ChecksumFlag | ltx.Checksum(crc); got != trailer.FileChecksum {
		return fmt.Errorf("verify: %w (computed %s, trailer says %s)", ltx.ErrChecksumMismatch, got, trailer.FileChecksum)
	}
	if trackSum && ltx.ChecksumFlag|sum != trailer.PostApplyChecksum {
		return fmt.Errorf("verify: post-apply checksum in trailer (%s) does not match the pages (%s)", trailer.PostApplyChecksum, ltx.ChecksumFlag|sum)
	}
	return nil
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
	lim := newFrameLimits(hdr.PageSize)
	var recs []frameRec
	var prev uint32
	pos := int64(ltx.HeaderSize)
	var j *pageJob
	created := 0
	for {
		if j == nil {
			var err error
			if j, err = nextJob(ctx, free, &created, njobs); err != nil {
				return nil, err
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
		if err := checkPageHeader(ph, prev, hdr.Commit, lock, pos); err != nil {
			return nil, err
		}
		prev = ph.Pgno
		if err := readPayload(src, j, &fr, ph, lim); err != nil {
			return nil, err
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

// nextJob returns a job to fill: a freed one if there is one, a new one
// while fewer than njobs exist, else the next one the hasher frees.
func nextJob(ctx context.Context, free <-chan *pageJob, created *int, njobs int) (*pageJob, error) {
	if *created < njobs {
		select {
		case j := <-free:
			return j, nil
		default:
			*created++
			return &pageJob{}, nil
		}
	}
	select {
	case j := <-free:
		return j, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// checkPageHeader checks the page header at offset pos of the stream: valid,
// after page prev, within the commit, not the lock page.
func checkPageHeader(ph ltx.PageHeader, prev, commit, lock uint32, pos int64) error {
	switch err := ph.Validate(); {
	case err != nil:
		return fmt.Errorf("page header at offset %d: %w", pos, err)
	case ph.Pgno <= prev:
		return fmt.Errorf("page %d after page %d: pages out of order", ph.Pgno, prev)
	case ph.Pgno > commit:
		return fmt.Errorf("page %d beyond the database size of %d pages", ph.Pgno, commit)
	case ph.Pgno == lock:
		return fmt.Errorf("file holds the lock page %d", ph.Pgno)
	}
	return nil
}

// frameLimits bound the stored size of one page: an LZ4 block of the block
// encoding, and an LZ4 frame of the frame encoding (ours are at most
// ltxframe.MaxFrameSize; others may use more blocks or block checksums).
type frameLimits struct {
	pageSize     uint32
	block, frame int
}

func newFrameLimits(pageSize uint32) frameLimits {
	return frameLimits{pageSize: pageSize, block: lz4.CompressBlockBound(int(pageSize)),
		frame: 2*ltxframe.MaxFrameSize(int(pageSize)) + 64}
}

// readPayload reads the stored page that follows the page header ph (in
// fr.hdr) from src, appends it to j.comp and records in fr where it is and
// how it is encoded; the worker decodes and verifies it.
func readPayload(src io.Reader, j *pageJob, fr *jobFrame, ph ltx.PageHeader, lim frameLimits) error {
	fr.pgno, fr.comp = ph.Pgno, len(j.comp)
	if ph.Flags&ltx.PageHeaderFlagSize == 0 {
		// The LZ4 frame encoding: cut the frame out by its block sizes.
		fr.frame, fr.hlen = true, ltx.PageHeaderSize
		var err error
		if j.comp, err = ltxframe.ReadFrame(j.comp, src, lim.frame); err != nil {
			return fmt.Errorf("read page %d: %w", ph.Pgno, err)
		}
		fr.n = len(j.comp) - fr.comp
		return nil
	}
	fr.hlen = len(fr.hdr)
	if _, err := io.ReadFull(src, fr.hdr[ltx.PageHeaderSize:]); err != nil {
		return fmt.Errorf("read size of page %d: %w", ph.Pgno, err)
	}
	n := int(binary.BigEndian.Uint32(fr.hdr[ltx.PageHeaderSize:]))
	if n > lim.block {
		return fmt.Errorf("page %d: compressed size %d exceeds the bound %d for %d-byte pages", ph.Pgno, n, lim.block, lim.pageSize)
	}
	fr.n = n
	j.comp = slices.Grow(j.comp, n)[:len(j.comp)+n]
	if _, err := io.ReadFull(src, j.comp[fr.comp:]); err != nil {
		return fmt.Errorf("read page %d: %w", ph.Pgno, err)
	}
	return nil
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
