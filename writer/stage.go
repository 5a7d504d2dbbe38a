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
	"time"

	"github.com/superfly/ltx"

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
// complete before anything is uploaded, so a full disk fails
// here, names the file, and loses nothing: the frames are still in the WAL
// and the next sync builds the file again.
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

	bw := bufio.NewWriterSize(f, 256<<10)
	enc, err := ltx.NewEncoder(bw)
	if err != nil {
		return nil, err
	}
	enc.SetSpillDir(d.opts.StagingDir)
	defer enc.Cleanup()

	hdr := ltx.Header{
		Version:   ltx.Version,
		Flags:     ltx.HeaderFlagNoChecksum,
		PageSize:  d.pageSize,
		Commit:    pl.commit,
		MinTXID:   txid,
		MaxTXID:   txid,
		Timestamp: time.Now().UnixMilli(),
	}
	if pl.hasWAL {
		// The byte range of the log this file covers; a snapshot covers the
		// generation from its first frame. Resume compares offset+size and
		// the salts with the log.
		hdr.WALOffset = pl.start.Offset
		hdr.WALSize = pl.end.Offset - pl.start.Offset
		hdr.WALSalt1 = pl.hdr.Salt1
		hdr.WALSalt2 = pl.hdr.Salt2
	}
	if err := enc.EncodeHeader(hdr); err != nil {
		return nil, err
	}

	walFile, err := os.Open(d.walPath)
	if err != nil && !(errors.Is(err, os.ErrNotExist) && len(pl.pages) == 0) {
		return nil, fmt.Errorf("open WAL %s: %w", d.walPath, err)
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
	if pl.snapshot {
		for pgno := uint32(1); pgno <= pl.commit; pgno++ {
			if pgno == lockPgno {
				continue
			}
			if err := encode(pgno); err != nil {
				return nil, err
			}
		}
	} else {
		for _, pgno := range selectPages(pl.pages, pl.commit, lockPgno) {
			if err := encode(pgno); err != nil {
				return nil, err
			}
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, err
	}
	// No fsync: the file is read back right away and deleted after upload,
	// and a read returns what was written even before writeback. Write and
	// close errors (ENOSPC, EDQUOT; NFS reports them at close) are checked.
	if err := f.Close(); err != nil {
		return nil, err
	}

	// I5: if the log was restarted while frames were copied, they may have
	// been overwritten by the new generation. The header is rewritten before
	// any frame, so unchanged salts now mean every copied frame was intact.
	if pl.hasWAL {
		hf, now, _, ok2, err := d.readWALHeader()
		if hf != nil {
			hf.Close()
		}
		if err != nil {
			return nil, err
		}
		if !ok2 || !now.SameGeneration(pl.hdr) {
			return nil, errRestarted // the deferred cleanup removes the file
		}
	}
	ok = true
	var fp *fingerprint
	if ph != nil {
		fp = &fingerprint{TXID: txid, Timestamp: hdr.Timestamp, PageSize: hdr.PageSize, Commit: hdr.Commit, SHA256: ph.sum()}
	}
	return &pending{
		fingerprint: fp,
		path:        path,
		txid:        txid,
		plan:        pl,
		needL9:      txid == 1,
		snapshot:    pl.snapshot,
		size:        size,
		started:     started,
	}, nil
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
