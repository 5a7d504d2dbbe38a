package writer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/ltxframe"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/writer/wal"
)

// stagedSuffix marks files in the staging directory that are ours.
const stagedSuffix = ".ltx.tmp"

// stagingPath returns where the file for txid is staged.
func (d *DB) stagingPath(txid ltx.TXID) string {
	return filepath.Join(d.opts.StagingDir, strings.TrimSuffix(ltx.FormatFilename(txid, txid), ".ltx")+stagedSuffix)
}

// removeStaleStaging removes staged files a previous process left behind;
// they were never uploaded, and their frames are still in the WAL.
func (d *DB) removeStaleStaging() {
	names, _ := filepath.Glob(filepath.Join(d.opts.StagingDir, "*"+stagedSuffix))
	for _, name := range names {
		_ = os.Remove(name)
	}
}

// stage writes the LTX file for pl to the staging directory. The file is
// complete before anything is uploaded, so a full disk fails here, names the
// file, and loses nothing: the frames are still in the WAL and the next sync
// builds the file again (or streams it: see streamed below).
func (d *DB) stage(ctx context.Context, pl *plan) (_ *pending, err error) {
	started := time.Now()
	txid := d.txid + 1
	desc := remote.FileDesc(remote.L0, txid, txid)
	path := d.stagingPath(txid)
	defer func() {
		if err != nil && !errors.Is(err, errRestarted) {
			err = fmt.Errorf("stage %s at %s: %w", desc, path, err)
		}
	}()
	if err := os.MkdirAll(d.opts.StagingDir, 0o755); err != nil {
		return nil, err
	}
	// O_TRUNC without removing first: a leftover file is overwritten.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			_ = os.Remove(path)
		}
	}()
	p := &pending{
		path:     path,
		txid:     txid,
		plan:     pl,
		snapshot: pl.snapshot,
		ts:       time.Now().UnixMilli(),
		started:  started,
	}
	if err := d.encodeL0(ctx, f, p, d.opts.StagingDir); err != nil {
		return nil, err
	}
	// No fsync: the file is read back right away and deleted after upload,
	// and a read returns what was written even before writeback. Write and
	// close errors (ENOSPC, EDQUOT; NFS reports them at close) are checked.
	if err := f.Close(); err != nil {
		return nil, err
	}
	ok = true
	return p, nil
}

// streamed returns the pending file for pl without staging it: each upload
// attempt encodes it again from the log into the upload (see encodeL0 for
// why every attempt produces the same bytes). The writer falls back to it
// when the staging directory's volume is full, so that replication, and then
// checkpoints that free the log, go on without local space.
func (d *DB) streamed(pl *plan) *pending {
	txid := d.txid + 1
	return &pending{
		txid:     txid,
		plan:     pl,
		snapshot: pl.snapshot,
		ts:       time.Now().UnixMilli(),
		started:  time.Now(),
	}
}

// isNoSpace reports whether err is a full disk or an exhausted quota.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// encodeL0 writes p's LTX file to w: the pages of p.plan read from the log
// (and, for a snapshot, the database file), with p.ts as the header's
// timestamp. spillDir, if not empty, lets the encoder spill the page index of
// a huge file there.
//
// The output is a function of the plan and p.ts alone, so encoding again
// gives the same bytes: until the file is uploaded d.spare holds the read
// transaction begun for it (I2), under which the frames p.plan names stay in
// the log unchanged (F3) and the database file's other pages unchanged (I5);
// a restart of the log, the one exception (F2), is detected here before the
// file is complete (errRestarted). It sets p.fingerprint for a snapshot of an
// empty log.
func (d *DB) encodeL0(ctx context.Context, w io.Writer, p *pending, spillDir string) error {
	pl := p.plan
	bw := bufio.NewWriterSize(w, 256<<10)
	enc, err := ltxframe.NewEncoder(bw)
	if err != nil {
		return err
	}
	if spillDir != "" {
		enc.SetSpillDir(spillDir)
	}
	defer enc.Cleanup()

	hdr := d.l0Header(p)
	if err := enc.EncodeHeader(hdr); err != nil {
		return err
	}

	walFile, err := os.Open(d.walPath)
	if err != nil && !(errors.Is(err, os.ErrNotExist) && len(pl.pages) == 0) {
		return fmt.Errorf("open WAL %s: %w", d.walPath, err)
	}
	if walFile != nil {
		defer walFile.Close()
	}
	buf := make([]byte, d.pageSize)
	lockPgno := ltx.LockPgno(d.pageSize)
	// A snapshot of an empty log has no WAL position to resume from; its
	// content's hash stands in for one (fingerprint.go).
	var ph *pageHash
	if pl.snapshot && !pl.hasWAL {
		ph = newPageHash()
	}
	encode := func(pgno uint32) error {
		if pgno%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := d.readPage(walFile, pl.pages, pgno, buf); err != nil {
			return err
		}
		if ph != nil {
			ph.add(pgno, buf)
		}
		return enc.EncodePage(ltx.PageHeader{Pgno: pgno}, buf)
	}
	if err := eachL0Page(pl, lockPgno, encode); err != nil {
		return err
	}

	// I5: a log restarted while frames were copied may have overwritten
	// them. Checked before the file is complete, so that neither a staged
	// file nor a streamed upload ever completes with torn content.
	if pl.hasWAL {
		if err := d.checkSameGeneration(pl.hdr); err != nil {
			return err
		}
	}
	if err := enc.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	p.size = enc.N()
	if ph != nil {
		p.fingerprint = &fingerprint{TXID: p.txid, Timestamp: hdr.Timestamp, PageSize: hdr.PageSize, Commit: hdr.Commit, SHA256: ph.sum()}
	}
	return nil
}

// eachL0Page calls fn with every page number pl's file holds, in ascending
// order (the encoder requires it): for a snapshot every page up to the
// commit but the lock page, else the pages the log changed (selectPages).
func eachL0Page(pl *plan, lockPgno uint32, fn func(pgno uint32) error) error {
	if pl.snapshot {
		for pgno := uint32(1); pgno <= pl.commit; pgno++ {
			if pgno == lockPgno {
				continue
			}
			if err := fn(pgno); err != nil {
				return err
			}
		}
		return nil
	}
	for _, pgno := range selectPages(pl.pages, pl.commit, lockPgno) {
		if err := fn(pgno); err != nil {
			return err
		}
	}
	return nil
}

// l0Header is the header of p's level-0 file. It is kept out of encodeL0
// (to keep that under the complexity limit) and depends on p alone, as
// encoding again must give the same bytes.
func (d *DB) l0Header(p *pending) ltx.Header {
	pl := p.plan
	hdr := ltx.Header{
		Version:   ltx.Version,
		Flags:     ltx.HeaderFlagNoChecksum,
		PageSize:  d.pageSize,
		Commit:    pl.commit,
		MinTXID:   p.txid,
		MaxTXID:   p.txid,
		Timestamp: p.ts,
	}
	if pl.hasWAL {
		// The byte range of the log this file covers; a snapshot covers the
		// generation from its first frame. Resume compares offset+size and
		// the salts with the log.
		hdr.WALOffset = pl.start.Offset
		hdr.WALSize = pl.end.Offset - pl.start.Offset
		hdr.WALSalt1 = pl.hdr.Salt1
		hdr.WALSalt2 = pl.hdr.Salt2
	} else {
		// An empty log: "at the WAL header, no frames", with no salts.
		// Litestream v0.5 reads offset 0 as a position before the header
		// and can never continue the replica; at the header it sees other
		// salts, takes the log as reset, and snapshots. Open recognizes
		// the file by size 0 and no salts (fingerprint.go).
		hdr.WALOffset = wal.HeaderSize
	}
	return hdr
}

// checkSameGeneration returns errRestarted if the log is no longer of
// generation gen, the log header read when the copied frames were planned.
// Staging (encodeL0) and snapshots share it.
//
// I5: if the log was restarted while frames were copied, they may have
// been overwritten by the new generation. The header is rewritten before
// any frame, so unchanged salts now mean every copied frame was intact.
func (d *DB) checkSameGeneration(gen wal.Header) error {
	hf, now, _, ok, err := d.readWALHeader()
	if hf != nil {
		hf.Close()
	}
	if err != nil {
		return err
	}
	if !ok || !now.SameGeneration(gen) {
		return errRestarted
	}
	return nil
}

// readPage reads page pgno as of a position of the log: from its newest
// frame there (pages maps page numbers to frame offsets in walFile), else from
// the database file. Sync staging and snapshots share it (I5).
func (d *DB) readPage(walFile *os.File, pages map[uint32]int64, pgno uint32, buf []byte) error {
	if off, ok := pages[pgno]; ok {
		if _, err := walFile.ReadAt(buf, off+wal.FrameHeaderSize); err != nil {
			return fmt.Errorf("read page %d from WAL %s at offset %d: %w", pgno, d.walPath, off, err)
		}
		return nil
	}
	if _, err := d.dbFile.ReadAt(buf, int64(pgno-1)*int64(len(buf))); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("read page %d from database %s: %w", pgno, d.path, err)
	}
	return nil
}
