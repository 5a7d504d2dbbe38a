package writer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/testsupport"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/file"
)

// newEnvAt is newEnv with the database at path (the replica and the default
// test staging directory stay in a temporary directory).
func newEnvAt(t *testing.T, path string) *env {
	t.Helper()
	e := newEnv(t)
	e.app.Close()
	e.path = path
	e.createApp()
	return e
}

// stagedFiles lists the staged files in dir.
func stagedFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"+stagedSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

const streamWarning = "staging directory is full; uploading straight from the WAL"

// TestFullStagingVolume: the staging directory is on the database's volume
// (the default) and that volume is full. Syncs upload straight from the WAL,
// say why with the staging path, leave no staged file behind, and go back to
// staging once there is space.
func TestFullStagingVolume(t *testing.T) {
	for _, first := range []bool{false, true} {
		name := "later sync"
		if first {
			name = "first sync (snapshot)"
		}
		t.Run(name, func(t *testing.T) {
			vol := testsupport.MountTmpfs(t, "30m")
			e := newEnvAt(t, filepath.Join(vol, "app.db"))
			e.insert(200, 2000)
			h := newCapture()
			opts := e.opts()
			opts.StagingDir = "" // the default: beside the database
			opts.Logger = slog.New(h)
			d := e.open(opts)
			staging := d.opts.StagingDir
			if !first {
				e.sync(d)
				e.insert(50, 2000)
			}
			filler := testsupport.FillVolume(t, vol, 0)

			e.sync(d)
			recs := h.take(streamWarning)
			if len(recs) != 1 || !strings.Contains(recs[0].attrs["err"], staging) ||
				!strings.Contains(recs[0].attrs["err"], "no space left on device") {
				t.Errorf("warnings %+v: want one naming %s and the full disk", recs, staging)
			}
			if names := stagedFiles(t, staging); len(names) != 0 {
				t.Errorf("staged files left on the full volume: %v", names)
			}
			if first {
				if l0 := readLTX(t, e.client, remote.L0, 1, 1); !isSnapshot(l0) {
					t.Error("streamed TXID 1 is not a snapshot")
				}
			}
			e.checkReplica()

			// While full the application may or may not manage to commit
			// (the log can reuse space); our checkpoint needs room to grow
			// the database and may fail. Either way the replica follows.
			_, appErr := e.app.Exec(`INSERT INTO t(v) VALUES(randomblob(2000))`)
			ckErr := d.Checkpoint(context.Background())
			t.Logf("while full: app insert: %v; checkpoint: %v", appErr, ckErr)
			e.syncCheck(d)

			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			e.insertSync(d, 20, 2000)
			if recs := h.take(streamWarning); len(recs) != 0 {
				t.Errorf("still streaming after space returned: %+v", recs)
			}
			e.checkReplica()
			if err := d.Checkpoint(context.Background()); err != nil {
				t.Errorf("checkpoint after space returned: %v", err)
			}
			e.insert(5, 2000)
			if err := d.Close(context.Background()); err != nil {
				t.Fatalf("close: %v", err)
			}
			e.checkReplica()
		})
	}
}

// TestFullReplicaVolume: a file replica on a full volume. Syncs fail with
// the disk's error naming the file, keep the staged file for the retry, leave
// no temporary file in the replica, and catch up once space returns.
func TestFullReplicaVolume(t *testing.T) {
	vol := testsupport.MountTmpfs(t, "20m")
	e := newEnv(t)
	e.client.Client = file.New(filepath.Join(vol, "replica"))
	d := e.openSynced(100, 2000)
	filler := testsupport.FillVolume(t, vol, 0)

	for i := 0; i < 3; i++ {
		e.insert(30, 2000)
		err := d.Sync(context.Background())
		if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "0000000000000002-0000000000000002.ltx") {
			t.Fatalf("sync %d on a full replica volume: %v", i, err)
		}
		if st := d.Status(); !st.Pending || st.TXID != 1 || st.LastError == "" {
			t.Errorf("status %+v", st)
		}
	}
	if names := stagedFiles(t, e.staging); len(names) != 1 {
		t.Errorf("staged files %v, want the pending one", names)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	e.sync(d) // the pending TXID 2, then TXID 3 with the rest
	if st := d.Status(); st.Pending || st.TXID != 3 || st.LastError != "" {
		t.Errorf("status after space returned: %+v", st)
	}
	e.checkReplica()
	tmps, _ := filepath.Glob(filepath.Join(vol, "replica", "ltx", "*", ".*"))
	if len(tmps) != 0 {
		t.Errorf("temporary files left in the replica: %v", tmps)
	}
	if names := stagedFiles(t, e.staging); len(names) != 0 {
		t.Errorf("staged files left: %v", names)
	}
}

// TestFullDatabaseVolumeLoop is the daemon's case: the background loop runs
// while the application writes, the database's volume fills up, is freed,
// and is full again when the daemon is stopped. The loop keeps the replica
// up to date throughout (every commit SQLite shows is uploaded within a few
// sync intervals, full or not), and Close (the daemon's SIGTERM) succeeds
// with a final sync that leaves the replica equal to the database: it needs
// no space on the full volume.
func TestFullDatabaseVolumeLoop(t *testing.T) {
	vol := testsupport.MountTmpfs(t, "30m")
	e := newEnvAt(t, filepath.Join(vol, "app.db"))
	e.insert(200, 2000)
	h := newCapture()
	opts := e.opts()
	opts.StagingDir = ""
	opts.Logger = slog.New(h)
	opts.MonitorInterval = 10 * time.Millisecond
	opts.SyncInterval = 20 * time.Millisecond
	d := e.open(opts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d.Start(ctx)

	// caughtUp waits until a sync that began after now has succeeded, and
	// checks the replica.
	caughtUp := func(when string) {
		t.Helper()
		syncedAfter(t, d, time.Now(), 10*time.Second)
		t.Logf("%s: replica checked at TXID %s", when, e.checkReplica())
	}
	// write commits n rows one by one; it returns how many failed.
	write := func(n int) (failed int) {
		for i := 0; i < n; i++ {
			if _, err := e.app.Exec(`INSERT INTO t(v) VALUES(randomblob(3000))`); err != nil {
				failed++
			}
		}
		return failed
	}
	if n := write(200); n != 0 {
		t.Fatalf("%d commits failed before the volume was full", n)
	}
	caughtUp("before")

	filler := testsupport.FillVolume(t, vol, 0)
	if n := write(50); n == 0 {
		t.Log("the application committed everything on the full volume (its log had room)")
	}
	caughtUp("full")
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if n := write(200); n != 0 {
		t.Fatalf("%d commits failed after space returned", n)
	}
	caughtUp("freed")

	// Full again, with commits not yet uploaded when the daemon stops: the
	// loop is stopped first so that the final sync has them to upload.
	cancel()
	waitFor(t, 10*time.Second, "the loop to stop", func() bool {
		d.loopMu.Lock()
		defer d.loopMu.Unlock()
		select {
		case <-d.loopDone:
			return true
		default:
			return false
		}
	})
	if n := write(20); n != 0 {
		t.Fatalf("%d commits failed", n)
	}
	h.take(streamWarning)
	testsupport.FillVolume(t, vol, 0)
	if err := d.Close(context.Background()); err != nil {
		t.Fatalf("close (final sync) on a full volume: %v", err)
	}
	if recs := h.take(streamWarning); len(recs) != 1 {
		t.Errorf("the final sync streamed %d times, want 1", len(recs))
	}
	e.checkReplica()
}

// recordingClient keeps every upload attempt's bytes and fails the attempts
// fail says to fail (after reading the whole file, like a connection lost at
// the end of a request).
type recordingClient struct {
	remote.Client
	mu       sync.Mutex
	attempts map[string][][]byte
	fail     map[string]int
}

func (c *recordingClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	key := remote.FileDesc(level, minTXID, maxTXID)
	c.mu.Lock()
	c.attempts[key] = append(c.attempts[key], b)
	fail := c.fail[key] > 0
	if fail {
		c.fail[key]--
	}
	c.mu.Unlock()
	if fail {
		return nil, errors.New("injected upload failure")
	}
	return c.Client.WriteLTXFile(ctx, level, minTXID, maxTXID, bytes.NewReader(b))
}

// TestStreamedRetryIsIdentical: a streamed file whose upload fails is encoded
// again from the log for the retry, byte for byte the same (a file is never
// uploaded twice with different content).
func TestStreamedRetryIsIdentical(t *testing.T) {
	e := newEnv(t)
	rc := &recordingClient{Client: e.client.Client, attempts: map[string][][]byte{},
		fail: map[string]int{remote.FileDesc(0, 2, 2): 2}}
	e.client.Client = rc
	d := e.openSynced(50, 500)
	e.insert(50, 500)
	if err := os.Symlink("/dev/full", d.stagingPath(2)); err != nil {
		t.Skipf("cannot link /dev/full: %v", err)
	}
	for i := 0; i < 2; i++ {
		if err := d.Sync(context.Background()); err == nil || !strings.Contains(err.Error(), "injected") {
			t.Fatalf("sync %d: %v", i, err)
		}
		e.insert(5, 500) // not part of the pending file
	}
	e.checkpoint(d)
	e.sync(d)
	got := rc.attempts[remote.FileDesc(0, 2, 2)]
	if len(got) != 3 || !bytes.Equal(got[0], got[1]) || !bytes.Equal(got[0], got[2]) {
		t.Fatalf("%d attempts of TXID 2, identical: %v", len(got), len(got) == 3 && bytes.Equal(got[0], got[1]) && bytes.Equal(got[0], got[2]))
	}
	e.checkReplicaAt(3)
}

// TestStreamedAbandonedAfterRestart: the first sync's snapshot is streamed
// (staging full) and its upload fails; before the retry the log is restarted
// (everything was checkpointed, so the application's write may restart it)
// and the frames it was made from are overwritten. The file cannot be
// encoded again and was never uploaded, so it is planned afresh: TXID 1 has
// one content (the second, complete attempt) and the replica follows the
// database.
func TestStreamedAbandonedAfterRestart(t *testing.T) {
	e := newEnv(t)
	rc := &recordingClient{Client: e.client.Client, attempts: map[string][][]byte{},
		fail: map[string]int{remote.FileDesc(remote.L0, 1, 1): 1}}
	e.client.Client = rc
	e.insert(50, 500)
	var busy, logN, done int
	if err := e.app.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logN, &done); err != nil || done != logN {
		t.Fatalf("checkpoint: %d of %d, %v", done, logN, err)
	}
	before, _ := e.walHeader()
	d := e.open(e.opts())
	if err := os.Symlink("/dev/full", d.stagingPath(1)); err != nil {
		t.Skipf("cannot link /dev/full: %v", err)
	}
	if err := d.Sync(context.Background()); err == nil {
		t.Fatal("sync succeeded despite the upload failure")
	}
	e.insert(3, 500)
	if after, _ := e.walHeader(); after.SameGeneration(before) {
		t.Fatal("the application's write did not restart the log")
	}
	e.sync(d)
	l0 := rc.attempts[remote.FileDesc(0, 1, 1)]
	l9 := rc.attempts[remote.FileDesc(remote.SnapshotLevel, 1, 1)]
	if len(l9) != 0 || len(l0) != 2 || bytes.Equal(l0[0], l0[1]) {
		t.Errorf("level 9: %d uploads, level 0: %d (want 0 and 2, the second planned afresh)", len(l9), len(l0))
	}
	e.checkReplica()
	e.insertSyncCheck(d, 3, 500)
}

// syncedAfter waits until a sync that began after the moment after has
// succeeded: the second successful sync to end after it.
func syncedAfter(t *testing.T, d *DB, after time.Time, timeout time.Duration) {
	t.Helper()
	var first time.Time
	// LastSync moves only when a sync succeeds (a failed checkpoint after
	// it may set LastError meanwhile).
	waitFor(t, timeout, "a successful sync", func() bool {
		first = d.Status().LastSync
		return first.After(after)
	})
	waitFor(t, timeout, "a second successful sync", func() bool {
		return d.Status().LastSync.After(first)
	})
}
