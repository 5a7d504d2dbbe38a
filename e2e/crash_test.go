package e2e

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/superfly/ltx"
)

// seqWriter commits numbered transactions as fast as it can from its own
// goroutine. Transaction seq inserts log row seq, sets kv[seq%97] = seq and,
// every 250th, adds a 200 KiB bulk row: any prefix 1..m of the sequence
// determines the whole database content, so a restore can be checked for
// "exactly transactions 1..m, for some m".
type seqWriter struct {
	db        *sql.DB
	rng       *rand.Rand // used by the writer goroutine only
	committed atomic.Int64
	// gate is held by the writer around each transaction; the test holds
	// it to pause writing.
	gate sync.Mutex
	stop chan struct{}
	done chan error
}

const (
	seqKVKeys    = 97
	seqBulkEvery = 250
)

const seqSchema = `
CREATE TABLE log(seq INTEGER PRIMARY KEY, pad BLOB NOT NULL);
CREATE TABLE kv(k INTEGER PRIMARY KEY, v INTEGER NOT NULL);
CREATE INDEX kv_v ON kv(v);
CREATE TABLE bulk(id INTEGER PRIMARY KEY, data BLOB NOT NULL);
`

func (w *seqWriter) run() {
	for seq := int64(1); ; seq++ {
		select {
		case <-w.stop:
			w.done <- nil
			return
		default:
		}
		w.gate.Lock()
		err := w.commit(seq)
		if err == nil {
			w.committed.Store(seq)
		}
		w.gate.Unlock()
		if err != nil {
			w.done <- fmt.Errorf("transaction %d: %w", seq, err)
			return
		}
	}
}

func (w *seqWriter) commit(seq int64) error {
	tx, err := w.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`INSERT INTO log(seq, pad) VALUES (?, ?)`, seq, randBytes(w.rng, 50+w.rng.IntN(1500))); err != nil {
		return err
	}
	if _, err := tx.Exec(`INSERT INTO kv(k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v`, seq%seqKVKeys, seq); err != nil {
		return err
	}
	if seq%seqBulkEvery == 0 {
		if _, err := tx.Exec(`INSERT INTO bulk(id, data) VALUES (?, ?)`, seq, randBytes(w.rng, 200<<10)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// checkSeqPrefix checks that a restored database holds exactly transactions
// 1..m of a seqWriter and returns m.
func checkSeqPrefix(t *testing.T, path string) int64 {
	t.Helper()
	db := openReadOnly(t, path)
	var n, lo, hi int64
	if err := db.QueryRow(`SELECT count(*), coalesce(min(seq), 0), coalesce(max(seq), 0) FROM log`).Scan(&n, &lo, &hi); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	m := hi
	if n != m || (m > 0 && lo != 1) {
		t.Fatalf("%s: log holds %d rows, seq %d..%d: not a prefix of the transactions", path, n, lo, hi)
	}
	rows, err := db.Query(`SELECT k, v FROM kv ORDER BY k`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[int64]int64{}
	for rows.Next() {
		var k, v int64
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		got[k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for k := int64(0); k < seqKVKeys; k++ {
		// The last seq <= m with seq % 97 == k, if any (seq starts at 1).
		want := m - ((m-k)%seqKVKeys+seqKVKeys)%seqKVKeys
		v, ok := got[k]
		switch {
		case want < 1 && ok:
			t.Fatalf("%s at m=%d: kv[%d] = %d, want no row", path, m, k, v)
		case want >= 1 && v != want:
			t.Fatalf("%s at m=%d: kv[%d] = %d (present %v), want %d", path, m, k, v, ok, want)
		}
	}
	var bulkN, bulkMax int64
	if err := db.QueryRow(`SELECT count(*), coalesce(max(id), 0) FROM bulk`).Scan(&bulkN, &bulkMax); err != nil {
		t.Fatal(err)
	}
	if bulkN != m/seqBulkEvery || bulkMax != m/seqBulkEvery*seqBulkEvery {
		t.Fatalf("%s at m=%d: %d bulk rows up to id %d, want %d", path, m, bulkN, bulkMax, m/seqBulkEvery)
	}
	return m
}

// crashPoint is what was known when the daemon was killed: every
// transaction up to committed had been committed before the replica reached
// a TXID written by a sync that began after it, and synced is the replica's
// max TXID after the kill.
type crashPoint struct {
	committed int64
	synced    ltx.TXID
}

// waitCaughtUp waits (writes paused) until the replica's latest TXID
// restores to exactly transactions 1..k.
func waitCaughtUp(t *testing.T, d *daemon, replica, scratch string, k int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var tried ltx.TXID
	for {
		d.checkAlive()
		if txid := replicaMaxTXID(t, replica); txid > tried {
			os.Remove(scratch)
			restore(t, replica, txid, scratch)
			if checkSeqPrefix(t, scratch) == k {
				os.Remove(scratch)
				return
			}
			tried = txid
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica (TXID %s) did not catch up with transaction %d within a minute", tried, k)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stagingBusy reports whether the daemon is in the middle of a sync: a staged
// LTX file exists (default staging directory) or an upload's temporary file
// is in the replica.
func stagingBusy(dbPath, replica string) bool {
	staged, _ := filepath.Glob(filepath.Join(filepath.Dir(dbPath), "."+filepath.Base(dbPath)+"-litestream", "*.tmp"))
	if len(staged) > 0 {
		return true
	}
	uploading, _ := filepath.Glob(filepath.Join(replica, "ltx", "*", ".*"))
	return len(uploading) > 0
}

// TestCrashRecovery kills the daemon with SIGKILL several times while
// transactions keep committing (some kills while a sync is staged or
// uploading), restarts it, and finally stops it cleanly. The final restore
// equals the checkpointed source byte for byte; each kill's synced TXID
// restores to a prefix of the transactions that includes every transaction
// committed before that sync began.
func TestCrashRecovery(t *testing.T) {
	_, rng := testSeed(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	replica := filepath.Join(dir, "replica")
	db := openDB(t, dbPath, "PRAGMA page_size=4096")
	mustExec(t, db, seqSchema)
	cfg := daemonConfig(t, dbPath, replica)

	w := &seqWriter{db: db, rng: rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())), stop: make(chan struct{}), done: make(chan error, 1)}
	go w.run()
	stopWriter := func() {
		select {
		case <-w.stop:
			return
		default:
		}
		close(w.stop)
		if err := <-w.done; err != nil {
			t.Fatalf("writer: %v", err)
		}
	}
	defer stopWriter()
	writerFailed := func() {
		select {
		case err := <-w.done:
			t.Fatalf("writer stopped: %v", err)
		default:
		}
	}

	// Each cycle starts the daemon, lets it sync a few files and kills it:
	// at a random moment while transactions commit, aimed at a sync in
	// progress, or with writes paused once the replica has caught up (the
	// next start must then resume from the WAL rather than snapshot).
	// Writes go on while the daemon is down except after an idle kill.
	type mode int
	const (
		killWriting mode = iota
		killMidSync
		killIdle
	)
	modes := []mode{killWriting, killIdle, killMidSync, killIdle, killMidSync}
	names := map[mode]string{killWriting: "while writing", killMidSync: "aimed mid-sync", killIdle: "idle, caught up"}
	var points []crashPoint
	var logs []string
	paused := false
	resumedAfterIdle := 0
	startAndCheck := func() *daemon {
		d := startDaemon(t, cfg)
		if paused {
			// Open happens before "replicating" is logged; then it must
			// have continued from the WAL.
			waitFor(t, "the daemon to open the database", time.Minute, func() bool {
				d.checkAlive()
				return strings.Contains(d.Out.String(), "msg=replicating")
			})
			if log := d.Out.String(); !strings.Contains(log, "resuming replica") {
				t.Errorf("after an idle kill with nothing written since, the daemon did not resume from the WAL:\n%s", tail(log, 3000))
			} else {
				resumedAfterIdle++
			}
			w.gate.Unlock()
			paused = false
		}
		return d
	}
	for c, m := range modes {
		d := startAndCheck()
		base := replicaMaxTXID(t, replica)
		waitTXID(t, d, replica, base+1+ltx.TXID(rng.IntN(6)), time.Minute)
		writerFailed()

		var k int64
		switch m {
		case killIdle:
			w.gate.Lock()
			paused = true
			k = w.committed.Load()
			waitCaughtUp(t, d, replica, filepath.Join(dir, "caught-up.db"), k)
		default:
			// Every transaction committed now is in any file whose sync
			// begins after the next upload completes: the file after
			// next.
			k = w.committed.Load()
			t0 := replicaMaxTXID(t, replica)
			waitTXID(t, d, replica, t0+2, time.Minute)
		}
		if m == killMidSync {
			// Aim the kill at a sync in progress; if none is seen within
			// the deadline, kill anyway.
			deadline := time.Now().Add(10 * time.Second)
			for !stagingBusy(dbPath, replica) && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		}
		d.kill()
		logs = append(logs, d.Out.String())
		p := crashPoint{committed: k, synced: replicaMaxTXID(t, replica)}
		points = append(points, p)
		t.Logf("kill %d (%s): transactions through %d committed before a sync the replica holds; replica at TXID %s after the kill",
			c+1, names[m], p.committed, p.synced)
		if paused {
			continue
		}

		// Writes go on while the daemon is down; enough of them let
		// SQLite's auto-checkpoint restart the WAL, and then the next
		// start must notice that continuity is lost.
		target := w.committed.Load() + 100 + rng.Int64N(1500)
		waitFor(t, fmt.Sprintf("%d transactions while the daemon is down", target), time.Minute, func() bool {
			writerFailed()
			return w.committed.Load() >= target
		})
		if c == 2 {
			// Once for sure: the application checkpoints and the next
			// commit restarts the WAL while the daemon is down.
			checkpoint(t, db)
			target := w.committed.Load() + 10
			waitFor(t, "a commit after the checkpoint", time.Minute, func() bool {
				writerFailed()
				return w.committed.Load() >= target
			})
		}
	}

	d := startAndCheck()
	base := replicaMaxTXID(t, replica)
	waitTXID(t, d, replica, base+3, time.Minute)
	stopWriter()
	d.stop()
	total := w.committed.Load()
	files, _ := listReplica(replica)
	t.Logf("%d transactions, %d restarts; replica: %d files, max TXID %s", total, len(modes), len(files), replicaMaxTXID(t, replica))
	logs = append(logs, d.Out.String())
	all := strings.Join(logs, "")
	t.Logf("daemon starts that resumed from the WAL: %d (after idle kills: %d); that could not (snapshot): %d",
		strings.Count(all, "resuming replica"), resumedAfterIdle, strings.Count(all, "cannot continue the replica from the WAL"))
	for _, line := range strings.Split(all, "\n") {
		if strings.Contains(line, "cannot continue the replica from the WAL") {
			t.Logf("  %s", line[strings.Index(line, "msg="):])
		}
	}
	if strings.Count(all, "cannot continue the replica from the WAL") == 0 {
		t.Errorf("no restart took the snapshot path, though the WAL was restarted while the daemon was down")
	}
	if strings.Contains(all, "level=ERROR") {
		t.Logf("the daemons logged errors:\n%s", tail(all, 4000))
	}

	facts := checkReplicaLayout(t, replica)
	t.Logf("replica levels %v", facts.levels)

	out := filepath.Join(dir, "restored.db")
	restore(t, replica, 0, out)
	if m := checkSeqPrefix(t, out); m != total {
		t.Errorf("latest restore holds transactions 1..%d, the source committed %d", m, total)
	}
	checkpoint(t, db)
	sameFiles(t, dbPath, out, 4096)

	// No synced transaction lost: each kill's synced TXID still restores,
	// to a prefix that covers what was committed before its sync.
	var prev int64
	for i, p := range points {
		out := filepath.Join(dir, fmt.Sprintf("kill-%d.db", i+1))
		restore(t, replica, p.synced, out)
		m := checkSeqPrefix(t, out)
		if m < p.committed {
			t.Errorf("kill %d: TXID %s restores transactions 1..%d, but %d were committed before a sync the replica holds", i+1, p.synced, m, p.committed)
		}
		if m < prev {
			t.Errorf("kill %d: TXID %s restores 1..%d, fewer than the previous kill's %d", i+1, p.synced, m, prev)
		}
		prev = m
		os.Remove(out)
	}
}
