package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLitestreamOnLevel0OnlyFirstSync (issue 11 item 2; with
// E2E_LITESTREAM_V05_VFS also Litestream's VFS): our daemon's first
// sync uploads the database once, as the level-0 file of TXID 1, and no
// level-9 snapshot until the snapshot schedule makes one (1 h here);
// compaction starts after that file and retention keeps it. Litestream
// v0.5.18 restores such a replica to exactly what ours restores (latest,
// every compaction's end, random level-0 TXIDs), then takes it over on a new
// machine (replicate -restore-if-db-not-exists, as after a failover),
// continues it, and both tools restore the result to that machine's
// database. Last, Litestream's daemon runs on it with a short level-0
// retention at its default retention check interval (15 s): it snapshots to
// level 9 at start-up, before its first retention pass deletes the level-0
// file at TXID 1 (level 1 covers it), so the replica has a full copy at TXID
// 1 throughout, and both tools still restore it. (With a check interval
// shorter than its start-up snapshot takes, Litestream deletes that file
// first: see the README, "Storage requests and their cost".)
func TestLitestreamOnLevel0OnlyFirstSync(t *testing.T) {
	bin := litestreamV05(t)
	_, rng := testSeed(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	replica := filepath.Join(dir, "replica")
	db := openDB(t, dbPath, "PRAGMA page_size=4096")
	w := newWorkload(t, db, rng)
	w.grow() // the first sync's file holds megabytes
	cfg := levelsConfig(t, dbPath, replica, `levels:
  - interval: 1s
  - interval: 2s
snapshot: {interval: 1h, retention: 1h}
l0-retention: 1ms
`)
	d := startDaemon(t, cfg)
	waitTXID(t, d, replica, 1, 30*time.Second)
	for i := 0; i < 600; i++ {
		w.step()
	}
	// Both levels have merged something after TXID 1.
	waitFor(t, "level-1 and level-2 compactions", 60*time.Second, func() bool {
		d.checkAlive()
		files, err := listReplica(replica)
		if err != nil {
			t.Fatal(err)
		}
		var l1, l2 bool
		for _, f := range files {
			l1 = l1 || f.Level == 1
			l2 = l2 || f.Level == 2
		}
		return l1 && l2
	})
	d.stop()
	// Retention now, without the grace period: level-0 files level 1
	// covers go, the first sync's file stays (the only copy at TXID 1).
	mustCLI(t, "replicate", "-once", "-enforce-retention", "-config", cfg)
	checkpoint(t, db)

	files, err := listReplica(replica)
	if err != nil {
		t.Fatal(err)
	}
	var base *replicaFile
	l0 := 0
	for i, f := range files {
		switch {
		case f.Level == 9:
			t.Errorf("level-9 file %s: the first snapshot is due in 1 h", filepath.Base(f.Path))
		case f.Min == 1 && f.Level != 0:
			t.Errorf("level-%d file %s starts at TXID 1: a second copy of the first sync's database", f.Level, filepath.Base(f.Path))
		case f.Min == 1:
			base = &files[i]
		}
		if f.Level == 0 {
			l0++
		}
	}
	if base == nil || base.Max != 1 {
		t.Fatalf("no level-0 file 1-1 in the replica: %v", files)
	}
	if l0 > 1 && files[1].Level == 0 && files[1].Min == 2 {
		t.Errorf("retention deleted no covered level-0 file (level 0 is 1, 2, ...)")
	}
	t.Logf("replica: %d files, %d at level 0; the first sync's file is %d bytes", len(files), l0, base.Size)

	restoreBothPicked(t, bin, replica, dbPath, rng.IntN)
	if ext := os.Getenv("E2E_LITESTREAM_V05_VFS"); ext != "" {
		v05VFSReads(t, ext, replica, liveContentHash(t, dbPath))
	} else {
		t.Log("E2E_LITESTREAM_V05_VFS not set: Litestream's VFS not run on the replica")
	}

	// A new machine: Litestream restores the database there and continues
	// the replica.
	db2Path := filepath.Join(t.TempDir(), "app.db")
	v05Replicate := func(args ...string) {
		t.Helper()
		cmd := exec.Command(bin, append(append([]string{"replicate", "-once"}, args...), db2Path, fileURL(replica))...)
		cmd.Env = v05Env()
		b, err := cmd.CombinedOutput()
		if err != nil || strings.Contains(string(b), "level=ERROR") {
			t.Fatalf("Litestream v0.5 replicate -once %v: %v\n%s", args, err, b)
		}
	}
	v05Replicate("-restore-if-db-not-exists")
	db2 := openDB(t, db2Path)
	for i := 0; i < 5; i++ {
		mustExec(t, db2, seriesSQL+`INSERT INTO users(name, email, score) SELECT 'after-'||value, 'after-`+fmt.Sprint(i)+`-'||value, value FROM series`, 100)
	}
	before := replicaMaxTXID(t, replica)
	v05Replicate()
	if after := replicaMaxTXID(t, replica); after <= before {
		t.Fatalf("Litestream did not continue the replica: TXID %s before and after", after)
	}
	checkpoint(t, db2)
	ours := filepath.Join(dir, "ours-after-takeover.db")
	restore(t, replica, 0, ours)
	sameFiles(t, db2Path, ours, 4096)
	theirs := filepath.Join(dir, "theirs-after-takeover.db")
	v05Restore(t, bin, replica, 0, theirs)
	sameFiles(t, db2Path, theirs, 4096)

	cfg2 := filepath.Join(dir, "litestream-v05.yml")
	if err := os.WriteFile(cfg2, []byte(fmt.Sprintf(`levels:
  - interval: 1s
snapshot: {interval: 1h, retention: 1h}
l0-retention: 1s
l0-retention-check-interval: 15s
dbs:
  - path: %s
    monitor-interval: 20ms
    replica: {url: '%s', sync-interval: 50ms}
`, db2Path, fileURL(replica))), 0o644); err != nil {
		t.Fatal(err)
	}
	ld := startProcess(t, bin, v05Env(), "replicate", "-config", cfg2)
	fullCopy := func() (l0Base, l9 bool) {
		files, err := listReplica(replica)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			l0Base = l0Base || (f.Level == 0 && f.Min == 1)
			l9 = l9 || (f.Level == 9 && f.Min == 1)
		}
		return l0Base, l9
	}
	i := 0
	waitFor(t, "Litestream's level-9 snapshot and its retention of the level-0 file at TXID 1", 60*time.Second, func() bool {
		ld.checkAlive()
		i++
		mustExec(t, db2, `INSERT INTO users(name, email, score) VALUES (?, ?, ?)`, "v05", fmt.Sprintf("v05-%d", i), i)
		time.Sleep(50 * time.Millisecond) // pacing of the writes, not a synchronization
		l0Base, l9 := fullCopy()
		if !l0Base && !l9 {
			t.Fatal("the replica has no full copy at TXID 1 (level 0 or 9)")
		}
		return l9 && !l0Base
	})
	ld.stop()
	checkpoint(t, db2)
	restore(t, replica, 0, filepath.Join(dir, "ours-after-v05-daemon.db"))
	sameFiles(t, db2Path, filepath.Join(dir, "ours-after-v05-daemon.db"), 4096)
	v05Restore(t, bin, replica, 0, filepath.Join(dir, "theirs-after-v05-daemon.db"))
	sameFiles(t, db2Path, filepath.Join(dir, "theirs-after-v05-daemon.db"), 4096)
}
