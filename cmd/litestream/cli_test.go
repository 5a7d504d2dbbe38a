package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/litestream-go/litestream/internal/testsupport"
)

// fixtureSHA256 is the checksum of the fixture's source.db, which a restore
// of the latest TXID reproduces.
const fixtureSHA256 = testsupport.FixtureSHA256

// fixtureDir is the replica fixture written by Litestream v0.5.18, in the
// repository (internal/testsupport/testdata): README.md, source.db, replica/.
func fixtureDir(t *testing.T) string {
	t.Helper()
	return testsupport.Fixture(t)
}

// run runs the command line in-process and returns its exit status, stdout
// and stderr.
func run(t *testing.T, getenv map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: env(getenv)}
	code := m.Main(context.Background(), args)
	return code, stdout.String(), stderr.String()
}

func queryString(t *testing.T, path, q string) string {
	t.Helper()
	return queryValue[string](t, path, q)
}

// queryValue runs q on the database at path, opened read-only and
// immutable, and returns its one value.
func queryValue[T any](t *testing.T, path, q string) T {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&immutable=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v T
	if err := db.QueryRow(q).Scan(&v); err != nil {
		t.Fatalf("%s on %s: %v", q, path, err)
	}
	return v
}

// noConfig points LITESTREAM_CONFIG at a file that does not exist so that
// tests never read the machine's /etc/litestream.yml.
func noConfig(t *testing.T) map[string]string {
	return map[string]string{"LITESTREAM_CONFIG": filepath.Join(t.TempDir(), "absent.yml")}
}

func TestRestore_Fixture(t *testing.T) {
	fx := fixtureDir(t)
	replica := "file://" + filepath.Join(fx, "replica")
	dir := t.TempDir()

	out := filepath.Join(dir, "latest.db")
	code, stdout, stderr := run(t, noConfig(t), "restore", "-integrity-check", "full", "-o", out, replica)
	if code != 0 {
		t.Fatalf("restore exit %d: %s%s", code, stdout, stderr)
	}
	if got := testsupport.FileSHA256(t, out); got != fixtureSHA256 {
		t.Errorf("restored sha256 %s, want %s (the source database)", got, fixtureSHA256)
	}
	for _, sfx := range []string{"-wal", "-shm", ".tmp"} {
		if _, err := os.Stat(out + sfx); err == nil {
			t.Errorf("%s%s left behind", out, sfx)
		}
	}

	// Point in time by TXID, short hex form; expected content from the README.
	at5 := filepath.Join(dir, "at5.db")
	if code, _, stderr := run(t, noConfig(t), "restore", "-txid", "5", "-o", at5, replica); code != 0 {
		t.Fatalf("restore -txid 5: exit %d: %s", code, stderr)
	}
	if got := queryString(t, at5, "select count(*) || ',' || total(id) || ',' || total(length(name)) from users"); got != "2000,2001000.0,15796.0" {
		t.Errorf("users at TXID 5 = %s", got)
	}

	// A plain path to a replica directory works too.
	viaPath := filepath.Join(dir, "viapath.db")
	if code, _, stderr := run(t, noConfig(t), "restore", "-o", viaPath, filepath.Join(fx, "replica")); code != 0 {
		t.Fatalf("restore from a replica path: exit %d: %s", code, stderr)
	}
	if got := testsupport.FileSHA256(t, viaPath); got != fixtureSHA256 {
		t.Errorf("restore via path: sha256 %s", got)
	}
}

func TestRestore_FromConfig(t *testing.T) {
	fx := fixtureDir(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	cfg := writeConfig(t, dir, "dbs:\n  - path: "+dbPath+"\n    replica:\n      url: file://${FIXTURE}/replica\n")
	vars := map[string]string{"LITESTREAM_CONFIG": cfg, "FIXTURE": fx}

	// Without -o the database is restored to its own path.
	if code, _, stderr := run(t, vars, "restore", dbPath); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := testsupport.FileSHA256(t, dbPath); got != fixtureSHA256 {
		t.Errorf("sha256 %s", got)
	}
	// Now it exists: refused, then skipped with -if-db-not-exists.
	code, _, stderr := run(t, vars, "restore", dbPath)
	if code != 1 || !strings.Contains(stderr, dbPath) || !strings.Contains(stderr, "already exists") || !strings.Contains(stderr, "-force") {
		t.Errorf("existing target: exit %d, stderr %q", code, stderr)
	}
	code, stdout, _ := run(t, vars, "restore", "-if-db-not-exists", dbPath)
	if code != 0 || !strings.Contains(stdout, "already exists") {
		t.Errorf("-if-db-not-exists: exit %d, stdout %q", code, stdout)
	}
	// -force replaces it, here with an older state.
	if code, _, stderr := run(t, vars, "restore", "-force", "-txid", "0000000000000001", dbPath); code != 0 {
		t.Fatalf("-force: exit %d: %s", code, stderr)
	}
	if got := queryString(t, dbPath, "select count(*) from users"); got != "0" {
		t.Errorf("users at TXID 1 = %s, want 0", got)
	}
}

func TestRestore_Errors(t *testing.T) {
	fx := fixtureDir(t)
	dir := t.TempDir()
	notADir := filepath.Join(dir, "plainfile")
	writeFile(t, notADir, "x")
	existing := filepath.Join(dir, "existing.db")
	writeFile(t, existing, "keep me")
	cfg := writeConfig(t, dir, "dbs:\n  - path: /data/app.db\n    replica: {url: file:///nowhere}\n")

	corrupt := testsupport.FixtureCopy(t)
	// Flip one byte inside every file's page data: whichever file the
	// restore reads must fail its checksum, and the error must name it.
	for p, b := range testsupport.ReadTree(t, corrupt) {
		b[len(b)/2] ^= 0xff
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name     string
		vars     map[string]string
		args     []string
		wantCode int
		want     []string
	}{
		{"unknown scheme", noConfig(t), []string{"restore", "-o", filepath.Join(dir, "a.db"), "ftp://host/x"}, 1, []string{"ftp"}},
		{"unreadable replica", noConfig(t), []string{"restore", "-o", filepath.Join(dir, "b.db"), "file://" + notADir}, 1, []string{notADir}},
		{"empty replica", noConfig(t), []string{"restore", "-o", filepath.Join(dir, "c.db"), "file://" + filepath.Join(dir, "empty")}, 1, []string{"no backups found"}},
		{"existing target", noConfig(t), []string{"restore", "-o", existing, "file://" + filepath.Join(fx, "replica")}, 1, []string{existing, "already exists", "-force"}},
		{"corrupt LTX", noConfig(t), []string{"restore", "-o", filepath.Join(dir, "d.db"), "file://" + corrupt}, 1, []string{".ltx"}},
		{"database not in config", map[string]string{"LITESTREAM_CONFIG": cfg}, []string{"restore", filepath.Join(dir, "other.db")}, 1, []string{"not found in config", cfg}},
		{"missing config", noConfig(t), []string{"restore", filepath.Join(dir, "other.db")}, 1, []string{"config file not found"}},
		{"url needs -o", noConfig(t), []string{"restore", "file:///x"}, 1, []string{"-o is required"}},
		{"bad txid", noConfig(t), []string{"restore", "-txid", "zz", "-o", "x.db", "file:///x"}, 1, []string{"-txid"}},
		{"bad timestamp", noConfig(t), []string{"restore", "-timestamp", "yesterday", "-o", "x.db", "file:///x"}, 1, []string{"ISO 8601"}},
		{"txid past the end", noConfig(t), []string{"restore", "-txid", "ff", "-o", filepath.Join(dir, "e.db"), "file://" + filepath.Join(fx, "replica")}, 1, []string{"00000000000000ff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tt.vars, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stdout %q stderr %q", code, tt.wantCode, stdout, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not contain %q", stderr, w)
				}
			}
		})
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Errorf("refused restore modified the existing file: %q", b)
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "d.db*")); len(matches) != 0 {
		t.Errorf("failed restore left %q", matches)
	}

	// -if-replica-exists turns the empty replica into a successful no-op.
	code, stdout, _ := run(t, noConfig(t), "restore", "-if-replica-exists", "-o", filepath.Join(dir, "f.db"), "file://"+filepath.Join(dir, "empty"))
	if code != 0 || !strings.Contains(stdout, "no backups found") {
		t.Errorf("-if-replica-exists: exit %d stdout %q", code, stdout)
	}
}

func TestLTX_Fixture(t *testing.T) {
	fx := fixtureDir(t)
	replica := "file://" + filepath.Join(fx, "replica")
	code, stdout, stderr := run(t, noConfig(t), "ltx", "-level", "all", replica)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 1+23 {
		t.Fatalf("got %d lines, want a header and 23 files:\n%s", len(lines), stdout)
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "level min_txid max_txid size created" {
		t.Errorf("header %q", lines[0])
	}
	if !strings.Contains(stdout, "9      0000000000000001  0000000000000001") {
		t.Errorf("no level-9 snapshot row:\n%s", stdout)
	}
	code, stdout, _ = run(t, noConfig(t), "ltx", "-level", "2", replica)
	if n := strings.Count(stdout, "\n"); code != 0 || n != 4 {
		t.Errorf("-level 2: exit %d, %d lines:\n%s", code, n, stdout)
	}
	code, stdout, _ = run(t, noConfig(t), "ltx", "-json", "-level", "9", replica)
	if code != 0 || !strings.Contains(stdout, `"min_txid": "0000000000000001"`) || !strings.Contains(stdout, `"level": 9`) {
		t.Errorf("-json: exit %d:\n%s", code, stdout)
	}
	if code, _, stderr := run(t, noConfig(t), "ltx", "-level", "10", replica); code != 1 || !strings.Contains(stderr, "-level") {
		t.Errorf("-level 10: exit %d %q", code, stderr)
	}
	// Level 0 by default, as in Litestream.
	code, stdout, _ = run(t, noConfig(t), "ltx", replica)
	if n := strings.Count(stdout, "\n"); code != 0 || n != 16 || strings.Contains(stdout, "\n9 ") {
		t.Errorf("default level: exit %d, %d lines:\n%s", code, n, stdout)
	}
}

func TestStatusAndDatabases(t *testing.T) {
	fx := fixtureDir(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "dbs:\n"+
		"  - path: "+dir+"/app.db\n    replica: {url: 'file://"+fx+"/replica'}\n"+
		"  - path: "+dir+"/new.db\n    replicas: [{type: file, path: "+dir+"/empty}]\n"+
		"  - path: "+dir+"/secret.db\n    replica: {url: 'sftp://bob:hunter22@127.0.0.1:1/x'}\n")
	vars := map[string]string{"LITESTREAM_CONFIG": cfg}

	code, stdout, stderr := run(t, vars, "status")
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, stderr)
	}
	for _, w := range []string{"database", "replica txid", dir + "/app.db", "000000000000000f", "no database", "sftp://bob:xxxxx@127.0.0.1:1/x"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("status output lacks %q:\n%s", w, stdout)
		}
	}
	if strings.Contains(stdout+stderr, "hunter22") {
		t.Errorf("status leaked a password:\n%s%s", stdout, stderr)
	}

	code, stdout, stderr = run(t, vars, "databases")
	if code != 0 {
		t.Fatalf("databases: exit %d: %s", code, stderr)
	}
	if n := strings.Count(stdout, "\n"); n != 4 || !regexp.MustCompile(regexp.QuoteMeta(dir+"/app.db")+` +file +file://`).MatchString(stdout) || !strings.Contains(stdout, "file://"+dir+"/empty") {
		t.Errorf("databases output:\n%s", stdout)
	}

	code, stdout, _ = run(t, vars, "status", "-json", dir+"/app.db")
	if code != 0 || !strings.Contains(stdout, `"replica_txid": "000000000000000f"`) || strings.Count(stdout, `"database"`) != 1 {
		t.Errorf("status -json DB_PATH: exit %d:\n%s", code, stdout)
	}
	if code, _, stderr := run(t, vars, "status", dir+"/nope.db"); code != 1 || !strings.Contains(stderr, "not found in config") {
		t.Errorf("status of unknown db: exit %d %q", code, stderr)
	}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		args     []string
		wantCode int
		stdout   string
		stderr   string
	}{
		{[]string{"version"}, 0, "development\n", ""},
		{[]string{}, 1, "litestream is a tool", ""},
		{[]string{"help"}, 0, "replicate", ""},
		{[]string{"frobnicate"}, 1, "", `Error: litestream frobnicate: unknown command`},
		{[]string{"restore", "-h"}, 0, "-integrity-check", ""},
		{[]string{"restore", "-nope"}, 1, "The restore command", "flag provided but not defined: -nope\nError: flag provided but not defined: -nope"},
		{[]string{"restore", "-o", "x.db", "file:///a", "-force"}, 1, "", "must be positioned before"},
		{[]string{"replicate", "/tmp/only-db.db"}, 1, "", "must specify at least one replica URL"},
		{[]string{"replicate", "-exec", "app", "-once", "/a.db", "/b"}, 1, "", "cannot specify -once flag with -exec"},
		{[]string{"replicate", "-exec", "app 'x", "/a.db", "/b"}, 1, "", "unterminated single quote"},
		{[]string{"replicate", "-config", "/x.yml", "/a.db", "/b"}, 1, "", "-config"},
		{[]string{"replicate", "/a.db", "/b", "/c"}, 1, "", "multiple replicas"},
		{[]string{"replicate", "-force-snapshot", "/a.db", "/b"}, 1, "", "cannot specify -force-snapshot flag without -once"},
		{[]string{"ltx"}, 1, "", "Error: database path or replica URL required\nTry: litestream ltx /path/to/db\n"},
		{[]string{"wal", "-h"}, 0, "The ltx command", "'wal' command is deprecated"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := run(t, noConfig(t), tt.args...)
			if code != tt.wantCode || !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d stdout %q stderr %q; want exit %d stdout %q stderr containing %q",
					code, stdout, stderr, tt.wantCode, tt.stdout, tt.stderr)
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeConfig writes yaml to dir/litestream.yml and returns its path.
func writeConfig(t *testing.T, dir, yaml string) string {
	t.Helper()
	cfg := filepath.Join(dir, "litestream.yml")
	writeFile(t, cfg, yaml)
	return cfg
}

// Progress is drawn only when stderr is a terminal.
func TestRestore_Progress(t *testing.T) {
	fx := fixtureDir(t)
	replica := "file://" + filepath.Join(fx, "replica")
	for _, tty := range []bool{true, false} {
		var stdout, stderr bytes.Buffer
		m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: env(noConfig(t)), StderrIsTerminal: tty}
		out := filepath.Join(t.TempDir(), "p.db")
		if code := m.Main(context.Background(), []string{"restore", "-o", out, replica}); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		drawn := strings.Contains(stderr.String(), "\rrestoring: ")
		if drawn != tty {
			t.Errorf("terminal=%v: progress drawn=%v; stderr %q", tty, drawn, stderr.String())
		}
		if tty && !strings.Contains(stderr.String(), "(100%)\n") {
			t.Errorf("progress does not end at 100%%: %q", stderr.String())
		}
	}
}

// TestRestore_CreatesParentDirs: restore -o into folders that do not exist
// creates them, as Litestream does (it used to fail with a false
// diagnosis).
func TestRestore_CreatesParentDirs(t *testing.T) {
	fx := fixtureDir(t)
	out := filepath.Join(t.TempDir(), "new", "dir", "app.db")
	code, stdout, stderr := run(t, noConfig(t), "restore", "-o", out, "file://"+filepath.Join(fx, "replica"))
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, stdout, stderr)
	}
	if got := testsupport.FileSHA256(t, out); got != fixtureSHA256 {
		t.Errorf("sha256 %s", got)
	}
}

// TestLogging: logging.type pretty and logging.source, as Litestream has
// them, and json; level trace is accepted.
func TestLogging(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	openApp(t, dbPath).Close()
	for _, tc := range []struct {
		logging string
		want    *regexp.Regexp
	}{
		{"{type: pretty}", regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d INF litestream version=development`)},
		{"{type: pretty, source: true}", regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d INF replicate\.go:\d+ litestream `)},
		{"{type: text, source: true}", regexp.MustCompile(`source=\S+replicate\.go:\d+ msg=litestream`)},
		{"{type: json, level: trace}", regexp.MustCompile(`(?m)^\{"time":"[^"]+","level":"INFO","msg":"litestream"`)},
	} {
		cfg := writeConfig(t, dir, fmt.Sprintf("logging: %s\ndbs:\n  - path: %s\n    replica: {url: 'file://%s/r'}\n", tc.logging, dbPath, dir))
		code, stdout, stderr := run(t, nil, "replicate", "-once", "-config", cfg)
		if code != 0 || !tc.want.MatchString(stdout) {
			t.Errorf("logging %s: exit %d\n%s%s", tc.logging, code, stdout, stderr)
		}
	}
}
