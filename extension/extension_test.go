package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/testsupport"
	"github.com/litestream-go/litestream/remote/file"
	"github.com/litestream-go/litestream/vfs/vfstest"
	"github.com/litestream-go/litestream/writer"
)

// extPath is the built extension without its ".so" suffix, as `.load`
// takes it; TestMain builds it once.
var extPath string

// pythonPath is Debian's python3: its sqlite3 module has
// enable_load_extension (a pyenv build may not).
const pythonPath = "/usr/bin/python3"

func TestMain(m *testing.M) {
	// The build is cached by content and shared with every other package's
	// tests (internal/testsupport): minutes once, then nothing.
	so, err := testsupport.BuildExtension()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build the extension: %v\n", err)
		os.Exit(1)
	}
	extPath = strings.TrimSuffix(so, ".so")
	os.Exit(m.Run())
}

func fixtureURL(t *testing.T) string {
	return "file://" + testsupport.FixtureReplica(t)
}

// shell runs Debian's sqlite3 shell on script with extra environment
// variables and returns stdout and stderr.
func shell(t *testing.T, env []string, script string) (string, string, error) {
	t.Helper()
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Skip("sqlite3 shell not installed (scripts/install-deps.sh installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sqlite3", "-batch", "-bail")
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdin = strings.NewReader(script)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// cleanEnv is the environment without LITESTREAM_ variables from outside.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LITESTREAM_") {
			env = append(env, kv)
		}
	}
	return env
}

func TestShellFixture(t *testing.T) {
	script := `.load ` + extPath + `
.open file:app.db?vfs=litestream
select count(*), total(id), total(length(name)) from users;
select count(*), total(id), total(user_id), total(length(payload)), hex(substr(max(payload),1,8)) from events;
select litestream_txid(), typeof(litestream_lag()), litestream_lag() between 0 and 60, litestream_error() is null, litestream_time() like '____-__-__T__:__:__%Z';
pragma integrity_check;
pragma journal_mode;
select litestream_set_time(5);
select count(*), total(id), total(length(name)) from users;
select count(*), total(id), total(user_id), total(length(payload)), hex(substr(max(payload),1,8)) from events;
select litestream_set_time('0000000000000009'), litestream_txid();
select count(*), total(id), total(length(name)) from users;
select count(*), total(id), total(user_id), total(length(payload)), hex(substr(max(payload),1,8)) from events;
pragma integrity_check;
select litestream_set_time(1);
select count(*), total(id), total(length(name)) from users;
select count(*) from events;
select litestream_set_time('latest'), litestream_txid();
select count(*) from users;
select litestream_set_time('a'), litestream_set_time('0xA'), litestream_set_time(10), litestream_set_time(litestream_txid());
select litestream_set_time('latest');
`
	out, errOut, err := shell(t, []string{"LITESTREAM_REPLICA_URL=" + fixtureURL(t)}, script)
	if err != nil {
		t.Fatalf("sqlite3: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	want := `6000|18003000.0|49796.0
2585|5218136.0|6556214.0|517000.0|FFCA921B602616FE
15|real|1|1|1
ok
delete
5
2000|2001000.0|15796.0
1069|662200.0|2690966.0|213800.0|FFB33BF0C0A7EF89
9|9
4000|8002000.0|32561.0
1931|2485056.0|4912375.0|386200.0|FFE0B5640D7B1F57
ok
1
0|0.0|0.0
0
15|15
6000
10|10|10|10
15
`
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s\nstderr:\n%s", out, want, errOut)
	}
}

func TestShellURIParameterAndTwoReplicas(t *testing.T) {
	_, root := vfstest.NewFilePrimary(t, "create table t(id integer primary key, v int, pad blob)", "insert into t(v, pad) values (1, x'00'), (2, x'0000')")
	// No LITESTREAM_REPLICA_URL: each database names its replica.
	script := `.load ` + extPath + `
.open 'file:app.db?vfs=litestream&replica=` + fixtureURL(t) + `&cache_size=8MiB&poll_interval=250ms&list_interval=30s'
attach 'file:other.db?vfs=litestream&replica=file://` + root + `' as other;
select count(*) from users;
select count(*), total(v), total(length(pad)) from other.t;
select litestream_txid();
`
	out, errOut, err := shell(t, nil, script)
	if err != nil {
		t.Fatalf("sqlite3: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	if want := "6000\n2|3.0|3.0\n15\n"; out != want {
		t.Errorf("output:\n%s\nwant:\n%s\nstderr:\n%s", out, want, errOut)
	}
}

func TestShellErrors(t *testing.T) {
	tests := []struct {
		name    string
		env     []string
		script  string
		wantErr string
	}{
		{
			name:    "write",
			env:     []string{"LITESTREAM_REPLICA_URL=" + fixtureURL(t)},
			script:  ".open file:app.db?vfs=litestream\ninsert into users(id, name) values (99999999, 'x');\n",
			wantErr: "attempt to write a readonly database",
		},
		{
			name:    "no replica URL",
			script:  ".open file:app.db?vfs=litestream\nselect count(*) from users;\n",
			wantErr: "unable to open database",
		},
		{
			name:    "replica does not exist",
			env:     []string{"LITESTREAM_REPLICA_URL=file://" + t.TempDir()},
			script:  ".open file:app.db?vfs=litestream\nselect count(*) from users;\n",
			wantErr: "unable to open database",
		},
		{
			name:    "function on another database",
			script:  "select litestream_txid();\n",
			wantErr: "need a main database opened with vfs=litestream",
		},
		{
			name:    "bad time travel target",
			env:     []string{"LITESTREAM_REPLICA_URL=" + fixtureURL(t)},
			script:  ".open file:app.db?vfs=litestream\nselect litestream_set_time('yesterday');\n",
			wantErr: "time travel target",
		},
		{
			name:    "unavailable TXID",
			env:     []string{"LITESTREAM_REPLICA_URL=" + fixtureURL(t)},
			script:  ".open file:app.db?vfs=litestream\nselect litestream_set_time(16);\n",
			wantErr: "cannot be rebuilt",
		},
		{
			name:    "bad environment",
			env:     []string{"LITESTREAM_POLL_INTERVAL=soon"},
			script:  "select 1;\n",
			wantErr: "LITESTREAM_POLL_INTERVAL",
		},
		{
			name:    "bad list interval",
			env:     []string{"LITESTREAM_LIST_INTERVAL=-1m"},
			script:  "select 1;\n",
			wantErr: "LITESTREAM_LIST_INTERVAL",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := shell(t, tc.env, ".load "+extPath+"\n"+tc.script)
			if err == nil || !strings.Contains(errOut, tc.wantErr) {
				t.Fatalf("err %v, stderr %q, stdout %q; want an error containing %q", err, errOut, out, tc.wantErr)
			}
		})
	}
}

func TestPython(t *testing.T) {
	if _, err := os.Stat(pythonPath); err != nil {
		t.Skip("Debian's python3 is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pythonPath, "testdata/basic.py", extPath, fixtureURL(t))
	cmd.Env = cleanEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s%s", err, out, stderr.String())
	}
	var res struct {
		AddedSignals      []int   `json:"added_signals"`
		SigintKept        bool    `json:"sigint_kept"`
		Latest            [3]any  `json:"latest"`
		Set5              float64 `json:"set5"`
		At5               [2]any  `json:"at5"`
		LatestAgain       float64 `json:"latest_again"`
		Write             string  `json:"write"`
		KeyboardInterrupt bool    `json:"keyboard_interrupt"`
		Threads           struct {
			Errors []string  `json:"errors"`
			Counts []float64 `json:"counts"`
			N      int       `json:"n"`
		} `json:"threads"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	if got := fmt.Sprint(res.Latest); got != "[[6000 1.8003e+07 49796] [2585 5.218136e+06 6.556214e+06 517000 FFCA921B602616FE] 15]" {
		t.Errorf("latest: %s", got)
	}
	if res.Set5 != 5 || fmt.Sprint(res.At5) != "[[2000 2.001e+06 15796] 5]" || res.LatestAgain != 15 {
		t.Errorf("time travel: set %v, at 5 %v, latest %v", res.Set5, res.At5, res.LatestAgain)
	}
	if res.Write != "attempt to write a readonly database" {
		t.Errorf("write: %q", res.Write)
	}
	if len(res.Threads.Errors) > 0 || fmt.Sprint(res.Threads.Counts) != "[6000]" || res.Threads.N != 80 {
		t.Errorf("threads: %+v", res.Threads)
	}
	// Our code installs no handler; the Go runtime of a c-shared library
	// installs its own for SIGBUS, SIGFPE, SIGSEGV (faults in Go code),
	// SIGPIPE and SIGURG (goroutine preemption), forwarding anything not
	// meant for Go to the host's previous handler. Anything else, or a
	// changed SIGINT, is a regression.
	allowed := map[int]bool{7: true, 8: true, 11: true, 13: true, 23: true, 32: true, 33: true}
	for _, s := range res.AddedSignals {
		if !allowed[s] {
			t.Errorf("loading the extension installed a handler for signal %d", s)
		}
	}
	if !res.SigintKept || !res.KeyboardInterrupt {
		t.Errorf("SIGINT handler changed: kept %v, KeyboardInterrupt %v", res.SigintKept, res.KeyboardInterrupt)
	}
	t.Logf("signals with a handler added by the Go runtime: %v", res.AddedSignals)
}

// liveWriter makes one write on a primary and returns the TXID that holds
// it once uploaded; the harness then records the primary's query result
// for that TXID.
type liveWriter struct {
	db    *sql.DB // the primary database, for expected results
	write func(ctx context.Context, i int) (ltx.TXID, error)
}

// liveStatements is the primary's workload: inserts, updates, deletes, and
// now and then a vacuum, which rewrites most pages and shrinks the file.
func liveStatements(i int) []string {
	switch {
	case i%25 == 24:
		return []string{"vacuum"}
	case i%10 == 9:
		return []string{"delete from t where id % 4 = 0"}
	case i%10 == 5:
		return []string{"update t set v = v + 1 where id % 3 = 1"}
	default:
		return []string{fmt.Sprintf("insert into t(v, pad) with recursive s(x) as (select 1 union all select x+1 from s where x < 20) select x*%d, randomblob(%d) from s", i, 100+i%500)}
	}
}

// TestLiveReadersTestPrimary runs a primary that publishes every
// transaction as an LTX file (vfstest.Primary) and several Python reader
// processes querying its replica through the extension at default
// settings.
func TestLiveReadersTestPrimary(t *testing.T) {
	p, root := vfstest.NewFilePrimary(t, "create table t(id integer primary key, v int, pad blob)")
	runLiveReaders(t, root, liveWriter{db: p.DB, write: func(ctx context.Context, i int) (ltx.TXID, error) {
		stmts := liveStatements(i)
		if stmts[0] == "vacuum" {
			if _, err := p.DB.ExecContext(ctx, "vacuum"); err != nil {
				return 0, err
			}
			return p.Publish(ctx)
		}
		return p.Exec(ctx, stmts...)
	}})
}

// openApp opens the application's WAL-mode database at path (one
// connection, closed when the test ends) and runs schema on it.
func openApp(t *testing.T, path, schema string) *sql.DB {
	t.Helper()
	app, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	app.SetMaxOpenConns(1)
	if _, err := app.Exec(schema); err != nil {
		t.Fatal(err)
	}
	return app
}

// startWriter opens the project's writer on the database at path,
// replicating to a file replica at root, and syncs once; it is closed when
// the test ends.
func startWriter(t *testing.T, path, root string, opts writer.Options) *writer.DB {
	t.Helper()
	ctx := context.Background()
	w := writer.New(path, file.New(root), opts)
	if err := w.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(ctx) })
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	return w
}

// TestLiveReadersWriter does the same with the project's writer
// (package writer) replicating a WAL-mode database that an application
// writes to, with checkpoints along the way.
func TestLiveReadersWriter(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "replica")
	path := filepath.Join(dir, "app.db")
	app := openApp(t, path, "create table t(id integer primary key, v int, pad blob)")
	w := startWriter(t, path, root, writer.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	runLiveReaders(t, root, liveWriter{db: app, write: func(ctx context.Context, i int) (ltx.TXID, error) {
		stmts := liveStatements(i)
		if stmts[0] == "vacuum" {
			stmts = []string{"delete from t where id % 2 = 0"} // vacuum needs the writer's read lock gone
		}
		tx, err := app.BeginTx(ctx, nil)
		if err != nil {
			return 0, err
		}
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				tx.Rollback()
				return 0, err
			}
		}
		if err := tx.Commit(); err != nil {
			return 0, err
		}
		if err := w.Sync(ctx); err != nil {
			return 0, err
		}
		if i%15 == 14 {
			if err := w.Checkpoint(ctx); err != nil {
				return 0, err
			}
		}
		return w.Status().TXID, nil
	}})
}

// runLiveReaders starts Python reader processes on the replica at root
// while w writes for a few seconds. Every result a reader reports must
// equal the primary's result at the TXID the reader reports, and readers
// must see each new TXID within 2 s of its upload.
func runLiveReaders(t *testing.T, root string, w liveWriter) {
	if _, err := os.Stat(pythonPath); err != nil {
		t.Skip("Debian's python3 is not installed")
	}
	const (
		readers  = 3
		duration = 6 * time.Second
	)
	ctx := context.Background()

	var mu sync.Mutex
	want := make(map[ltx.TXID]string)         // TXID -> the primary's query result
	published := make(map[ltx.TXID]time.Time) // TXID -> when its file was uploaded
	record := func(txid ltx.TXID) {
		var n, sv, sp float64
		if err := w.db.QueryRow("select count(*), total(v), total(length(pad)) from t").Scan(&n, &sv, &sp); err != nil {
			t.Error(err)
		}
		mu.Lock()
		if _, ok := want[txid]; !ok {
			want[txid] = fmt.Sprintf("%v|%v|%v", n, sv, sp)
			published[txid] = time.Now()
		}
		mu.Unlock()
	}
	txid, err := w.write(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	record(txid)

	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for range readers {
		cmd := exec.Command(pythonPath, "testdata/reader.py", extPath, "file://"+root, fmt.Sprint((duration + 2*time.Second).Seconds()))
		cmd.Env = cleanEnv()
		out := new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}

	var lastTXID ltx.TXID
	end := time.Now().Add(duration)
	for i := 1; time.Now().Before(end); i++ {
		if lastTXID, err = w.write(ctx, i); err != nil {
			t.Fatal(err)
		}
		record(lastTXID)
		time.Sleep(20 * time.Millisecond)
	}
	lastAt := published[lastTXID]

	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("reader %d: %v\n%s", i, err, outs[i])
		}
	}

	mu.Lock()
	defer mu.Unlock()
	for i, out := range outs {
		var checked int
		seen := make(map[ltx.TXID]time.Time) // first time this reader saw each TXID
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var line struct {
				TXID  uint64    `json:"txid"`
				Agg   []float64 `json:"agg"`
				T     float64   `json:"t"`
				Error string    `json:"error"`
			}
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Fatalf("reader %d: %q: %v", i, sc.Text(), err)
			}
			if line.Error != "" {
				t.Errorf("reader %d: %s", i, line.Error)
				continue
			}
			id := ltx.TXID(line.TXID)
			got := fmt.Sprintf("%v|%v|%v", line.Agg[0], line.Agg[1], line.Agg[2])
			if w, ok := want[id]; !ok || got != w {
				t.Fatalf("reader %d at TXID %d: got %s, primary had %s", i, id, got, w)
			}
			if _, ok := seen[id]; !ok {
				seen[id] = time.Unix(0, int64(line.T*1e9))
			}
			checked++
		}
		// Freshness: a reader sees a TXID at most 2 s after its upload
		// (while it is the newest), and reaches the last one.
		var worst time.Duration
		for id, at := range seen {
			if d := at.Sub(published[id]); d > worst {
				worst = d
			}
		}
		if worst > 2*time.Second {
			t.Errorf("reader %d first saw a TXID %v after its upload", i, worst)
		}
		last, ok := seen[lastTXID]
		if !ok {
			t.Errorf("reader %d never saw the last TXID %d", i, lastTXID)
		} else if d := last.Sub(lastAt); d > 2*time.Second {
			t.Errorf("reader %d saw the last TXID %.2fs after it was uploaded", i, d.Seconds())
		}
		t.Logf("reader %d: %d transactions checked, %d distinct TXIDs of %d, worst first-seen delay %v", i, checked, len(seen), lastTXID, worst.Round(time.Millisecond))
		if checked < 20 {
			t.Errorf("reader %d checked only %d transactions", i, checked)
		}
	}
}

// TestNoSQLiteDriver guards docs/ARCHITECTURE.md's rule: the extension runs inside a
// host that has SQLite, so nothing it links may bring a SQLite of its own.
func TestNoSQLiteDriver(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	for _, tags := range []string{"", "SQLITE3VFS_LOADABLE_EXT"} {
		out, err := exec.Command(goBin, "list", "-tags", tags, "-deps", ".").Output()
		if err != nil {
			t.Fatalf("go list: %v", err)
		}
		for _, pkg := range strings.Fields(string(out)) {
			for _, driver := range []string{"mattn/go-sqlite3", "modernc.org/sqlite", "crawshaw.io/sqlite", "zombiezen.com/go/sqlite", "ncruces/go-sqlite3"} {
				if strings.Contains(pkg, driver) {
					t.Errorf("tags %q: the extension depends on %s", tags, pkg)
				}
			}
		}
	}
}
