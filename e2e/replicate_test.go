package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/litestream-go/litestream/internal/testsupport"
)

// writeFile writes a test's file (a config, a key), failing the test on an
// error.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// countLTX counts the LTX files of a file replica, at every level.
func countLTX(root string) int {
	files, _ := listReplica(root)
	return len(files)
}

// queryString runs q on a database opened immutable and returns its one
// value as text.
func queryString(t *testing.T, path, q string) string {
	t.Helper()
	var s string
	if err := openReadOnly(t, path).QueryRow(q).Scan(&s); err != nil {
		t.Fatalf("%s on %s: %v", q, path, err)
	}
	return s
}

// TestReplicateEndToEnd runs the built binary: replicate (config file, short
// intervals) while the test writes, SIGTERM, then restore and compare with
// the checkpointed source byte for byte.
func TestReplicateEndToEnd(t *testing.T) {
	dir := t.TempDir()
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

	db := openAppWith(t, dbPath, "", itemsSchema)

	d := startProcess(t, binPath, cliEnv(), "replicate", "-config", cfgPath)
	out := d.Out

	write := func(from, n int) {
		for i := from; i < from+n; i++ { // one transaction each
			mustExec(t, db, `INSERT INTO items(name, payload) VALUES (?, randomblob(?))`, fmt.Sprintf("item-%d", i), 100+i%900)
		}
		mustExec(t, db, `UPDATE items SET name = name || '!' WHERE id % 5 = ?`, from%5)
		mustExec(t, db, `DELETE FROM items WHERE id % 11 = ?`, from%11)
	}
	write(0, 300)
	waitFor(t, "the first LTX files in the replica", 20*time.Second, func() bool { return countLTX(replica) > 0 })
	write(300, 300)
	// A large transaction too: many pages in one sync.
	mustExec(t, db, `INSERT INTO items(name, payload) SELECT 'bulk-' || id, randomblob(3000) FROM items`)

	if err := d.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.Done():
		if err := d.Err(); err != nil {
			t.Fatalf("replicate exited with %v:\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("replicate did not exit after SIGTERM:\n%s", out.String())
	}
	if log := out.String(); !strings.Contains(log, "final sync done") || !strings.Contains(log, "version="+testsupport.CLIVersion) {
		t.Errorf("replicate log lacks the final sync or the version:\n%s", log)
	}

	restored := filepath.Join(dir, "restored.db")
	mustCLI(t, "restore", "-integrity-check", "full", "-o", restored, "file://"+replica)

	mustExec(t, db, `PRAGMA wal_checkpoint(TRUNCATE)`)
	var srcCount int
	if err := db.QueryRow(`SELECT count(*) FROM items`).Scan(&srcCount); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, restored, "SELECT count(*) FROM items"); got != fmt.Sprint(srcCount) {
		t.Errorf("restored has %s items, source %d", got, srcCount)
	}
	sameFiles(t, dbPath, restored, 4096) // the restored database equals the checkpointed source
}
