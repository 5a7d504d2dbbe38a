package vfs

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"sync"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/ltxframe"
	"github.com/litestream-go/litestream/pagecache"
	"github.com/litestream-go/litestream/remote"
)

// Page 1 is the first page SQLite reads and, on a cold open, a round trip of
// its own after the page indexes. But LTX files hold their pages in page
// number order, so a file that holds page 1 holds it in the frame right
// after the header. While the index is built, seedingClient reads a little
// more than the header of every plan file (the page-index read asks for the
// header anyway, in parallel with the tail) and keeps a page-1 frame it
// finds, so the first read of page 1 costs nothing. The frames right after
// it (pages 2, 3, ...) come in the same bytes when page 1 compresses well,
// and page 2 is often the root of the first table created: they are kept
// too, up to maxSeedPages (issue 11 item 5: one round trip less for a cold
// query on that table).

// seedBytes is how much more than the header is read: a 4 KiB page frame
// even when incompressible.
const seedBytes = 4096 + 512

// maxSeeds bounds the files whose seeded pages are kept.
const maxSeeds = 64

// maxSeedPages bounds the pages kept per file: pages 1 to maxSeedPages.
const maxSeedPages = 4

type seed struct {
	offset, size int64
	data         []byte
}

// seeds holds decoded page-1 frames by file, the newest maxSeeds of them
// (newer files are the ones current versions use).
type seeds struct {
	mu    sync.Mutex
	m     map[remote.FileID][]seed
	order []remote.FileID // oldest first
}

func (s *seeds) put(k remote.FileID, sd []seed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[remote.FileID][]seed)
	}
	if _, ok := s.m[k]; !ok {
		s.order = append(s.order, k)
	}
	s.m[k] = sd
	for len(s.order) > maxSeeds {
		delete(s.m, s.order[0])
		s.order = s.order[1:]
	}
}

// get returns the seeded page for an index entry, if it is that frame.
func (s *seeds) get(e remote.Range) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sd := range s.m[remote.IDOf(e.File)] {
		if sd.offset == e.Offset && sd.size == e.Size {
			return sd.data, true
		}
	}
	return nil, false
}

// seedingClient serves the header reads of an index build (offset 0,
// ltx.HeaderSize bytes) with one larger read, and records a page-1 frame
// found right after the header. It reads through its client's OpenFile
// (remote.OpenFile), so small files still come verified.
type seedingClient struct {
	remote.Client
	seeds *seeds
}

func newSeedingClient(c remote.Client, s *seeds) *seedingClient {
	return &seedingClient{Client: c, seeds: s}
}

// OpenFile implements remote.FileOpener; index builds read through it.
func (c *seedingClient) OpenFile(ctx context.Context, info *ltx.FileInfo, offset, size int64) (io.ReadCloser, error) {
	k := remote.IDOf(info)
	fsize := info.Size
	whole := size == 0 || size == fsize // small files are read whole
	if offset != 0 || fsize <= ltx.HeaderSize || (size != ltx.HeaderSize && !whole) {
		return remote.OpenFile(ctx, c.Client, info, offset, size)
	}
	n := min(fsize, ltx.HeaderSize+seedBytes)
	if whole {
		n = fsize
	}
	b, err := remote.ReadRange(ctx, c.Client, remote.Range{File: info, Size: n})
	if err != nil {
		return nil, err
	}
	c.seed(k, b)
	if !whole {
		b = b[:ltx.HeaderSize]
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// seed decodes the whole frames at the start of b (a file's first bytes
// after its header) if the first is page 1, in either page encoding, and
// keeps pages 1 to maxSeedPages. Anything else is ignored: the page is then
// read the normal way.
func (c *seedingClient) seed(k remote.FileID, b []byte) {
	var hdr ltx.Header
	if err := hdr.UnmarshalBinary(b[:ltx.HeaderSize]); err != nil {
		return
	}
	var kept []seed
	off := int64(ltx.HeaderSize)
	end := min(int64(len(b)), ltx.HeaderSize+seedBytes)
	for want := uint32(1); want <= maxSeedPages && off < end; want++ {
		frame := b[off:end]
		size, ok := frameSize(frame, want)
		if !ok {
			break
		}
		data, err := pagecache.DecodeFrame(frame[:size], want, hdr.PageSize)
		if err != nil {
			break
		}
		kept = append(kept, seed{offset: off, size: size, data: data})
		off += size
	}
	if len(kept) > 0 {
		c.seeds.put(k, kept)
	}
}

// frameSize returns the size of the frame of page pgno at the start of
// frame, if it is whole there.
func frameSize(frame []byte, pgno uint32) (int64, bool) {
	var ph ltx.PageHeader
	if err := ph.UnmarshalBinary(frame); err != nil || ph.Pgno != pgno {
		return 0, false
	}
	var size int64
	if ph.Flags&ltx.PageHeaderFlagSize != 0 {
		if len(frame) < ltx.PageHeaderSize+4 {
			return 0, false
		}
		size = int64(ltx.PageHeaderSize + 4 + int(binary.BigEndian.Uint32(frame[ltx.PageHeaderSize:])))
	} else {
		// The LZ4 frame encoding has no length field: find the frame's
		// end by its block sizes.
		f, err := ltxframe.ReadFrame(nil, bytes.NewReader(frame[ltx.PageHeaderSize:]), len(frame))
		if err != nil {
			return 0, false
		}
		size = int64(ltx.PageHeaderSize + len(f))
	}
	return size, size <= int64(len(frame))
}
