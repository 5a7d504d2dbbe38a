package writer

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
)

// TestSnapshotDoesNotBlockWriters holds a snapshot's upload open while the
// application writes and checkpoints (TRUNCATE waits for readers, so PASSIVE
// and a full one are used): the writes complete, and the snapshot holds
// exactly the state at its TXID.
func TestSnapshotDoesNotBlockWriters(t *testing.T) {
	e := newEnv(t)
	d := e.openSynced(300, 2000)
	for i := 0; i < 3; i++ {
		e.insert(30, 2000)
		e.exec(`UPDATE t SET v = randomblob(1500) WHERE id % 7 = ?`, i)
		e.sync(d)
	}
	// Unsynced frames too: the snapshot's own sync must take them.
	e.insert(10, 2000)
	want := e.image()

	during := make(chan error, 1)
	e.client.set(func(c *faultyClient) {
		c.writeHook = func(level int, _ ltx.TXID) {
			if level != remote.SnapshotLevel {
				return
			}
			// The snapshot's stream is running (or blocked on the pipe) and
			// its read transaction is held.
			done := make(chan error, 1)
			go func() {
				_, err := e.app.Exec(`UPDATE t SET v = randomblob(3000) WHERE id < 200`)
				if err == nil {
					_, err = e.app.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
				}
				done <- err
			}()
			select {
			case err := <-done:
				during <- err
			case <-time.After(10 * time.Second):
				during <- context.DeadlineExceeded
			}
		}
	})
	info, err := d.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := <-during; err != nil {
		t.Fatalf("application write during the snapshot: %v", err)
	}
	e.client.set(func(c *faultyClient) { c.writeHook = nil })
	if info == nil || info.MinTXID != 1 || info.MaxTXID != 5 {
		t.Fatalf("snapshot %+v, want 1-5", info)
	}
	f := readLTX(t, e.client, remote.SnapshotLevel, 1, 5)
	if !isSnapshot(f) || f.hdr.Flags != ltx.HeaderFlagNoChecksum || f.hdr.WALOffset != 0 {
		t.Fatalf("snapshot header %+v, %d pages", f.hdr, len(f.pgnos))
	}
	l0 := readLTX(t, e.client, remote.L0, 5, 5)
	if f.hdr.Timestamp != l0.hdr.Timestamp {
		t.Errorf("snapshot timestamp %d, TXID 5's file %d", f.hdr.Timestamp, l0.hdr.Timestamp)
	}
	img := make([]byte, int(f.hdr.Commit)*4096)
	for pgno, data := range f.pages {
		copy(img[(pgno-1)*4096:], data)
	}
	if !bytes.Equal(img, want) {
		t.Fatalf("snapshot differs from the database at TXID 5: %s", diffPages(img, want, 4096))
	}

	// The concurrent write is TXID 6; a snapshot then covers it, and one
	// more without changes writes nothing.
	if info, err := d.Snapshot(context.Background()); err != nil || info == nil || info.MaxTXID != 6 {
		t.Fatalf("second snapshot %+v, %v; want 1-6", info, err)
	}
	if info, err := d.Snapshot(context.Background()); err != nil || info != nil {
		t.Fatalf("snapshot without changes wrote %+v, %v", info, err)
	}
	if n := len(e.files(remote.SnapshotLevel)); n != 2 {
		t.Fatalf("%d snapshots, want 2 (TXIDs 5, 6; the first sync's file is at level 0 only)", n)
	}
	e.checkReplica()
}

// TestSnapshotAfterCheckpoints: pages backfilled into the database file and
// a restarted log are read correctly.
func TestSnapshotAfterCheckpoints(t *testing.T) {
	e := newEnv(t)
	d := e.openSynced(200, 1500)
	for i := 0; i < 4; i++ {
		e.insertSync(d, 40, 1500)
		e.checkpoint(d)
	}
	e.exec(`DELETE FROM t WHERE id % 3 = 0`)
	want := e.image()
	info, err := d.Snapshot(context.Background())
	if err != nil || info == nil {
		t.Fatalf("snapshot: %+v, %v", info, err)
	}
	// Only the snapshot: delete level 0 beyond TXID 1 and restore.
	l0 := e.files(remote.L0)
	if err := e.client.DeleteLTXFiles(context.Background(), l0); err != nil {
		t.Fatal(err)
	}
	got, plan, err := planRestore(t, e.client, 0, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Files) != 1 || !bytes.Equal(got, want) {
		t.Fatalf("restore from the snapshot alone: %d files, equal %v", len(plan.Files), bytes.Equal(got, want))
	}
}
