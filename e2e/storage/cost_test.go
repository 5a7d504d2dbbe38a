package storage

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/litestream-go/litestream/internal/faultproxy"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/s3"
	"github.com/litestream-go/litestream/vfs"
	"github.com/litestream-go/litestream/writer"
)

// TestS3IdleDaemonRequests counts, through a proxy in front of real MinIO,
// the requests an idle writer sends once start-up and compaction are done
// (issue 11 item 1): with every maintenance tick at 100-200 ms and the
// consistency check every 2 s, a 5 s window holds only the checks' LISTs
// (one paginated listing each) and nothing else. The client's own counts
// must agree with the proxy's. The window is a measurement, not a
// synchronisation.
func TestS3IdleDaemonRequests(t *testing.T) {
	const (
		check  = 2 * time.Second
		window = 5 * time.Second
	)
	rig := startFaultRig(t, faultproxy.Options{Disabled: true})
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	app := openApp(t, path)
	insert := func() { insertBlob(t, app) }
	insert()
	client := rig.client(t, true, s3.Config{})
	direct := rig.client(t, false, s3.Config{})
	d := writer.New(path, client, writer.Options{
		MonitorInterval: 10 * time.Millisecond, SyncInterval: 50 * time.Millisecond,
		Levels: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}, RetentionCheckInterval: 100 * time.Millisecond,
		ConsistencyCheckInterval: check,
		StagingDir:               filepath.Join(dir, "staging"), Logger: quiet(t),
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := d.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	d.Start(ctx)
	waitUntil(t, 30*time.Second, "the first sync", func() bool { return d.Status().TXID == 1 })
	insert()
	waitUntil(t, 30*time.Second, "level 2 to cover TXID 2", func() bool {
		l2, err := direct.LTXFiles(ctx, 2, 0)
		return err == nil && len(l2) > 0 && l2[len(l2)-1].MaxTXID == 2
	})

	rig.proxy.ResetStats()
	before := client.RequestCounts()
	time.Sleep(window)
	st := rig.proxy.Stats()
	own := client.RequestCounts().Sub(before)
	t.Logf("idle for %s with a check every %s: proxy %s; client %+v", window, check, st, own)
	lists := st.Requests[faultproxy.ClassLIST]
	if lists < 1 || lists > int64(window/check)+1 || st.TotalRequests() != lists {
		t.Errorf("an idle writer sent %s in %s, want 1..%d LIST and nothing else", st, window, int64(window/check)+1)
	}
	if own.List != lists || own.Total() != st.TotalRequests() {
		t.Errorf("the client counted %+v, the proxy %s", own, st)
	}
}

// waitUntil polls cond until it holds or timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestS3ReaderRequests counts, through a proxy in front of real MinIO, what
// a reader of the replica sends (issue 11 items 3 and 4): a cold open is one
// listing of every level and no HEAD; an idle reader polling every 100 ms
// sends GETs only, at most one per poll; a new transaction is followed with
// GETs only, within a few polls.
func TestS3ReaderRequests(t *testing.T) {
	const poll = 100 * time.Millisecond
	rig := startFaultRig(t, faultproxy.Options{Disabled: true})
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	app := openApp(t, path)
	insert := func() { insertBlob(t, app) }
	ctx := t.Context()
	d := openManualWriter(t, path, rig.client(t, false, s3.Config{}), dir)
	defer d.Close(context.Background())
	for range 5 {
		insert()
		if err := d.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}

	client := rig.client(t, true, s3.Config{})
	rig.proxy.ResetStats()
	r, err := vfs.OpenReplica(ctx, "s3", client, vfs.ReplicaOptions{PollInterval: poll, Logger: quiet(t)})
	if err != nil {
		t.Fatal(err)
	}
	open := rig.proxy.Stats()
	t.Logf("cold open at TXID %s: %s", r.Version().TXID(), open)
	if r.Version().TXID() != d.Status().TXID {
		t.Fatalf("opened at TXID %s, the writer is at %s", r.Version().TXID(), d.Status().TXID)
	}
	if open.Requests[faultproxy.ClassLIST] != 1 || open.Requests[faultproxy.ClassHEAD] != 0 {
		t.Errorf("cold open sent %s, want one LIST and no HEAD", open)
	}

	r.Acquire(ctx)
	defer r.Release()
	rig.proxy.ResetStats()
	const window = time.Second
	time.Sleep(window) // a measurement window
	idle := rig.proxy.Stats()
	t.Logf("idle reader for %s, polling every %s: %s", window, poll, idle)
	if gets := idle.Requests[faultproxy.ClassGET]; gets == 0 || gets > int64(window/poll)+2 || idle.TotalRequests() != gets {
		t.Errorf("an idle reader sent %s in %s, want GETs only, at most one per poll", idle, window)
	}

	rig.proxy.ResetStats()
	insert()
	if err := d.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	synced := time.Now()
	want := d.Status().TXID
	waitUntil(t, 20*time.Second, "the reader to follow", func() bool { return r.Version().TXID() == want })
	follow := rig.proxy.Stats()
	t.Logf("followed TXID %s %v after its upload: %s", want, time.Since(synced).Round(time.Millisecond), follow)
	if follow.Requests[faultproxy.ClassLIST] != 0 || follow.Requests[faultproxy.ClassHEAD] != 0 {
		t.Errorf("following a transaction sent %s, want GETs only", follow)
	}
}

// insertBlob commits one row of 3000 random bytes to the table t of
// openApp's database.
func insertBlob(t *testing.T, app *sql.DB) {
	t.Helper()
	if _, err := app.Exec(`INSERT INTO t(n, v) VALUES (1, randomblob(3000))`); err != nil {
		t.Fatal(err)
	}
}

// openManualWriter opens a writer of path to client that syncs only when
// the test calls Sync: no compaction, snapshot or retention, staging under
// dir. The caller closes it.
func openManualWriter(t *testing.T, path string, client remote.Client, dir string) *writer.DB {
	t.Helper()
	d := writer.New(path, client, writer.Options{
		MonitorInterval: time.Hour, SyncInterval: time.Hour, // syncs only when called
		Levels: []time.Duration{}, SnapshotInterval: -1, RetentionDisabled: true,
		StagingDir: filepath.Join(dir, "staging"), Logger: quiet(t),
	})
	if err := d.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	return d
}
