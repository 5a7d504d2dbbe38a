package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
)

// TailReadSize is how many bytes ReadFileIndex reads from the end of a file
// in its first request. 64 KiB holds the page index of a file of about 5000
// pages (records are ~8 bytes), so almost every file needs one tail request;
// files no larger than this (plus a header) are read whole in one request.
const TailReadSize = 64 << 10

// maxTailRead bounds the first tail read of a large file.
const maxTailRead = 2 << 20

// tailRead is the first tail read for a file of size bytes: TailReadSize, or
// 1/256 of a larger file (up to maxTailRead). A page index costs about 8
// bytes a page, so that holds the whole index of any file whose frames
// average 2 KiB or more (a snapshot of 4 KiB pages that compress less than
// 2:1): opening it costs one round trip instead of two, for at most a
// fraction of a percent of the file in bytes (issue 11 item 5).
func tailRead(size int64) int64 {
	return max(TailReadSize, min(size/256, maxTailRead))
}

// Page is one page-index record: the frame of page Pgno starts at Offset in
// the file and is Size bytes long (page header, optional size prefix and the
// compressed page).
type Page struct {
	Pgno   uint32
	Offset int64
	Size   int64
}

// FileIndex is the header and page index of one LTX file.
type FileIndex struct {
	// Info is the listing entry the index was read for; versions built from
	// this index point at it.
	Info   *ltx.FileInfo
	Header ltx.Header
	// Trailer is the file's trailer (read with the page index; verified
	// only when the whole file was).
	Trailer ltx.Trailer
	// Pages is sorted by Pgno.
	Pages []Page
}

// ErrDamaged marks (errors.Is) a file whose bytes, as read, are not a valid
// LTX file of its name: a checksum, header, page index or trailer that does
// not hold up. Reading it again returns the same bytes, unlike a failed or
// cut-off transfer, which is not marked.
var ErrDamaged = errors.New("damaged LTX file")

// FileError is an error about one listed file (ReadFileIndex,
// Version.Apply): callers can tell which file to plan around.
type FileError struct {
	Op   string // "read page index of", "apply"
	Info *ltx.FileInfo
	Err  error
}

func (e *FileError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.Op, remote.FileDesc(e.Info.Level, e.Info.MinTXID, e.Info.MaxTXID), e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// damaged marks err as ErrDamaged.
func damaged(err error) error { return &damagedError{err} }

type damagedError struct{ err error }

func (e *damagedError) Error() string        { return e.err.Error() }
func (e *damagedError) Unwrap() error        { return e.err }
func (e *damagedError) Is(target error) bool { return target == ErrDamaged }

// remoteError marks a failure to read bytes (not a verdict on them).
type remoteError struct{ err error }

func (e *remoteError) Error() string { return e.err.Error() }
func (e *remoteError) Unwrap() error { return e.err }

// ReadFileIndex reads the header and the page index of one file with at most
// three range requests (usually two, issued in parallel, or one for small
// files) and never reads the page data. info.Size should be set (every
// remote.Client listing sets it); if it is not, the whole file is read.
// Errors are *FileError; those about the bytes read (not about reading
// them) are ErrDamaged.
func ReadFileIndex(ctx context.Context, c remote.Client, info *ltx.FileInfo) (*FileIndex, error) {
	fi, err := readFileIndex(ctx, c, info)
	if err != nil {
		var re *remoteError
		if !errors.As(err, &re) {
			err = damaged(err)
		}
		return nil, &FileError{Op: "read page index of", Info: info, Err: err}
	}
	return fi, nil
}

func readFileIndex(ctx context.Context, c remote.Client, info *ltx.FileInfo) (*FileIndex, error) {
	const minFile = ltx.HeaderSize + ltx.PageHeaderSize + 1 + 8 + ltx.TrailerSize // empty index
	if info.Size != 0 && info.Size < minFile {
		return nil, fmt.Errorf("file is %d bytes, too small for an LTX file", info.Size)
	}

	var head, tail []byte
	var tailOff int64 // file offset of tail[0]
	switch {
	case info.Size == 0 || info.Size <= tailRead(info.Size)+ltx.HeaderSize:
		b, err := readRange(ctx, c, info, 0, info.Size)
		if err != nil {
			return nil, err
		}
		if len(b) < minFile {
			return nil, fmt.Errorf("file is %d bytes, too small for an LTX file", len(b))
		}
		head, tail, tailOff = b[:ltx.HeaderSize], b, 0
	default:
		// Header and tail are independent: fetch them concurrently so opening
		// a file costs one round trip.
		n := tailRead(info.Size)
		tailOff = info.Size - n
		var headErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			head, headErr = readRange(ctx, c, info, 0, ltx.HeaderSize)
		}()
		var tailErr error
		tail, tailErr = readRange(ctx, c, info, tailOff, n)
		<-done
		if headErr != nil {
			return nil, headErr
		}
		if tailErr != nil {
			return nil, tailErr
		}
	}
	size := tailOff + int64(len(tail))

	var hdr ltx.Header
	if err := hdr.UnmarshalBinary(head); err != nil {
		return nil, fmt.Errorf("decode header: %w", remote.ExplainHeader(head, err))
	}
	if err := CheckHeader(info, hdr); err != nil {
		return nil, err
	}

	// Layout of the end of the file: ... zero page header (6) | index | index
	// length (8) | trailer (16).
	indexLen := int64(binary.BigEndian.Uint64(tail[len(tail)-ltx.TrailerSize-8:]))
	indexEnd := size - ltx.TrailerSize // end of index incl. its length field
	indexStart := indexEnd - 8 - indexLen
	pagesEnd := indexStart - ltx.PageHeaderSize // where the zero page header starts
	if indexLen < 1 || indexLen > size || pagesEnd < ltx.HeaderSize {
		return nil, fmt.Errorf("page index length %d does not fit a %d-byte file", indexLen, size)
	}
	if indexStart < tailOff {
		// The speculative tail was short: fetch the missing front of the index.
		more, err := readRange(ctx, c, info, indexStart, tailOff-indexStart)
		if err != nil {
			return nil, err
		}
		tail = append(more, tail...)
		tailOff = indexStart
	}
	raw := tail[indexStart-tailOff : indexEnd-tailOff]

	pages, err := ParsePageIndex(raw)
	if err != nil {
		return nil, fmt.Errorf("decode page index: %w", err)
	}

	var trailer ltx.Trailer
	if err := trailer.UnmarshalBinary(tail[len(tail)-ltx.TrailerSize:]); err != nil {
		return nil, fmt.Errorf("decode trailer: %w", err)
	}
	if err := trailer.Validate(hdr); err != nil {
		return nil, fmt.Errorf("invalid trailer: %w", err)
	}

	if err := checkPages(hdr, pages, pagesEnd); err != nil {
		return nil, err
	}
	return &FileIndex{Info: info, Header: hdr, Trailer: trailer, Pages: pages}, nil
}

// checkPages checks a page index read without the file checksum against
// what the header says: a snapshot lists every page 1..Commit but the lock
// page, and every record names a page within the commit, not the lock page,
// in a frame inside the page block [ltx.HeaderSize, pagesEnd).
func checkPages(hdr ltx.Header, pages []Page, pagesEnd int64) error {
	lock := ltx.LockPgno(hdr.PageSize)
	if hdr.IsSnapshot() {
		// A snapshot holds every page 1..Commit but the lock page (the LTX
		// encoder enforces it), which cross-checks the header's Commit,
		// a field a range read of a large file cannot otherwise verify.
		want := int(hdr.Commit)
		if lock <= hdr.Commit {
			want--
		}
		// Pages ascend strictly and the loop below keeps them in 1..Commit
		// and off the lock page, so the count alone proves completeness.
		if len(pages) != want {
			return fmt.Errorf("snapshot of %d pages has %d pages in its page index", hdr.Commit, len(pages))
		}
	}
	for _, p := range pages {
		// The tail is read without the file checksum, so check that every
		// record at least points inside the page block of this file.
		switch {
		case p.Pgno > hdr.Commit:
			return fmt.Errorf("page index names page %d beyond the database size of %d pages", p.Pgno, hdr.Commit)
		case p.Pgno == lock:
			return fmt.Errorf("page index names the lock page %d", p.Pgno)
		case p.Offset < ltx.HeaderSize || p.Size <= ltx.PageHeaderSize || p.Offset > pagesEnd-p.Size:
			return fmt.Errorf("page index entry for page %d (offset %d, size %d) is outside the page block [%d, %d)", p.Pgno, p.Offset, p.Size, ltx.HeaderSize, pagesEnd)
		}
	}
	return nil
}

// readRange reads size bytes at off (size 0: to the end) of one file,
// through c's OpenFile if it has one (remote.ReadRange). A failure is a
// *remoteError unless it is a verifying client's verdict (ErrDamaged),
// which is about the bytes.
func readRange(ctx context.Context, c remote.Client, info *ltx.FileInfo, off, size int64) ([]byte, error) {
	b, err := remote.ReadRange(ctx, c, remote.Range{File: info, Offset: off, Size: size})
	if err != nil {
		if errors.Is(err, ErrDamaged) {
			return nil, err
		}
		return nil, &remoteError{err}
	}
	return b, nil
}

// ParsePageIndex decodes a page index (records of uvarint pgno, offset and
// size; a 0 end marker; the 8-byte big-endian length of what precedes it)
// straight into a slice sorted by page number. It checks what ltx.DecodePageIndex checks (strictly
// ascending page numbers, values in range, the length field) but is several
// times faster: it builds no map and needs no sort, which matters when
// opening a replica whose snapshot has millions of pages.
func ParsePageIndex(b []byte) ([]Page, error) {
	if len(b) < 9 {
		return nil, fmt.Errorf("page index of %d bytes is too short", len(b))
	}
	body, lenField := b[:len(b)-8], b[len(b)-8:]
	if n := binary.BigEndian.Uint64(lenField); n != uint64(len(body)) {
		return nil, fmt.Errorf("page index size mismatch: field=%d read=%d", n, len(body))
	}
	// Records are at least 3 bytes; the estimate avoids regrowing.
	pages := make([]Page, 0, len(body)/6)
	var prev uint32
	for i := 0; ; {
		pgno, n := binary.Uvarint(body[i:])
		if n <= 0 {
			return nil, fmt.Errorf("bad page number varint at index byte %d", i)
		}
		i += n
		if pgno == 0 {
			if i != len(body) {
				return nil, fmt.Errorf("%d bytes after the page index end marker", len(body)-i)
			}
			return pages, nil
		}
		off, n := binary.Uvarint(body[i:])
		if n <= 0 {
			return nil, fmt.Errorf("bad offset varint for page %d", pgno)
		}
		i += n
		size, n := binary.Uvarint(body[i:])
		if n <= 0 {
			return nil, fmt.Errorf("bad size varint for page %d", pgno)
		}
		i += n
		switch {
		case pgno > math.MaxUint32:
			return nil, fmt.Errorf("page number %d out of range", pgno)
		case uint32(pgno) <= prev:
			return nil, fmt.Errorf("page index out of order: %d after %d", pgno, prev)
		case off > math.MaxInt64 || size > math.MaxInt64:
			return nil, fmt.Errorf("page %d offset/size out of range", pgno)
		}
		prev = uint32(pgno)
		pages = append(pages, Page{Pgno: uint32(pgno), Offset: int64(off), Size: int64(size)})
	}
}

// VerifyFile checks a whole file read as info: its header against the name
// (CheckHeader), then every check ltx.Decoder makes (each page decoded, the
// page index against the frames, nothing after the trailer, and the CRC-64
// file checksum over it all). A file that passes is exactly what its writer
// wrote, so any page of it may be served.
func VerifyFile(info *ltx.FileInfo, b []byte) error {
	desc := remote.FileDesc(info.Level, info.MinTXID, info.MaxTXID)
	var hdr ltx.Header
	if err := hdr.UnmarshalBinary(b); err != nil {
		return damaged(fmt.Errorf("verify %s: decode header: %w", desc, remote.ExplainHeader(b, err)))
	}
	if err := CheckHeader(info, hdr); err != nil {
		return damaged(fmt.Errorf("verify %s: %w", desc, err))
	}
	dec := ltx.NewDecoder(bytes.NewReader(b))
	dec.SetRetainPageIndex(false)
	if err := dec.Verify(); err != nil {
		return damaged(fmt.Errorf("verify %s: %w", desc, err))
	}
	return nil
}
