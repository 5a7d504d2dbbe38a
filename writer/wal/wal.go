// Package wal reads SQLite write-ahead log files directly: the 32-byte file
// header, the frame headers, and SQLite's cumulative checksum chain.
//
// The rules are SQLite's own recovery rules (wal.c, walIndexRecover): a frame
// is valid only if its salts equal the header's and its checksum continues the
// chain from the previous valid frame; the first invalid frame ends the log;
// and a transaction exists only once its commit frame (a frame whose "database
// size after commit" field is non-zero) is valid. Everything after the last
// valid commit frame is ignored: a torn tail, an uncommitted transaction or
// stale frames of an earlier generation of the log.
package wal

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Sizes of the fixed parts of a WAL file.
const (
	HeaderSize      = 32
	FrameHeaderSize = 24
)

// Magic numbers. The low bit selects the byte order of the 32-bit words the
// checksum is computed over: 1 means big-endian. SQLite writes the order
// native to the machine that created the log; a reader must accept both.
const (
	MagicLE = 0x377f0682
	MagicBE = 0x377f0683
)

// Version is the only WAL format version SQLite has defined (3.7.0).
const Version = 3007000

// ErrInvalidHeader is returned (wrapped) when the first 32 bytes are not a
// valid WAL header. SQLite treats such a log as empty.
var ErrInvalidHeader = errors.New("invalid WAL header")

// Checksum is the pair of running sums of SQLite's WAL checksum.
type Checksum struct {
	S1, S2 uint32
}

// Header is the 32-byte WAL file header.
type Header struct {
	Magic         uint32
	Version       uint32
	PageSize      uint32
	CheckpointSeq uint32
	Salt1, Salt2  uint32
	Checksum      Checksum
}

// BigEndian reports whether the checksum words are big-endian.
func (h Header) BigEndian() bool { return h.Magic&1 == 1 }

// FrameSize returns the size of one frame: frame header plus page.
func (h Header) FrameSize() int64 { return FrameHeaderSize + int64(h.PageSize) }

// SameGeneration reports whether o is the header of the same generation of
// the log. Every WAL restart increments salt1 and draws a new random salt2,
// so equal salts mean no restart happened in between.
func (h Header) SameGeneration(o Header) bool {
	return h.Salt1 == o.Salt1 && h.Salt2 == o.Salt2
}

// Salts returns the header's salts, which identify the generation.
func (h Header) Salts() [2]uint32 { return [2]uint32{h.Salt1, h.Salt2} }

// ParseHeader decodes and validates a WAL header: magic, version, page size
// and the header checksum.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes", ErrInvalidHeader, len(b))
	}
	h := Header{
		Magic:         binary.BigEndian.Uint32(b[0:]),
		Version:       binary.BigEndian.Uint32(b[4:]),
		PageSize:      binary.BigEndian.Uint32(b[8:]),
		CheckpointSeq: binary.BigEndian.Uint32(b[12:]),
		Salt1:         binary.BigEndian.Uint32(b[16:]),
		Salt2:         binary.BigEndian.Uint32(b[20:]),
		Checksum: Checksum{
			S1: binary.BigEndian.Uint32(b[24:]),
			S2: binary.BigEndian.Uint32(b[28:]),
		},
	}
	if h.Magic != MagicLE && h.Magic != MagicBE {
		return Header{}, fmt.Errorf("%w: magic 0x%08x", ErrInvalidHeader, h.Magic)
	}
	if h.Version != Version {
		return Header{}, fmt.Errorf("%w: version %d", ErrInvalidHeader, h.Version)
	}
	if !validPageSize(h.PageSize) {
		return Header{}, fmt.Errorf("%w: page size %d", ErrInvalidHeader, h.PageSize)
	}
	if sum := Sum(h.BigEndian(), Checksum{}, b[:24]); sum != h.Checksum {
		return Header{}, fmt.Errorf("%w: checksum mismatch", ErrInvalidHeader)
	}
	return h, nil
}

// AppendHeader appends the 32-byte encoding of h to b, computing the header
// checksum (h.Checksum is ignored). Used to construct logs in tests.
func AppendHeader(b []byte, h Header) []byte {
	start := len(b)
	b = binary.BigEndian.AppendUint32(b, h.Magic)
	b = binary.BigEndian.AppendUint32(b, h.Version)
	b = binary.BigEndian.AppendUint32(b, h.PageSize)
	b = binary.BigEndian.AppendUint32(b, h.CheckpointSeq)
	b = binary.BigEndian.AppendUint32(b, h.Salt1)
	b = binary.BigEndian.AppendUint32(b, h.Salt2)
	sum := Sum(h.BigEndian(), Checksum{}, b[start:])
	b = binary.BigEndian.AppendUint32(b, sum.S1)
	return binary.BigEndian.AppendUint32(b, sum.S2)
}

// AppendFrame appends one frame to b: the frame header (with the header's
// salts and a checksum continuing prev) and the page. It returns the new
// buffer and the frame's cumulative checksum. Used to construct logs in tests.
func AppendFrame(b []byte, h Header, prev Checksum, pgno, commit uint32, page []byte) ([]byte, Checksum) {
	var fh [FrameHeaderSize]byte
	binary.BigEndian.PutUint32(fh[0:], pgno)
	binary.BigEndian.PutUint32(fh[4:], commit)
	binary.BigEndian.PutUint32(fh[8:], h.Salt1)
	binary.BigEndian.PutUint32(fh[12:], h.Salt2)
	sum := Sum(h.BigEndian(), prev, fh[:8])
	sum = Sum(h.BigEndian(), sum, page)
	binary.BigEndian.PutUint32(fh[16:], sum.S1)
	binary.BigEndian.PutUint32(fh[20:], sum.S2)
	b = append(b, fh[:]...)
	return append(b, page...), sum
}

func validPageSize(n uint32) bool {
	return n >= 512 && n <= 65536 && n&(n-1) == 0
}

// Sum continues SQLite's WAL checksum over b, whose length must be a multiple
// of 8. It is a Fibonacci-weighted sum over 32-bit words (wal.c,
// walChecksumBytes) read in the byte order the magic number selects.
func Sum(bigEndian bool, c Checksum, b []byte) Checksum {
	s1, s2 := c.S1, c.S2
	if bigEndian {
		for i := 0; i+8 <= len(b); i += 8 {
			s1 += binary.BigEndian.Uint32(b[i:]) + s2
			s2 += binary.BigEndian.Uint32(b[i+4:]) + s1
		}
	} else {
		for i := 0; i+8 <= len(b); i += 8 {
			s1 += binary.LittleEndian.Uint32(b[i:]) + s2
			s2 += binary.LittleEndian.Uint32(b[i+4:]) + s1
		}
	}
	return Checksum{S1: s1, S2: s2}
}

// Frame describes one committed frame found by Scan.
type Frame struct {
	// Offset is the byte offset of the frame header in the WAL file; the
	// page follows at Offset+FrameHeaderSize.
	Offset int64
	Pgno   uint32
	// Commit is the database size in pages after the transaction if this is
	// its commit frame, else 0.
	Commit uint32
}

// Position is a point in the log at a commit boundary (or the end of the
// header): the offset just past the last frame and the checksum chain value
// there, which the next frame must continue.
type Position struct {
	Offset   int64
	Checksum Checksum
	// Commit is the database size in pages after the last commit frame
	// before Offset; 0 if no frame precedes Offset in this generation.
	Commit uint32
	// Frames counts the frames of the generation before Offset.
	Frames int64
}

// Start returns the position just after the header: no frames read yet.
func Start(h Header) Position {
	return Position{Offset: HeaderSize, Checksum: h.Checksum}
}

// Scan reads the log r, whose header is h, from start (a commit boundary of
// this generation) and calls fn for every frame of every committed
// transaction, in log order. Frames of one transaction are passed only once
// its commit frame has been verified. Scan stops at the first frame that is
// missing, torn, salted for another generation, or breaks the checksum chain,
// and returns the position after the last valid commit frame. An error is
// returned only for I/O failures or an error from fn. fn may be nil.
func Scan(r io.ReaderAt, h Header, start Position, fn func(Frame) error) (Position, error) {
	pos := start
	frameSize := h.FrameSize()
	br := bufio.NewReaderSize(io.NewSectionReader(r, start.Offset, 1<<62), 1<<16)
	buf := make([]byte, frameSize)
	var txn []Frame // frames of the transaction being read, not yet committed
	cur := start    // position after the last valid frame, committed or not
	for {
		if _, err := io.ReadFull(br, buf); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return pos, nil // end of file or torn last frame
			}
			return pos, fmt.Errorf("read WAL frame at offset %d: %w", cur.Offset, err)
		}
		pgno := binary.BigEndian.Uint32(buf[0:])
		commit := binary.BigEndian.Uint32(buf[4:])
		if pgno == 0 ||
			binary.BigEndian.Uint32(buf[8:]) != h.Salt1 ||
			binary.BigEndian.Uint32(buf[12:]) != h.Salt2 {
			return pos, nil
		}
		sum := Sum(h.BigEndian(), cur.Checksum, buf[:8])
		sum = Sum(h.BigEndian(), sum, buf[FrameHeaderSize:])
		if sum.S1 != binary.BigEndian.Uint32(buf[16:]) || sum.S2 != binary.BigEndian.Uint32(buf[20:]) {
			return pos, nil
		}
		txn = append(txn, Frame{Offset: cur.Offset, Pgno: pgno, Commit: commit})
		cur.Offset += frameSize
		cur.Checksum = sum
		cur.Frames++
		if commit == 0 {
			continue
		}
		if fn != nil {
			for _, f := range txn {
				if err := fn(f); err != nil {
					return pos, err
				}
			}
		}
		txn = txn[:0]
		cur.Commit = commit
		pos = cur
	}
}

// The wal-index (SQLite's shared memory, the "-shm" file of the unix VFS)
// starts with two copies of the wal-index header, then the checkpoint
// information (wal.c: WalIndexHdr, WalCkptInfo). All its integers are in the
// native byte order of the machine whose SQLite wrote them, except the salts,
// which are copied byte for byte from the WAL header (big-endian).
const (
	// IndexHeaderSize is the size of one copy of WalIndexHdr.
	IndexHeaderSize = 48
	// IndexReadSize is how many bytes ParseIndex needs: both header
	// copies and WalCkptInfo up to nBackfillAttempted.
	IndexReadSize = 2*IndexHeaderSize + 4 + 4*IndexReaders + 8 + 4
	// IndexReaders is the number of read marks (WAL_NREADER).
	IndexReaders = 5
	// IndexVersion is WALINDEX_MAX_VERSION.
	IndexVersion = 3007000
	// ReadMarkNotUsed is READMARK_NOT_USED.
	ReadMarkNotUsed = 0xffffffff
)

// ErrIndexUnreadable is returned (wrapped) when the wal-index header cannot
// be read consistently: its two copies differ (a writer is updating it, or
// was killed while doing so), it is not initialized, or its checksum fails.
// SQLite's readers then take the write lock and rebuild the index from the
// log (walIndexReadHdr, walIndexRecover).
var ErrIndexUnreadable = errors.New("wal-index header unreadable")

// Index is what the wal-index says about the log: the published end of the
// log (the last frame of the last transaction SQLite shows) and the
// checkpoint's progress.
type Index struct {
	Change      uint32 // iChange: incremented by every transaction
	BigEndian   bool   // checksums of the log are big-endian
	PageSize    uint32
	MaxFrame    uint32   // mxFrame: the last published frame, 0 for none
	Pages       uint32   // nPage: database size in pages after MaxFrame
	FrameSum    Checksum // aFrameCksum: checksum chain after frame MaxFrame
	Salt1       uint32   // the log generation the index describes
	Salt2       uint32
	Backfilled  uint32 // nBackfill: frames copied into the database
	ReadMarks   [IndexReaders]uint32
	BackfillTry uint32 // nBackfillAttempted
}

// ParseIndex decodes and validates the start of a wal-index as SQLite's
// walIndexTryHdr does: both copies equal, isInit set, checksum (over the
// first 40 bytes, native byte order) correct, and the version known. order
// is the byte order of the machine that wrote it (the local one).
func ParseIndex(b []byte, order binary.ByteOrder) (Index, error) {
	if len(b) < IndexReadSize {
		return Index{}, fmt.Errorf("%w: %d bytes", ErrIndexUnreadable, len(b))
	}
	h := b[:IndexHeaderSize]
	if !bytes.Equal(h, b[IndexHeaderSize:2*IndexHeaderSize]) {
		return Index{}, fmt.Errorf("%w: the two copies differ", ErrIndexUnreadable)
	}
	if h[12] == 0 {
		return Index{}, fmt.Errorf("%w: not initialized", ErrIndexUnreadable)
	}
	if sum := indexSum(h, order); sum.S1 != order.Uint32(h[40:]) || sum.S2 != order.Uint32(h[44:]) {
		return Index{}, fmt.Errorf("%w: checksum mismatch", ErrIndexUnreadable)
	}
	if v := order.Uint32(h[0:]); v != IndexVersion {
		return Index{}, fmt.Errorf("%w: version %d", ErrIndexUnreadable, v)
	}
	sz := uint32(order.Uint16(h[14:]))
	x := Index{
		Change:     order.Uint32(h[8:]),
		BigEndian:  h[13] != 0,
		PageSize:   sz&0xfe00 | (sz&1)<<16,
		MaxFrame:   order.Uint32(h[16:]),
		Pages:      order.Uint32(h[20:]),
		FrameSum:   Checksum{S1: order.Uint32(h[24:]), S2: order.Uint32(h[28:])},
		Salt1:      binary.BigEndian.Uint32(h[32:]),
		Salt2:      binary.BigEndian.Uint32(h[36:]),
		Backfilled: order.Uint32(b[96:]),
	}
	for i := range x.ReadMarks {
		x.ReadMarks[i] = order.Uint32(b[100+4*i:])
	}
	x.BackfillTry = order.Uint32(b[100+4*IndexReaders+8:])
	return x, nil
}

// AppendIndex appends a wal-index start (both header copies, with checksum,
// and the checkpoint information) describing x, in byte order order. Used to
// construct indexes in tests.
func AppendIndex(b []byte, x Index, order binary.ByteOrder) []byte {
	h := make([]byte, IndexHeaderSize)
	order.PutUint32(h[0:], IndexVersion)
	order.PutUint32(h[8:], x.Change)
	h[12] = 1
	if x.BigEndian {
		h[13] = 1
	}
	order.PutUint16(h[14:], uint16(x.PageSize&0xff00|x.PageSize>>16))
	order.PutUint32(h[16:], x.MaxFrame)
	order.PutUint32(h[20:], x.Pages)
	order.PutUint32(h[24:], x.FrameSum.S1)
	order.PutUint32(h[28:], x.FrameSum.S2)
	binary.BigEndian.PutUint32(h[32:], x.Salt1)
	binary.BigEndian.PutUint32(h[36:], x.Salt2)
	sum := indexSum(h, order)
	order.PutUint32(h[40:], sum.S1)
	order.PutUint32(h[44:], sum.S2)
	b = append(b, h...)
	b = append(b, h...)
	info := make([]byte, IndexReadSize-2*IndexHeaderSize)
	order.PutUint32(info[0:], x.Backfilled)
	for i, m := range x.ReadMarks {
		order.PutUint32(info[4+4*i:], m)
	}
	// aLock (8 bytes) stays zero.
	order.PutUint32(info[4+4*IndexReaders+8:], x.BackfillTry)
	return append(b, info...)
}

// indexSum is the checksum of a wal-index header: SQLite's WAL checksum over
// its first 40 bytes, in the byte order of the machine (walIndexWriteHdr
// passes nativeCksum=1).
func indexSum(h []byte, order binary.ByteOrder) Checksum {
	bigEndian := order.Uint32([]byte{0, 0, 0, 1}) == 1
	return Sum(bigEndian, Checksum{}, h[:40])
}

// End returns the byte offset just past frame MaxFrame in a log of this
// index's page size.
func (x Index) End() int64 {
	return HeaderSize + int64(x.MaxFrame)*(FrameHeaderSize+int64(x.PageSize))
}
