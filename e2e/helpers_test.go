package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/testsupport"
)

// cliTimeout bounds any single command-line invocation.
const cliTimeout = 3 * time.Minute

// result is the outcome of one command-line run.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// runCLI runs the built binary with args and returns its exit status and
// output; it fails the test only if the process cannot be run at all.
func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	return runCLIEnv(t, nil, args...)
}

// runCLIEnv is runCLI with extra environment variables ("KEY=value").
func runCLIEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = append(cliEnv(), env...)
	var res result
	var err error
	res.code, res.stdout, res.stderr, err = testsupport.RunCommand(cmd)
	if err != nil {
		t.Fatalf("run litestream %s: %v\n%s", strings.Join(args, " "), err, res)
	}
	return res
}

// mustCLI runs the binary and fails the test unless it exits 0.
func mustCLI(t *testing.T, args ...string) result {
	t.Helper()
	res := runCLI(t, args...)
	if res.code != 0 {
		t.Fatalf("litestream %s: %s", strings.Join(args, " "), res)
	}
	return res
}

// cliEnv is the environment of every subprocess: no config file of the
// machine's is picked up.
func cliEnv() []string {
	env := []string{}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "LITESTREAM_") || strings.HasPrefix(kv, "LOG_LEVEL=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LITESTREAM_CONFIG=/nonexistent/litestream.yml")
}

// fileURL is the file replica URL of dir.
func fileURL(dir string) string { return (&url.URL{Scheme: "file", Path: dir}).String() }

// restore restores replica (a directory) at txid (0: latest) to out through
// the command line, with the full integrity check.
func restore(t *testing.T, replica string, txid ltx.TXID, out string) result {
	t.Helper()
	args := []string{"restore", "-integrity-check", "full", "-o", out}
	if txid != 0 {
		args = append(args, "-txid", txid.String())
	}
	return mustCLI(t, append(args, fileURL(replica))...)
}

// daemon is a running "litestream replicate" process (ours or another
// Litestream's).
type daemon struct {
	*testsupport.Process
	t    *testing.T
	ours bool // this project's binary (its log lines are known)
}

// daemonConfig writes a config file replicating dbPath to the file replica
// dir with short intervals (so a test sees many syncs and checkpoints) and
// returns its path.
func daemonConfig(t *testing.T, dbPath, replica string) string {
	t.Helper()
	cfg := filepath.Join(filepath.Dir(dbPath), filepath.Base(dbPath)+".litestream.yml")
	text := fmt.Sprintf(`logging:
  level: info
dbs:
  - path: %s
    monitor-interval: 20ms
    checkpoint-interval: 300ms
    min-checkpoint-page-count: 200
    replica:
      url: %s
      sync-interval: 50ms
`, dbPath, fileURL(replica))
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// levelsConfig writes a config file beside dbPath that replicates it to
// the file replica with daemonConfig's short intervals and the top-level
// keys in top (levels, snapshot, retention: YAML ending in a newline), and
// returns its path.
func levelsConfig(t *testing.T, dbPath, replica, top string) string {
	t.Helper()
	cfg := filepath.Join(filepath.Dir(dbPath), "litestream.yml")
	text := top + fmt.Sprintf(`dbs:
  - path: %s
    monitor-interval: 20ms
    checkpoint-interval: 300ms
    replica: {url: '%s', sync-interval: 50ms}
`, dbPath, fileURL(replica))
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startDaemon starts "litestream replicate -config cfg". The process is
// killed at the end of the test if it is still running.
func startDaemon(t *testing.T, cfg string) *daemon {
	t.Helper()
	return startProcess(t, binPath, cliEnv(), "replicate", "-config", cfg)
}

// startProcess starts a replicating process of bin (ours or another
// Litestream's). It is killed at the end of the test if it still runs.
func startProcess(t *testing.T, bin string, env []string, args ...string) *daemon {
	t.Helper()
	return &daemon{Process: testsupport.StartProcess(t, "replicate", bin, env, args...), t: t, ours: bin == binPath}
}

// kill ends the daemon with SIGKILL (no final sync, no cleanup) and waits
// for it to be gone.
func (d *daemon) kill() { d.Kill() }

// stop sends SIGTERM and waits for a clean exit after the final sync.
func (d *daemon) stop() {
	d.t.Helper()
	if d.Exited() {
		d.t.Fatalf("replicate exited early (%v):\n%s", d.Err(), tail(d.Out.String(), 8000))
	}
	if err := d.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		d.t.Fatalf("signal replicate: %v", err)
	}
	select {
	case <-d.Done():
	case <-time.After(2 * time.Minute):
		d.t.Fatalf("replicate did not exit within 2m of SIGTERM:\n%s", tail(d.Out.String(), 8000))
	}
	if d.Err() != nil {
		d.t.Fatalf("replicate exited with %v:\n%s", d.Err(), tail(d.Out.String(), 8000))
	}
	if log := d.Out.String(); d.ours && !strings.Contains(log, "final sync done") {
		d.t.Fatalf("replicate log lacks the final sync:\n%s", tail(log, 8000))
	}
}

// checkAlive fails the test if the daemon has exited.
func (d *daemon) checkAlive() {
	d.t.Helper()
	if d.Exited() {
		d.t.Fatalf("replicate exited unexpectedly (%v):\n%s", d.Err(), tail(d.Out.String(), 8000))
	}
}

func tail(s string, n int) string { return testsupport.Tail(s, n) }

// replicaFile is one LTX file of a file replica.
type replicaFile = testsupport.ReplicaFile

var ltxName = regexp.MustCompile(`^[0-9a-f]{16}-[0-9a-f]{16}\.ltx$`)

// listReplica returns the LTX files of a file replica by level then
// MinTXID (testsupport.ReplicaFiles).
func listReplica(root string) ([]replicaFile, error) { return testsupport.ReplicaFiles(root) }

// replicaMaxTXID returns the highest TXID in the replica (0 if empty).
func replicaMaxTXID(t *testing.T, root string) ltx.TXID {
	t.Helper()
	files, err := listReplica(root)
	if err != nil {
		t.Fatalf("list replica %s: %v", root, err)
	}
	var max ltx.TXID
	for _, f := range files {
		max = maxOf(max, f.Max)
	}
	return max
}

func maxOf[T int | int64 | ltx.TXID](a, b T) T {
	if a > b {
		return a
	}
	return b
}

// waitFor polls cond every 10ms until it holds; it fails the test after
// timeout, naming what it waited for.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !testsupport.Poll(timeout, 10*time.Millisecond, cond) {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// waitTXID waits until the replica's max TXID is at least want while the
// daemon keeps running.
func waitTXID(t *testing.T, d *daemon, replica string, want ltx.TXID, timeout time.Duration) ltx.TXID {
	t.Helper()
	var got ltx.TXID
	waitFor(t, fmt.Sprintf("replica TXID >= %s", want), timeout, func() bool {
		d.checkAlive()
		got = replicaMaxTXID(t, replica)
		return got >= want
	})
	return got
}

// openDB opens a database for writing in WAL mode, the way an application
// next to the daemon would. One connection: statements run in order. Its
// transactions begin IMMEDIATE, as an application's must when another
// connection may hold the write lock: the daemon holds it for a few
// milliseconds when it forces a restart of the WAL, and a deferred
// transaction that has read gets SQLITE_BUSY at its first write then,
// without waiting (as with Litestream's checkpoints).
func openDB(t *testing.T, path string, pragmas ...string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=10000&_synchronous=NORMAL&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	for _, p := range append(pragmas, "PRAGMA journal_mode=WAL") {
		if _, err := db.Exec(p); err != nil {
			t.Fatalf("%s on %s: %v", p, path, err)
		}
	}
	return db
}

// openReadOnly opens a restored database immutable: nothing is written
// next to it, so the file stays comparable byte for byte.
func openReadOnly(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", (&url.URL{Scheme: "file", Path: path, RawQuery: "mode=ro&immutable=1"}).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", firstLine(q), err)
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

// seriesSQL defines the table series, the integers 1..?1 in column value,
// for the statement that follows (mattn's SQLite lacks generate_series).
const seriesSQL = `WITH RECURSIVE series(value, n) AS (SELECT 1, ?1 UNION ALL SELECT value + 1, n FROM series WHERE value < n) `

func queryInt(t *testing.T, db *sql.DB, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// integrityCheck runs PRAGMA integrity_check on a restored database.
func integrityCheck(t *testing.T, path string) {
	t.Helper()
	rows, err := openReadOnly(t, path).Query("PRAGMA integrity_check")
	if err != nil {
		t.Fatalf("integrity_check %s: %v", path, err)
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("integrity_check %s: %v", path, err)
	}
	if len(msgs) != 1 || msgs[0] != "ok" {
		t.Fatalf("integrity_check %s: %q", path, msgs)
	}
}

// contentHash is the sqlite3 shell's .sha3sum of a database: a hash of the
// schema and of every table's rows in key order, independent of page layout.
// The file is opened immutable.
func contentHash(t *testing.T, path string) string {
	t.Helper()
	u := (&url.URL{Scheme: "file", Path: path, RawQuery: "immutable=1"}).String()
	return sqliteShell(t, u, ".sha3sum")
}

// liveContentHash is contentHash of a database in use (opened normally, so
// the WAL counts).
func liveContentHash(t *testing.T, path string) string {
	t.Helper()
	return sqliteShell(t, path, ".sha3sum")
}

func sqliteShell(t *testing.T, dbArg string, cmds ...string) string {
	t.Helper()
	out, err := exec.Command("sqlite3", append([]string{dbArg}, cmds...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %s %s: %v\n%s", dbArg, strings.Join(cmds, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// checkpoint checkpoints the source fully and truncates its WAL, so that the
// database file alone is the latest state (and is comparable to a restore).
func checkpoint(t *testing.T, db *sql.DB) {
	t.Helper()
	var busy, logN, ckpt int
	if err := db.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logN, &ckpt); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if busy != 0 {
		t.Fatalf("checkpoint(TRUNCATE) was blocked (busy=%d log=%d checkpointed=%d)", busy, logN, ckpt)
	}
}

// sameFiles fails the test unless a and b are byte-identical; it names the
// first differing page (pageSize bytes) to make a mismatch debuggable.
func sameFiles(t *testing.T, a, b string, pageSize int) {
	t.Helper()
	pos, err := testsupport.FirstDiff(a, b)
	if err != nil {
		t.Fatal(err)
	} else if pos < 0 {
		return
	}
	size := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	t.Fatalf("%s (%d bytes) and %s (%d bytes) differ first at byte %d (page %d, offset %d in the page)",
		a, size(a), b, size(b), pos, pos/int64(pageSize)+1, pos%int64(pageSize))
}

// testSeed returns the seed of a randomized test: $E2E_SEED, else the
// clock. It is logged so a failure can be reproduced.
func testSeed(t *testing.T) (uint64, *rand.Rand) {
	t.Helper()
	seed, rng, err := testsupport.Seed("E2E_SEED")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("seed %d (reproduce with E2E_SEED=%d go test ./e2e -run '^%s$')", seed, seed, t.Name())
	return seed, rng
}

// randBytes returns n pseudo-random bytes from r.
func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}
