package backend

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// DefaultSpoolMemory is how much of an upload Spool keeps in memory before
// it moves to a temporary file. Level-0 files are usually far smaller;
// snapshots of large databases go to disk.
const DefaultSpoolMemory = 8 << 20

// Spool is a complete copy of an upload, so that a backend can send it with
// a known length, and send it again on a retry. A reader that fails while
// it is spooled fails the write before anything reaches the remote.
type Spool struct {
	mem  []byte
	file *os.File
	size int64
}

// NewSpool copies r into memory, moving to a temporary file in dir (""
// for the system default) once it holds more than memLimit bytes.
func NewSpool(ctx context.Context, r io.Reader, memLimit int64, dir string) (*Spool, error) {
	if memLimit <= 0 {
		memLimit = DefaultSpoolMemory
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(ctxReader{ctx, r}, memLimit+1))
	if err != nil {
		return nil, fmt.Errorf("read upload after %d bytes: %w", n, err)
	}
	if n <= memLimit {
		return &Spool{mem: buf.Bytes(), size: n}, nil
	}
	f, err := os.CreateTemp(dir, "litestream-upload-*.ltx")
	if err != nil {
		return nil, fmt.Errorf("spool upload: %w", err)
	}
	// Unlinked at once: nothing is left behind if the process dies.
	_ = os.Remove(f.Name())
	s := &Spool{file: f}
	if _, err := f.Write(buf.Bytes()); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("spool upload to %s: %w", f.Name(), err)
	}
	m, err := io.Copy(f, ctxReader{ctx, r})
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("read upload after %d bytes: %w", n+m, err)
	}
	s.size = n + m
	return s, nil
}

// Size returns the number of bytes spooled.
func (s *Spool) Size() int64 { return s.size }

// Reader returns a new reader over the whole upload, positioned at its
// start. Readers are independent of each other.
func (s *Spool) Reader() *io.SectionReader {
	if s.file != nil {
		return io.NewSectionReader(s.file, 0, s.size)
	}
	return io.NewSectionReader(bytes.NewReader(s.mem), 0, s.size)
}

// CRC32C returns the Castagnoli CRC-32 of the upload, as GCS checks it.
func (s *Spool) CRC32C() (uint32, error) {
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	if _, err := io.Copy(h, s.Reader()); err != nil {
		return 0, fmt.Errorf("checksum the upload: %w", err)
	}
	return h.Sum32(), nil
}

// Close releases the memory or temporary file.
func (s *Spool) Close() error {
	s.mem = nil
	if s.file != nil {
		return s.file.Close()
	}
	return nil
}

// ctxReader stops a copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// ContextReader returns a reader that fails with ctx's error once ctx ends.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

// Section returns a new reader over n bytes of the upload from off, for
// sending one part of it.
func (s *Spool) Section(off, n int64) *io.SectionReader {
	if s.file != nil {
		return io.NewSectionReader(s.file, off, n)
	}
	return io.NewSectionReader(bytes.NewReader(s.mem), off, n)
}
