package main

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/litestream-go/litestream/internal/testsupport"
)

// lockedBuffer collects a subprocess's output while the test reads it.
type lockedBuffer = testsupport.LockedBuffer

// buildBinary returns the built command (internal/testsupport's cached
// build, shared with e2e/ and chaos/), so that the test exercises the real
// process: signal handling, exit status, flags.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin, err := testsupport.BuildCLI()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countLTX(dir string) int {
	n := 0
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".ltx") {
			n++
		}
		return nil
	})
	return n
}

// TestReplicateEndToEnd runs the built binary: replicate (config file, short
// intervals) while the test writes, SIGTERM, then restore and compare with
// the checkpointed source byte for byte.
func TestReplicateEndToEnd(t *testing.T) {
	dir := t.TempDir()
	bin := buildBinary(t)
	dbPath := filepath.Join(dir, "app.db")
	replica := filepath.Join(dir, "replica")
	cfgPath := filepath.Join(dir, "litestream.yml")
	writeFile(t, cfgPath, fmt.Sprintf(`
logging: {level: debug}
dbs:
  - path: %s
    monitor-interval: 50ms
    replica:
      url: file://%s
      sync-interval: 100ms
`, dbPath, replica))

	db, err := sql.Open("sqlite3", dbPath+"?_journal_mode=WAL&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	mustExec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustExec(`CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, payload BLOB)`)

	var out lockedBuffer
	cmd := exec.Command(bin, "replicate", "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	write := func(from, n int) {
		for i := from; i < from+n; i++ { // one transaction each
			mustExec(`INSERT INTO items(name, payload) VALUES (?, randomblob(?))`, fmt.Sprintf("item-%d", i), 100+i%900)
		}
		mustExec(`UPDATE items SET name = name || '!' WHERE id % 5 = ?`, from%5)
		mustExec(`DELETE FROM items WHERE id % 11 = ?`, from%11)
	}
	write(0, 300)
	waitFor(t, "the first LTX files in the replica", 20*time.Second, func() bool { return countLTX(replica) > 0 })
	write(300, 300)
	// A large transaction too: many pages in one sync.
	mustExec(`INSERT INTO items(name, payload) SELECT 'bulk-' || id, randomblob(3000) FROM items`)

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("replicate exited with %v:\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("replicate did not exit after SIGTERM:\n%s", out.String())
	}
	if log := out.String(); !strings.Contains(log, "final sync done") || !strings.Contains(log, "version="+testsupport.CLIVersion) {
		t.Errorf("replicate log lacks the final sync or the version:\n%s", log)
	}

	restored := filepath.Join(dir, "restored.db")
	rcmd := exec.Command(bin, "restore", "-integrity-check", "full", "-o", restored, "file://"+replica)
	if b, err := rcmd.CombinedOutput(); err != nil {
		t.Fatalf("restore: %v\n%s", err, b)
	}

	mustExec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	var srcCount int
	if err := db.QueryRow(`SELECT count(*) FROM items`).Scan(&srcCount); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, restored, "SELECT count(*) FROM items"); got != fmt.Sprint(srcCount) {
		t.Errorf("restored has %s items, source %d", got, srcCount)
	}
	src, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.ReadFile(restored)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(src, dst) {
		t.Errorf("restored database (%d bytes) differs from the checkpointed source (%d bytes)", len(dst), len(src))
	}
}

// TestReplicate_InProcess covers replicate's start-up paths in-process:
// -once, -restore-if-db-not-exists on an empty and on a non-empty replica,
// warnings for unsupported keys, and a graceful stop on a signal.
func TestReplicate_InProcess(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	replica := filepath.Join(dir, "replica")

	// First start with no database and an empty replica: an empty
	// database is created and its first sync reaches the replica.
	code, stdout, stderr := run(t, noConfig(t), "replicate", "-once", "-restore-if-db-not-exists", dbPath, replica)
	if code != 0 {
		t.Fatalf("first start: exit %d\n%s%s", code, stdout, stderr)
	}
	if countLTX(replica) == 0 {
		t.Fatalf("no LTX file after -once:\n%s", stdout)
	}

	db, err := sql.Open("sqlite3", dbPath+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// Replicate from a config file until a signal arrives.
	cfgPath := filepath.Join(dir, "litestream.yml")
	writeFile(t, cfgPath, fmt.Sprintf("validation: {interval: 1h}\ndbs:\n  - path: %s\n    max-sync-wal-bytes: 1048576\n    replica: {url: 'file://%s'}\n", dbPath, replica))
	sigs := make(chan os.Signal, 1)
	var out lockedBuffer
	m := &Main{Stdout: &out, Stderr: &out, Getenv: env(nil), Signals: sigs, Exit: func(int) { t.Error("Exit called on the first signal") }}
	done := make(chan int, 1)
	go func() { done <- m.Main(t.Context(), []string{"replicate", "-config", cfgPath}) }()
	waitFor(t, "replicate to start", 10*time.Second, func() bool { return strings.Contains(out.String(), "msg=replicating") })
	sigs <- syscall.SIGTERM
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after SIGTERM:\n%s", code, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit after SIGTERM:\n%s", out.String())
	}
	log := out.String()
	for _, w := range []string{"starting validation monitor", "max-sync-wal-bytes: each sync is staged", "final sync done"} {
		if !strings.Contains(log, w) {
			t.Errorf("log lacks %q:\n%s", w, log)
		}
	}

	// Lose the database: -restore-if-db-not-exists brings it back.
	for _, sfx := range []string{"", "-wal", "-shm"} {
		os.Remove(dbPath + sfx)
	}
	if code, stdout, stderr := run(t, noConfig(t), "replicate", "-once", "-restore-if-db-not-exists", dbPath, replica); code != 0 {
		t.Fatalf("restore on start: exit %d\n%s%s", code, stdout, stderr)
	}
	if got := queryString(t, dbPath, "SELECT group_concat(x) FROM t"); got != "1,2,3" {
		t.Errorf("restored rows %q, want 1,2,3", got)
	}
}
