package writer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/litestream-go/litestream/writer/wal"
)

// Checkpoint runs a checkpoint. It never copies a frame that is neither
// uploaded nor staged into the database: the pin's view is uploaded (I2) and
// no checkpoint backfills past it (F1, F2 in sync.go).
//
// Normally it is a passive checkpoint, which takes no write lock and waits
// for nobody. When it leaves the log fully backfilled, the pin is renewed so
// that it no longer holds a read-mark slot: the application's next write may
// then restart the log from its beginning instead of growing it.
//
// When writers never pause, that chance is never taken: a passive checkpoint
// already ran in this generation of the log and the log still holds
// MinCheckpointPageN frames or more. Then the checkpoint restarts the log by
// force (forceRestart), blocking writers only while it stages what was
// committed since the last sync and backfills it. After a restart, a WAL
// file larger than TruncatePageN pages is truncated when that takes no wait.
func (d *DB) Checkpoint(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.opened || d.closed {
		return fmt.Errorf("checkpoint %s: database is not open", d.path)
	}
	err := d.checkpoint(ctx)
	if err != nil {
		d.updateStatus(func(s *Status) { s.LastError = err.Error() })
	}
	return err
}

func (d *DB) checkpoint(ctx context.Context) error {
	if !d.pinCovered {
		// Nothing uploaded since Open yet: sync first, so the pin's view
		// is uploaded before anything is backfilled.
		if err := d.sync(ctx); err != nil {
			return err
		}
		if !d.pinCovered {
			return nil // an empty database: nothing to checkpoint
		}
	}
	if d.pos.hasWAL && d.ckptGen == d.pos.hdr.Salts() && d.pos.Frames >= int64(d.opts.MinCheckpointPageN) {
		return d.forceRestart(ctx)
	}
	logFrames, backfilled, err := d.passive(ctx, CheckpointPassive)
	if err != nil {
		return err
	}
	if logFrames > 0 && backfilled == logFrames {
		if err := d.repin(ctx); err != nil {
			return err
		}
	}
	return d.maybeTruncate(ctx)
}

// passive runs a passive checkpoint on d.ctl and records it under mode
// (CheckpointRestart when the write lock is held for a forced restart).
func (d *DB) passive(ctx context.Context, mode string) (logFrames, backfilled int64, err error) {
	var busy int64
	start := time.Now()
	err = d.ctl.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logFrames, &backfilled)
	d.observeCheckpoint(mode, start, err)
	if err != nil {
		return 0, 0, fmt.Errorf("checkpoint %s: %w", d.path, err)
	}
	if logFrames < 0 {
		// Another connection is checkpointing (SQLITE_BUSY on the
		// checkpoint lock): nothing was done here.
		return -1, -1, nil
	}
	now := time.Now()
	d.lastCheckpoint = now
	d.ckptFrames = backfilled
	if d.pos.hasWAL {
		d.ckptGen = d.pos.hdr.Salts()
	}
	d.updateStatus(func(s *Status) { s.LastCheckpoint = now })
	d.log.Debug("checkpoint", "log", logFrames, "backfilled", backfilled)
	return logFrames, backfilled, nil
}

// forceRestart makes the application's next write restart the log although
// writers never pause, without writing to the database and without letting
// a frame be backfilled (and then overwritten) before it is staged:
//
//  1. A sync uploads what is committed (writers go on) and a passive
//     checkpoint backfills it (writers go on).
//  2. BEGIN IMMEDIATE on d.lock takes SQLite's write lock: from here no
//     transaction commits (writers wait, up to their busy timeout).
//  3. What was committed since step 1 is staged (not uploaded: the upload
//     waits until writers run again). Every frame up to mxFrame is now
//     uploaded or staged.
//  4. Our read transactions end, and a passive checkpoint backfills
//     everything (unless an application reader still needs older frames).
//  5. The pin begins again: with nBackfill == mxFrame it takes read slot 0
//     and reads only the database file (F2), so it holds no mark that
//     forbids a restart.
//  6. ROLLBACK releases the write lock. The application's next write finds
//     the log fully backfilled and no reader in slots 1..N-1: it restarts
//     the log (walRestartLog).
//  7. The staged file is uploaded; until then it is d.pending with pinned
//     set (the pin, not d.spare, holds its state) and d.pinCovered false.
//
// Writers wait only through steps 3 to 6: a few milliseconds of staging and
// the checkpoint of those frames (with its fsyncs).
func (d *DB) forceRestart(ctx context.Context) (err error) {
	// Step 1.
	if err := d.sync(ctx); err != nil {
		return err
	}
	if _, _, err := d.passive(ctx, CheckpointPassive); err != nil {
		return err
	}
	// Step 2. (While BEGIN IMMEDIATE waits, we hold nothing.)
	if _, err := d.lock.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		if isBusy(err) {
			d.log.Debug("forced WAL restart skipped: the application holds the write lock", "err", err)
			return nil
		}
		return fmt.Errorf("checkpoint %s: take the write lock: %w", d.path, err)
	}
	start := time.Now()
	locked := true
	unlock := func() {
		if locked {
			d.endRead(&d.lock)
			locked = false
			held := time.Since(start)
			d.updateStatus(func(s *Status) {
				s.ForcedRestarts++
				s.LongestWriteLock = max(s.LongestWriteLock, held)
			})
		}
	}
	defer unlock()
	if err := d.step(ctx, "locked"); err != nil {
		return err
	}

	// Step 3.
	if err := d.beginRead(ctx, &d.spare); err != nil {
		return err
	}
	pl, err := d.retryPlan(ctx)
	if err != nil {
		d.endRead(&d.spare)
		return err
	}
	if pl.snapshot {
		// Continuity was lost: a snapshot is too big to stage while
		// writers wait. The next sync writes it.
		d.endRead(&d.spare)
		return nil
	}
	var p *pending
	if len(pl.pages) > 0 {
		if p, err = d.stage(ctx, pl); err != nil {
			// Without a staged copy the frames must stay in the log.
			d.endRead(&d.spare)
			return err
		}
		p.pinned = true
	}
	if err := d.step(ctx, "staged"); err != nil {
		d.endRead(&d.spare)
		return err
	}

	// Step 4.
	d.endRead(&d.spare)
	d.endRead(&d.pin)
	// Another connection's checkpoint (the application's automatic one,
	// running after its last commit) holds the checkpoint lock for a
	// moment: try again, briefly, rather than give up the restart.
	var logFrames, backfilled int64
	var ckErr error
	for attempt := 0; attempt < 20; attempt++ {
		logFrames, backfilled, ckErr = d.passive(ctx, CheckpointRestart)
		if ckErr != nil || logFrames >= 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := d.step(ctx, "checkpointed"); err != nil {
		ckErr = errors.Join(ckErr, err)
	}

	// Step 5. The pin must be held again whatever happened above (I1).
	if p == nil {
		d.advance(pl) // nothing new: everything up to mxFrame is uploaded
	} else {
		d.pending = p
		d.pinCovered = false
		d.updateStatus(func(s *Status) { s.Pending = true })
	}
	// Not under ctx: a cancelled context (Close during a forced restart)
	// must not leave the writer without a pin; with the write lock held
	// nothing can keep the read transaction from beginning but an I/O
	// error.
	err = d.step(ctx, "pin")
	if err == nil {
		err = d.beginRead(context.Background(), &d.pin)
	}
	if err != nil {
		// Without a pin the application may backfill and restart the log
		// at will, so frames committed from now on may be gone before the
		// next sync reads them: the next sync begins a new pin and writes
		// a snapshot (I4, I7). snapshotNext stays set until a snapshot is
		// uploaded; uploading the staged file does not clear it.
		d.pinCovered = false
		d.snapshotNext = true
		return errors.Join(ckErr, err)
	}

	// Step 6.
	unlock()
	d.log.Debug("forced WAL restart", "log", logFrames, "backfilled", backfilled, "stall", time.Since(start).Round(time.Microsecond))
	if ckErr != nil {
		return ckErr
	}

	// Step 7.
	if err := d.step(ctx, "unlocked"); err != nil {
		return err
	}
	if p != nil {
		if err := d.upload(ctx, p); err != nil {
			return err
		}
		d.commit(p)
	}
	return d.maybeTruncate(ctx)
}

// retryPlan plans a sync on the read transaction d.spare holds, retrying
// (with a new transaction) while the log and its index disagree (I6).
func (d *DB) retryPlan(ctx context.Context) (pl *plan, err error) {
	err = d.retryUnsettled(ctx, "checkpoint", func() error {
		d.endRead(&d.spare)
		return d.beginRead(ctx, &d.spare)
	}, func() error {
		pl, err = d.plan(ctx)
		return err
	})
	return pl, err
}

// maybeTruncate truncates the WAL file when it is larger than TruncatePageN
// pages and the log has just restarted with nothing new in it, with a
// TRUNCATE checkpoint that waits for nothing (busy timeout 0): it fails at
// once if the application holds the write lock or a reader needs the log.
// It is safe for the frames we hold: it truncates only when every frame is
// backfilled, and our pin in read slot 0 keeps it from backfilling any frame
// committed after the pin began (F2), which may not be uploaded yet.
func (d *DB) maybeTruncate(ctx context.Context) error {
	if d.pending != nil || !d.pinCovered {
		return nil
	}
	fi, err := os.Stat(d.walPath)
	if err != nil || fi.Size() < wal.HeaderSize+int64(d.opts.TruncatePageN)*(wal.FrameHeaderSize+int64(d.pageSize)) {
		return nil
	}
	x, err := d.readIndex()
	if err != nil || x.MaxFrame != x.Backfilled {
		return nil
	}
	if _, err := d.ctl.ExecContext(ctx, `PRAGMA busy_timeout=0`); err != nil {
		return fmt.Errorf("checkpoint %s: %w", d.path, err)
	}
	defer d.ctl.ExecContext(context.Background(), fmt.Sprintf(`PRAGMA busy_timeout=%d`, d.opts.BusyTimeout.Milliseconds()))
	var busy, logFrames, backfilled int64
	start := time.Now()
	err = d.ctl.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &backfilled)
	d.observeCheckpoint(CheckpointTruncate, start, err)
	if err != nil && !isBusy(err) {
		return fmt.Errorf("truncate WAL %s: %w", d.walPath, err)
	}
	if err == nil && busy == 0 {
		d.log.Info("WAL truncated", "size", fi.Size(), "truncate_page_n", d.opts.TruncatePageN)
	}
	return nil
}

// isBusy reports whether err is SQLite's SQLITE_BUSY (or SQLITE_LOCKED).
func isBusy(err error) bool {
	var serr sqlite3.Error
	return errors.As(err, &serr) && (serr.Code == sqlite3.ErrBusy || serr.Code == sqlite3.ErrLocked)
}

// repin replaces the pin by a new read transaction if the log publishes no
// frame beyond the uploaded position; otherwise the next sync moves the pin.
// The wal-index is read after the new transaction began, so that
// transaction sees at most what the index publishes (I2).
func (d *DB) repin(ctx context.Context) error {
	if d.pending != nil {
		return nil // d.spare holds the pending file's transaction
	}
	if err := d.beginRead(ctx, &d.spare); err != nil {
		return err
	}
	v, err := d.openLog()
	if err != nil {
		d.endRead(&d.spare)
		if isUnsettled(err) {
			return nil // the next sync sorts it out
		}
		return err
	}
	defer v.close()
	if !v.ok || !d.pos.hasWAL || !v.hdr.SameGeneration(d.pos.hdr) ||
		int64(v.idx.MaxFrame) != d.pos.Frames || v.idx.FrameSum != d.pos.Checksum {
		d.endRead(&d.spare)
		return nil
	}
	d.swapPin()
	return nil
}

// needCheckpoint reports whether the WAL holds enough frames not yet
// checkpointed, or held some for long enough.
func (d *DB) needCheckpoint() bool {
	pending := d.pos.Frames - d.ckptFrames
	if pending <= 0 {
		return false
	}
	return pending >= int64(d.opts.MinCheckpointPageN) ||
		(d.opts.CheckpointInterval > 0 && time.Since(d.lastCheckpoint) >= d.opts.CheckpointInterval)
}

// Start runs the background loop until ctx is done or Close is called: every
// MonitorInterval it wakes, syncs when SyncInterval has passed since the last
// sync, and then checkpoints when the WAL holds more than MinCheckpointPageN
// frames not yet checkpointed or CheckpointInterval has passed. Errors are
// logged and kept in Status; the loop goes on (the frames stay in the WAL and
// the next sync retries). Beside it run compaction with retention, and
// scheduled snapshots, in goroutines of their own (maintain.go). Start does
// nothing if the DB is not open or the loop already runs.
func (d *DB) Start(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.loopMu.Lock()
	defer d.loopMu.Unlock()
	if !d.opened || d.closed || d.loopCancel != nil {
		return
	}
	if d.lastCheckpoint.IsZero() {
		d.lastCheckpoint = time.Now()
	}
	ctx, cancel := context.WithCancel(ctx)
	d.loopCancel = cancel
	d.loopDone = make(chan struct{})
	go d.loop(ctx, d.loopDone)
	d.startMaintenance(ctx)
}

// stopLoop cancels the background loop and waits for it. It does not take
// d.mu, which the loop holds through a sync or checkpoint: the cancellation
// interrupts what the loop is doing (an upload, a wait for the write lock)
// instead of waiting for it to finish.
func (d *DB) stopLoop() {
	d.loopMu.Lock()
	cancel, done := d.loopCancel, d.loopDone
	d.loopMu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
	d.bg.Wait() // compaction, retention and snapshots (maintain.go)
}

func (d *DB) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	ticker := time.NewTicker(d.opts.MonitorInterval)
	defer ticker.Stop()
	var lastSync time.Time
	// Ticks jitter; a sync due within half a tick is taken now rather than
	// a whole tick later.
	slack := d.opts.MonitorInterval / 2
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticker.C:
			if now.Sub(lastSync) < d.opts.SyncInterval-slack {
				continue
			}
			lastSync = now
		}
		if err := d.Sync(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			d.log.Error("sync failed", "err", err)
			continue
		}
		d.mu.Lock()
		var err error
		if d.opened && !d.closed && d.needCheckpoint() {
			err = d.checkpoint(ctx)
			if err != nil {
				d.updateStatus(func(s *Status) { s.LastError = err.Error() })
			}
		}
		d.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			d.log.Error("checkpoint failed", "err", err)
		}
	}
}
