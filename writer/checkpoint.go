package writer

import (
	"context"
	"fmt"
	"time"
)

// Checkpoint runs a passive checkpoint. It never copies a frame that is not
// uploaded into the database: the pin's view is uploaded (I2) and no
// checkpoint backfills past it (F1, F2 in sync.go). A passive checkpoint
// takes no write lock and waits for nobody.
//
// When the checkpoint leaves the log fully backfilled, the pin is renewed so
// that it no longer holds a read-mark slot: the application's next write may
// then restart the log from its beginning instead of growing it.
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
	var busy, logFrames, backfilled int64
	start := time.Now()
	err := d.ctl.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logFrames, &backfilled)
	d.observeCheckpoint(start, err)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", d.path, err)
	}
	now := time.Now()
	d.lastCheckpoint = now
	d.ckptFrames = backfilled
	d.updateStatus(func(s *Status) { s.LastCheckpoint = now })
	d.log.Debug("checkpoint", "log", logFrames, "backfilled", backfilled)
	if logFrames > 0 && backfilled == logFrames {
		if err := d.repin(ctx); err != nil {
			return err
		}
	}
	return nil
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
		time.Since(d.lastCheckpoint) >= d.opts.CheckpointInterval
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

func (d *DB) stopLoop() {
	d.mu.Lock()
	cancel, done := d.loopCancel, d.loopDone
	d.mu.Unlock()
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
