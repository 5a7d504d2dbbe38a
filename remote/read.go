package remote

import (
	"context"
	"fmt"
	"io"

	"github.com/superfly/ltx"
)

// FileOpener is implemented by clients that want the listing entry (its
// size) of the file a range is read from: the VFS's verifying client reads
// small files whole and verifies them before serving any range of them
// (vfs/verify.go). OpenFile and ReadRange go through it.
type FileOpener interface {
	OpenFile(ctx context.Context, info *ltx.FileInfo, offset, size int64) (io.ReadCloser, error)
}

// OpenFile opens size bytes at offset (size 0: to the end) of the listed
// file info, through c's OpenFile if it has one, else OpenLTXFile.
func OpenFile(ctx context.Context, c Client, info *ltx.FileInfo, offset, size int64) (io.ReadCloser, error) {
	if o, ok := c.(FileOpener); ok {
		return o.OpenFile(ctx, info, offset, size)
	}
	return c.OpenLTXFile(ctx, info.Level, info.MinTXID, info.MaxTXID, offset, size)
}

// ReadRange reads the bytes of r (r.Size 0: to the end of the file) through
// OpenFile. See ReadRangeInto.
func ReadRange(ctx context.Context, c Client, r Range) ([]byte, error) {
	return ReadRangeInto(ctx, c, r, nil)
}

// ReadRangeInto is ReadRange into buf when buf has room for r.Size bytes
// (else into a new slice). A failure to open is "open bytes OFF+SIZE: ...",
// one while reading "read bytes OFF+SIZE: ...", each wrapping the cause;
// the caller names the file (the backend's error names its key). On a read
// failure the bytes that did arrive are returned with the error.
func ReadRangeInto(ctx context.Context, c Client, r Range, buf []byte) ([]byte, error) {
	rc, err := OpenFile(ctx, c, r.File, r.Offset, r.Size)
	if err != nil {
		return nil, fmt.Errorf("open bytes %d+%d: %w", r.Offset, r.Size, err)
	}
	defer rc.Close()
	var b []byte
	var n int
	if r.Size > 0 {
		if int64(cap(buf)) >= r.Size {
			b = buf[:r.Size]
		} else {
			b = make([]byte, r.Size)
		}
		n, err = io.ReadFull(rc, b)
	} else {
		b, err = io.ReadAll(rc)
		n = len(b)
	}
	if err != nil {
		return b[:n], fmt.Errorf("read bytes %d+%d: %w", r.Offset, r.Size, err)
	}
	return b, nil
}
