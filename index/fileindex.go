package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"slices"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
)

// TailReadSize is how many bytes ReadFileIndex reads from the end of a file
// in its first request. 64 KiB holds the page index of a file of about 5000
// pages (records are ~8 bytes), so almost every file needs one tail request;
// files no larger than this (plus a header) are read whole in one request.
const TailReadSize = 64 << 10

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
	// Pages is sorted by Pgno.
	Pages []Page
}

// ReadFileIndex reads the header and the page index of one file with at most
// three range requests (usually two, issued in parallel, or one for small
// files) and never reads the page data. info.Size should be set (every
// remote.Client listing sets it); if it is not, the whole file is read.
func ReadFileIndex(ctx context.Context, c remote.Client, info *ltx.FileInfo) (*FileIndex, error) {
	fi, err := readFileIndex(ctx, c, info)
	if err != nil {
		return nil, fmt.Errorf("read page index of %s: %w", remote.FileDesc(info.Level, info.MinTXID, info.MaxTXID), err)
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
	case info.Size == 0 || info.Size <= TailReadSize+ltx.HeaderSize:
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
		tailOff = info.Size - TailReadSize
		var headErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			head, headErr = readRange(ctx, c, info, 0, ltx.HeaderSize)
		}()
		var tailErr error
		tail, tailErr = readRange(ctx, c, info, tailOff, TailReadSize)
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
		return nil, fmt.Errorf("decode header: %w", err)
	}
	if err := hdr.Validate(); err != nil {
		return nil, fmt.Errorf("invalid header: %w", err)
	}
	if hdr.MinTXID != info.MinTXID || hdr.MaxTXID != info.MaxTXID {
		return nil, fmt.Errorf("header says TXIDs %s-%s, file name says %s-%s", hdr.MinTXID, hdr.MaxTXID, info.MinTXID, info.MaxTXID)
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

	m, err := ltx.DecodePageIndex(bytes.NewReader(raw), info.Level, info.MinTXID, info.MaxTXID)
	if err != nil {
		return nil, fmt.Errorf("decode page index: %w", err)
	}

	lock := ltx.LockPgno(hdr.PageSize)
	pages := make([]Page, 0, len(m))
	for pgno, e := range m {
		// The tail is read without the file checksum, so check that every
		// record at least points inside the page block of this file.
		switch {
		case pgno > hdr.Commit:
			return nil, fmt.Errorf("page index names page %d beyond the database size of %d pages", pgno, hdr.Commit)
		case pgno == lock:
			return nil, fmt.Errorf("page index names the lock page %d", pgno)
		case e.Offset < ltx.HeaderSize || e.Size <= ltx.PageHeaderSize || e.Offset+e.Size > pagesEnd:
			return nil, fmt.Errorf("page index entry for page %d (offset %d, size %d) is outside the page block [%d, %d)", pgno, e.Offset, e.Size, ltx.HeaderSize, pagesEnd)
		}
		pages = append(pages, Page{Pgno: pgno, Offset: e.Offset, Size: e.Size})
	}
	slices.SortFunc(pages, func(a, b Page) int {
		switch {
		case a.Pgno < b.Pgno:
			return -1
		case a.Pgno > b.Pgno:
			return 1
		}
		return 0
	})
	return &FileIndex{Info: info, Header: hdr, Pages: pages}, nil
}

// readRange reads size bytes at off (size 0: to the end) of one file.
func readRange(ctx context.Context, c remote.Client, info *ltx.FileInfo, off, size int64) ([]byte, error) {
	rc, err := c.OpenLTXFile(ctx, info.Level, info.MinTXID, info.MaxTXID, off, size)
	if err != nil {
		return nil, fmt.Errorf("open bytes %d+%d: %w", off, size, err)
	}
	defer rc.Close()
	var b []byte
	if size > 0 {
		b = make([]byte, size)
		_, err = io.ReadFull(rc, b)
	} else {
		b, err = io.ReadAll(rc)
	}
	if err != nil {
		return nil, fmt.Errorf("read bytes %d+%d: %w", off, size, err)
	}
	return b, nil
}
