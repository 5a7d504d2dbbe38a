package writer

import (
	"context"
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
	reason, err := d.matchWAL(ctx, hdr)
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
	var last *ltx.FileInfo
	for level := 0; level <= remote.MaxLevel; level++ {
		files, err := d.client.LTXFiles(ctx, level, 0)
		if err != nil {
			return nil, fmt.Errorf("list replica level %d: %w", level, err)
		}
		for _, f := range files {
			if last == nil || f.MaxTXID > last.MaxTXID {
				last = f
			}
		}
	}
	return last, nil
}

func (d *DB) readRemoteHeader(ctx context.Context, info *ltx.FileInfo) (ltx.Header, error) {
	desc := remote.FileDesc(info.Level, info.MinTXID, info.MaxTXID)
	rc, err := d.client.OpenLTXFile(ctx, info.Level, info.MinTXID, info.MaxTXID, 0, ltx.HeaderSize)
	if err != nil {
		return ltx.Header{}, fmt.Errorf("read header of %s: %w", desc, err)
	}
	defer rc.Close()
	buf := make([]byte, ltx.HeaderSize)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return ltx.Header{}, fmt.Errorf("read header of %s: %w", desc, err)
	}
	var hdr ltx.Header
	if err := hdr.UnmarshalBinary(buf); err != nil {
		return ltx.Header{}, fmt.Errorf("decode header of %s: %w", desc, err)
	}
	return hdr, nil
}

// matchWAL continues from the WAL position recorded in hdr if the current log
// is the same generation (same salts) and its checksum chain is valid up to
// exactly that position, at a commit boundary. It returns why not otherwise.
func (d *DB) matchWAL(ctx context.Context, hdr ltx.Header) (reason string, err error) {
	if hdr.WALOffset == 0 {
		// A snapshot taken with an empty log (fingerprint.go).
		return d.resumeFromFingerprint(ctx, hdr)
	}
	if hdr.PageSize != d.pageSize {
		return fmt.Sprintf("page size %d differs from the database's %d", hdr.PageSize, d.pageSize), nil
	}
	f, walHdr, _, ok, err := d.readWALHeader()
	if err != nil {
		return "", err
	}
	if f != nil {
		defer f.Close()
	}
	if !ok {
		return "WAL is empty", nil
	}
	if walHdr.Salt1 != hdr.WALSalt1 || walHdr.Salt2 != hdr.WALSalt2 {
		return fmt.Sprintf("WAL salts %08x/%08x differ from the replica's %08x/%08x",
			walHdr.Salt1, walHdr.Salt2, hdr.WALSalt1, hdr.WALSalt2), nil
	}
	target := hdr.WALOffset + hdr.WALSize
	pages := map[uint32]int64{}
	pos, err := wal.Scan(io.NewSectionReader(f, 0, target), walHdr, wal.Start(walHdr), func(fr wal.Frame) error {
		pages[fr.Pgno] = fr.Offset
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read WAL %s: %w", d.walPath, err)
	}
	if pos.Offset != target {
		return fmt.Sprintf("WAL has no valid commit at offset %d (valid up to %d)", target, pos.Offset), nil
	}
	if pos.Frames > 0 && pos.Commit != hdr.Commit {
		return fmt.Sprintf("database size %d at offset %d differs from the replica's %d", pos.Commit, target, hdr.Commit), nil
	}
	end, err := wal.Scan(f, walHdr, pos, nil)
	if err != nil {
		return "", fmt.Errorf("read WAL %s: %w", d.walPath, err)
	}
	d.pos = position{hasWAL: true, hdr: walHdr, Position: pos, commit: hdr.Commit}
	d.pages = pages
	// The pin began before this read; if the replica ends where the log
	// ends, everything the pin sees is uploaded.
	d.pinCovered = end.Offset == pos.Offset
	return "", nil
}
