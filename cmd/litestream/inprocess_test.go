package main

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

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
