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
	// CheckpointDone follows every checkpoint the writer runs, with its
	// mode: CheckpointPassive, CheckpointRestart or CheckpointTruncate.
	CheckpointDone(mode string, elapsed time.Duration, err error)
	// RetentionDone follows every retention pass that listed the replica.
	RetentionDone(l0 L0Census)
}

// The modes of the checkpoints the writer runs, named as SQLite (and
// Litestream's metrics) name them.
const (
	// CheckpointPassive is the normal checkpoint: it never waits for a lock.
	CheckpointPassive = "PASSIVE"
	// CheckpointRestart is the checkpoint of a forced restart of the log
	// (forceRestart): passive, but run while the writer holds SQLite's write
	// lock so that the next write restarts the log, as SQLite's RESTART mode
	// would, blocking writers meanwhile.
	CheckpointRestart = "RESTART"
	// CheckpointTruncate truncates an oversized WAL file (maybeTruncate).
	CheckpointTruncate = "TRUNCATE"
)

func (d *DB) observeSync(start time.Time, err error) {
	if d.opts.Observer != nil {
		d.opts.Observer.SyncDone(time.Since(start), err)
	}
}

func (d *DB) observeCheckpoint(mode string, start time.Time, err error) {
	if d.opts.Observer != nil {
		d.opts.Observer.CheckpointDone(mode, time.Since(start), err)
	}
}

func (d *DB) observeRetention(l0 L0Census) {
	if d.opts.Observer != nil {
		d.opts.Observer.RetentionDone(l0)
	}
}
