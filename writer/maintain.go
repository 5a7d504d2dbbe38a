package writer

import (
	"context"
	"time"

	"github.com/litestream-go/litestream/remote"
)

// startMaintenance starts the background compaction/retention and snapshot
// goroutines; they stop when ctx is done and are waited for by stopLoop.
// Called by Start with d.mu held.
func (d *DB) startMaintenance(ctx context.Context) {
	d.bg.Add(2)
	go func() {
		defer d.bg.Done()
		d.compactionLoop(ctx)
	}()
	go func() {
		defer d.bg.Done()
		d.snapshotLoop(ctx)
	}()
}

// nextAligned returns the first wall-clock multiple of iv after t (multiples
// since the zero time, which for intervals that divide a day are aligned to
// UTC midnight).
func nextAligned(t time.Time, iv time.Duration) time.Time {
	return t.Truncate(iv).Add(iv)
}

// compactionLoop runs each compaction level on multiples of its interval and
// retention every RetentionCheckInterval. Levels due at the same moment run
// in ascending order, so a level sees the output its lower level just wrote;
// each run catches its level fully up (Compact).
func (d *DB) compactionLoop(ctx context.Context) {
	levels := d.opts.Levels
	now := time.Now()
	due := make([]time.Time, len(levels))
	for i, iv := range levels {
		due[i] = nextAligned(now, iv)
	}
	retentionDue := now.Add(d.opts.RetentionCheckInterval)
	for {
		next := retentionDue
		for _, t := range due {
			if t.Before(next) {
				next = t
			}
		}
		timer := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		now := time.Now()
		for i := range levels {
			if now.Before(due[i]) {
				continue
			}
			due[i] = nextAligned(now, levels[i])
			if _, err := d.Compact(ctx, i+1); err != nil {
				if ctx.Err() != nil {
					return
				}
				d.log.Error("compaction failed", "level", i+1, "err", err)
			}
		}
		if !now.Before(retentionDue) {
			retentionDue = time.Now().Add(d.opts.RetentionCheckInterval)
			if _, err := d.EnforceRetention(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				d.log.Error("retention failed", "err", err)
			}
		}
	}
}

// snapshotLoop writes a snapshot on multiples of SnapshotInterval. It runs
// apart from compaction: a snapshot is database-sized and must not delay the
// small, frequent level-1 merges. The first level-9 snapshot waits for the
// first multiple at least one interval after the first sync's level-0 file
// (firstSyncBase): that file already holds the whole database, and a
// snapshot right after it would upload the database a second time.
//
// At start, a replica that has files but none starting at TXID 1 (no full
// copy: every restore fails) is snapshotted at once instead of at the next
// multiple. Litestream's daemon leaves a replica so when it deletes our
// first level-0 file (its level 1 covers that TXID) and its own start-up
// snapshot never lands.
func (d *DB) snapshotLoop(ctx context.Context) {
	iv := d.opts.SnapshotInterval
	if iv <= 0 {
		return
	}
	for first := true; ; first = false {
		wait := time.Until(nextAligned(time.Now(), iv))
		if first && d.lacksBase(ctx) {
			d.log.Warn("the replica has no file starting at TXID 1 (no full copy to restore from); snapshotting now")
			wait = 0
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		if base, ok := d.firstSyncBase(ctx); ok && time.Since(base) < iv {
			d.log.Debug("snapshot deferred: the first sync's full copy is recent", "created", base)
			continue
		}
		if _, err := d.Snapshot(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			d.log.Error("snapshot failed", "err", err)
		}
	}
}

// lacksBase reports whether the replica has files but none that starts at
// TXID 1 at any level. A failed listing reports false.
func (d *DB) lacksBase(ctx context.Context) bool {
	files, err := remote.ListAllUntimed(ctx, d.client)
	if err != nil || len(files) == 0 {
		return false
	}
	for _, f := range files {
		if f.MinTXID == 1 {
			return false
		}
	}
	return true
}

// firstSyncBase returns the creation time of the level-0 file starting at
// TXID 1 when the replica has no level-9 snapshot yet, i.e. when that file is
// the full copy every restore starts from. ok is false otherwise, and when
// the listing fails (the snapshot then runs, and reports its own error).
// The writer answers these listings from what it knows (known.go).
func (d *DB) firstSyncBase(ctx context.Context) (created time.Time, ok bool) {
	snaps, err := d.client.LTXFiles(ctx, remote.SnapshotLevel, 0)
	if err != nil || len(snaps) > 0 {
		return time.Time{}, false
	}
	base, err := firstSyncFile(ctx, d.client)
	if err != nil || base == nil {
		return time.Time{}, false
	}
	return base.CreatedAt, true
}
