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
		case f.level == 0:
			l0 = append(l0, f.max)
		case !slices.Contains(txids, f.max):
			txids = append(txids, f.max)
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
	_, rng := testSeed(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	replica := filepath.Join(dir, "replica")
	db := openDB(t, dbPath, "PRAGMA page_size=4096")
	w := newWorkload(t, db, rng)
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

	txids := pickTXIDs(t, replica, 5, rng.IntN)
	t.Logf("restoring TXIDs %v with both (0 = latest)", txids)
	restoreBoth(t, bin, replica, t.TempDir(), txids)
	out := filepath.Join(dir, "latest.db")
	v05Restore(t, bin, replica, 0, out)
	sameFiles(t, dbPath, out, 4096)
}

// TestOurRestoreOfLitestreamReplica: the real Litestream replicates a
// database under a random workload; our restore equals Litestream's own at
// every level-0 TXID.
func TestOurRestoreOfLitestreamReplica(t *testing.T) {
	bin := litestreamV05(t)
	_, rng := testSeed(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	replica := filepath.Join(dir, "replica")
	db := openDB(t, dbPath, "PRAGMA page_size=4096")
	w := newWorkload(t, db, rng)
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
		if f.level == 0 {
			txids = append(txids, f.max)
		}
	}
	t.Logf("Litestream wrote %d files, level-0 TXIDs %v", len(files), txids)
	restoreBoth(t, bin, replica, t.TempDir(), txids)
}
