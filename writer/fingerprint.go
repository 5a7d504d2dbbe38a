package writer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/writer/wal"
)

// Resuming after a snapshot taken while the WAL was empty.
//
// A file records the WAL position it ends at (salts, offset, size), and Open
// resumes from it when the log still has that generation (resume.go). A
// snapshot taken while the log is empty (no header yet: a database the
// application last closed, or one just switched from another journal mode)
// has no position to record, and SQLite writes a WAL header only with a
// write transaction, which the writer never makes. Without more, a writer
// restarted before the application's next write would have to snapshot
// again.
//
// Such a snapshot is made entirely from the database file, so its content is
// known exactly: staging hashes it (SHA-256 of every page, in order), and
// after the upload the hash goes into a small file in the staging directory.
// When Open finds that snapshot is still the replica's last file, it hashes
// the database file again. Equal content means the database file is still
// the state at that TXID, and what SQLite sees now is that file plus the
// frames of the current log generation, so replication continues from the
// first frame of the log (or from the empty log). Any difference, or a
// missing or unreadable record, falls back to a snapshot, as before. The
// check reads the database once, locally: cheaper than a snapshot, which
// reads it too and uploads it.
//
// This is sound under the same facts as the rest (sync.go): the pin began
// before the check, so no checkpoint backfills a frame the pin cannot see
// (F1, F2), frames it can see stay in the log until a sync reads them, and
// a page a concurrent checkpoint rewrites while it is hashed comes from such
// a frame, which the next file carries anyway.

// fingerprintFile is the record's name in the staging directory.
const fingerprintFile = "empty-wal-snapshot.json"

// fingerprint identifies the replica's state at TXID and the database content
// it had.
type fingerprint struct {
	TXID ltx.TXID `json:"txid"`
	// Timestamp is the LTX header's, tying the record to the file this
	// writer uploaded (compactions that end with it carry it too).
	Timestamp int64  `json:"timestamp"`
	PageSize  uint32 `json:"page_size"`
	Commit    uint32 `json:"commit"`
	SHA256    []byte `json:"sha256"`
}

// pageHash hashes pages in ascending order, each with its number.
type pageHash struct{ h hash.Hash }

func newPageHash() *pageHash { return &pageHash{h: sha256.New()} }

func (p *pageHash) add(pgno uint32, data []byte) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], pgno)
	p.h.Write(b[:])
	p.h.Write(data)
}

func (p *pageHash) sum() []byte { return p.h.Sum(nil) }

// saveFingerprint records fp after its file was uploaded. A failure only
// costs a snapshot after the next restart, so it is logged, not returned.
func (d *DB) saveFingerprint(fp *fingerprint) {
	path := filepath.Join(d.opts.StagingDir, fingerprintFile)
	b, err := json.Marshal(fp)
	if err == nil {
		tmp := path + ".new" // not *.tmp, which tools read as a staged file
		if err = os.WriteFile(tmp, b, 0o644); err == nil {
			err = os.Rename(tmp, path)
		}
	}
	if err != nil {
		d.log.Warn("cannot record the snapshot's content; a restart before the next write will snapshot again",
			"path", path, "err", err)
	}
}

// resumeFromFingerprint continues the replica whose last file, with header
// hdr, records no WAL position, if that file is a snapshot this writer took
// with an empty log and the database file still has its content (see
// above). It returns why not otherwise.
func (d *DB) resumeFromFingerprint(ctx context.Context, hdr ltx.Header) (reason string, err error) {
	path := filepath.Join(d.opts.StagingDir, fingerprintFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "last file records no WAL position", nil
	} else if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	var fp fingerprint
	if err := json.Unmarshal(b, &fp); err != nil {
		return fmt.Sprintf("last file records no WAL position (and %s is unreadable: %v)", path, err), nil
	}
	if fp.TXID != hdr.MaxTXID || fp.Timestamp != hdr.Timestamp || fp.Commit != hdr.Commit || fp.PageSize != hdr.PageSize {
		return "last file records no WAL position (and is not the empty-WAL snapshot this writer recorded)", nil
	}

	// The log first: its generation is the one to continue (see above). A
	// log whose index publishes no frame is an empty one.
	v, err := d.openLog()
	if err != nil {
		return "", err
	}
	defer v.close()
	ok, walHdr := v.ok, v.hdr
	var end wal.Position
	if ok {
		if end, err = d.scan(v, wal.Start(walHdr), nil); err != nil {
			return "", err
		}
	}

	start := time.Now()
	commit, err := d.dbFilePages()
	if err != nil {
		return "", err
	}
	if commit != fp.Commit || d.pageSize != fp.PageSize {
		return fmt.Sprintf("database file has %d pages of %d bytes, the snapshot %d of %d", commit, d.pageSize, fp.Commit, fp.PageSize), nil
	}
	ph := newPageHash()
	buf := make([]byte, d.pageSize)
	lockPgno := ltx.LockPgno(d.pageSize)
	for pgno := uint32(1); pgno <= commit; pgno++ {
		if pgno == lockPgno {
			continue
		}
		if pgno%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return "", err
			}
		}
		if _, err := d.dbFile.ReadAt(buf, int64(pgno-1)*int64(d.pageSize)); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return "", fmt.Errorf("read page %d from database %s: %w", pgno, d.path, err)
		}
		ph.add(pgno, buf)
	}
	if !bytes.Equal(ph.sum(), fp.SHA256) {
		return "database file changed since the last snapshot, which was taken with an empty WAL", nil
	}

	d.pages = map[uint32]int64{}
	if ok {
		d.pos = position{hasWAL: true, hdr: walHdr, Position: wal.Start(walHdr), commit: commit}
		// Nothing in the log yet: everything the pin sees is uploaded.
		d.pinCovered = end.Offset == d.pos.Offset
	} else {
		// An empty log: the pin sees the database file, which is uploaded.
		d.pos = position{commit: commit}
		d.pinCovered = true
	}
	d.log.Info("database file matches the last snapshot (taken with an empty WAL); continuing from the WAL's first frame",
		"txid", hdr.MaxTXID.String(), "pages", commit, "duration", time.Since(start).Round(time.Millisecond))
	return "", nil
}
