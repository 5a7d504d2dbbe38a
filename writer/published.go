package writer

// Reading only what SQLite has published.
//
// A transaction exists for SQLite once its commit is published in the
// wal-index (the -shm file): walFrames writes the frames, syncs, and only then
// appends them to the index and rewrites the index header with the new
// mxFrame. A writer killed in between leaves frames in the WAL file that form
// a valid checksum chain ending in a commit frame, which SQLite never shows
// and the next writer overwrites (it appends at mxFrame+1). So every read of
// the log here is bounded by the index header's mxFrame, and must end there
// exactly: the frame count, the checksum chain (aFrameCksum), the salts and
// the database size (nPage) all agree, or the read is retried and then fails.
// See F4-F6 in sync.go.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/litestream-go/litestream/writer/wal"
)

// unsettledError reports that the WAL and its wal-index disagreed in a way a
// concurrent writer, a log restart or a torn index header explains. The read
// transaction is begun again (which makes SQLite rebuild a torn index) and
// the read retried; if it persists, the sync fails with this error and
// nothing is uploaded.
type unsettledError struct{ msg string }

func (e *unsettledError) Error() string { return e.msg }

func isUnsettled(err error) bool {
	var u *unsettledError
	return errors.As(err, &u)
}

// logAttempts bounds how often a sync, a resume or a repin begins its read
// transaction again because the log and its index disagreed.
const logAttempts = 6

// retryDelay is the pause before attempt n (n >= 1) of a read that found the
// log unsettled: a concurrent writer finishes its commit in microseconds.
func retryDelay(n int) time.Duration {
	return time.Millisecond << min(n-1, 6)
}

// shmPath is the wal-index file of the unix VFS.
func (d *DB) shmPath() string { return d.path + "-shm" }

// openShm opens the wal-index file for reading. It must stay open until every
// SQLite connection of this process to the database is closed: closing any
// descriptor of a file drops all of the process's POSIX locks on it, and
// SQLite holds its read marks as locks on this file (see dbFile).
func (d *DB) openShm() error {
	f, err := os.Open(d.shmPath())
	if err != nil {
		return fmt.Errorf("open wal-index %s (is the database in WAL mode with shared memory?): %w", d.shmPath(), err)
	}
	d.shmFile = f
	return nil
}

// readIndex reads the wal-index header. Two copies that differ mean a writer
// is rewriting it right now, so the read is repeated a few times at once; a
// header that stays torn is left by a writer killed while writing it, which
// the next read transaction's recovery repairs (the caller begins again).
func (d *DB) readIndex() (wal.Index, error) {
	buf := make([]byte, wal.IndexReadSize)
	var err error
	for i := 0; i < 4; i++ {
		if i > 0 {
			time.Sleep(time.Duration(i) * 100 * time.Microsecond)
		}
		var n int
		n, err = d.shmFile.ReadAt(buf, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			return wal.Index{}, fmt.Errorf("read wal-index %s: %w", d.shmPath(), err)
		}
		var x wal.Index
		x, err = wal.ParseIndex(buf[:n], binary.NativeEndian)
		if err == nil {
			return x, nil
		}
	}
	return wal.Index{}, &unsettledError{fmt.Sprintf("wal-index %s: %v", d.shmPath(), err)}
}

// logView is the published log: the wal-index header, read after the
// caller's read transaction began, and the WAL file it describes.
type logView struct {
	f    *os.File // the WAL file, nil if it does not exist; the caller closes it
	idx  wal.Index
	hdr  wal.Header // the WAL file's header; meaningful when ok
	ok   bool       // the index publishes at least one frame of hdr's generation
	size int64      // of the WAL file
}

func (v *logView) close() {
	if v != nil && v.f != nil {
		v.f.Close()
	}
}

// openLog reads the wal-index header and the WAL file's header and checks
// that they describe the same log.
//
// An index with mxFrame 0 publishes no frame: the database file is the whole
// state, whatever the WAL file still holds (a restart rewrites the index
// before the first frame of the new generation is written, and a writer may
// be killed or roll back in between). ok is false then, as for a missing log.
func (d *DB) openLog() (*logView, error) {
	idx, err := d.readIndex()
	if err != nil {
		return nil, err
	}
	f, hdr, size, ok, err := d.readWALHeader()
	if err != nil {
		return nil, err
	}
	v := &logView{f: f, idx: idx, hdr: hdr, size: size}
	if idx.MaxFrame == 0 {
		return v, nil
	}
	switch {
	case !ok:
		v.close()
		return nil, &unsettledError{fmt.Sprintf("wal-index %s publishes %d frames, but WAL %s has no valid header", d.shmPath(), idx.MaxFrame, d.walPath)}
	case hdr.Salt1 != idx.Salt1 || hdr.Salt2 != idx.Salt2:
		// The header is written before any frame the index publishes, so
		// the log was restarted after the index was read.
		v.close()
		return nil, &unsettledError{fmt.Sprintf("WAL %s salts %08x/%08x differ from its wal-index's %08x/%08x",
			d.walPath, hdr.Salt1, hdr.Salt2, idx.Salt1, idx.Salt2)}
	case hdr.PageSize != idx.PageSize || hdr.BigEndian() != idx.BigEndian:
		v.close()
		return nil, &unsettledError{fmt.Sprintf("WAL %s page size %d differs from its wal-index's %d", d.walPath, hdr.PageSize, idx.PageSize)}
	}
	v.ok = true
	return v, nil
}

// scan reads the published log from start (a commit boundary of v's
// generation at or before the published end) to the published end, calling
// fn for each frame of each transaction, and returns the end. It is an
// unsettled error unless the scan ends exactly at frame mxFrame with the
// index's checksum and database size: the frames the index publishes are
// intact and in the file.
func (d *DB) scan(v *logView, start wal.Position, fn func(wal.Frame) error) (wal.Position, error) {
	end := v.idx.End()
	if start.Offset > end {
		return start, fmt.Errorf("read WAL %s: position %d is past the published end %d", d.walPath, start.Offset, end)
	}
	pos, err := wal.Scan(io.NewSectionReader(v.f, 0, end), v.hdr, start, fn)
	if err != nil {
		return pos, fmt.Errorf("read WAL %s: %w", d.walPath, err)
	}
	if pos.Offset != end || pos.Checksum != v.idx.FrameSum || pos.Commit != v.idx.Pages {
		return pos, &unsettledError{fmt.Sprintf("WAL %s: valid committed frames end at offset %d (checksum %08x/%08x, %d pages), "+
			"but its wal-index publishes through offset %d (frame %d, checksum %08x/%08x, %d pages)",
			d.walPath, pos.Offset, pos.Checksum.S1, pos.Checksum.S2, pos.Commit,
			end, v.idx.MaxFrame, v.idx.FrameSum.S1, v.idx.FrameSum.S2, v.idx.Pages)}
	}
	return pos, nil
}

// retryUnsettled runs fn until it returns something other than an unsettled
// error, at most logAttempts times. Before each retry, restart (if not nil)
// ends the read transaction the failed attempt began after and begins a new
// one. The final unsettled error is wrapped to say nothing was uploaded.
func (d *DB) retryUnsettled(ctx context.Context, what string, restart func() error, fn func() error) error {
	var err error
	for attempt := 0; attempt < logAttempts; attempt++ {
		if attempt > 0 {
			d.log.Debug("WAL and wal-index disagree; reading again", "op", what, "attempt", attempt, "reason", err)
			t := time.NewTimer(retryDelay(attempt))
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
			if restart != nil {
				if rerr := restart(); rerr != nil {
					return rerr
				}
			}
		}
		if err = fn(); !isUnsettled(err) {
			return err
		}
	}
	return fmt.Errorf("%s %s: the WAL does not match what SQLite's wal-index publishes after %d attempts; nothing was uploaded: %w",
		what, d.path, logAttempts, err)
}
