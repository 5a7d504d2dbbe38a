package e2e

// Both tools on one replica: Litestream v0.5.18 continues a replica this
// program wrote and the other way round, on the file and S3 (MinIO)
// layouts, both for the same database handed from one tool to the other
// and for a failover (the other tool restores the database on a new
// machine, then replicates it). Each tool then restores every TXID, and
// the two agree.

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/litestream-go/litestream/internal/testserver"
)

// tool runs replicate/restore/ltx with one of the two programs.
type tool struct {
	name string
	run  func(t *testing.T, env []string, args ...string) (int, string, string)
}

// bothTools returns this program (the built binary) and Litestream
// v0.5.18 (skips, or fails under LITESTREAM_REQUIRE_SERVERS, when it is not
// installed: scripts/testservers/litestream.sh).
func bothTools(t *testing.T) (ours, theirs tool) {
	r := testserver.RealLitestream(t)
	theirs = tool{"litestream " + testserver.LitestreamVersion, func(t *testing.T, env []string, args ...string) (int, string, string) {
		return r.Run(t, env, args...)
	}}
	return oursTool(), theirs
}

// oursTool is this program, the built binary.
func oursTool() tool {
	return tool{"ours", func(t *testing.T, env []string, args ...string) (int, string, string) {
		res := runCLIEnv(t, env, args...)
		return res.code, res.stdout, res.stderr
	}}
}

func (tl tool) mustRun(t *testing.T, env []string, args ...string) string {
	t.Helper()
	code, stdout, stderr := tl.run(t, env, args...)
	return testserver.CheckRun(t, tl.name, args, code, stdout, stderr)
}

// maxTXID lists the replica with ltx -level all and returns its highest TXID.
func (tl tool) maxTXID(t *testing.T, env []string, url string) uint64 {
	t.Helper()
	out := tl.mustRun(t, env, "ltx", "-level", "all", url)
	var max uint64
	for _, line := range strings.Split(out, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		v, err := strconv.ParseUint(f[2], 16, 64)
		if err == nil && v > max {
			max = v
		}
	}
	return max
}

// rowCount checks a restored database's integrity and counts the rows of t.
func rowCount(t *testing.T, path string) int {
	t.Helper()
	integrityCheck(t, path)
	return int(queryInt(t, openReadOnly(t, path), `SELECT count(*) FROM t`))
}

// openApp opens the application's database (WAL, one connection) with the
// table t the both-ways tests write to.
func openApp(t *testing.T, path string) *sql.DB {
	t.Helper()
	return openAppWith(t, path, "", `CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)`)
}

// openAppWith opens an application's database: WAL, a 5 s busy timeout,
// one connection, more DSN parameters in params ("&_txlock=immediate"),
// then runs schema.
func openAppWith(t *testing.T, path, params, schema string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", path+"?_journal_mode=WAL&_busy_timeout=5000"+params)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	mustExec(t, db, schema)
	return db
}

// itemsSchema is the table of the replicate, NATS and age tests.
const itemsSchema = `CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, payload BLOB)`

// insertRows adds n rows to t, one transaction each.
func insertRows(t *testing.T, db *sql.DB, n int) {
	t.Helper()
	for i := range n {
		mustExec(t, db, `INSERT INTO t(v) VALUES (?)`, strings.Repeat("r", 100+i))
	}
}

// checkAllTXIDs restores every TXID of the replica with both tools: the
// two agree, row counts never decrease, and each known TXID holds its
// known row count.
func checkAllTXIDs(t *testing.T, env []string, url string, known map[uint64]int, tools ...tool) {
	t.Helper()
	max := tools[0].maxTXID(t, env, url)
	dir := t.TempDir()
	prev := 0
	for txid := uint64(1); txid <= max; txid++ {
		counts := map[string]int{}
		for _, tl := range tools {
			out := filepath.Join(dir, fmt.Sprintf("%x-%d.db", txid, len(counts)))
			tl.mustRun(t, env, "restore", "-txid", fmt.Sprintf("%016x", txid), "-o", out, url)
			counts[tl.name] = rowCount(t, out)
		}
		var n int
		first := true
		for name, c := range counts {
			if first {
				n, first = c, false
			} else if c != n {
				t.Errorf("TXID %d: the tools disagree: %v", txid, counts)
			}
			_ = name
		}
		if n < prev {
			t.Errorf("TXID %d holds %d rows, fewer than the %d of TXID %d", txid, n, prev, txid-1)
		}
		if want, ok := known[txid]; ok && n != want {
			t.Errorf("TXID %d holds %d rows, want %d", txid, n, want)
		}
		prev = n
	}
}

// TestBothWays_Handover_File: one database, replicated in turns by this
// program and Litestream with replicate -once, the application writing
// between turns.
func TestBothWays_Handover_File(t *testing.T) {
	dir := t.TempDir()
	testHandover(t, "file://"+filepath.Join(dir, "replica"), nil)
}

func testHandover(t *testing.T, url string, env []string) {
	ours, theirs := bothTools(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	app := openApp(t, dbPath)
	known := map[uint64]int{}
	rows := 0
	order := []tool{ours, theirs, ours, theirs, theirs, ours, ours, theirs}
	for i, tl := range order {
		insertRows(t, app, 5+i)
		rows += 5 + i
		if i == 4 || i == 5 {
			// Each tool's reset of the local state before its turn.
			tl.mustRun(t, env, "reset", dbPath)
		}
		tl.mustRun(t, env, "replicate", "-once", dbPath, url)
		txid := ours.maxTXID(t, env, url)
		known[txid] = rows
		t.Logf("round %d by %s: TXID %d holds %d rows", i, tl.name, txid, rows)
	}
	checkAllTXIDs(t, env, url, known, ours, theirs)
}

// TestBothWays_Failover_File: a database replicated by one tool is restored
// on a new machine by the other (replicate -restore-if-db-not-exists),
// which then replicates it; then back again.
func TestBothWays_Failover_File(t *testing.T) {
	dir := t.TempDir()
	testFailover(t, "file://"+filepath.Join(dir, "replica"), nil, false)
}

// TestBothWays_Failover_WALless_File: as TestBothWays_Failover_File, but
// each machine's application closes its database (its WAL is removed)
// before the last sync there, so that the replica's last file is a
// snapshot of a database without a WAL.
func TestBothWays_Failover_WALless_File(t *testing.T) {
	dir := t.TempDir()
	testFailover(t, "file://"+filepath.Join(dir, "replica"), nil, true)
}

func testFailover(t *testing.T, url string, env []string, closeBeforeLastSync bool) {
	ours, theirs := bothTools(t)
	known := map[uint64]int{}
	rows := 0
	for step, tl := range []tool{ours, theirs, ours, theirs} {
		// A new machine: the database does not exist there yet (the
		// first step starts the replica).
		dbPath := filepath.Join(t.TempDir(), "app.db")
		if step == 0 {
			openApp(t, dbPath).Close()
		}
		tl.mustRun(t, env, "replicate", "-once", "-restore-if-db-not-exists", dbPath, url)
		app := openApp(t, dbPath)
		if got := countRows(t, app); got != rows {
			t.Fatalf("step %d (%s): restored database holds %d rows, want %d", step, tl.name, got, rows)
		}
		for round := 0; round < 2; round++ {
			insertRows(t, app, 7+round)
			rows += 7 + round
			if round == 1 && closeBeforeLastSync {
				// The application stops (its last connection
				// checkpoints and removes the WAL) before the last sync
				// on this machine: the replica's last file is then a
				// snapshot of a database without a WAL.
				app.Close()
			}
			tl.mustRun(t, env, "replicate", "-once", dbPath, url)
			known[ours.maxTXID(t, env, url)] = rows
		}
		app.Close()
		t.Logf("step %d by %s: %d rows, replica at TXID %d", step, tl.name, rows, ours.maxTXID(t, env, url))
	}
	checkAllTXIDs(t, env, url, known, ours, theirs)
}

func countRows(t *testing.T, db *sql.DB) int {
	t.Helper()
	return int(queryInt(t, db, `SELECT count(*) FROM t`))
}

// TestBothWays_MinIO: the handover and the failover on the S3 layout, and
// a replica at the bucket root (s3://BUCKET/), where both tools use
// Litestream's keys, "/<level>/<file>".
func TestBothWays_MinIO(t *testing.T) {
	testserver.RealLitestream(t)
	m := startMinIO(t) // both tools get the credentials in their environment (m.env)
	m.bucket(t, "handover")
	m.bucket(t, "failover")
	t.Run("handover", func(t *testing.T) { testHandover(t, m.url("handover", "db/app"), m.env()) })
	t.Run("failover", func(t *testing.T) { testFailover(t, m.url("failover", "app"), m.env(), false) })
	t.Run("failover-walless", func(t *testing.T) {
		m.bucket(t, "failover-walless")
		testFailover(t, m.url("failover-walless", "app"), m.env(), true)
	})
	t.Run("bucket-root", func(t *testing.T) {
		// On MinIO, Litestream cannot list its own files at the bucket
		// root: it writes "/0000/..." keys, MinIO stores them without the
		// slash and does not list them under the "/0000/" prefix
		// Litestream lists. So here Litestream writes and this program
		// reads and continues; its keys are Litestream's (remote/s3's
		// TestLayout checks the key), so on AWS each reads the other's.
		ours, theirs := bothTools(t)
		m.bucket(t, "root")
		url := "s3://root/?endpoint=" + m.addr + "&region=us-east-1"
		dbPath := filepath.Join(t.TempDir(), "app.db")
		app := openApp(t, dbPath)
		insertRows(t, app, 9)
		theirs.mustRun(t, m.env(), "replicate", "-once", dbPath, url)
		if got := ours.maxTXID(t, m.env(), url); got != 1 {
			t.Fatalf("we see TXID %d of Litestream's bucket-root replica, want 1", got)
		}
		insertRows(t, app, 4)
		ours.mustRun(t, m.env(), "replicate", "-once", dbPath, url)
		out := filepath.Join(t.TempDir(), "r.db")
		ours.mustRun(t, m.env(), "restore", "-o", out, url)
		if n := rowCount(t, out); n != 13 {
			t.Errorf("restored %d rows from the bucket root, want 13", n)
		}
		out1 := filepath.Join(t.TempDir(), "r1.db")
		ours.mustRun(t, m.env(), "restore", "-txid", "1", "-o", out1, url)
		if n := rowCount(t, out1); n != 9 {
			t.Errorf("restored %d rows at Litestream's TXID 1, want 9", n)
		}
	})
}
