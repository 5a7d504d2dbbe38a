package vfs_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/testsupport"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/file"
	"github.com/litestream-go/litestream/vfs"
)

// TestFollowByProbe follows the replica Litestream v0.5.18 wrote (the
// fixture) as its level-0 files appear one by one, and counts what the
// background poller sends (issue 11 item 3): it reads each next level-0
// file by its predictable name and never lists (ListInterval is an hour);
// an idle poll is one GET (answered "not found"). The content at TXIDs 9
// and 15 is Litestream's.
func TestFollowByProbe(t *testing.T) {
	ctx := context.Background()
	src := testsupport.FixtureReplica(t)
	root := t.TempDir()
	place := func(level int, minTXID, maxTXID ltx.TXID) {
		t.Helper()
		name := remote.FileName(minTXID, maxTXID)
		b, err := os.ReadFile(filepath.Join(src, "ltx", fmt.Sprint(level), name))
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(root, "ltx", fmt.Sprint(level))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// Whole or not at all, as an object store shows it.
		if err := os.WriteFile(filepath.Join(dir, ".tmp"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, ".tmp"), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	place(remote.SnapshotLevel, 1, 1)
	for n := ltx.TXID(2); n <= 5; n++ {
		place(remote.L0, n, n)
	}
	client := file.New(root)
	const u = "file:///probe"
	const pollEvery = 20 * time.Millisecond
	_, name := register(t, map[string]remote.Client{u: client}, vfs.Options{Replica: vfs.ReplicaOptions{
		PollInterval: pollEvery, ListInterval: time.Hour,
	}})
	conn := openConn(t, name, u)
	waitTXID := func(txid ltx.TXID) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for row(ctx, t, conn, "PRAGMA litestream_txid") != fmt.Sprint(uint64(txid)) {
			if time.Now().After(deadline) {
				t.Fatalf("the reader did not reach TXID %d (at %s)", txid, row(ctx, t, conn, "PRAGMA litestream_txid"))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitTXID(5)
	checkFixtureRows(ctx, t, conn, 5)

	before := client.RequestCounts()
	for n := ltx.TXID(6); n <= 15; n++ {
		place(remote.L0, n, n)
		waitTXID(n)
		if n == 9 {
			checkFixtureRows(ctx, t, conn, 9)
		}
	}
	checkFixtureRows(ctx, t, conn, 15)
	got := client.RequestCounts().Sub(before)
	t.Logf("following TXIDs 6..15: %+v", got)
	if got.List != 0 || got.Get < 10 || got.Put != 0 || got.Delete != 0 {
		t.Errorf("following 10 new files: %+v, want no LIST and at least 10 GETs", got)
	}

	// Idle: one GET per poll, nothing else. The window is a measurement.
	const window = 500 * time.Millisecond
	before = client.RequestCounts()
	time.Sleep(window)
	got = client.RequestCounts().Sub(before)
	t.Logf("idle for %s at a poll every %s: %+v", window, pollEvery, got)
	if got.List != 0 || got.Head != 0 || got.Get > int64(window/pollEvery)+1 || got.Get == 0 {
		t.Errorf("idle reader: %+v, want no LIST and at most one GET per poll", got)
	}
}
