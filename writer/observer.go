package writer

import "time"

// Observer is told how each sync and each checkpoint went, so that a caller
// (the command line's metrics) can count them and time them without the
// writer knowing about any metrics library. Its methods run with the DB's
// lock held: they must return quickly and must not call back into the DB.
type Observer interface {
	// SyncDone follows every Sync (including those of the background loop),
	// whether or not it uploaded a file.
	SyncDone(elapsed time.Duration, err error)
	// CheckpointDone follows every checkpoint the writer runs.
	CheckpointDone(elapsed time.Duration, err error)
}

func (d *DB) observeSync(start time.Time, err error) {
	if d.opts.Observer != nil {
		d.opts.Observer.SyncDone(time.Since(start), err)
	}
}

func (d *DB) observeCheckpoint(start time.Time, err error) {
	if d.opts.Observer != nil {
		d.opts.Observer.CheckpointDone(time.Since(start), err)
	}
}
