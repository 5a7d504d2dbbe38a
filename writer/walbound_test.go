package writer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/bench/walload"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/file"
	"github.com/litestream-go/litestream/writer/wal"
)

// TestForcedRestartUnderNonStopWrites: the application commits without
// pause, so the pin always holds a read mark when a passive checkpoint ends
// and the log never restarts by itself. The checkpoint then forces restarts:
// the WAL stays bounded, every transaction reaches the replica (checked
// against the database while writes go on, and at the end after a restart
// of the writer), and writers wait only briefly.
func TestForcedRestartUnderNonStopWrites(t *testing.T) {
	e := newEnv(t)
	e.insert(100, 300)
	opts := e.opts()
	opts.MonitorInterval = 5 * time.Millisecond
	opts.SyncInterval = 20 * time.Millisecond
	opts.MinCheckpointPageN = 200
	d := e.open(opts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d.Start(ctx)

	var stop atomic.Bool
	var wg sync.WaitGroup
	var commits atomic.Int64
	var maxWAL atomic.Int64
	var writeErr atomic.Value
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if _, err := e.app.Exec(`INSERT INTO t(v) VALUES(randomblob(200))`); err != nil {
				writeErr.Store(err)
				return
			}
			commits.Add(1)
			if fi, err := os.Stat(e.path + "-wal"); err == nil && fi.Size() > maxWAL.Load() {
				maxWAL.Store(fi.Size())
			}
		}
	}()
	gens := map[[2]uint32]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for len(gens) < 6 && time.Now().Before(deadline) {
		if h, ok := e.walHeader(); ok {
			gens[h.Salts()] = true
		}
		time.Sleep(2 * time.Millisecond) // sampling, not synchronization
	}
	stop.Store(true)
	wg.Wait()
	if err, _ := writeErr.Load().(error); err != nil {
		t.Fatalf("application write: %v", err)
	}
	st := d.Status()
	t.Logf("%d commits, %d WAL generations seen, %d forced restarts, longest write lock %v, peak WAL %d KiB",
		commits.Load(), len(gens), st.ForcedRestarts, st.LongestWriteLock, maxWAL.Load()>>10)
	if len(gens) < 6 {
		t.Fatalf("the log restarted %d times in 30s of non-stop writes", len(gens)-1)
	}
	if st.ForcedRestarts == 0 {
		t.Error("no forced restart")
	}
	// 200-frame checkpoints and a forced restart from 400 frames on keep
	// the log at a few MiB at 500 transactions/s; here the application
	// writes as fast as it can, so allow for a fast machine.
	if maxWAL.Load() > 64<<20 {
		t.Errorf("peak WAL %d KiB", maxWAL.Load()>>10)
	}
	syncedAfter(t, d, time.Now(), 10*time.Second)
	e.checkReplica()
	cancel()
	e.close(d)
	e.checkReplica()

	// A writer opened now continues the replica.
	d2 := e.openContinuing()
	e.insertSyncCheck(d2, 3, 300)
}

// TestWALBoundAt500TPS is the short form of bench's BenchmarkWALBound: 500
// small transactions/s without pause for 20 s ($LITESTREAM_WALBOUND_SECONDS)
// with the writer at its defaults (Litestream's checkpoint settings). The
// WAL must stay below 64 MiB (without forced restarts it grows by about
// 4 MiB/s here and never restarts), and no commit may wait long for the
// writer's forced restarts (bound generous for a loaded machine; the bench
// reports the real figure).
func TestWALBoundAt500TPS(t *testing.T) {
	runFor := envSeconds(t, "LITESTREAM_WALBOUND_SECONDS", 20*time.Second)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	app, err := walload.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	e := &env{t: t, dir: dir, path: path, app: app, staging: filepath.Join(dir, "staging"),
		client: &faultyClient{Client: file.New(filepath.Join(dir, "replica"))}}
	d := e.open(e.opts())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d.Start(ctx)

	res, err := walload.Run(ctx, app, path, 500, runFor, seed)
	if err != nil {
		t.Fatal(err)
	}
	st := d.Status()
	t.Logf("%v; %d forced restarts, longest write lock %v", res, st.ForcedRestarts, st.LongestWriteLock)
	if res.PeakWAL >= 64<<20 {
		t.Errorf("peak WAL %.1f MiB, want below 64 MiB", float64(res.PeakWAL)/(1<<20))
	}
	if res.MaxCommit > time.Second {
		t.Errorf("a commit waited %v", res.MaxCommit)
	}
	cancel()
	e.close(d)
	e.checkReplica()
}

// TestTruncatePageN: a WAL file larger than TruncatePageN pages is truncated
// once the log is fully checkpointed, and replication continues from the
// next generation without a snapshot.
func TestTruncatePageN(t *testing.T) {
	e := newEnv(t)
	opts := e.opts()
	opts.TruncatePageN = 50
	d := e.openSyncedWith(opts, 300, 1000)
	if fi, err := os.Stat(e.path + "-wal"); err != nil || fi.Size() < 50*4096 {
		t.Fatalf("WAL %v %v: too small for the test", fi, err)
	}
	e.checkpoint(d)
	if fi, err := os.Stat(e.path + "-wal"); err != nil || fi.Size() != 0 {
		t.Fatalf("WAL after checkpoint: %v %v, want truncated", fi.Size(), err)
	}
	e.sync(d)
	e.exec(`UPDATE t SET v = randomblob(100) WHERE id = 1`) // a few frames
	e.syncCheck(d)
	if st := d.Status(); st.Snapshots != 1 {
		t.Errorf("%d snapshots, want 1", st.Snapshots)
	}
	// Below the threshold nothing is truncated.
	e.checkpoint(d)
	if fi, err := os.Stat(e.path + "-wal"); err != nil || fi.Size() == 0 {
		t.Errorf("small WAL truncated: %v %v", fi, err)
	}
	e.insertSyncCheck(d, 5, 1000)
}

// TestForcedRestartStagedUploadFails: the forced restart stages what was
// committed since its sync, lets SQLite backfill it and the application
// restart the log, and only then uploads it. When that upload fails, the
// staged file is retried: nothing is lost although its frames are gone from
// the log, and replication continues in the new generation without a
// snapshot.
func TestForcedRestartStagedUploadFails(t *testing.T) {
	e := newEnv(t)
	opts := e.opts()
	opts.MinCheckpointPageN = 5
	d := e.openSyncedWith(opts, 50, 300)
	e.insert(20, 300)
	// Commits land while the forced restart's first sync uploads TXID 2,
	// so the restart stages them as TXID 3, whose first upload fails.
	e.client.set(func(c *faultyClient) {
		c.writeHook = func(level int, txid ltx.TXID) {
			if level == remote.L0 && txid == 2 {
				e.insert(10, 300)
			}
		}
		failed := false
		c.failWrite = func(level int, txid ltx.TXID) error {
			if txid == 3 && !failed {
				failed = true
				return errors.New("injected upload failure")
			}
			return nil
		}
	})
	gen, _ := e.walHeader()
	d.mu.Lock()
	d.ckptGen = gen.Salts() // a passive checkpoint already ran in this generation
	d.mu.Unlock()
	if err := d.Checkpoint(context.Background()); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("checkpoint: %v", err)
	}
	if st := d.Status(); st.ForcedRestarts != 1 || !st.Pending || st.TXID != 2 {
		t.Fatalf("status %+v", st)
	}
	if x := e.shmIndex(); x.MaxFrame == 0 || x.Backfilled != x.MaxFrame {
		t.Fatalf("log not fully backfilled: %+v", x)
	}
	e.insert(5, 300)
	if now, _ := e.walHeader(); now.SameGeneration(gen) {
		t.Fatal("the application's write did not restart the log")
	}
	e.sync(d) // the staged TXID 3, then TXID 4 from the new generation
	if st := d.Status(); st.Pending || st.TXID != 4 || st.Snapshots != 1 {
		t.Errorf("status %+v", st)
	}
	e.checkReplica()
	f := readLTX(t, e.client, remote.L0, 4, 4)
	if f.hdr.WALOffset != wal.HeaderSize || isSnapshot(f) {
		t.Errorf("TXID 4 does not continue from the new generation's first frame: offset %d, %d pages", f.hdr.WALOffset, len(f.pgnos))
	}
	e.insertSyncCheck(d, 5, 300)
}

// TestCheckpointIntervalDisabled: a negative CheckpointInterval turns
// time-based checkpoints off (Litestream's checkpoint-interval: 0); frame
// counts still trigger them.
func TestCheckpointIntervalDisabled(t *testing.T) {
	for _, tc := range []struct {
		interval time.Duration
		frames   int64
		want     bool
	}{
		{0, 5, true}, // the default, 1m, has passed
		{-1, 5, false},
		{-1, 1000, true},
		{time.Hour, 5, false},
	} {
		d := New(filepath.Join(t.TempDir(), "db"), nil, Options{CheckpointInterval: tc.interval})
		d.pos.Frames = tc.frames
		d.lastCheckpoint = time.Now().Add(-2 * time.Minute)
		if got := d.needCheckpoint(); got != tc.want {
			t.Errorf("interval %v, %d frames: needCheckpoint %v, want %v", tc.interval, tc.frames, got, tc.want)
		}
	}
}
