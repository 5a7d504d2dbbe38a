package writer

import (
	"bytes"
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/writer/wal"
)

// The first sync uploads the database once (issue 11 item 2): a full
// snapshot as the level-0 file of TXID 1, and nothing at level 9. Before,
// the same file also went to level 9: two PUTs and twice the bytes.
func TestFirstSyncUploadsDatabaseOnce(t *testing.T) {
	e := newEnv(t)
	e.insert(1000, 4000) // about 4 MiB of incompressible rows
	d := e.open(e.opts())
	walHdr, ok := e.walHeader()
	if !ok {
		t.Fatal("no WAL header before the first sync")
	}
	e.sync(d)

	e.client.mu.Lock()
	writes, written := slices.Clone(e.client.writes), e.client.written
	e.client.mu.Unlock()
	if want := []string{remote.FileDesc(remote.L0, 1, 1)}; !slices.Equal(writes, want) {
		t.Errorf("first sync uploaded %v, want %v", writes, want)
	}
	img := e.image()
	if written > int64(len(img))*11/10 {
		t.Errorf("first sync uploaded %d bytes for a %d-byte database, want at most 1.1x", written, len(img))
	}
	t.Logf("database %d bytes; first sync uploaded %d bytes in %d PUT(s)", len(img), written, len(writes))
	if n := len(e.files(remote.SnapshotLevel)); n != 0 {
		t.Errorf("%d level-9 files after the first sync, want 0", n)
	}

	l0 := readLTX(t, e.client, 0, 1, 1)
	checkFile(t, l0, 1)
	if !isSnapshot(l0) {
		t.Errorf("first file has %d pages, commit %d: not a snapshot", len(l0.pgnos), l0.hdr.Commit)
	}
	if want := uint32(len(img) / 4096); l0.hdr.Commit != want || l0.hdr.PageSize != 4096 {
		t.Errorf("commit %d page size %d, want %d, 4096", l0.hdr.Commit, l0.hdr.PageSize, want)
	}
	// The WAL fields cover the generation from its first frame, as
	// Litestream's first file does: Litestream continues from them.
	fi, err := os.Stat(e.path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	h := l0.hdr
	if h.WALOffset != wal.HeaderSize || h.WALOffset+h.WALSize != fi.Size() ||
		h.WALSalt1 != walHdr.Salt1 || h.WALSalt2 != walHdr.Salt2 {
		t.Errorf("WAL fields offset %d size %d salts %08x/%08x; WAL is %d bytes, salts %08x/%08x",
			h.WALOffset, h.WALSize, h.WALSalt1, h.WALSalt2, fi.Size(), walHdr.Salt1, walHdr.Salt2)
	}
	e.checkReplicaAt(1)
	if got, plan, err := planRestore(t, e.client, 0, time.Time{}); err != nil || !bytes.Equal(got, img) {
		t.Errorf("restore of the level-0-only replica: %v, equal %v", err, bytes.Equal(got, img))
	} else if len(plan.Files) != 1 || plan.Files[0].Level != remote.L0 {
		t.Errorf("plan %v, want the level-0 file alone", plan.Files)
	}

	// Nothing changed: no file.
	e.sync(d)
	if n := len(e.files(0)); n != 1 {
		t.Errorf("%d level-0 files after an idle sync, want 1", n)
	}
	if st := d.Status(); st.TXID != 1 || st.LastError != "" || st.Snapshots != 1 || st.PageSize != 4096 {
		t.Errorf("status %+v", st)
	}
	// The writer added nothing to the schema.
	var n int
	if err := e.app.QueryRow(`SELECT count(*) FROM sqlite_master`).Scan(&n); err != nil || n != 2 {
		t.Errorf("sqlite_master has %d entries (%v), want 2", n, err)
	}
}

// A writer restarted after a first sync that went to level 0 only resumes
// from that file (Open verifies it against the WAL): no second snapshot.
func TestResumeAfterLevel0OnlyFirstSync(t *testing.T) {
	e := newEnv(t)
	d := e.openSynced(100, 1000)
	e.close(d)
	e.insert(10, 1000)
	d = e.open(e.opts())
	e.sync(d)
	if st := d.Status(); st.TXID != 2 || st.Snapshots != 0 {
		t.Errorf("after resume: status %+v, want TXID 2 and no snapshot", st)
	}
	if f := readLTX(t, e.client, 0, 2, 2); isSnapshot(f) {
		t.Error("the file after the resume is a full snapshot")
	}
	if n := len(e.files(remote.SnapshotLevel)); n != 0 {
		t.Errorf("%d level-9 files, want 0", n)
	}
	e.checkReplicaAt(2)
}

// Compaction starts after the first sync's level-0 file, so no level gets
// a database-sized copy of it; retention keeps that file (the only base)
// until a level-9 snapshot replaces it as the oldest retained snapshot
// would; every TXID a file ends at restores exactly throughout.
func TestLevel0BaseCompactionAndRetention(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.insert(300, 1000)
	opts := eagerRetention(e.opts(), 2)
	opts.SnapshotRetention = time.Hour
	d := e.open(opts)
	images := map[ltx.TXID][]byte{}
	step := func() {
		e.sync(d)
		images[d.Status().TXID] = e.image()
	}
	step()
	baseSize := e.files(0)[0].Size
	for range 5 {
		e.insert(10, 1000)
		step()
	}
	out, err := d.Compact(ctx, 1)
	if err != nil || len(out) != 1 || out[0].MinTXID != 2 || out[0].MaxTXID != 6 {
		t.Fatalf("level-1 compaction wrote %v, %v; want 2-6 (after the level-0 base)", out, err)
	}
	if out[0].Size >= baseSize/2 {
		t.Errorf("level-1 file is %d bytes, the base %d: a copy of the database", out[0].Size, baseSize)
	}
	out, err = d.Compact(ctx, 2)
	if err != nil || len(out) != 1 || out[0].MinTXID != 2 || out[0].MaxTXID != 6 {
		t.Fatalf("level-2 compaction wrote %v, %v; want 2-6", out, err)
	}
	time.Sleep(2 * time.Millisecond) // L0Retention is 1ns: every covered file is old
	del, err := d.EnforceRetention(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var deleted []string
	for _, f := range del {
		deleted = append(deleted, remote.FileDesc(f.Level, f.MinTXID, f.MaxTXID))
	}
	// L0 2..5 go (covered by level 1); 6 stays (the newest level-0 file),
	// and so does 1, the base.
	want := []string{remote.FileDesc(0, 2, 2), remote.FileDesc(0, 3, 3), remote.FileDesc(0, 4, 4), remote.FileDesc(0, 5, 5)}
	if !slices.Equal(deleted, want) {
		t.Errorf("retention deleted %v, want %v", deleted, want)
	}
	for _, txid := range []ltx.TXID{1, 6} {
		got, _, err := planRestore(t, e.client, txid, time.Time{})
		if err != nil || !bytes.Equal(got, images[txid]) {
			t.Fatalf("restore TXID %d after retention: %v, equal %v", txid, err, bytes.Equal(got, images[txid]))
		}
	}

	// A snapshot makes the base one of two; while it is younger than the
	// snapshot retention it stays (history from TXID 1 stays restorable).
	e.insert(10, 1000)
	step()
	snap, err := d.Snapshot(ctx)
	if err != nil || snap == nil || snap.MaxTXID != 7 {
		t.Fatalf("snapshot %v, %v", snap, err)
	}
	if _, err := d.EnforceRetention(ctx); err != nil {
		t.Fatal(err)
	}
	if !hasFile(e.files(0), 1) {
		t.Fatal("retention deleted the level-0 base while it is younger than the snapshot retention")
	}
	if got, _, err := planRestore(t, e.client, 6, time.Time{}); err != nil || !bytes.Equal(got, images[6]) {
		t.Fatalf("restore TXID 6 with base and snapshot: %v", err)
	}

	// Once older than the snapshot retention, it goes like an old snapshot.
	d.opts.SnapshotRetention = time.Nanosecond
	if _, err := d.EnforceRetention(ctx); err != nil {
		t.Fatal(err)
	}
	if hasFile(e.files(0), 1) {
		t.Error("retention kept the level-0 base after a newer snapshot and past the snapshot retention")
	}
	if got, _, err := planRestore(t, e.client, 7, time.Time{}); err != nil || !bytes.Equal(got, images[7]) {
		t.Fatalf("restore TXID 7 from the snapshot: %v", err)
	}
}

func hasFile(files []*ltx.FileInfo, minTXID ltx.TXID) bool {
	for _, f := range files {
		if f.MinTXID == minTXID {
			return true
		}
	}
	return false
}

// The first scheduled level-9 snapshot comes at the first multiple of the
// interval at least one interval after the first sync's level-0 file, not
// at the next tick (which would upload the database a second time soon
// after the first). With a 2 s interval: never earlier than 2 s after the
// base, and within a few ticks.
func TestFirstSnapshotWaitsOneInterval(t *testing.T) {
	e := newEnv(t)
	opts := e.opts()
	opts.SnapshotInterval = 2 * time.Second
	opts.Levels = []time.Duration{}
	d := e.openSyncedWith(opts, 100, 1000)
	base := e.files(0)[0].CreatedAt
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d.Start(ctx)
	var seen time.Time
	waitFor(t, 30*time.Second, "the first level-9 snapshot", func() bool {
		if len(e.files(remote.SnapshotLevel)) == 0 {
			return false
		}
		seen = time.Now()
		return true
	})
	if age := seen.Sub(base); age < opts.SnapshotInterval {
		t.Errorf("first level-9 snapshot %v after the first sync's file, want at least one interval (%v)", age.Round(time.Millisecond), opts.SnapshotInterval)
	}
	e.checkReplicaAt(1)
}

// A replica left without any file starting at TXID 1 (Litestream's daemon
// deleted the first sync's level-0 file, which its level 1 covers, and its
// own start-up snapshot never landed) restores nothing; a writer started on
// it snapshots at once instead of at the next multiple of the interval (1 h
// here).
func TestSnapshotAtOnceWithoutBase(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	opts := e.opts()
	opts.Levels = []time.Duration{time.Hour}
	opts.SnapshotInterval = time.Hour
	d := e.openSyncedWith(opts, 50, 1000)
	for range 3 {
		e.insertSync(d, 5, 1000)
	}
	if out, err := d.Compact(ctx, 1); err != nil || len(out) != 1 || out[0].MinTXID != 2 {
		t.Fatalf("compaction %v, %v", out, err)
	}
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.client.DeleteLTXFiles(ctx, e.files(0)[:1]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := planRestore(t, e.client, 0, time.Time{}); err == nil {
		t.Fatal("a replica without a file at TXID 1 restored")
	}
	d = e.open(opts)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.Start(runCtx)
	waitFor(t, 30*time.Second, "a level-9 snapshot", func() bool { return len(e.files(remote.SnapshotLevel)) > 0 })
	e.checkReplicaAt(4)
}
