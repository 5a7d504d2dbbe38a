package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCLIErrors runs the command line's error cases: each must exit with a
// non-zero status, say what is wrong (naming the file or key), and leave no
// output behind.
func TestCLIErrors(t *testing.T) {
	fixReplica := filepath.Join(fixtureDir(t), "replica")
	dir := t.TempDir()

	// A small replica of our own, with a few level-0 files to corrupt.
	dbPath := filepath.Join(dir, "app.db")
	replica := filepath.Join(dir, "replica")
	db := openDB(t, dbPath)
	mustExec(t, db, `CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)`)
	d := startDaemon(t, daemonConfig(t, dbPath, replica))
	for i := 0; i < 3; i++ {
		before := replicaMaxTXID(t, replica)
		mustExec(t, db, seriesSQL+`INSERT INTO t(v) SELECT randomblob(500) FROM series`, 200)
		waitTXID(t, d, replica, before+1, time.Minute)
	}
	d.stop()

	type check struct {
		code     int      // wanted exit status
		contains []string // in stderr
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) []string // returns args
		want  check
		// noOutput: these paths under dir must not exist afterwards.
		noOutput []string
	}{
		{
			name: "replicate a missing database",
			setup: func(t *testing.T, dir string) []string {
				return []string{"replicate", "-once", filepath.Join(dir, "missing.db"), fileURL(filepath.Join(dir, "r"))}
			},
			want:     check{1, []string{"missing.db", "does not exist"}},
			noOutput: []string{"missing.db", "r"},
		},
		{
			name: "replicate to an unknown URL scheme",
			setup: func(t *testing.T, dir string) []string {
				return []string{"replicate", "-once", dbPath, "bogus://bucket/db"}
			},
			want: check{1, []string{"bogus"}},
		},
		{
			name: "restore from an unknown URL scheme",
			setup: func(t *testing.T, dir string) []string {
				return []string{"restore", "-o", filepath.Join(dir, "out.db"), "bogus://bucket/db"}
			},
			want:     check{1, []string{"bogus"}},
			noOutput: []string{"out.db"},
		},
		{
			name: "restore to an existing output without -force",
			setup: func(t *testing.T, dir string) []string {
				if err := os.WriteFile(filepath.Join(dir, "exists.db"), []byte("keep me"), 0o644); err != nil {
					t.Fatal(err)
				}
				return []string{"restore", "-o", filepath.Join(dir, "exists.db"), fileURL(fixReplica)}
			},
			want: check{1, []string{"exists.db", "already exists", "-force"}},
		},
		{
			name: "restore from an empty replica",
			setup: func(t *testing.T, dir string) []string {
				if err := os.MkdirAll(filepath.Join(dir, "empty"), 0o755); err != nil {
					t.Fatal(err)
				}
				return []string{"restore", "-o", filepath.Join(dir, "out.db"), fileURL(filepath.Join(dir, "empty"))}
			},
			want:     check{1, []string{"no backups found"}},
			noOutput: []string{"out.db"},
		},
		{
			name: "restore from a missing replica directory",
			setup: func(t *testing.T, dir string) []string {
				return []string{"restore", "-o", filepath.Join(dir, "out.db"), fileURL(filepath.Join(dir, "nowhere"))}
			},
			want:     check{1, []string{"no backups found"}},
			noOutput: []string{"out.db", "nowhere"},
		},
		{
			name: "restore a TXID the replica does not have",
			setup: func(t *testing.T, dir string) []string {
				return []string{"restore", "-txid", "ff", "-o", filepath.Join(dir, "out.db"), fileURL(fixReplica)}
			},
			want:     check{1, []string{"00000000000000ff"}},
			noOutput: []string{"out.db"},
		},
	}
	// A corrupt LTX file in a copy of the replica: one byte of page data
	// flipped (the checksum catches it), or the file cut short. The error
	// names the file.
	for _, c := range []struct {
		name   string
		mutate func(b []byte) []byte
	}{
		{"flipped byte", func(b []byte) []byte { b[len(b)/2] ^= 0x55; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-40] }},
	} {
		tests = append(tests, struct {
			name     string
			setup    func(t *testing.T, dir string) []string
			want     check
			noOutput []string
		}{
			name: "restore with a corrupt LTX file: " + c.name,
			setup: func(t *testing.T, dir string) []string {
				cp := filepath.Join(dir, "copy")
				if err := os.CopyFS(cp, os.DirFS(replica)); err != nil {
					t.Fatal(err)
				}
				victim := filepath.Join(cp, "ltx", "0", "0000000000000002-0000000000000002.ltx")
				b, err := os.ReadFile(victim)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(victim, c.mutate(b), 0o644); err != nil {
					t.Fatal(err)
				}
				return []string{"restore", "-o", filepath.Join(dir, "out.db"), fileURL(cp)}
			},
			want:     check{1, []string{"0000000000000002-0000000000000002.ltx"}},
			noOutput: []string{"out.db", "out.db.tmp", "out.db-wal", "out.db-shm"},
		})
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			args := tt.setup(t, dir)
			res := runCLI(t, args...)
			if res.code != tt.want.code {
				t.Fatalf("exit %d, want %d: %s", res.code, tt.want.code, res)
			}
			for _, s := range tt.want.contains {
				if !strings.Contains(res.stderr, s) {
					t.Errorf("stderr lacks %q: %s", s, res)
				}
			}
			// The error line is Litestream v0.5.18's: "Error: ...".
			if !strings.HasPrefix(res.stderr, "Error: ") && !strings.Contains(res.stderr, "\nError: ") {
				t.Errorf("stderr has no 'Error: ' line: %s", res)
			}
			for _, p := range tt.noOutput {
				if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
					held, _ := filepath.Glob(filepath.Join(dir, "*"))
					t.Errorf("%s exists after the failed command (directory holds %q)", p, held)
				}
			}
		})
	}

	// -force overwrites the existing output, and the flags that make the
	// error cases no-ops exit 0.
	t.Run("restore with -force", func(t *testing.T) {
		dir := t.TempDir()
		out := filepath.Join(dir, "exists.db")
		if err := os.WriteFile(out, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		mustCLI(t, "restore", "-force", "-o", out, fileURL(fixReplica))
		integrityCheck(t, out)
		if res := mustCLI(t, "restore", "-if-db-not-exists", "-o", out, fileURL(fixReplica)); !strings.Contains(res.stdout, "already exists") {
			t.Errorf("-if-db-not-exists: %s", res)
		}
		empty := filepath.Join(dir, "empty")
		os.Mkdir(empty, 0o755)
		if res := mustCLI(t, "restore", "-if-replica-exists", "-o", filepath.Join(dir, "x.db"), fileURL(empty)); !strings.Contains(res.stdout, "no backups found") {
			t.Errorf("-if-replica-exists: %s", res)
		}
	})
}
