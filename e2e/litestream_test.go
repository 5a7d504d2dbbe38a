package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"
)

// Interoperability with a real Litestream v0.5 binary, in both directions.
// Optional: the binary is not part of the repository or its dependencies.
// Build it once with
//
//	GOBIN=/tmp/lsv05 go install github.com/benbjohnson/litestream/cmd/litestream@v0.5.18
//
// and run with E2E_LITESTREAM_V05=/tmp/lsv05/litestream.

// litestreamV05 returns the real Litestream binary named by
// $E2E_LITESTREAM_V05, or skips the test.
func litestreamV05(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("E2E_LITESTREAM_V05")
	if bin == "" {
		t.Skip("set E2E_LITESTREAM_V05 to a Litestream v0.5 binary to run (see litestream_test.go)")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("E2E_LITESTREAM_V05: %v", err)
	}
	return bin
}

// v05Env is the environment for Litestream v0.5.18, which refuses to start
// with AWS_CA_BUNDLE set on this machine (FIELD-NOTES.md).
func v05Env() []string {
	var env []string
	for _, kv := range cliEnv() {
		if !strings.HasPrefix(kv, "AWS_CA_BUNDLE=") {
			env = append(env, kv)
		}
	}
	return env
}

// v05Restore restores replica at txid (0: latest) with the real Litestream.
func v05Restore(t *testing.T, bin, replica string, txid ltx.TXID, out string) {
	t.Helper()
	args := []string{"restore", "-o", out}
	if txid != 0 {
		args = append(args, "-txid", txid.String())
	}
	cmd := exec.Command(bin, append(args, fileURL(replica))...)
	cmd.Env = v05Env()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("Litestream v0.5 restore -txid %s: %v\n%s", txid, err, b)
	}
}

// restoreBoth restores every TXID of txids with both implementations and
// requires byte-identical outputs.
func restoreBoth(t *testing.T, bin, replica, scratch string, txids []ltx.TXID) {
	t.Helper()
	for _, txid := range txids {
		ours := filepath.Join(scratch, fmt.Sprintf("ours-%s.db", txid))
		theirs := filepath.Join(scratch, fmt.Sprintf("theirs-%s.db", txid))
		restore(t, replica, txid, ours)
		v05Restore(t, bin, replica, txid, theirs)
		sameFiles(t, theirs, ours, 4096)
		os.Remove(ours)
		os.Remove(theirs)
	}
}

// restoreBothPicked is restoreBoth at the TXIDs of pickTXIDs (five random
// level-0 ones), and requires Litestream's restore of the latest state to
// equal dbPath (the checkpointed source).
func restoreBothPicked(t *testing.T, bin, replica, dbPath string, pick func(int) int) {
	t.Helper()
	txids := pickTXIDs(t, replica, 5, pick)
	t.Logf("restoring TXIDs %v with both (0 = latest)", txids)
	scratch := t.TempDir()
	restoreBoth(t, bin, replica, scratch, txids)
	latest := filepath.Join(scratch, "latest.db")
	v05Restore(t, bin, replica, 0, latest)
	sameFiles(t, dbPath, latest, 4096)
}

// pickTXIDs returns the latest TXID (as 0), every compaction's end and up
// to n random level-0 TXIDs, without repeats.
func pickTXIDs(t *testing.T, replica string, n int, pick func(int) int) []ltx.TXID {
	t.Helper()
	files, err := listReplica(replica)
	if err != nil {
		t.Fatal(err)
	}
	txids := []ltx.TXID{0}
	var l0 []ltx.TXID
	for _, f := range files {
		switch {
		case f.Level == 0:
			l0 = append(l0, f.Max)
		case !slices.Contains(txids, f.Max):
			txids = append(txids, f.Max)
		}
	}
	for i := 0; i < n && len(l0) > 0; i++ {
		if txid := l0[pick(len(l0))]; !slices.Contains(txids, txid) {
			txids = append(txids, txid)
		}
	}
	return txids
}

// TestLitestreamRestoresOurReplica: a replica written by this project's
// daemon (random workload, with its compactions) restores with the real
// Litestream to exactly what our restore produces, at the latest TXID (equal
// to the source), at every compaction's end and at random level-0 TXIDs.
func TestLitestreamRestoresOurReplica(t *testing.T) {
	bin := litestreamV05(t)
	a := newApp(t)
	dbPath, replica, db, w, rng := a.dbPath, a.replica, a.db, a.w, a.rng
	d := startDaemon(t, daemonConfig(t, dbPath, replica))
	for i := 0; i < 1500; i++ {
		switch i {
		case 700:
			w.shrink()
		case 300:
			w.grow()
		default:
			w.step()
		}
	}
	d.stop()
	checkpoint(t, db)

	restoreBothPicked(t, bin, replica, dbPath, rng.IntN)
}

// TestOurRestoreOfLitestreamReplica: the real Litestream replicates a
// database under a random workload; our restore equals Litestream's own at
// every level-0 TXID.
func TestOurRestoreOfLitestreamReplica(t *testing.T) {
	bin := litestreamV05(t)
	a := newApp(t)
	dir, dbPath, replica, w := a.dir, a.dbPath, a.replica, a.w
	cfg := filepath.Join(dir, "v05.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("dbs:\n  - path: %s\n    replica:\n      url: %s\n      sync-interval: 100ms\n", dbPath, fileURL(replica))), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startProcess(t, bin, v05Env(), "replicate", "-config", cfg)
	for round := 0; round < 8; round++ {
		before := replicaMaxTXID(t, replica)
		for i := 0; i < 100; i++ {
			w.step()
		}
		if round == 4 {
			w.shrink()
		}
		waitTXID(t, d, replica, before+1, time.Minute)
	}
	d.stop()

	files, err := listReplica(replica)
	if err != nil {
		t.Fatal(err)
	}
	var txids []ltx.TXID
	for _, f := range files {
		if f.Level == 0 {
			txids = append(txids, f.Max)
		}
	}
	t.Logf("Litestream wrote %d files, level-0 TXIDs %v", len(files), txids)
	restoreBoth(t, bin, replica, t.TempDir(), txids)
}

// TestLitestreamVFSReadsOurReplica: Litestream v0.5's own VFS extension
// (E2E_LITESTREAM_V05_VFS: the .so its Makefile builds with
// `make vfs-linux-amd64`) reads a replica written by our daemon, with
// compactions, snapshots and retention on short intervals so that its plan
// runs through our compacted and snapshot files (LZ4 frame page encoding),
// and sees exactly the source's content.
func TestLitestreamVFSReadsOurReplica(t *testing.T) {
	ext := os.Getenv("E2E_LITESTREAM_V05_VFS")
	if ext == "" {
		t.Skip("set E2E_LITESTREAM_V05_VFS to Litestream v0.5's VFS extension (dist/litestream-vfs-linux-amd64.so) to run")
	}
	a := newApp(t)
	dir, dbPath, replica, db, w := a.dir, a.dbPath, a.replica, a.db, a.w
	cfg := levelsConfig(t, dbPath, replica, `levels:
  - interval: 1s
  - interval: 3s
snapshot: {interval: 4s, retention: 1h}
l0-retention: 1s
l0-retention-check-interval: 200ms
`)
	d := startDaemon(t, cfg)
	start := time.Now()
	for i := 0; time.Since(start) < 9*time.Second || i < 1000; i++ {
		w.step()
		if i%50 == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	d.stop()
	checkpoint(t, db)

	// The replica's compacted and snapshot files are in the frame encoding.
	files, err := listReplica(replica)
	if err != nil {
		t.Fatal(err)
	}
	levels := map[int]bool{}
	for _, f := range files {
		if f.Level > 0 {
			b, err := os.ReadFile(f.Path)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > ltx.HeaderSize+ltx.PageHeaderSize && b[ltx.HeaderSize+4]|b[ltx.HeaderSize+5] == 0 {
				levels[f.Level] = true
			}
		}
	}
	if !levels[1] || !levels[9] {
		t.Fatalf("no level-1 and level-9 files in the frame encoding (levels with frame-encoded files: %v)", levels)
	}

	v05VFSReads(t, ext, replica, liveContentHash(t, dbPath))
	if bin := os.Getenv("E2E_LITESTREAM_V05"); bin != "" {
		out := filepath.Join(dir, "theirs.db")
		v05Restore(t, bin, replica, 0, out)
		sameFiles(t, dbPath, out, 4096)
	}
}

// v05VFSReads opens replica through Litestream v0.5's VFS extension ext in a
// sqlite3 process and requires its integrity check to pass and its content
// hash (.sha3sum) to be want.
func v05VFSReads(t *testing.T, ext, replica, want string) {
	t.Helper()
	cmd := exec.Command("sqlite3", ":memory:",
		"-cmd", ".load "+ext+" sqlite3_litestreamvfs_init",
		"-cmd", ".open file:replica.db?vfs=litestream",
		"-cmd", "PRAGMA integrity_check;",
		".sha3sum")
	cmd.Env = append(v05Env(), "LITESTREAM_REPLICA_URL="+fileURL(replica))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("Litestream's VFS: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 2 || lines[0] != "ok" || lines[len(lines)-1] != want {
		t.Fatalf("Litestream's VFS over our replica: integrity and content hash\n%s\nwant ok and %s", out, want)
	}
}
