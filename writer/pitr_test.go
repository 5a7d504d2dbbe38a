package writer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/remote"
)

// envSeconds returns the duration in seconds that the environment variable
// name holds, or def when it is unset.
func envSeconds(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s + "s")
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return d
}

// testWriter sends log lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// step is the primary's state right after one sync.
type step struct {
	txid  ltx.TXID
	sum   [32]byte
	start time.Time // the step's write began (the file for txid is newer)
	after time.Time // the sync returned (the file for txid is older)
	next  time.Time // the next step's write began (zero: none yet)
}

type history struct {
	mu    sync.Mutex
	steps []*step
	byTX  map[ltx.TXID]*step
}

func (h *history) add(s *step) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.steps) > 0 {
		h.steps[len(h.steps)-1].next = s.start
	}
	if prev, ok := h.byTX[s.txid]; ok {
		// No write reached the replica in this step (nothing changed).
		if prev.sum != s.sum {
			panic("same TXID, different content")
		}
		return
	}
	h.steps = append(h.steps, s)
	h.byTX[s.txid] = s
}

func (h *history) pick(rng *rand.Rand) (s step, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.steps) < 2 {
		return step{}, false
	}
	return *h.steps[rng.IntN(len(h.steps)-1)], true // not the last: its next is unknown
}

func (h *history) get(txid ltx.TXID) (*step, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.byTX[txid]
	return s, ok
}

// eachPick calls fn with steps picked by rng (pick) until stop is closed or
// fn returns false; while there is nothing to pick yet it tries again a
// little later.
func (h *history) eachPick(stop <-chan struct{}, rng *rand.Rand, fn func(step) bool) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		s, ok := h.pick(rng)
		if !ok {
			time.Sleep(5 * time.Millisecond) // nothing recorded yet: not a synchronization
			continue
		}
		if !fn(s) {
			return
		}
	}
}

// checkTXIDRestore restores s.txid. It must equal the primary at that TXID;
// it may be unavailable only if it is older than window: the level-0 files
// from the last level-1 boundary up to it may have been deleted.
func checkTXIDRestore(t *testing.T, c remote.Client, s step, window time.Duration) bool {
	img, _, err := planRestore(t, c, s.txid, time.Time{})
	if err != nil {
		if errors.Is(err, index.ErrNotAvailable) && time.Since(s.start) > window {
			return false
		}
		t.Errorf("restore TXID %s (written %v ago): %v", s.txid, time.Since(s.start).Round(time.Millisecond), err)
		return false
	}
	if digest(img) != s.sum {
		t.Errorf("restore TXID %s differs from the primary at that TXID", s.txid)
	}
	return true
}

// checkTimeRestore restores the moment just after s's sync. Recent moments
// must give exactly s's state; older ones (whose level-0 files retention may
// have removed) an earlier recorded state, never a wrong one.
func checkTimeRestore(t *testing.T, c remote.Client, h *history, s step, window time.Duration) bool {
	ts := s.after.Add(time.Millisecond)
	if s.next.IsZero() || s.next.Sub(ts) < 2*time.Millisecond {
		return false // the moment is not separable at millisecond precision
	}
	img, plan, err := planRestore(t, c, 0, ts)
	recent := time.Since(s.start) < window
	if err != nil {
		if errors.Is(err, index.ErrNotAvailable) && !recent {
			return false
		}
		t.Errorf("restore at %s (TXID %s): %v", ts.Format(time.RFC3339Nano), s.txid, err)
		return false
	}
	if plan.TXID > s.txid || (recent && plan.TXID != s.txid) {
		t.Errorf("restore at %s gave TXID %s, primary was at %s", ts.Format(time.RFC3339Nano), plan.TXID, s.txid)
		return false
	}
	want, ok := h.get(plan.TXID)
	if !ok {
		t.Errorf("restore at %s gave TXID %s, which the primary never reported", ts.Format(time.RFC3339Nano), plan.TXID)
		return false
	}
	if digest(img) != want.sum {
		t.Errorf("restore at %s (TXID %s) differs from the primary at that TXID", ts.Format(time.RFC3339Nano), plan.TXID)
	}
	return plan.TXID == s.txid
}

// TestPointInTimeUnderLoad writes random transactions for a while with the
// whole background machinery on short intervals (syncs, checkpoints, two
// compaction levels, snapshots, retention), recording the primary's content
// after every sync. Restores by TXID and by time run concurrently and after
// the run; each must equal the primary at its moment. At the end, storage
// must be within what the intervals and retention imply.
// LITESTREAM_PITR_SECONDS sets the length of the write run (default 20).
func TestPointInTimeUnderLoad(t *testing.T) {
	runFor := envSeconds(t, "LITESTREAM_PITR_SECONDS", 20*time.Second)
	if testing.Short() {
		runFor = 6 * time.Second
	}
	e := newEnv(t)
	e.insert(300, 300)
	opts := e.opts()
	opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts.MonitorInterval = 50 * time.Millisecond
	opts.SyncInterval = 200 * time.Millisecond
	opts.CheckpointInterval = time.Second
	opts.MinCheckpointPageN = 300
	opts.Levels = []time.Duration{time.Second, 3 * time.Second}
	opts.SnapshotInterval = 4 * time.Second
	opts.SnapshotRetention = 6 * time.Second
	opts.L0Retention = 2 * time.Second
	opts.RetentionCheckInterval = 500 * time.Millisecond
	opts.RetentionGrace = 300 * time.Millisecond
	// Moments younger than window must restore exactly: the level-0 files
	// since the level-1 boundary before them are all still retained.
	window := opts.L0Retention - opts.Levels[0] - 300*time.Millisecond
	d := e.open(opts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	h := &history{byTX: map[ltx.TXID]*step{}}
	record := func(start time.Time) {
		e.sync(d)
		after := time.Now()
		h.add(&step{txid: d.Status().TXID, sum: digest(e.image()), start: start, after: after})
	}
	record(time.Now())
	d.Start(ctx)

	// Concurrent restores, racing compaction and retention.
	var wg sync.WaitGroup
	var during, duringOK int
	stop := make(chan struct{})
	wg.Add(1)
	restoreSeed := e.rng.Uint64() // e.rng belongs to this goroutine
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(restoreSeed, 2))
		h.eachPick(stop, rng, func(s step) bool {
			time.Sleep(20 * time.Millisecond) // pacing, leaves CPU to the writer; not a synchronization
			var good bool
			if rng.IntN(2) == 0 {
				good = checkTXIDRestore(t, e.client, s, window)
			} else {
				good = checkTimeRestore(t, e.client, h, s, window)
			}
			during++
			if good {
				duringOK++
			}
			return true
		})
	}()

	deadline := time.Now().Add(runFor)
	maxDB := int64(0)
	for time.Now().Before(deadline) && !t.Failed() {
		start := time.Now()
		tx, err := e.app.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for n := e.rng.IntN(4) + 1; n > 0; n-- {
			var q string
			switch e.rng.IntN(3) {
			case 0:
				q = `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < ?) INSERT INTO t(v) SELECT randomblob(50 + abs(random()) % 900) FROM s`
			case 1:
				q = `UPDATE t SET v = randomblob(100 + abs(random()) % 600) WHERE id % 97 = ?`
			default:
				q = `DELETE FROM t WHERE id IN (SELECT id FROM t ORDER BY random() LIMIT ?)`
			}
			if _, err := tx.Exec(q, e.rng.IntN(40)+1); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		record(start)
		if fi, err := os.Stat(e.path); err == nil {
			maxDB = max(maxDB, fi.Size())
		}
	}
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}

	// Storage is bounded while the machinery runs: check before stopping.
	checkBounded(t, e.client, opts, maxDB+int64(opts.MinCheckpointPageN)*4096)

	cancel()
	e.close(d)
	e.checkReplicaPlan()

	// After the run, with the replica still. Every TXID a remaining
	// compaction or snapshot ends at, from the oldest snapshot on, is a
	// restorable moment: by TXID and by time it must give exactly the
	// primary's state then. (A level-0 file is not: retention removes level
	// 0 from its old end, so the oldest remaining one may have lost its
	// predecessors.) Any other recorded TXID restores exactly or is
	// unavailable.
	var oldestSnap ltx.TXID
	for _, f := range e.files(remote.SnapshotLevel) {
		if oldestSnap == 0 || f.MaxTXID < oldestSnap {
			oldestSnap = f.MaxTXID
		}
	}
	levels := map[int]int{}
	boundaries := map[ltx.TXID]bool{}
	for l := 0; l <= remote.MaxLevel; l++ {
		for _, f := range e.files(l) {
			levels[l]++
			if l > 0 && f.MaxTXID >= oldestSnap {
				boundaries[f.MaxTXID] = true
			}
		}
	}
	var exact, byTime, other, otherOK int
	for txid := range boundaries {
		s, ok := h.get(txid)
		if !ok {
			t.Errorf("a file ends at TXID %s, which the primary never reported", txid)
			continue
		}
		if checkTXIDRestore(t, e.client, *s, time.Hour) {
			exact++
		}
		if s.next.IsZero() || s.next.Sub(s.after) < 3*time.Millisecond {
			continue
		}
		byTime++
		if !checkTimeRestore(t, e.client, h, *s, time.Hour) {
			t.Errorf("restore at the moment after TXID %s did not give it", txid)
		}
	}
	rng := rand.New(rand.NewPCG(e.rng.Uint64(), 3))
	for i := 0; i < 40; i++ {
		s, _ := h.pick(rng)
		other++
		if checkTXIDRestore(t, e.client, s, 0) {
			otherOK++
		}
		checkTimeRestore(t, e.client, h, s, 0)
	}
	t.Logf("%d TXIDs recorded; restores during the run: %d (%d exact); after: %d file boundaries exact by TXID (%d by time), %d/%d sampled TXIDs available; snapshots written %d; files per level %v",
		len(h.steps), during, duringOK, exact, byTime, otherOK, other, d.Status().Snapshots, levels)
	if duringOK == 0 || exact == 0 {
		t.Errorf("too few exact restores")
	}
	// Retention may have emptied a level since (everything in it older
	// than the oldest kept snapshot): count what was written.
	written := map[int]int{}
	e.client.mu.Lock()
	for _, w := range e.client.writes {
		for l := 0; l <= remote.MaxLevel; l++ {
			if strings.HasPrefix(w, fmt.Sprintf("level %d file", l)) {
				written[l]++
			}
		}
	}
	e.client.mu.Unlock()
	t.Logf("files written per level: %v", written)
	if written[1] == 0 || written[2] == 0 || written[remote.SnapshotLevel] < 2 {
		t.Errorf("compaction or snapshots did not run: %v written", written)
	}
	if l0 := e.files(remote.L0); len(l0) > 0 && l0[0].MinTXID == 1 {
		t.Errorf("retention deleted no level-0 file")
	}
}

// checkBounded asserts that every remaining file is one that the
// configuration says must still exist, so storage is bounded by the
// intervals and retention, not by the length of the run.
func checkBounded(t *testing.T, c remote.Client, o Options, dbMax int64) {
	t.Helper()
	ctx := context.Background()
	// The time a deletable file may linger: the grace, plus a retention
	// period, plus a level-1 run to cover it, plus scheduling slack.
	linger := o.RetentionGrace + o.RetentionCheckInterval + o.Levels[0] + time.Second
	count := func(level int) ([]*ltx.FileInfo, int64) {
		files, err := c.LTXFiles(ctx, level, 0)
		if err != nil {
			t.Fatal(err)
		}
		var size int64
		for _, f := range files {
			size += f.Size
			if f.Size > dbMax+dbMax/4 {
				t.Errorf("%s is %d bytes, more than the database (%d)", remote.FileDesc(level, f.MinTXID, f.MaxTXID), f.Size, dbMax)
			}
		}
		return files, size
	}
	l0, s0 := count(0)
	for _, f := range l0[:max(len(l0)-1, 0)] {
		if age := time.Since(f.CreatedAt); age > o.L0Retention+linger {
			t.Errorf("%s is %v old: L0 retention %v", remote.FileDesc(0, f.MinTXID, f.MaxTXID), age.Round(time.Millisecond), o.L0Retention)
		}
	}
	snaps, s9 := count(remote.SnapshotLevel)
	maxSnaps := int((o.SnapshotRetention+linger)/o.SnapshotInterval) + 2
	if len(snaps) > maxSnaps {
		t.Errorf("%d snapshots, at most %d expected", len(snaps), maxSnaps)
	}
	// A level-1 file lives while it is newer than the oldest kept snapshot
	// or not yet merged into level 2.
	horizon := o.SnapshotRetention + o.SnapshotInterval + o.Levels[1] + linger
	l1, s1 := count(1)
	l2, s2 := count(2)
	if max1 := int(horizon/o.Levels[0]) + 2; len(l1) > max1 {
		t.Errorf("%d level-1 files, at most %d expected", len(l1), max1)
	}
	if max2 := int(horizon/o.Levels[1]) + 2; len(l2) > max2 {
		t.Errorf("%d level-2 files, at most %d expected", len(l2), max2)
	}
	t.Logf("storage: L0 %d files %d B, L1 %d files %d B, L2 %d files %d B, L9 %d files %d B (database at most %d B)",
		len(l0), s0, len(l1), s1, len(l2), s2, len(snaps), s9, dbMax)
}
