package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"
)

func TestSplitCommand(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
		err  bool
	}{
		{in: "myapp serve", want: []string{"myapp", "serve"}},
		{in: "  a\t b  ", want: []string{"a", "b"}},
		{in: `sh -c 'echo "hi there"; exit 3'`, want: []string{"sh", "-c", `echo "hi there"; exit 3`}},
		{in: `a "b \"c\" \\ d" e\ f`, want: []string{"a", `b "c" \ d`, "e f"}},
		{in: `a '' ""`, want: []string{"a", "", ""}},
		{in: `x'y'"z"`, want: []string{"xyz"}},
		{in: "", want: nil},
		{in: `a 'b`, err: true},
		{in: `a "b`, err: true},
	} {
		got, err := splitCommand(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("splitCommand(%q) error = %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
			t.Errorf("splitCommand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestLocalAddr: the MCP endpoint binds localhost unless given a host (the
// metrics address is literal; see TestMetricsAddrLiteral).
func TestLocalAddr(t *testing.T) {
	for in, want := range map[string]string{
		":9090":         "127.0.0.1:9090",
		"0.0.0.0:9090":  "0.0.0.0:9090",
		"localhost:0":   "localhost:0",
		"[::1]:9090":    "[::1]:9090",
		"10.1.2.3:9090": "10.1.2.3:9090",
	} {
		if got := localAddr(in); got != want {
			t.Errorf("localAddr(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestRateLimitHandler(t *testing.T) {
	var buf strings.Builder
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := newRateLimitHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}), time.Minute, func() time.Time { return now })
	log := slog.New(h).With("db", "/a.db")
	other := slog.New(h).With("db", "/b.db")

	for i := 0; i < 5; i++ {
		log.Error("sync failed", "err", "remote down")
		log.Info("info is never limited", "i", i)
		now = now.Add(time.Second)
	}
	other.Error("sync failed", "err", "remote down") // another database: its own line
	log.Error("sync failed", "err", "other cause")   // another error: its own line
	now = now.Add(time.Minute)
	log.Error("sync failed", "err", "remote down") // after the window, with the count

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{
		`level=ERROR msg="sync failed" db=/a.db err="remote down"`,
		`level=INFO msg="info is never limited" db=/a.db i=0`,
		`level=INFO msg="info is never limited" db=/a.db i=1`,
		`level=INFO msg="info is never limited" db=/a.db i=2`,
		`level=INFO msg="info is never limited" db=/a.db i=3`,
		`level=INFO msg="info is never limited" db=/a.db i=4`,
		`level=ERROR msg="sync failed" db=/b.db err="remote down"`,
		`level=ERROR msg="sync failed" db=/a.db err="other cause"`,
		`level=ERROR msg="sync failed" db=/a.db err="remote down" repeated=4`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("log lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// daemon is replicate running in-process, with its log and signals.
type testDaemon struct {
	t      *testing.T
	out    *lockedBuffer
	sigs   chan os.Signal
	done   chan int
	exited atomic.Int32 // Exit calls
}

func startDaemon(t *testing.T, args ...string) *testDaemon {
	t.Helper()
	d := &testDaemon{t: t, out: &lockedBuffer{}, sigs: make(chan os.Signal, 2), done: make(chan int, 1)}
	m := &Main{Stdout: d.out, Stderr: d.out, Getenv: env(nil), Signals: d.sigs, Exit: func(int) { d.exited.Add(1) }, minHeartbeat: time.Millisecond}
	go func() { d.done <- m.Main(context.Background(), append([]string{"replicate"}, args...)) }()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			d.sigs <- syscall.SIGTERM
			select {
			case <-d.done:
			case <-time.After(30 * time.Second):
				t.Errorf("daemon did not stop:\n%s", d.out.String())
			}
		}
	})
	return d
}

// wait returns the exit status once replicate returns.
func (d *testDaemon) wait(timeout time.Duration) int {
	d.t.Helper()
	select {
	case code := <-d.done:
		d.done <- code // for Cleanup
		return code
	case <-time.After(timeout):
		d.t.Fatalf("replicate did not return within %s:\n%s", timeout, d.out.String())
		return -1
	}
}

// mustExit waits (30 s at most) for replicate to return and fails the test
// unless its exit status is want.
func (d *testDaemon) mustExit(want int) {
	d.t.Helper()
	if code := d.wait(30 * time.Second); code != want {
		d.t.Fatalf("exit %d, want %d:\n%s", code, want, d.out.String())
	}
}

func openApp(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", path+"?_journal_mode=WAL&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	return db
}

func restoreTo(t *testing.T, replica, out string) {
	t.Helper()
	if code, stdout, stderr := run(t, nil, "restore", "-o", out, "file://"+replica); code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", code, stdout, stderr)
	}
}

// restoredQuery restores the file replica to out and returns the answer to
// q there.
func restoredQuery(t *testing.T, replica, out, q string) string {
	t.Helper()
	restoreTo(t, replica, out)
	return queryString(t, out, q)
}

// execSetup returns the sqlite3 shell (the test is skipped without it), a
// temporary directory, an application database in it (table t, empty) and
// a replica path beside it.
func execSetup(t *testing.T) (sqlite3, dir, dbPath, replica string) {
	t.Helper()
	sqlite3, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Skip("the sqlite3 shell is not installed")
	}
	dir, dbPath, replica, app := appDir(t)
	app.Close()
	return sqlite3, dir, dbPath, replica
}

// appDir returns a temporary directory, an application database in it
// (table t, empty) and open, and a replica path beside it.
func appDir(t *testing.T) (dir, dbPath, replica string, app *sql.DB) {
	t.Helper()
	dir = t.TempDir()
	dbPath = filepath.Join(dir, "app.db")
	return dir, dbPath, filepath.Join(dir, "replica"), openApp(t, dbPath)
}

// TestReplicate_Exec runs an application under -exec that writes and exits:
// replicate exits with the application's status after a final sync, and a
// restore holds the application's last write.
func TestReplicate_Exec(t *testing.T) {
	sqlite3, dir, dbPath, replica := execSetup(t)

	// The child writes 100 rows in separate transactions, then a last one,
	// and exits 3 at once: only the final sync can upload the last write.
	script := fmt.Sprintf(`for i in $(seq 1 100); do echo "INSERT INTO t(v) VALUES ('row $i');"; done | %[1]s %[2]s && %[1]s %[2]s "INSERT INTO t(v) VALUES ('last write')" && exit 3`, sqlite3, dbPath)
	cfg := writeConfig(t, dir, fmt.Sprintf("dbs:\n  - path: %s\n    monitor-interval: 1h\n    replica: {url: 'file://%s', sync-interval: 1h}\n", dbPath, replica))
	d := startDaemon(t, "-config", cfg, "-exec", "sh -c '"+strings.ReplaceAll(script, "'", `'\''`)+"'")
	d.mustExit(3)
	for _, w := range []string{"subprocess started", "subprocess exited", "final sync done"} {
		if !strings.Contains(d.out.String(), w) {
			t.Errorf("log lacks %q:\n%s", w, d.out.String())
		}
	}
	if got := restoredQuery(t, replica, filepath.Join(dir, "restored.db"), "SELECT count(*) || ':' || (SELECT v FROM t ORDER BY id DESC LIMIT 1) FROM t"); got != "101:last write" {
		t.Errorf("restored %q, want 101:last write", got)
	}
}

// TestReplicate_ExecSignal: SIGTERM goes to the subprocess, which writes in
// its handler and exits 0; the final sync carries that write.
func TestReplicate_ExecSignal(t *testing.T) {
	sqlite3, dir, dbPath, replica := execSetup(t)
	ready := filepath.Join(dir, "ready")
	script := fmt.Sprintf(`trap '%[1]s %[2]s "INSERT INTO t(v) VALUES (\"on SIGTERM\")"; exit 0' TERM; touch %[3]s; while true; do sleep 0.05; done`, sqlite3, dbPath, ready)
	args, err := splitCommand("sh -c " + shellQuote(script))
	if err != nil || len(args) != 3 || args[2] != script {
		t.Fatalf("quoting the script: %q, %v", args, err)
	}
	cfg := writeConfig(t, dir, fmt.Sprintf("dbs:\n  - path: %s\n    replica: {url: 'file://%s'}\n", dbPath, replica))
	d := startDaemon(t, "-config", cfg, "-exec", "sh -c "+shellQuote(script))
	waitFor(t, "the subprocess to start", 10*time.Second, func() bool { _, err := os.Stat(ready); return err == nil })
	d.sigs <- syscall.SIGTERM
	d.mustExit(0)
	if d.exited.Load() != 0 {
		t.Error("Exit called on a single signal")
	}
	if got := restoredQuery(t, replica, filepath.Join(dir, "restored.db"), "SELECT group_concat(v) FROM t"); got != "on SIGTERM" {
		t.Errorf("restored %q, want the write made in the subprocess's signal handler", got)
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// replicaFiles returns the number, total size and newest TXID of the LTX
// files under a file replica.
func replicaFiles(t *testing.T, dir string) (n int, size int64, maxTXID ltx.TXID) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".ltx") || strings.HasPrefix(e.Name(), ".") {
			return nil
		}
		_, maxID, perr := ltx.ParseFilename(e.Name())
		if perr != nil {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return nil
		}
		n++
		size += fi.Size()
		maxTXID = max(maxTXID, maxID)
		return nil
	})
	return n, size, maxTXID
}

// scrape fetches /metrics and returns the samples by "name{labels}" with the
// labels in the exposition's (sorted) order.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func liveStatusJSON(t *testing.T, cfg string) dbStatus {
	t.Helper()
	code, stdout, stderr := run(t, nil, "status", "-json", "-config", cfg)
	if code != 0 {
		t.Fatalf("status: exit %d\n%s%s", code, stdout, stderr)
	}
	var rows []dbStatus
	if err := json.Unmarshal([]byte(stdout), &rows); err != nil {
		t.Fatalf("status -json: %v\n%s", err, stdout)
	}
	if len(rows) != 1 || rows[0].Source != "daemon" || rows[0].LagSeconds == nil {
		t.Fatalf("status -json did not come from the daemon:\n%s%s", stdout, stderr)
	}
	return rows[0]
}

// TestReplicate_Service runs the daemon with metrics, control socket and
// heartbeat while the test writes; then makes the replica unreachable and
// brings it back. It checks the scraped counters against what reached the
// replica, status -json against the replica's true TXID, the lag growing and
// recovering, and the heartbeat pausing while syncs fail.
func TestReplicate_Service(t *testing.T) {
	dir, dbPath, replica, app := appDir(t)
	sock := filepath.Join(dir, "ls.sock")

	var beats atomic.Int64
	hb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { beats.Add(1) }))
	defer hb.Close()

	cfg := writeConfig(t, dir, fmt.Sprintf(`
addr: 127.0.0.1:0
socket: {enabled: true, path: %s}
heartbeat-url: %s/ping?token=secret
heartbeat-interval: 100ms
shutdown-sync-timeout: 5s
logging: {level: debug}
dbs:
  - path: %s
    monitor-interval: 20ms
    replica: {url: 'file://%s', sync-interval: 50ms}
`, sock, hb.URL, dbPath, replica))
	d := startDaemon(t, "-config", cfg)
	addr := waitMetricsAddr(t, d)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("metrics bound to %s", addr)
	}

	insert := func(n int) {
		for i := 0; i < n; i++ {
			if _, err := app.Exec(`INSERT INTO t(v) VALUES (?)`, strings.Repeat("x", 500)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var mu sync.Mutex // writes happen in bursts with pauses so several syncs occur
	for i := 0; i < 5; i++ {
		mu.Lock()
		insert(50)
		mu.Unlock()
		waitFor(t, "a sync to reach the replica", 10*time.Second, func() bool {
			_, _, tx := replicaFiles(t, replica)
			return tx >= ltx.TXID(i+1)
		})
	}

	// Quiescent: the replica stops changing once the last write is uploaded.
	var n int
	var size int64
	var txid ltx.TXID
	waitFor(t, "the daemon to catch up", 10*time.Second, func() bool {
		s := liveStatusJSON(t, cfg)
		n, size, txid = replicaFiles(t, replica)
		return s.ReplicaTXID == txid.String() && s.LastError == "" && s.LocalTXID == s.ReplicaTXID
	})
	mt := scrape(t, addr)
	lbl := fmt.Sprintf(`{db="%s",op="PUT",type="file"}`, dbPath)
	// Every file written is in the replica unless the writer's compaction
	// clean-up or retention deleted it since (counted too).
	deleted := mt[fmt.Sprintf(`litestream_retention_deleted_files_total{db="%s"}`, dbPath)]
	if got := mt["litestream_remote_requests_total"+lbl]; got != float64(n)+deleted {
		t.Errorf("PUT requests = %v, files in the replica = %d, deleted %v", got, n, deleted)
	}
	if got := mt["litestream_remote_bytes_total"+lbl]; deleted == 0 && got != float64(size) {
		t.Errorf("PUT bytes = %v, bytes in the replica = %d", got, size)
	}
	if got := mt[fmt.Sprintf(`litestream_txid{db="%s"}`, dbPath)]; got != float64(txid) {
		t.Errorf("litestream_txid = %v, replica's newest TXID %d", got, txid)
	}
	if got := mt[fmt.Sprintf(`litestream_sync_total{db="%s"}`, dbPath)]; got < float64(txid) {
		t.Errorf("litestream_sync_total = %v, fewer than the %d files uploaded", got, txid)
	}
	if got := mt[fmt.Sprintf(`litestream_snapshot_total{db="%s"}`, dbPath)]; got != 0 {
		t.Errorf("litestream_snapshot_total = %v, want 0 (level-9 files; the first sync's full snapshot goes to level 0 only)", got)
	}
	if got := mt[fmt.Sprintf(`litestream_wal_bytes{db="%s"}`, dbPath)]; got <= 0 {
		t.Errorf("litestream_wal_bytes = %v", got)
	}
	if _, ok := mt[fmt.Sprintf(`litestream_replication_lag_seconds{db="%s"}`, dbPath)]; !ok {
		t.Error("no litestream_replication_lag_seconds")
	}
	waitFor(t, "a heartbeat", 10*time.Second, func() bool { return beats.Load() > 0 })

	// Unreachable: the replica's directory is replaced by a file.
	replaceWithFile(t, replica, replica+".away")
	insert(10)
	var failing dbStatus
	waitFor(t, "syncs to fail", 10*time.Second, func() bool {
		failing = liveStatusJSON(t, cfg)
		return failing.LastError != ""
	})
	beatsAtFailure := beats.Load()
	waitFor(t, "the lag to grow", 10*time.Second, func() bool {
		s := liveStatusJSON(t, cfg)
		return *s.LagSeconds > *failing.LagSeconds+0.5 && *s.LagSeconds > 0.5
	})
	if s := liveStatusJSON(t, cfg); s.ReplicaTXID != txid.String() || s.LocalTXID != (txid+1).String() {
		t.Errorf("while unreachable: replica txid %s local %s, want %s and %s", s.ReplicaTXID, s.LocalTXID, txid, txid+1)
	}
	// At most one heartbeat could have been in flight as the failure began.
	if got := beats.Load(); got > beatsAtFailure+1 {
		t.Errorf("heartbeats went on while syncs failed: %d -> %d", beatsAtFailure, got)
	}
	mt = scrape(t, addr)
	if got := mt[fmt.Sprintf(`litestream_sync_errors_total{db="%s"}`, dbPath)]; got < 1 {
		t.Errorf("litestream_sync_errors_total = %v while failing", got)
	}
	if got := mt[fmt.Sprintf(`litestream_remote_errors_total{db="%s",op="PUT",type="file"}`, dbPath)]; got < 1 {
		t.Errorf("PUT errors = %v while failing", got)
	}

	// Back: the lag drops and the pending file is uploaded.
	if err := os.Remove(replica); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(replica+".away", replica); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the lag to recover", 10*time.Second, func() bool {
		s := liveStatusJSON(t, cfg)
		_, _, tx := replicaFiles(t, replica)
		return s.LastError == "" && *s.LagSeconds < 0.5 && s.ReplicaTXID == tx.String() && tx > txid
	})
	beatsBack := beats.Load()
	waitFor(t, "heartbeats to resume", 10*time.Second, func() bool { return beats.Load() > beatsBack })

	// The table form of status, and no secret in the log.
	if code, stdout, _ := run(t, nil, "status", "-config", cfg); code != 0 || !strings.Contains(stdout, "lag") {
		t.Errorf("status table: exit %d\n%s", code, stdout)
	}
	d.sigs <- syscall.SIGTERM
	d.mustExit(0)
	if strings.Contains(d.out.String(), "token=secret") {
		t.Errorf("the heartbeat URL's token reached the log:\n%s", d.out.String())
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("control socket left behind: %v", err)
	}
}

// TestReplicate_ShutdownTimeout: with the replica unreachable, the final
// sync gives up after shutdown-sync-timeout; a second signal abandons it at
// once.
func TestReplicate_ShutdownTimeout(t *testing.T) {
	for _, second := range []bool{false, true} {
		t.Run(fmt.Sprintf("second-signal=%v", second), func(t *testing.T) {
			dir, dbPath, replica, app := appDir(t)
			timeout := "1s"
			if second {
				timeout = "1m"
			}
			cfg := writeConfig(t, dir, fmt.Sprintf("shutdown-sync-timeout: %s\nshutdown-sync-interval: 50ms\ndbs:\n  - path: %s\n    monitor-interval: 20ms\n    replica: {url: 'file://%s', sync-interval: 20ms}\n", timeout, dbPath, replica))
			d := startDaemon(t, "-config", cfg)
			waitFor(t, "the first sync", 10*time.Second, func() bool { return countLTX(replica) > 0 })
			replaceWithFile(t, replica, replica+".away")
			if _, err := app.Exec(`INSERT INTO t(v) VALUES ('unsynced')`); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			d.sigs <- syscall.SIGTERM
			if second {
				waitFor(t, "a retried final sync", 10*time.Second, func() bool {
					return strings.Contains(d.out.String(), "final sync failed, retrying")
				})
				d.sigs <- syscall.SIGINT
			}
			code := d.wait(20 * time.Second)
			if code != 1 {
				t.Errorf("exit %d, want 1 (final sync failed)", code)
			}
			if el := time.Since(start); el > 10*time.Second {
				t.Errorf("shutdown took %s", el)
			}
			if got := d.exited.Load(); (got > 0) != second {
				t.Errorf("Exit called %d times (second signal %v)", got, second)
			}
			if !strings.Contains(d.out.String(), "final sync abandoned") {
				t.Errorf("log lacks the abandoned final sync:\n%s", d.out.String())
			}
		})
	}
}

// replaceWithFile puts a regular file where the replica directory was, so
// every later upload fails. The daemon keeps syncing meanwhile and may
// recreate the directory, so the swap is done with renames and retried
// until the file is in place. The original directory ends up at away.
func replaceWithFile(t *testing.T, replica, away string) {
	t.Helper()
	tmp := replica + ".file"
	writeFile(t, tmp, "not a directory")
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		dst := away
		if i > 0 {
			dst = fmt.Sprintf("%s.recreated%d", replica, i)
		}
		if err := os.Rename(replica, dst); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		err := os.Rename(tmp, replica)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replace replica directory with a file: %v", err)
		}
	}
}

var _ = io.Discard

// gatedApp is an -exec application that says it runs (a file appears),
// then waits until the test releases it and exits 0.
type gatedApp struct{ started, mayExit string }

func newGatedApp(dir string) gatedApp {
	return gatedApp{started: filepath.Join(dir, "app-started"), mayExit: filepath.Join(dir, "app-may-exit")}
}

func (a gatedApp) command() string {
	return fmt.Sprintf(`sh -c 'touch %s; while [ ! -e %s ]; do sleep 0.05; done'`, a.started, a.mayExit)
}

func (a gatedApp) waitStarted(t *testing.T) {
	t.Helper()
	waitFor(t, "the application to start", 20*time.Second, func() bool { _, err := os.Stat(a.started); return err == nil })
}

func (a gatedApp) release(t *testing.T) { writeFile(t, a.mayExit, "") }

// TestReplicate_ExecReplicaUnreachable: with the replica unreachable at
// start (its directory is a regular file), replicate -exec still starts
// the application, says why it cannot replicate (log, status, metrics)
// and keeps trying; once the replica is back, it replicates, and the
// application's exit brings the final sync. Before, replicate exited at
// start and never ran the application.
func TestReplicate_ExecReplicaUnreachable(t *testing.T) {
	dir, dbPath, replica, app := appDir(t)
	sock := filepath.Join(dir, "ls.sock")
	writeFile(t, replica, "not a directory")

	ga := newGatedApp(dir)
	cfg := writeConfig(t, dir, fmt.Sprintf("addr: 127.0.0.1:0\nsocket: {enabled: true, path: %s}\ndbs:\n  - path: %s\n    monitor-interval: 20ms\n    replica: {url: 'file://%s', sync-interval: 50ms}\n", sock, dbPath, replica))
	d := startDaemon(t, "-config", cfg, "-exec", ga.command())
	ga.waitStarted(t)
	waitFor(t, "the open failure in the log", 10*time.Second, func() bool {
		return strings.Contains(d.out.String(), "cannot open database; retrying in the background")
	})
	st := liveStatusJSON(t, cfg)
	if st.State != "opening" || st.Status != "error" || !strings.Contains(st.LastError, "not a directory") {
		t.Errorf("status while unreachable: %+v", st)
	}
	addr := waitMetricsAddr(t, d)
	if mt := scrape(t, addr); mt[fmt.Sprintf(`litestream_last_sync_failed{db="%s"}`, dbPath)] != 1 {
		t.Errorf("litestream_last_sync_failed is not 1 while the replica is unreachable")
	}
	if _, err := app.Exec(`INSERT INTO t(v) VALUES ('while down')`); err != nil {
		t.Fatal(err)
	}

	// The replica comes back: the retry opens the database and it syncs.
	if err := os.Remove(replica); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replication to begin", 60*time.Second, func() bool {
		s := liveStatusJSON(t, cfg)
		return s.State == "replicating" && s.LastError == "" && s.ReplicaTXID != "0000000000000000"
	})
	if !strings.Contains(d.out.String(), "database opened after retrying") {
		t.Errorf("log lacks the successful retry:\n%s", d.out.String())
	}
	if _, err := app.Exec(`INSERT INTO t(v) VALUES ('after')`); err != nil {
		t.Fatal(err)
	}
	ga.release(t)
	d.mustExit(0)
	if got := restoredQuery(t, replica, filepath.Join(dir, "restored.db"), "SELECT group_concat(v) FROM t"); got != "while down,after" {
		t.Errorf("restored %q", got)
	}
}

// TestReplicate_ExecS3Unreachable: the same with an S3 endpoint nobody
// listens on: the application starts, and status says why nothing
// replicates.
func TestReplicate_ExecS3Unreachable(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	sock := filepath.Join(dir, "ls.sock")
	ga := newGatedApp(dir)
	openApp(t, dbPath).Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	t.Setenv("LITESTREAM_ACCESS_KEY_ID", "k")
	t.Setenv("LITESTREAM_SECRET_ACCESS_KEY", "s")
	cfg := writeConfig(t, dir, fmt.Sprintf("socket: {enabled: true, path: %s}\nshutdown-sync-timeout: 1s\ndbs:\n  - path: %s\n    replica: {url: 's3://bkt/app?endpoint=%s'}\n", sock, dbPath, closed))
	d := startDaemon(t, "-config", cfg, "-exec", ga.command())
	ga.waitStarted(t)
	waitFor(t, "status to say why", 20*time.Second, func() bool {
		st := liveStatusJSON(t, cfg)
		return st.State == "opening" && strings.Contains(st.LastError, "connection refused")
	})
	ga.release(t)
	// The final sync cannot happen: replicate says so and exits 1.
	if code := d.wait(30 * time.Second); code != 1 || !strings.Contains(d.out.String(), "the database was never opened") {
		t.Fatalf("exit %d:\n%s", code, d.out.String())
	}
}
