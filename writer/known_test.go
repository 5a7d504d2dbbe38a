package writer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/file"
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
