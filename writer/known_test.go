package writer

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/file"
	"github.com/litestream-go/litestream/remote/remotetest"
)

// TestIdleRequests counts what an idle writer sends once compaction has
// caught up, with every maintenance tick far more frequent than its
// defaults: with the knowledge of what it wrote (known.go) only the
// consistency check lists (one ListAll, 10 directory reads on the file
// backend, per ConsistencyCheckInterval) and nothing is read, written or
// deleted; listing on every use (ConsistencyCheckInterval < 0), as before,
// lists on every tick. The window is a measurement, not a synchronisation.
func TestIdleRequests(t *testing.T) {
	const window = 2 * time.Second
	for _, tc := range []struct {
		name       string
		check      time.Duration
		minL, maxL int64
	}{
		{"known", 500 * time.Millisecond, 0, (int64(window/(500*time.Millisecond)) + 1) * (remote.MaxLevel + 1)},
		{"list every tick", -1, 200, 1 << 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			opts := e.opts()
			opts.MonitorInterval = 5 * time.Millisecond
			opts.SyncInterval = 10 * time.Millisecond
			opts.Levels = []time.Duration{20 * time.Millisecond, 40 * time.Millisecond}
			opts.RetentionCheckInterval = 20 * time.Millisecond
			opts.ConsistencyCheckInterval = tc.check
			d := e.open(opts)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			e.insert(10, 500)
			d.Start(ctx)
			waitFor(t, 20*time.Second, "the first sync", func() bool { return d.Status().TXID == 1 })
			e.insert(10, 500)
			want := e.image()
			waitFor(t, 20*time.Second, "level 2 to cover the last write", func() bool {
				l2 := e.files(2)
				return len(l2) > 0 && l2[len(l2)-1].MaxTXID == d.Status().TXID && d.Status().TXID >= 2
			})
			if got, _ := restore(t, e.client); string(got) != string(want) {
				t.Fatal("the replica does not restore to the database")
			}
			fc := e.client.Client.(remote.RequestCounter)
			before := fc.RequestCounts()
			time.Sleep(window)
			got := fc.RequestCounts().Sub(before)
			t.Logf("idle for %s: %+v", window, got)
			if got.Get != 0 || got.Put != 0 || got.Delete != 0 || got.Head != 0 {
				t.Errorf("an idle writer read, wrote or deleted: %+v", got)
			}
			if got.List < tc.minL || got.List > tc.maxL {
				t.Errorf("an idle writer listed %d times in %s, want %d..%d", got.List, window, tc.minL, tc.maxL)
			}
		})
	}
}

// failingLister fails every listing.
type failingLister struct{ remote.Client }

var errListing = errors.New("injected listing failure")

func (failingLister) LTXFiles(context.Context, int, ltx.TXID) ([]*ltx.FileInfo, error) {
	return nil, errListing
}

// TestKnownClientListingFails: a failed listing returns its error and the
// next listing tries again. It deadlocked before (the error path dropped
// the knowledge by taking the lock it already held), so a replica
// unreachable at start hung Open for ever (cmd/litestream
// TestReplicate_ExecReplicaUnreachable failed on it).
func TestKnownClientListingFails(t *testing.T) {
	c := newKnownClient(failingLister{file.New(t.TempDir())}, time.Minute)
	for i := range 2 {
		done := make(chan error, 1)
		go func() {
			_, err := c.LTXFiles(context.Background(), 0, 0)
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, errListing) {
				t.Fatalf("listing %d: %v, want the injected failure", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("listing %d did not return: deadlock", i)
		}
	}
}

// gatedLister blocks each listing of level 0 until gate is closed, after
// saying so on started (buffered; later listings do not wait for a reader).
type gatedLister struct {
	remote.Client
	started chan struct{}
	gate    chan struct{}
}

func (c gatedLister) LTXFiles(ctx context.Context, level int, seek ltx.TXID) ([]*ltx.FileInfo, error) {
	files, err := c.Client.LTXFiles(ctx, level, seek)
	if level == remote.L0 {
		select {
		case c.started <- struct{}{}:
		default: // only the first listing is waited for
		}
		<-c.gate
	}
	return files, err
}

func writeL0(t *testing.T, c remote.Client, txid ltx.TXID) {
	t.Helper()
	data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: txid, MaxTXID: txid, Timestamp: time.Now(), Pages: 1})
	if _, err := c.WriteLTXFile(context.Background(), remote.L0, txid, txid, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
}

func l0Names(t *testing.T, c remote.Client) []ltx.TXID {
	t.Helper()
	files, err := c.LTXFiles(context.Background(), remote.L0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []ltx.TXID
	for _, f := range files {
		out = append(out, f.MaxTXID)
	}
	return out
}

// TestKnownClientChanges: a file written while a listing is in flight (the
// listing did not see it) is kept in the knowledge; a file deleted behind
// the writer's back is still "known" until the consistency check, then
// gone; a failed read drops the knowledge at once.
func TestKnownClientChanges(t *testing.T) {
	raw := file.New(t.TempDir())
	writeL0(t, raw, 1)
	g := gatedLister{Client: raw, started: make(chan struct{}, 1), gate: make(chan struct{})}
	const every = 300 * time.Millisecond
	c := newKnownClient(g, every)
	listed := make(chan []*ltx.FileInfo, 1)
	go func() {
		files, err := c.LTXFiles(context.Background(), remote.L0, 0)
		if err != nil {
			t.Error(err)
		}
		listed <- files
	}()
	<-g.started // the listing has read level 0: only TXID 1
	writeL0(t, c, 2)
	close(g.gate)
	if files := <-listed; len(files) != 2 {
		t.Fatalf("the listing in flight returned %d files, want TXIDs 1 and 2 (the write during it applied)", len(files))
	}
	if got := l0Names(t, c); !slices.Equal(got, []ltx.TXID{1, 2}) {
		t.Fatalf("known after the listing: %v, want [1 2]", got)
	}

	// Deleted behind the writer's back: known until the next check.
	listedAt := time.Now()
	if err := raw.DeleteLTXFiles(context.Background(), []*ltx.FileInfo{{Level: remote.L0, MinTXID: 1, MaxTXID: 1}}); err != nil {
		t.Fatal(err)
	}
	if got := l0Names(t, c); time.Since(listedAt) < every && !slices.Equal(got, []ltx.TXID{1, 2}) {
		t.Fatalf("right after an outside delete: %v, want the knowledge [1 2]", got)
	}
	waitFor(t, 10*time.Second, "the consistency check to see the delete", func() bool {
		return slices.Equal(l0Names(t, c), []ltx.TXID{2})
	})

	// Deleted behind its back again; a failed read drops the knowledge.
	if err := raw.DeleteLTXFiles(context.Background(), []*ltx.FileInfo{{Level: remote.L0, MinTXID: 2, MaxTXID: 2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.OpenLTXFile(context.Background(), remote.L0, 2, 2, 0, 0); !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("open of a deleted file: %v", err)
	}
	if got := l0Names(t, c); len(got) != 0 {
		t.Fatalf("after a failed read: %v, want nothing (listed again)", got)
	}
}
