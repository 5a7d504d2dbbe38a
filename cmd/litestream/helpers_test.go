package main

// Helpers of this package's tests (the end-to-end tests of the built binary
// are in e2e/).

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/litestream-go/litestream/internal/testserver"
	"github.com/litestream-go/litestream/internal/testsupport"
)

// lockedBuffer collects a subprocess's output while the test reads it.
type lockedBuffer = testsupport.LockedBuffer

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !testsupport.Poll(timeout, 20*time.Millisecond, cond) {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
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

// tool runs replicate/restore/ltx with one of the two programs: this one
// in-process, or Litestream v0.5.18.
type tool struct {
	name string
	run  func(t *testing.T, env []string, args ...string) (int, string, string)
}

func bothTools(t *testing.T) (ours, theirs tool) {
	r := realLitestream(t)
	ours = tool{"ours", func(t *testing.T, env []string, args ...string) (int, string, string) {
		m := map[string]string{}
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
		return run(t, m, args...)
	}}
	theirs = tool{"litestream " + realVersion, func(t *testing.T, env []string, args ...string) (int, string, string) { return r.run(t, env, args...) }}
	return ours, theirs
}

func (tl tool) mustRun(t *testing.T, env []string, args ...string) string {
	t.Helper()
	code, stdout, stderr := tl.run(t, env, args...)
	return testserver.CheckRun(t, tl.name, args, code, stdout, stderr)
}

// rowCount checks a restored database's integrity and counts the rows of t
// (opened read-only).
func rowCount(t *testing.T, path string) int {
	t.Helper()
	if ok := queryString(t, path, `PRAGMA integrity_check`); ok != "ok" {
		t.Fatalf("integrity of %s: %s", path, ok)
	}
	return queryValue[int](t, path, `SELECT count(*) FROM t`)
}

// insertRows adds n rows to t.
func insertRows(t *testing.T, db *sql.DB, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := db.Exec(`INSERT INTO t(v) VALUES (?)`, strings.Repeat("r", 100+i)); err != nil {
			t.Fatal(err)
		}
	}
}
