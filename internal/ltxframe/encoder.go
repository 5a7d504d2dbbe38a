package ltxframe

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc64"
	"io"
	"os"

	"github.com/pierrec/lz4/v4"
	"github.com/superfly/ltx"
)

// DefaultSpillThreshold is the number of page index entries kept in memory
// before they are spilled to a file in the spill directory (if set): 1M
// entries, a 4 GiB database of 4 KiB pages, as ltx.Encoder.
const DefaultSpillThreshold = 1 << 20

// Encoder writes an LTX file whose pages are in the LZ4 frame encoding with
// content checksums. It is a drop-in for the parts of ltx.Encoder the writer
// uses, and enforces what ltx.Encoder enforces (header and trailer
// validity, pages ascending within the commit, no lock page, a snapshot
// holding every page). The file checksum covers what ltx.Decoder hashes for
// this encoding: the header, each page header and decompressed page, the
// end-of-pages header, the page index and the trailer's first half.
//
// Writes go straight to w: give it a buffered writer.
type Encoder struct {
	w       io.Writer
	state   int
	header  ltx.Header
	trailer ltx.Trailer
	hash    hash.Hash64
	n       int64 // bytes written

	comp  lz4.Compressor
	frame []byte

	prevPgno uint32
	index    []entry
	spillDir string
	spillN   int
	spill    *os.File
	spillW   *bufio.Writer
	spillLen int64
}

type entry struct {
	pgno         uint32
	offset, size int64
}

const (
	stateHeader = iota
	statePage
	stateClosed
	stateAborted
)

// ErrAborted is returned by an Encoder after a write failed part way: the
// output cannot be completed.
var ErrAborted = errors.New("ltxframe: encoder aborted after a failed write")

// NewEncoder returns an Encoder writing to w.
func NewEncoder(w io.Writer) (*Encoder, error) {
	return &Encoder{w: w, spillN: DefaultSpillThreshold}, nil
}

// SetSpillDir lets the page index of a very large file spill to a
// temporary file in dir (removed by Close or Cleanup).
func (e *Encoder) SetSpillDir(dir string) { e.spillDir = dir }

// SetSpillThreshold sets the entries kept in memory before spilling.
func (e *Encoder) SetSpillThreshold(n int) { e.spillN = max(1, n) }

// Header returns the header written.
func (e *Encoder) Header() ltx.Header { return e.header }

// Trailer returns the trailer, complete after Close.
func (e *Encoder) Trailer() ltx.Trailer { return e.trailer }

// N returns the bytes written.
func (e *Encoder) N() int64 { return e.n }

// SetPostApplyChecksum sets the trailer's post-apply checksum (files that
// track checksums only).
func (e *Encoder) SetPostApplyChecksum(c ltx.Checksum) { e.trailer.PostApplyChecksum = c }

// Cleanup removes a spill file left by an encoder that did not Close.
func (e *Encoder) Cleanup() error {
	if e.spill == nil {
		return nil
	}
	name := e.spill.Name()
	e.spill.Close()
	e.spill, e.spillW = nil, nil
	if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (e *Encoder) abort(err error) error {
	e.state = stateAborted
	return err
}

// write writes b to the output and the checksum.
func (e *Encoder) write(b []byte) error {
	if err := e.writeRaw(b); err != nil {
		return err
	}
	e.hash.Write(b)
	return nil
}

// writeRaw writes b to the output only.
func (e *Encoder) writeRaw(b []byte) error {
	n, err := e.w.Write(b)
	e.n += int64(n)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	return err
}

// EncodeHeader writes the header; Version is set if zero.
func (e *Encoder) EncodeHeader(hdr ltx.Header) error {
	if e.state != stateHeader {
		return errors.New("ltxframe: header already written")
	}
	if hdr.Version == 0 {
		hdr.Version = ltx.Version
	}
	if err := hdr.Validate(); err != nil {
		return err
	}
	e.header = hdr
	e.hash = crc64.New(crc64.MakeTable(crc64.ISO))
	b, err := hdr.MarshalBinary()
	if err != nil {
		return err
	}
	if err := e.write(b); err != nil {
		return e.abort(fmt.Errorf("write header: %w", err))
	}
	e.state = statePage
	return nil
}

// EncodePage writes one page. hdr.Flags is ignored (this encoding has
// none).
func (e *Encoder) EncodePage(hdr ltx.PageHeader, data []byte) error {
	switch {
	case e.state == stateAborted:
		return ErrAborted
	case e.state != statePage:
		return errors.New("ltxframe: EncodePage before the header or after Close")
	case hdr.Pgno == 0 || hdr.Pgno > e.header.Commit:
		return fmt.Errorf("page number %d out of bounds for commit size %d", hdr.Pgno, e.header.Commit)
	case uint32(len(data)) != e.header.PageSize:
		return fmt.Errorf("page %d: %d bytes, page size is %d", hdr.Pgno, len(data), e.header.PageSize)
	}
	lock := ltx.LockPgno(e.header.PageSize)
	switch {
	case hdr.Pgno == lock:
		return fmt.Errorf("cannot encode the lock page %d", hdr.Pgno)
	case e.header.IsSnapshot():
		want := e.prevPgno + 1
		if want == lock {
			want++
		}
		if hdr.Pgno != want {
			return fmt.Errorf("snapshot pages must be consecutive: page %d after %d", hdr.Pgno, e.prevPgno)
		}
	case hdr.Pgno <= e.prevPgno:
		return fmt.Errorf("pages out of order: %d after %d", hdr.Pgno, e.prevPgno)
	}

	offset := e.n
	var ph [ltx.PageHeaderSize]byte
	binary.BigEndian.PutUint32(ph[0:], hdr.Pgno) // flags 0: the frame encoding
	frame, err := AppendFrame(e.frame[:0], data, &e.comp)
	if err != nil {
		return err
	}
	e.frame = frame
	if err := e.write(ph[:]); err != nil {
		return e.abort(fmt.Errorf("write page %d: %w", hdr.Pgno, err))
	}
	if err := e.writeRaw(frame); err != nil {
		return e.abort(fmt.Errorf("write page %d: %w", hdr.Pgno, err))
	}
	e.hash.Write(data) // the decoder hashes the decompressed page
	e.prevPgno = hdr.Pgno
	if err := e.addIndex(entry{pgno: hdr.Pgno, offset: offset, size: e.n - offset}); err != nil {
		return e.abort(fmt.Errorf("page index: %w", err))
	}
	return nil
}

func appendRecord(b []byte, en entry) []byte {
	b = binary.AppendUvarint(b, uint64(en.pgno))
	b = binary.AppendUvarint(b, uint64(en.offset))
	return binary.AppendUvarint(b, uint64(en.size))
}

func (e *Encoder) addIndex(en entry) error {
	if e.spill == nil {
		e.index = append(e.index, en)
		if e.spillDir == "" || len(e.index) < e.spillN {
			return nil
		}
		f, err := os.CreateTemp(e.spillDir, ".ltxframe-index-*")
		if err != nil {
			return err
		}
		e.spill, e.spillW = f, bufio.NewWriterSize(f, 64<<10)
		entries := e.index
		e.index = nil
		for _, x := range entries {
			if err := e.spillRecord(x); err != nil {
				return err
			}
		}
		return nil
	}
	return e.spillRecord(en)
}

func (e *Encoder) spillRecord(en entry) error {
	var buf [3 * binary.MaxVarintLen64]byte
	b := appendRecord(buf[:0], en)
	n, err := e.spillW.Write(b)
	e.spillLen += int64(n)
	return err
}

// Close writes the end of the page block, the page index and the trailer.
func (e *Encoder) Close() (err error) {
	switch e.state {
	case stateClosed:
		return nil
	case stateAborted:
		e.Cleanup()
		return ErrAborted
	case stateHeader:
		return errors.New("ltxframe: Close before the header")
	}
	defer func() {
		if err != nil {
			e.state = stateAborted
		}
		if cerr := e.Cleanup(); err == nil && cerr != nil {
			err = fmt.Errorf("remove page index spill: %w", cerr)
		}
	}()
	if err := e.write(make([]byte, ltx.PageHeaderSize)); err != nil {
		return fmt.Errorf("write end of pages: %w", err)
	}
	start := e.n
	if e.spill != nil {
		if err := e.spillW.Flush(); err != nil {
			return fmt.Errorf("page index spill: %w", err)
		}
		if _, err := e.spill.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("page index spill: %w", err)
		}
		buf := make([]byte, 64<<10)
		for rest := e.spillLen; rest > 0; {
			k := int(min(rest, int64(len(buf))))
			if _, err := io.ReadFull(e.spill, buf[:k]); err != nil {
				return fmt.Errorf("page index spill: %w", err)
			}
			if err := e.write(buf[:k]); err != nil {
				return fmt.Errorf("write page index: %w", err)
			}
			rest -= int64(k)
		}
	} else {
		buf := make([]byte, 0, 64<<10)
		for _, en := range e.index {
			buf = appendRecord(buf, en)
			if len(buf) > 60<<10 {
				if err := e.write(buf); err != nil {
					return fmt.Errorf("write page index: %w", err)
				}
				buf = buf[:0]
			}
		}
		if err := e.write(buf); err != nil {
			return fmt.Errorf("write page index: %w", err)
		}
	}
	tail := binary.AppendUvarint(nil, 0) // end marker
	tail = binary.BigEndian.AppendUint64(tail, uint64(e.n-start+int64(len(tail))))
	if err := e.write(tail); err != nil {
		return fmt.Errorf("write page index: %w", err)
	}
	var tb [ltx.TrailerSize]byte
	binary.BigEndian.PutUint64(tb[0:], uint64(e.trailer.PostApplyChecksum))
	e.hash.Write(tb[:ltx.TrailerChecksumOffset])
	e.trailer.FileChecksum = ltx.ChecksumFlag | ltx.Checksum(e.hash.Sum64())
	if err := e.trailer.Validate(e.header); err != nil {
		return fmt.Errorf("validate trailer: %w", err)
	}
	binary.BigEndian.PutUint64(tb[8:], uint64(e.trailer.FileChecksum))
	if err := e.writeRaw(tb[:]); err != nil {
		return fmt.Errorf("write trailer: %w", err)
	}
	e.state = stateClosed
	return nil
}
