package writer

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/ltxframe"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/writer/wal"
)

// snapState is the database state a snapshot copies: the uploaded TXID and
// where each of its pages lives (see I5 in sync.go).
type snapState struct {
	txid     ltx.TXID
	commit   uint32
	pageSize uint32
	hasWAL   bool
	hdr      wal.Header
	pages    map[uint32]int64
}

// Snapshot writes a full snapshot of the database at the current TXID to
// level 9 and returns it; nil (and no error) when the newest snapshot already
// covers the current TXID or the database is empty.
//
// Consistency without blocking the application: a read transaction is begun
// on a connection of its own, then a sync uploads everything committed up to
// the end of the log (I2's order: the transaction sees at most what the sync
// read). Until the snapshot is streamed, that transaction keeps every
// checkpoint from backfilling a frame past what it sees (F1, F2), so the
// pages the snapshot takes from the database file are the ones at the
// snapshot's TXID, and the pages written since are read from their frames,
// exactly as a sync's snapshot does (I5, readPage). The writer's lock is held
// only for the sync; the copy and upload run while the writer keeps syncing,
// and the application never waits (the transaction takes no write lock).
func (d *DB) Snapshot(ctx context.Context) (*ltx.FileInfo, error) {
	d.snapMu.Lock()
	defer d.snapMu.Unlock()
	snaps, err := d.client.LTXFiles(ctx, remote.SnapshotLevel, 0)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: list snapshots: %w", d.path, err)
	}
	var have ltx.TXID
	for _, s := range snaps {
		have = max(have, s.MaxTXID)
	}
	for attempt := 0; ; attempt++ {
		info, err := d.snapshotOnce(ctx, have)
		if errors.Is(err, errRestarted) && attempt < 3 {
			d.log.Debug("WAL restarted during snapshot; retrying")
			continue
		}
		return info, err
	}
}

func (d *DB) snapshotOnce(ctx context.Context, have ltx.TXID) (*ltx.FileInfo, error) {
	start := time.Now()
	st, conn, err := d.beginSnapshot(ctx, have)
	if conn != nil {
		defer func() {
			d.endRead(&conn)
			conn.Close()
		}()
	}
	if err != nil || st == nil {
		return nil, err
	}

	// The state's creation time is that of the file that uploaded it, so
	// that point-in-time restore by timestamp picks the snapshot exactly
	// when it picks that TXID.
	ts := time.Now()
	if l0, err := d.client.LTXFiles(ctx, remote.L0, st.txid); err == nil {
		for _, f := range l0 {
			if f.MaxTXID == st.txid && !f.CreatedAt.IsZero() {
				ts = f.CreatedAt
			}
		}
	}

	desc := remote.FileDesc(remote.SnapshotLevel, 1, st.txid)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		err := d.streamSnapshot(ctx, pw, st, ts)
		pw.CloseWithError(err)
		errc <- err
	}()
	info, werr := d.client.WriteLTXFile(ctx, remote.SnapshotLevel, 1, st.txid, pr)
	pr.CloseWithError(errors.New("upload ended"))
	if werr != nil {
		cancel()
	}
	if serr := <-errc; serr != nil {
		if errors.Is(serr, errRestarted) {
			return nil, serr
		}
		return nil, fmt.Errorf("snapshot %s: write %s: %w", d.path, desc, serr)
	}
	if werr != nil {
		return nil, fmt.Errorf("snapshot %s: upload %s: %w", d.path, desc, werr)
	}
	d.updateStatus(func(s *Status) { s.Snapshots++ })
	d.log.Info("snapshot uploaded", "level", remote.SnapshotLevel, "min_txid", info.MinTXID.String(), "max_txid", info.MaxTXID.String(),
		"pages", st.commit, "size", info.Size, "duration", time.Since(start).Round(time.Millisecond))
	return info, nil
}

// beginSnapshot begins the snapshot's read transaction, syncs, and returns
// the state to copy (nil when there is nothing to do) and the connection
// holding the transaction, which the caller ends and closes.
func (d *DB) beginSnapshot(ctx context.Context, have ltx.TXID) (*snapState, *sql.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.opened || d.closed {
		return nil, nil, fmt.Errorf("snapshot %s: database is not open", d.path)
	}
	conn, err := d.sqldb.Conn(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot %s: %w", d.path, err)
	}
	if err := d.configure(ctx, conn); err != nil {
		conn.Close()
		return nil, nil, err
	}
	if err := d.beginRead(ctx, &conn); err != nil {
		conn.Close()
		return nil, nil, err
	}
	err = d.syncAndRecord(ctx)
	if err != nil {
		return nil, conn, fmt.Errorf("snapshot %s: sync: %w", d.path, err)
	}
	if d.txid == 0 || d.pos.commit == 0 || d.txid <= have {
		return nil, conn, nil
	}
	return &snapState{
		txid:     d.txid,
		commit:   d.pos.commit,
		pageSize: d.pageSize,
		hasWAL:   d.pos.hasWAL,
		hdr:      d.pos.hdr,
		pages:    maps.Clone(d.pages),
	}, conn, nil
}

// streamSnapshot encodes the snapshot of st into w. Before the file is
// finished it checks that the log was not restarted while frames were
// copied (I5), so a torn copy is never completed, let alone uploaded.
func (d *DB) streamSnapshot(ctx context.Context, w io.Writer, st *snapState, ts time.Time) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	enc, err := ltxframe.NewEncoder(bw)
	if err != nil {
		return err
	}
	enc.SetSpillDir(d.opts.StagingDir)
	defer enc.Cleanup()
	if err := enc.EncodeHeader(ltx.Header{
		Version:   ltx.Version,
		Flags:     ltx.HeaderFlagNoChecksum,
		PageSize:  st.pageSize,
		Commit:    st.commit,
		MinTXID:   1,
		MaxTXID:   st.txid,
		Timestamp: ts.UnixMilli(),
	}); err != nil {
		return err
	}
	var walFile *os.File
	if len(st.pages) > 0 {
		if walFile, err = os.Open(d.walPath); err != nil {
			return fmt.Errorf("open WAL %s: %w", d.walPath, err)
		}
		defer walFile.Close()
	}
	buf := make([]byte, st.pageSize)
	lockPgno := ltx.LockPgno(st.pageSize)
	for pgno := uint32(1); pgno <= st.commit; pgno++ {
		if pgno == lockPgno {
			continue
		}
		if pgno%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := d.readPage(walFile, st.pages, pgno, buf); err != nil {
			return err
		}
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, buf); err != nil {
			return err
		}
	}
	if st.hasWAL && len(st.pages) > 0 {
		if err := d.checkSameGeneration(st.hdr); err != nil {
			return err
		}
	}
	if err := enc.Close(); err != nil {
		return err
	}
	return bw.Flush()
}
