package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDirectoryReplication: a dbs entry with dir, pattern, recursive and
// watch replicates every SQLite database under the directory to the
// replica plus its relative path; a database created while running is
// picked up, a removed one dropped; files that do not match the pattern or
// are not SQLite databases are left alone. Litestream v0.5.18 restores
// from the same layout.
func TestDirectoryReplication(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	replica := filepath.Join(dir, "replica")
	sock := filepath.Join(dir, "ls.sock")
	for _, p := range []string{"a.db", "sub/b.db"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(data, p)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	a := openApp(t, filepath.Join(data, "a.db"))
	b := openApp(t, filepath.Join(data, "sub", "b.db"))
	writeFile(t, filepath.Join(data, "notes.db"), "not a database, despite the name")
	ignored := openApp(t, filepath.Join(data, "skip.sqlite"))
	insertRows(t, a, 3)
	insertRows(t, b, 4)
	insertRows(t, ignored, 1)

	cfg := writeConfig(t, dir, fmt.Sprintf(`socket: {enabled: true, path: %s}
dbs:
  - dir: %s
    pattern: "*.db"
    recursive: true
    watch: true
    monitor-interval: 20ms
    replica: {url: 'file://%s', sync-interval: 50ms}
`, sock, data, replica))
	d := startDaemon(t, "-config", cfg)
	waitControl(t, sock)
	list := func() string { return mustRunOK(t, "list", "-socket", sock) }
	waitFor(t, "both databases", 10*time.Second, func() bool {
		l := list()
		return strings.Contains(l, filepath.Join(data, "a.db")+" [replicating]") && strings.Contains(l, filepath.Join(data, "sub", "b.db")+" [replicating]")
	})
	if l := list(); strings.Contains(l, "notes.db") || strings.Contains(l, "skip.sqlite") {
		t.Errorf("list holds files that are not matching databases:\n%s", l)
	}

	// A database created while running is picked up.
	if err := os.MkdirAll(filepath.Join(data, "new"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := openApp(t, filepath.Join(data, "new", "c.db"))
	insertRows(t, c, 5)
	waitFor(t, "the new database", 10*time.Second, func() bool {
		return strings.Contains(list(), filepath.Join(data, "new", "c.db")+" [replicating]")
	})
	for _, p := range []string{"a.db", "sub/b.db", "new/c.db"} {
		mustRunOK(t, "sync", "-wait", "-socket", sock, filepath.Join(data, p))
	}

	// A removed database is dropped.
	b.Close()
	for _, sfx := range []string{"", "-wal", "-shm"} {
		os.Remove(filepath.Join(data, "sub", "b.db") + sfx)
	}
	waitFor(t, "the removed database to go", 10*time.Second, func() bool {
		return !strings.Contains(list(), "b.db")
	})
	d.sigs <- syscall.SIGTERM
	d.mustExit(0)

	_, theirs := bothTools(t)
	for p, rows := range map[string]int{"a.db": 3, "sub/b.db": 4, "new/c.db": 5} {
		url := "file://" + filepath.Join(replica, p)
		out := filepath.Join(t.TempDir(), "r.db")
		mustRunOK(t, "restore", "-o", out, url)
		if n := rowCount(t, out); n != rows {
			t.Errorf("%s: restored %d rows, want %d", p, n, rows)
		}
		out2 := filepath.Join(t.TempDir(), "r.db")
		theirs.mustRun(t, nil, "restore", "-o", out2, url)
		if n := rowCount(t, out2); n != rows {
			t.Errorf("%s: Litestream restored %d rows, want %d", p, n, rows)
		}
	}
	if _, err := os.Stat(filepath.Join(replica, "skip.sqlite")); err == nil {
		t.Error("a database not matching the pattern was replicated")
	}
}

// TestDirectoryReplication_NoneFound: without watch, a directory with no
// matching database is an error, as in Litestream; with watch it is not.
func TestDirectoryReplication_NoneFound(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf("dbs:\n  - dir: %s\n    pattern: '*.db'\n    replica: {url: 'file://%s/r'}\n", dir, dir))
	code, _, stderr := run(t, nil, "replicate", "-once", "-config", cfg)
	if code != 1 || !strings.Contains(stderr, "no SQLite databases found in directory") {
		t.Errorf("exit %d %q", code, stderr)
	}
	writeFile(t, cfg, fmt.Sprintf("dbs:\n  - dir: %s\n    pattern: '*.db'\n    watch: true\n    replica: {url: 'file://%s/r'}\n", dir, dir))
	if code, stdout, stderr := run(t, nil, "replicate", "-once", "-config", cfg); code != 0 {
		t.Errorf("with watch: exit %d\n%s%s", code, stdout, stderr)
	}
}
