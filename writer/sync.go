package writer

// How the writer keeps continuity with the WAL without writing to the
// database. The facts from SQLite's wal.c this relies on:
//
//  F1. A reader holding read-mark slot i >= 1 with mark M sees frames up to
//      at least M; no checkpoint copies ("backfills") a frame > M into the
//      database while it holds the slot (walCheckpoint's mxSafeFrame), and
//      the log cannot be restarted or truncated, because both need an
//      exclusive lock on every slot 1..N-1 (walRestartLog, walCheckpoint).
//  F2. A reader holding slot 0 began when every frame was backfilled
//      (nBackfill == mxFrame) and reads only the database file. While it
//      holds the slot, no checkpoint backfills anything (backfill needs slot
//      0 exclusively). The log may be restarted, but only while nothing new
//      was appended since the reader began: appended frames cannot be
//      backfilled, and a restart needs nBackfill == mxFrame.
//  F3. Within one generation of the log (same salts) committed frames are
//      never overwritten; every restart increments salt1 and draws a new
//      salt2 (walRestartHdr), and a fresh log gets random salts.
//  F4. A transaction is committed when it is published: walFrames writes
//      (and syncs) its frames, then rewrites the wal-index header (the -shm
//      file; copy 1, then copy 0, with a checksum) with mxFrame at its commit
//      frame. A read transaction sees exactly the frames up to the mxFrame
//      of the header it read when it began. Frames after mxFrame are no part
//      of the log, even when they form a valid checksum chain ending in a
//      commit frame: a writer killed inside COMMIT leaves exactly that, and
//      the next writer overwrites them (it appends at mxFrame+1).
//  F5. Within a generation mxFrame never decreases (recovery, F6, re-reads
//      every valid frame, which includes every published one). A restart
//      rewrites the index with mxFrame 0 and the new salts before the new
//      generation's WAL header and first frame are written (and a writer may
//      roll back or die in between): mxFrame 0 means an empty log whatever
//      the WAL file holds; mxFrame > 0 means the WAL file's header carries
//      the index's salts. The header is only ever written at a commit, by a
//      restart, or by recovery.
//  F6. A wal-index header whose copies differ or whose checksum fails (a
//      writer killed while writing it, or writing it right now) makes the
//      next read transaction take the write lock and rebuild the index from
//      the log (walIndexReadHdr, walIndexRecover). Recovery publishes every
//      valid committed frame, a killed writer's included: from then on
//      SQLite shows that transaction.
//
// The writer keeps these invariants:
//
//  I1. While open it always holds a read transaction (the pin, on d.pin).
//  I2. A sync begins a new read transaction on d.spare BEFORE it reads the
//      wal-index header, and reads the log exactly up to that header's
//      mxFrame (I6). By F4/F5 the transaction sees at most that (in the same
//      generation mxFrame only grows; a transaction in slot 0 sees only the
//      database file), so everything it can see is at or below the end of
//      what the sync reads. Only after the sync's file is uploaded does the
//      new transaction replace the pin (and the old one end). Hence, once
//      the first sync is done, everything visible to the pin is uploaded
//      (d.pinCovered).
//  I3. By F1/F2 and I2, no checkpoint (ours or the application's) backfills a
//      frame that is not uploaded, and frames after what we uploaded stay in
//      the log until we read them: with the pin in a slot >= 1 the log cannot
//      restart; with the pin in slot 0 it can restart only if the old
//      generation ended within what the pin saw, which is uploaded.
//  I4. Therefore, when a sync finds new salts while d.pinCovered holds, the
//      old generation was read to its end and the new one continues it from
//      its first frame. Without d.pinCovered (first sync after Open, or a
//      resume point that is not the end of the log) a new generation means
//      continuity is lost and the sync writes a full snapshot. (A snapshot
//      of an empty log records no position; Open then proves the resume
//      point by the database file's content instead: fingerprint.go.)
//  I5. A snapshot reads each page from its newest committed frame of the
//      current generation at or below the position, else from the database
//      file. Under I3 the database file then holds exactly the older
//      content: backfill never runs past what the new transaction can see.
//      The one race, a restart (F2) while a snapshot copies frames, is caught
//      by re-reading the log header after staging (errRestarted).
//  I6. Only published transactions are read (published.go). Every read of
//      the log (the sync's plan, repin, resume, the empty-WAL check) is
//      bounded by the wal-index header read after its read transaction
//      began, and must end exactly at frame mxFrame with the index's
//      checksum, salts and database size; staging and snapshots read only
//      frames such a read found. Otherwise (a torn index, a restart in
//      between, a log that does not hold what the index publishes) the read
//      transaction is begun again, which also repairs a torn index (F6), and
//      after logAttempts the operation fails and uploads nothing. So every
//      uploaded position is a published commit boundary, and by F3/F5 stays
//      one. A replica whose position is past mxFrame or off the published
//      chain (written by a replicator that read past mxFrame) is not
//      continued: Open checks the last file's range and pages against the
//      published log (matchWAL, verifyLastFile), and a sync that finds its
//      position so writes a snapshot instead of getting stuck.
//  I7. The one exception to I2's order, a forced restart (checkpoint.go),
//      replaces the pin before an upload, but only while it holds SQLite's
//      write lock (so nothing commits) and after every frame up to mxFrame
//      is uploaded or staged in a complete local file. Until that file is
//      uploaded it is d.pending with pinned set, d.pinCovered is false, and
//      every sync uploads it before anything else, so "covered" still
//      means uploaded by the time anything relies on it. If the process
//      dies first, the staged file is lost with the frames it held; the
//      next Open finds a new generation and writes a snapshot (I4): no
//      state is lost, the granularity of those transactions is. The pin is
//      begun again whatever happened before (not under the caller's
//      context: Close cancels it); if even that fails, I1 is broken until
//      the next sync begins a pin, the application may restart the log in
//      between, and so snapshotNext is set and stays set until a snapshot
//      is uploaded (uploading the staged file neither clears it nor makes
//      the pin "covered").

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/writer/wal"
)

// errRestarted reports that the log was restarted while a file was staged
// from it; the sync is retried.
var errRestarted = errors.New("WAL restarted while staging")

// plan is what one sync will write, computed from the log.
type plan struct {
	snapshot bool
	hasWAL   bool
	hdr      wal.Header
	start    wal.Position
	end      wal.Position
	// pages maps each page with a committed frame in (start, end] to its
	// newest frame's offset.
	pages map[uint32]int64
	// newGen: pages replaces d.pages instead of extending it.
	newGen  bool
	commit  uint32
	walSize int64
}

// pending is a file whose upload has not completed: staged in the staging
// directory, or (path "") streamed, encoded again from the log for every
// upload attempt. While it exists, d.spare holds the read transaction begun
// for it (I2).
type pending struct {
	path     string
	txid     ltx.TXID
	plan     *plan
	ts       int64 // the header's timestamp (Unix ms)
	snapshot bool
	// pinned: staged by a forced restart (checkpoint.go), whose read
	// transaction ended when the pin began again; the pin holds its state.
	pinned  bool
	size    int64     // bytes of the file, for the log
	started time.Time // when staging began, for the log
	// fingerprint is set for a snapshot of an empty log (fingerprint.go).
	fingerprint *fingerprint
}

// Sync uploads the transactions committed since the last sync as one L0 file.
// It writes nothing if nothing changed. The first sync, and any sync after
// continuity with the WAL was lost, writes a full snapshot.
func (d *DB) Sync(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.opened || d.closed {
		return fmt.Errorf("sync %s: database is not open", d.path)
	}
	return d.syncAndRecord(ctx)
}

// syncAndRecord runs a sync and records its outcome in the metrics and the
// status. The caller holds d.mu.
func (d *DB) syncAndRecord(ctx context.Context) error {
	start := time.Now()
	err := d.sync(ctx)
	d.observeSync(start, err)
	d.recordSync(err)
	return err
}

// recordSync puts the outcome of a sync in the status.
func (d *DB) recordSync(err error) {
	d.updateStatus(func(s *Status) {
		if err != nil {
			s.LastError = err.Error()
		} else {
			s.LastError = ""
			s.LastSync = time.Now()
		}
		s.Pending = d.pending != nil
	})
}

func (d *DB) sync(ctx context.Context) error {
	if d.pending != nil {
		err := d.upload(ctx, d.pending)
		switch {
		case errors.Is(err, errRestarted) && d.pending == nil:
			// A streamed file that could not be encoded again was
			// abandoned (abandonStreamed): plan afresh below.
		case err != nil:
			return err
		default:
			d.commit(d.pending)
		}
	}
	restarts := 0
	return d.retryUnsettled(ctx, "sync", nil, func() error {
		for {
			err := d.syncOnce(ctx)
			if errors.Is(err, errRestarted) && restarts < 3 {
				restarts++
				d.log.Debug("WAL restarted during staging; retrying")
				continue
			}
			return err
		}
	})
}

func (d *DB) syncOnce(ctx context.Context) error {
	if err := d.beginRead(ctx, &d.spare); err != nil {
		return err
	}
	pl, err := d.plan(ctx)
	if err != nil {
		d.endRead(&d.spare)
		return err
	}
	if pl.snapshot && pl.commit == 0 {
		// An empty database (no pages yet): nothing to write.
		d.swapPin()
		d.pinCovered = false
		return nil
	}
	if !pl.snapshot && len(pl.pages) == 0 {
		d.advance(pl)
		d.swapPin()
		d.pinCovered = true
		return nil
	}
	p, err := d.stage(ctx, pl)
	if isNoSpace(err) {
		// The staging directory's volume is full: upload straight from the
		// log rather than wait for space the growing log may take first.
		d.log.Warn("staging directory is full; uploading straight from the WAL", "err", err)
		p, err = d.streamed(pl), nil
	}
	if err != nil {
		d.endRead(&d.spare)
		return err
	}
	d.pending = p
	if err := d.upload(ctx, p); err != nil {
		return err
	}
	d.commit(p)
	return nil
}

// swapPin makes the transaction on d.spare the pin and ends the old one.
func (d *DB) swapPin() {
	d.pin, d.spare = d.spare, d.pin
	d.endRead(&d.spare)
}

// advance moves the uploaded position to the end of pl.
func (d *DB) advance(pl *plan) {
	if pl.newGen {
		d.pages = map[uint32]int64{}
		d.ckptFrames = 0
	}
	for pgno, off := range pl.pages {
		d.pages[pgno] = off
	}
	d.pos = position{hasWAL: pl.hasWAL, hdr: pl.hdr, Position: pl.end, commit: pl.commit}
	d.updateStatus(func(s *Status) {
		s.WALSize = pl.walSize
		s.WALFrames = pl.end.Frames
		s.Commit = pl.commit
		s.PageSize = d.pageSize
	})
}

// commit records an uploaded file: the TXID and position move forward and
// the read transaction begun for it becomes the pin.
func (d *DB) commit(p *pending) {
	d.txid = p.txid
	d.advance(p.plan)
	if !p.pinned {
		d.swapPin()
		d.pinCovered = true
	} else {
		// A forced restart's file: the pin it began again sees exactly
		// its end, unless that pin could not be begun (snapshotNext).
		d.pinCovered = !d.snapshotNext
	}
	if p.snapshot {
		d.snapshotNext = false
	}
	d.pending = nil
	if p.fingerprint != nil {
		d.saveFingerprint(p.fingerprint)
	}
	if p.path != "" {
		if err := os.Remove(p.path); err != nil {
			d.log.Warn("remove staged file", "path", p.path, "err", err)
		}
	}
	d.updateStatus(func(s *Status) {
		s.TXID = p.txid
		s.Pending = false
		s.LastUpload = time.Now()
		if p.snapshot {
			s.Snapshots++
		}
	})
	// One line per uploaded file: a sync's file at debug, a full snapshot
	// (first sync, lost continuity) at info like every other snapshot.
	if p.snapshot {
		d.log.Info("snapshot uploaded", "level", remote.L0, "min_txid", p.txid.String(), "max_txid", p.txid.String(),
			"pages", p.plan.commit, "size", p.size, "duration", time.Since(p.started).Round(time.Millisecond))
	} else {
		d.log.Debug("synced", "txid", p.txid.String(), "pages", len(p.plan.pages), "commit", p.plan.commit,
			"size", p.size, "duration", time.Since(p.started).Round(time.Millisecond))
	}
}

// readWALHeader opens the log and reads its header. A missing, short or
// invalid log is an empty one, as SQLite treats it (ok is false). The caller
// closes f when it is not nil.
func (d *DB) readWALHeader() (f *os.File, hdr wal.Header, size int64, ok bool, err error) {
	f, err = os.Open(d.walPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, hdr, 0, false, nil
	} else if err != nil {
		return nil, hdr, 0, false, fmt.Errorf("open WAL %s: %w", d.walPath, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, hdr, 0, false, fmt.Errorf("stat WAL %s: %w", d.walPath, err)
	}
	size = fi.Size()
	buf := make([]byte, wal.HeaderSize)
	if _, err := f.ReadAt(buf, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return f, hdr, size, false, nil
		}
		f.Close()
		return nil, hdr, 0, false, fmt.Errorf("read WAL header %s: %w", d.walPath, err)
	}
	hdr, err = wal.ParseHeader(buf)
	if err != nil {
		return f, wal.Header{}, size, false, nil
	}
	return f, hdr, size, true, nil
}

// plan reads the published log and decides what this sync writes. It must
// run after the new read transaction began (I2).
func (d *DB) plan(ctx context.Context) (*plan, error) {
	v, err := d.openLog()
	if err != nil {
		return nil, err
	}
	defer v.close()
	ok, hdr := v.ok, v.hdr
	pl := &plan{hasWAL: ok, hdr: hdr, walSize: v.size, pages: map[uint32]int64{}, snapshot: d.snapshotNext}
	if ok && hdr.PageSize != d.pageSize {
		// Only a database without pages can change its page size.
		d.log.Info("page size changed", "from", d.pageSize, "to", hdr.PageSize)
		d.pageSize = hdr.PageSize
		pl.snapshot = true
	}
	sameGen := ok && d.pos.hasWAL && hdr.SameGeneration(d.pos.hdr)
	if !pl.snapshot && !sameGen && !d.pinCovered {
		// I4: a new generation (or a vanished log) we cannot prove we read
		// the end of the previous one for.
		d.log.Info("WAL continuity lost; next file is a snapshot")
		pl.snapshot = true
	}
	if !pl.snapshot && sameGen && d.pos.Frames > int64(v.idx.MaxFrame) {
		// I6: the uploaded position lies past what SQLite publishes.
		d.log.Error("the replica holds WAL frames SQLite does not show as committed; next file is a snapshot",
			"uploaded_frames", d.pos.Frames, "published_frames", v.idx.MaxFrame)
		pl.snapshot = true
	}
	pl.newGen = pl.snapshot || !sameGen
	if ok {
		pl.start = wal.Start(hdr)
		if !pl.newGen {
			pl.start = d.pos.Position
		}
		collect := func(fr wal.Frame) error {
			pl.pages[fr.Pgno] = fr.Offset
			return ctx.Err()
		}
		pl.end, err = d.scan(v, pl.start, collect)
		if isUnsettled(err) && !pl.newGen {
			// I6: is the uploaded position on the published chain at all?
			// If the chain from the generation's start is intact and does
			// not pass through it, continuity is lost, not unsettled.
			on, cerr := d.onChain(v, d.pos.Position)
			if cerr != nil {
				return nil, cerr
			}
			if !on {
				d.log.Error("the replica's WAL position is not on the log SQLite publishes; next file is a snapshot",
					"offset", d.pos.Offset)
				pl.snapshot, pl.newGen = true, true
				pl.pages = map[uint32]int64{}
				pl.start = wal.Start(hdr)
				pl.end, err = d.scan(v, pl.start, collect)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	switch {
	case pl.end.Frames > 0:
		pl.commit = pl.end.Commit
	case pl.snapshot:
		if pl.commit, err = d.dbFilePages(); err != nil {
			return nil, err
		}
	default:
		pl.commit = d.pos.commit
	}
	return pl, nil
}

// onChain reports whether pos is a commit boundary of the published log v,
// whose checksum chain from the generation's start must be intact (else the
// log is unsettled).
func (d *DB) onChain(v *logView, pos wal.Position) (bool, error) {
	if _, err := d.scan(v, wal.Start(v.hdr), nil); err != nil {
		return false, err
	}
	if pos.Offset > v.idx.End() {
		return false, nil
	}
	got, err := wal.Scan(io.NewSectionReader(v.f, 0, pos.Offset), v.hdr, wal.Start(v.hdr), nil)
	if err != nil {
		return false, fmt.Errorf("read WAL %s: %w", d.walPath, err)
	}
	return got.Offset == pos.Offset && got.Checksum == pos.Checksum, nil
}

// dbFilePages returns the database size in pages according to the database
// file: the header's size field when valid (non-zero, and the version-valid-
// for number equals the change counter), else the file size.
func (d *DB) dbFilePages() (uint32, error) {
	fi, err := d.dbFile.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat database %s: %w", d.path, err)
	}
	if fi.Size() < 100 {
		return 0, nil
	}
	hdr := make([]byte, 100)
	if _, err := d.dbFile.ReadAt(hdr, 0); err != nil {
		return 0, fmt.Errorf("read database header %s: %w", d.path, err)
	}
	ps := uint32(binary.BigEndian.Uint16(hdr[16:]))
	if ps == 1 {
		ps = 65536
	}
	if ps != d.pageSize {
		d.log.Info("page size changed", "from", d.pageSize, "to", ps)
		d.pageSize = ps
	}
	n := binary.BigEndian.Uint32(hdr[28:])
	if n != 0 && binary.BigEndian.Uint32(hdr[24:]) == binary.BigEndian.Uint32(hdr[92:]) {
		return n, nil
	}
	return uint32(fi.Size() / int64(ps)), nil
}

// selectPages returns the pages of an incremental file in ascending order:
// those at or below commit, never the lock page.
func selectPages(pages map[uint32]int64, commit, lockPgno uint32) []uint32 {
	out := make([]uint32, 0, len(pages))
	for pgno := range pages {
		if pgno <= commit && pgno != lockPgno {
			out = append(out, pgno)
		}
	}
	slices.Sort(out)
	return out
}

// upload sends a staged file to level 0. The first file (TXID 1) is a full
// snapshot and is uploaded once, to level 0 only, as Litestream does: every
// reader starts from a file that begins at TXID 1 at any level, and the first
// level-9 snapshot comes from the snapshot schedule (firstSyncBase in
// maintain.go), so day one does not upload the database twice.
func (d *DB) upload(ctx context.Context, p *pending) error {
	return d.uploadFile(ctx, p, remote.L0)
}

func (d *DB) uploadFile(ctx context.Context, p *pending, level int) error {
	desc := remote.FileDesc(level, p.txid, p.txid)
	if p.path == "" {
		return d.uploadStreamed(ctx, p, level)
	}
	f, err := os.Open(p.path)
	if err != nil {
		return fmt.Errorf("upload %s: %w", desc, err)
	}
	defer f.Close()
	if _, err := d.client.WriteLTXFile(ctx, level, p.txid, p.txid, f); err != nil {
		return fmt.Errorf("upload %s: %w", desc, err)
	}
	return nil
}

// uploadStreamed encodes p from the log straight into its upload. If the log
// was restarted since p was planned (it cannot be encoded again, I5), p is
// abandoned: unless an earlier attempt did upload it after all, in which case
// it is committed as uploaded; either way no TXID ever gets two contents.
func (d *DB) uploadStreamed(ctx context.Context, p *pending, level int) error {
	desc := remote.FileDesc(level, p.txid, p.txid)
	upCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		err := d.encodeL0(upCtx, pw, p, "")
		pw.CloseWithError(err)
		errc <- err
	}()
	_, werr := d.client.WriteLTXFile(upCtx, level, p.txid, p.txid, pr)
	pr.CloseWithError(errors.New("upload ended"))
	if werr != nil {
		cancel()
	}
	eerr := <-errc
	if errors.Is(eerr, errRestarted) {
		return d.abandonStreamed(ctx, p, level)
	}
	if eerr != nil {
		return fmt.Errorf("upload %s: encode from WAL %s: %w", desc, d.walPath, eerr)
	}
	if werr != nil {
		return fmt.Errorf("upload %s: %w", desc, werr)
	}
	return nil
}

// abandonStreamed handles a streamed file that can no longer be encoded: if
// an earlier attempt uploaded it, that upload stands; otherwise the pending
// state is dropped and the next sync plans afresh from the log.
func (d *DB) abandonStreamed(ctx context.Context, p *pending, level int) error {
	files, err := d.client.LTXFiles(ctx, level, p.txid)
	if err != nil {
		return fmt.Errorf("upload %s: WAL restarted; list level %d: %w", remote.FileDesc(level, p.txid, p.txid), level, err)
	}
	for _, f := range files {
		if f.MinTXID == p.txid && f.MaxTXID == p.txid {
			return nil
		}
	}
	d.log.Info("WAL restarted before a streamed file was uploaded; planning it again", "txid", p.txid.String())
	d.pending = nil
	d.endRead(&d.spare)
	return errRestarted
}
