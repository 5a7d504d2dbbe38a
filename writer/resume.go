package writer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/writer/wal"
)

// resume sets the TXID and WAL position replication continues from. It runs
// in Open after the pin began, so the log it reads cannot be restarted past
// what the pin sees (see sync.go).
func (d *DB) resume(ctx context.Context) error {
	last, err := d.lastFile(ctx)
	if err != nil {
		return err
	}
	if last == nil {
		d.txid = 0
		d.snapshotNext = true
		d.log.Info("replica is empty; first sync writes a snapshot")
		return nil
	}
	d.txid = last.MaxTXID
	hdr, err := d.readRemoteHeader(ctx, last)
	if err != nil {
		return err
	}
	// The pin began before the log is read (I2); when the log and its index
	// disagree, the pin is begun again and the log read again.
	var reason string
	err = d.retryUnsettled(ctx, "resume", func() error {
		d.endRead(&d.pin)
		return d.beginRead(ctx, &d.pin)
	}, func() error {
		var err error
		reason, err = d.matchWAL(ctx, last, hdr)
		return err
	})
	if err != nil {
		return err
	}
	if reason != "" {
		d.snapshotNext = true
		d.log.Info("cannot continue the replica from the WAL; next file is a snapshot",
			"txid", d.txid, "reason", reason)
		return nil
	}
	d.log.Info("resuming replica", "txid", d.txid, "wal_offset", d.pos.Offset)
	return nil
}

// lastFile returns the file with the replica's highest MaxTXID, preferring
// the lowest level on ties (level 0 carries the WAL position), or nil if the
// replica is empty. Every level is listed: compaction may have removed the
// level-0 files of the newest transactions.
func (d *DB) lastFile(ctx context.Context) (*ltx.FileInfo, error) {
	files, err := remote.ListAll(ctx, d.client)
	if err != nil {
		return nil, err
	}
	var last *ltx.FileInfo
	for _, f := range files { // level by level: the lowest level wins ties
		if last == nil || f.MaxTXID > last.MaxTXID {
			last = f
		}
	}
	return last, nil
}

func (d *DB) readRemoteHeader(ctx context.Context, info *ltx.FileInfo) (ltx.Header, error) {
	desc := remote.FileDesc(info.Level, info.MinTXID, info.MaxTXID)
	buf, err := remote.ReadRange(ctx, d.client, remote.Range{File: info, Size: ltx.HeaderSize})
	if err != nil {
		return ltx.Header{}, fmt.Errorf("read header of %s: %w", desc, err)
	}
	var hdr ltx.Header
	if err := hdr.UnmarshalBinary(buf); err != nil {
		return ltx.Header{}, fmt.Errorf("decode header of %s: %w", desc, err)
	}
	return hdr, nil
}

// matchWAL continues from the WAL position recorded in hdr, the header of
// the replica's last file info, if the current log is the same generation
// (same salts), SQLite publishes it at least up to that position (I6), its
// checksum chain is valid up to exactly that position at a commit boundary,
// and the file holds exactly the pages of the log's frames in its recorded
// range (verifyLastFile). It returns why not otherwise.
func (d *DB) matchWAL(ctx context.Context, info *ltx.FileInfo, hdr ltx.Header) (reason string, err error) {
	if emptyLogFile(hdr) {
		// A snapshot taken with an empty log (fingerprint.go).
		return d.resumeFromFingerprint(ctx, hdr)
	}
	if hdr.PageSize != d.pageSize {
		return fmt.Sprintf("page size %d differs from the database's %d", hdr.PageSize, d.pageSize), nil
	}
	v, err := d.openLog()
	if err != nil {
		return "", err
	}
	defer v.close()
	if !v.ok {
		return "WAL is empty (SQLite publishes no frame in it)", nil
	}
	walHdr := v.hdr
	if walHdr.Salt1 != hdr.WALSalt1 || walHdr.Salt2 != hdr.WALSalt2 {
		return fmt.Sprintf("WAL salts %08x/%08x differ from the replica's %08x/%08x",
			walHdr.Salt1, walHdr.Salt2, hdr.WALSalt1, hdr.WALSalt2), nil
	}
	target := hdr.WALOffset + hdr.WALSize
	if target > v.idx.End() {
		return fmt.Sprintf("the replica's last file ends at WAL offset %d, past the end of what SQLite has committed "+
			"(offset %d, frame %d): it holds frames of a transaction SQLite never published", target, v.idx.End(), v.idx.MaxFrame), nil
	}
	pages := map[uint32]int64{}
	inRange := map[uint32]int64{}
	pos, err := wal.Scan(io.NewSectionReader(v.f, 0, target), walHdr, wal.Start(walHdr), func(fr wal.Frame) error {
		pages[fr.Pgno] = fr.Offset
		if fr.Offset >= hdr.WALOffset {
			inRange[fr.Pgno] = fr.Offset
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read WAL %s: %w", d.walPath, err)
	}
	// The published chain must be intact from here to its end; if it is,
	// and the scan above stopped short, the replica's position is not a
	// commit boundary of the log.
	end, err := d.scan(v, pos, nil)
	if err != nil {
		return "", err
	}
	if pos.Offset != target {
		return fmt.Sprintf("WAL has no valid commit at offset %d (valid up to %d)", target, pos.Offset), nil
	}
	if pos.Frames > 0 && pos.Commit != hdr.Commit {
		return fmt.Sprintf("database size %d at offset %d differs from the replica's %d", pos.Commit, target, hdr.Commit), nil
	}
	if reason, err := d.verifyLastFile(ctx, info, hdr, v.f, inRange); reason != "" || err != nil {
		return reason, err
	}
	d.pos = position{hasWAL: true, hdr: walHdr, Position: pos, commit: hdr.Commit}
	d.pages = pages
	// The pin began before this read; if the replica ends where the
	// published log ends, everything the pin sees is uploaded.
	d.pinCovered = end.Offset == pos.Offset
	return "", nil
}

// emptyLogFile reports whether hdr records no WAL position: a file written
// while the log was empty (WAL offset at or before the header, no bytes, no
// salts; older versions of this writer wrote offset 0), or a compaction.
func emptyLogFile(hdr ltx.Header) bool {
	return hdr.WALOffset <= wal.HeaderSize && hdr.WALSize == 0 && hdr.WALSalt1 == 0 && hdr.WALSalt2 == 0
}

// verifyLastFile checks that the replica's last file holds the log's content
// for the WAL range its header records: for every page with a frame in the
// range (at or below the file's commit, never the lock page) the page of its
// newest frame there, and no other page unless the file is a full snapshot.
// A file another replicator made from frames SQLite never published, which
// a later transaction then overwrote, fails this. It returns why it does not
// match; errors are reading errors only.
func (d *DB) verifyLastFile(ctx context.Context, info *ltx.FileInfo, hdr ltx.Header, walFile io.ReaderAt, inRange map[uint32]int64) (reason string, err error) {
	desc := remote.FileDesc(info.Level, info.MinTXID, info.MaxTXID)
	lockPgno := ltx.LockPgno(hdr.PageSize)
	want := map[uint32]int64{}
	for pgno, off := range inRange {
		if pgno <= hdr.Commit && pgno != lockPgno {
			want[pgno] = off
		}
	}
	rc, err := d.client.OpenLTXFile(ctx, info.Level, info.MinTXID, info.MaxTXID, 0, 0)
	if err != nil {
		return "", fmt.Errorf("read %s to verify it against the WAL: %w", desc, err)
	}
	defer rc.Close()
	src := &errReader{r: rc}
	dec := ltx.NewDecoder(bufio.NewReaderSize(src, 256<<10))
	undecodable := func(err error) (string, error) {
		if src.err != nil {
			return "", fmt.Errorf("read %s to verify it against the WAL: %w", desc, src.err)
		}
		return fmt.Sprintf("the replica's last file %s cannot be decoded: %v", desc, err), nil
	}
	if err := dec.DecodeHeader(); err != nil {
		return undecodable(err)
	}
	page := make([]byte, hdr.PageSize)
	frame := make([]byte, hdr.PageSize)
	var seen, extra uint32
	for {
		var ph ltx.PageHeader
		if err := dec.DecodePage(&ph, page); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return undecodable(err)
		}
		if ph.Pgno%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return "", err
			}
		}
		off, ok := want[ph.Pgno]
		if !ok {
			extra++
			continue
		}
		seen++
		if _, err := walFile.ReadAt(frame, off+wal.FrameHeaderSize); err != nil {
			return "", fmt.Errorf("read page %d from WAL %s at offset %d: %w", ph.Pgno, d.walPath, off, err)
		}
		if !bytes.Equal(page, frame) {
			return fmt.Sprintf("page %d of the replica's last file %s differs from its frame at WAL offset %d: "+
				"the file was made from frames SQLite did not commit", ph.Pgno, desc, off), nil
		}
	}
	if err := dec.Close(); err != nil {
		return undecodable(err)
	}
	if seen != uint32(len(want)) {
		return fmt.Sprintf("the replica's last file %s lacks %d of the %d pages the WAL has in its range",
			desc, uint32(len(want))-seen, len(want)), nil
	}
	total := hdr.Commit
	if lockPgno <= hdr.Commit {
		total--
	}
	if extra > 0 && seen+extra != total {
		return fmt.Sprintf("the replica's last file %s holds %d pages that have no frame in its WAL range and is not a full snapshot",
			desc, extra), nil
	}
	return "", nil
}

// errReader remembers the first error of r other than io.EOF, so that a
// decoding failure caused by the transport is told apart from a bad file.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && e.err == nil {
		e.err = err
	}
	return n, err
}
