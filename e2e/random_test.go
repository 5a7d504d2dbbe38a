package e2e

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/testsupport"
)

// workload commits random transactions to a database with several tables
// and indexes. Every random choice comes from rng, so a seed reproduces the
// sequence of statements.
type workload struct {
	t   *testing.T
	db  *sql.DB
	rng *rand.Rand

	users, events int64 // highest ids handed out
	emails        int64
	ops           map[string]int
	opTime        map[string]time.Duration
}

const workloadSchema = `
CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE, score INTEGER NOT NULL);
CREATE INDEX users_score ON users(score);
CREATE TABLE events(id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL, kind TEXT NOT NULL, payload BLOB);
CREATE INDEX events_user_kind ON events(user_id, kind);
CREATE TABLE kv(k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;
`

func newWorkload(t *testing.T, db *sql.DB, rng *rand.Rand) *workload {
	mustExec(t, db, workloadSchema)
	return &workload{t: t, db: db, rng: rng, ops: map[string]int{}, opTime: map[string]time.Duration{}}
}

// tx runs fn in one transaction.
func (w *workload) tx(name string, fn func(tx *sql.Tx) error) {
	w.t.Helper()
	start := time.Now()
	defer func() { w.opTime[name] += time.Since(start) }()
	tx, err := w.db.Begin()
	if err != nil {
		w.t.Fatalf("%s: begin: %v", name, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		w.t.Fatalf("%s: %v", name, err)
	}
	if err := tx.Commit(); err != nil {
		w.t.Fatalf("%s: commit: %v", name, err)
	}
	w.ops[name]++
}

func (w *workload) insertUsers(tx *sql.Tx) error {
	for n := 1 + w.rng.IntN(5); n > 0; n-- {
		w.users++
		w.emails++
		name := strings.Repeat(string(rune('a'+w.rng.IntN(26))), 1+w.rng.IntN(40))
		if _, err := tx.Exec(`INSERT INTO users(id, name, email, score) VALUES (?, ?, ?, ?)`,
			w.users, name, fmt.Sprintf("u%d@example.com", w.emails), w.rng.IntN(1000)); err != nil {
			return err
		}
	}
	return nil
}

func (w *workload) insertEvents(tx *sql.Tx, n, minSize, maxSize int) error {
	kinds := []string{"click", "view", "buy", "refund"}
	for ; n > 0; n-- {
		w.events++
		payload := randBytes(w.rng, minSize+w.rng.IntN(maxSize-minSize+1))
		if _, err := tx.Exec(`INSERT INTO events(id, user_id, kind, payload) VALUES (?, ?, ?, ?)`,
			w.events, 1+w.rng.Int64N(w.users+1), kinds[w.rng.IntN(len(kinds))], payload); err != nil {
			return err
		}
	}
	return nil
}

// step commits one random transaction.
func (w *workload) step() {
	w.t.Helper()
	r := w.rng.IntN(1000)
	switch {
	case r < 250 || w.users == 0:
		w.tx("insert users", w.insertUsers)
	case r < 500:
		w.tx("insert events", func(tx *sql.Tx) error { return w.insertEvents(tx, 1+w.rng.IntN(20), 0, 2000) })
	case r < 620:
		lo := 1 + w.rng.Int64N(w.users)
		w.tx("update users", func(tx *sql.Tx) error {
			_, err := tx.Exec(`UPDATE users SET score = score + ?, name = name || ? WHERE id BETWEEN ? AND ?`,
				w.rng.IntN(100)-50, string(rune('A'+w.rng.IntN(26))), lo, lo+w.rng.Int64N(50))
			return err
		})
	case r < 700:
		lo := 1 + w.rng.Int64N(w.events+1)
		w.tx("delete events", func(tx *sql.Tx) error {
			_, err := tx.Exec(`DELETE FROM events WHERE id BETWEEN ? AND ?`, lo, lo+w.rng.Int64N(30))
			return err
		})
	case r < 730:
		lo := 1 + w.rng.Int64N(w.users)
		w.tx("delete users", func(tx *sql.Tx) error {
			_, err := tx.Exec(`DELETE FROM users WHERE id BETWEEN ? AND ?`, lo, lo+w.rng.Int64N(10))
			return err
		})
	case r < 880:
		// Values up to 6000 bytes: some spill to overflow pages.
		w.tx("upsert kv", func(tx *sql.Tx) error {
			_, err := tx.Exec(`INSERT INTO kv(k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v`,
				fmt.Sprintf("k%03d", w.rng.IntN(500)), randBytes(w.rng, 10+w.rng.IntN(6000)))
			return err
		})
	case r < 950:
		w.tx("delete kv", func(tx *sql.Tx) error {
			_, err := tx.Exec(`DELETE FROM kv WHERE k BETWEEN ? AND ?`, fmt.Sprintf("k%03d", w.rng.IntN(500)), fmt.Sprintf("k%03d", w.rng.IntN(500)))
			return err
		})
	case r < 960:
		// Schema changes: an index appears or disappears, a scratch table
		// is filled and dropped (its pages go to the freelist).
		w.tx("schema change", func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'events_kind'`).Scan(&n); err != nil {
				return err
			}
			q := `CREATE INDEX events_kind ON events(kind, id)`
			if n > 0 {
				q = `DROP INDEX events_kind`
			}
			if _, err := tx.Exec(q); err != nil {
				return err
			}
			_, err := tx.Exec(`CREATE TABLE scratch AS SELECT * FROM events ORDER BY id DESC LIMIT 300; DROP TABLE scratch`)
			return err
		})
	case r < 963:
		w.grow()
	default:
		w.tx("insert users", w.insertUsers)
	}
}

// grow adds many pages in one transaction (1-5 MiB of events).
func (w *workload) grow() {
	w.t.Helper()
	w.tx("grow", func(tx *sql.Tx) error { return w.insertEvents(tx, 400+w.rng.IntN(1000), 2000, 4000) })
}

// shrink deletes most rows and VACUUMs, so the database file gets smaller,
// and checks that it did.
func (w *workload) shrink() {
	w.t.Helper()
	before := queryInt(w.t, w.db, `PRAGMA page_count`)
	w.tx("shrink: delete", func(tx *sql.Tx) error {
		_, err := tx.Exec(`DELETE FROM events WHERE id % 5 != 0; DELETE FROM kv WHERE k > 'k100'`)
		return err
	})
	mustExec(w.t, w.db, `VACUUM`)
	w.ops["vacuum"]++
	after := queryInt(w.t, w.db, `PRAGMA page_count`)
	if after >= before {
		w.t.Fatalf("VACUUM did not shrink the database: %d pages before, %d after", before, after)
	}
	w.t.Logf("VACUUM: %d -> %d pages", before, after)
}

// app is a randomized test's application: a database with 4 KiB pages
// under a seeded random workload, in the test's directory beside the path
// of its file replica.
type app struct {
	dir, dbPath, replica string
	db                   *sql.DB
	w                    *workload
	rng                  *rand.Rand
}

// newApp creates the test's app; its seed is logged (testSeed).
func newApp(t *testing.T) app {
	t.Helper()
	_, rng := testSeed(t)
	dir := t.TempDir()
	a := app{dir: dir, dbPath: filepath.Join(dir, "app.db"), replica: filepath.Join(dir, "replica"), rng: rng}
	a.db = openDB(t, a.dbPath, "PRAGMA page_size=4096")
	a.w = newWorkload(t, a.db, rng)
	return a
}

// syncPoint is a TXID at which the replica was seen to equal the source.
type syncPoint struct {
	txid ltx.TXID
	hash string
	at   int // transactions committed
}

// awaitReplica waits (writes paused) until the latest restorable TXID equals
// the source's current content, and returns that point. Each candidate TXID
// is restored exactly (-txid) with a full integrity check.
func awaitReplica(t *testing.T, d *daemon, dbPath, replica, scratch string, at int) syncPoint {
	t.Helper()
	want := liveContentHash(t, dbPath)
	deadline := time.Now().Add(60 * time.Second)
	var tried ltx.TXID
	for {
		d.checkAlive()
		txid := replicaMaxTXID(t, replica)
		if txid > tried {
			out := filepath.Join(scratch, fmt.Sprintf("point-%s.db", txid))
			restore(t, replica, txid, out)
			got := contentHash(t, out)
			os.Remove(out)
			if got == want {
				return syncPoint{txid: txid, hash: want, at: at}
			}
			tried = txid
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s the replica (max TXID %s) still does not match the source after %d transactions", tried, at)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRandomizedWorkload runs the daemon while the test commits thousands of
// random transactions (inserts, updates, deletes across three tables and
// their indexes, schema changes, large growth, a shrinking VACUUM). At a few
// random pauses the latest TXID is restored and must equal the source; after
// the final sync the restore must be byte-identical to the checkpointed
// source, and every pause's TXID must still restore to the content recorded
// then.
func TestRandomizedWorkload(t *testing.T) {
	_, rng := testSeed(t)
	n := testsupport.EnvInt(t, "E2E_TXNS", 4000)
	pageSize := []int{1024, 4096, 8192}[rng.IntN(3)]
	t.Logf("%d transactions, page size %d", n, pageSize)

	dir := t.TempDir()
	scratch := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	replica := filepath.Join(dir, "replica")
	db := openDB(t, dbPath, fmt.Sprintf("PRAGMA page_size=%d", pageSize))
	w := newWorkload(t, db, rng)
	d := startDaemon(t, daemonConfig(t, dbPath, replica))

	vacuumAt := n*2/5 + rng.IntN(n/4)
	growAt := rng.IntN(n / 3)
	var pauses []int
	for len(pauses) < 3 {
		p := n/10 + rng.IntN(n*9/10)
		if !slices.Contains(pauses, p) && p != vacuumAt {
			pauses = append(pauses, p)
		}
	}
	var points []syncPoint
	start := time.Now()
	for i := 1; i <= n; i++ {
		switch i {
		case vacuumAt:
			w.shrink()
		case growAt:
			w.grow()
		default:
			w.step()
		}
		if slices.Contains(pauses, i) {
			pauseStart := time.Now()
			p := awaitReplica(t, d, dbPath, replica, scratch, i)
			t.Logf("after %d transactions: replica TXID %s equals the source (checked in %s)", i, p.txid, time.Since(pauseStart).Round(time.Millisecond))
			points = append(points, p)
		}
		if i%500 == 0 {
			d.checkAlive()
		}
	}
	elapsed := time.Since(start)
	d.stop()

	files, _ := listReplica(replica)
	t.Logf("%d transactions in %s; replica: %d files, max TXID %s; ops %v", n, elapsed.Round(time.Millisecond), len(files), replicaMaxTXID(t, replica), w.ops)
	t.Logf("time per kind of transaction: %v", w.opTime)
	facts := checkReplicaLayout(t, replica)
	t.Logf("replica levels %v", facts.levels)

	out := filepath.Join(dir, "restored.db")
	restore(t, replica, 0, out)
	integrityCheck(t, out)
	checkpoint(t, db)
	if got, want := contentHash(t, out), liveContentHash(t, dbPath); got != want {
		t.Errorf("restored content hash %s, source %s", got, want)
	}
	sameFiles(t, dbPath, out, pageSize)

	// Time travel: every TXID seen equal to the source still restores to
	// exactly that content.
	for _, p := range points {
		out := filepath.Join(scratch, fmt.Sprintf("again-%s.db", p.txid))
		restore(t, replica, p.txid, out)
		if got := contentHash(t, out); got != p.hash {
			t.Errorf("TXID %s (after %d transactions) now restores to content %s, was %s", p.txid, p.at, got, p.hash)
		}
	}
}
