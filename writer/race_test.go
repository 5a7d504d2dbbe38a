package writer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/remote"
	restorepkg "github.com/litestream-go/litestream/restore" // restore is helpers_test.go's
)

// hookClient runs onOpen before the first read of a file, once.
type hookClient struct {
	remote.Client
	once   sync.Once
	onOpen func()
}

func (c *hookClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	c.once.Do(c.onOpen)
	return c.Client.OpenLTXFile(ctx, level, minTXID, maxTXID, offset, size)
}

// TestRestoreRacingRetention: a restore plans level-0 files, then a
// compaction and retention (no grace) remove them before they are read. The
// restore plans again and returns the right data; a target retention removed
// entirely is an error naming the range available.
func TestRestoreRacingRetention(t *testing.T) {
	e := newEnv(t)
	e.insert(100, 500)
	opts := eagerRetention(e.opts(), 1)
	d := e.open(opts)
	for i := 0; i < 8; i++ {
		e.insertSync(d, 10, 500)
	}
	want := e.image()
	ctx := context.Background()
	retention := func() {
		if _, err := d.Compact(ctx, 1); err != nil {
			t.Error(err)
		}
		if del, err := d.EnforceRetention(ctx); err != nil || len(del) == 0 {
			t.Errorf("retention deleted %d files, %v", len(del), err)
		}
	}
	hc := &hookClient{Client: e.client, onOpen: retention}
	out := filepath.Join(t.TempDir(), "restored.db")
	res, err := restorepkg.RunReplanning(ctx, hc, restorepkg.Options{OutputPath: out, Logger: opts.Logger})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if res.TXID != 8 || !bytes.Equal(got, want) {
		t.Fatalf("restore after replanning: TXID %s, equal %v", res.TXID, bytes.Equal(got, want))
	}

	// TXID 3 existed only as a level-0 file, now deleted.
	_, err = restorepkg.RunReplanning(ctx, e.client, restorepkg.Options{OutputPath: out + "3", TXID: 3, Logger: opts.Logger})
	if !errors.Is(err, index.ErrNotAvailable) || !bytes.Contains([]byte(err.Error()), []byte("the replica has TXIDs")) {
		t.Fatalf("restore of a deleted TXID: %v", err)
	}
	if _, err := os.Stat(out + "3"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("failed restore left %s", out+"3")
	}
}

// TestRestoresRacingRetentionLoop runs restores of random recent TXIDs
// while the writer syncs, compacts and deletes with no grace period. Each
// restore succeeds with the primary's content at its TXID or fails with a
// clear error (target unavailable, or deleted twice); none returns wrong
// data.
func TestRestoresRacingRetentionLoop(t *testing.T) {
	e := newEnv(t)
	e.insert(100, 300)
	opts := eagerRetention(e.opts(), 1)
	d := e.open(opts)
	ctx := context.Background()
	h := &history{byTX: map[ltx.TXID]*step{}}
	record := func() {
		e.sync(d)
		h.add(&step{txid: d.Status().TXID, sum: digest(e.image()), start: time.Now(), after: time.Now()})
	}
	record()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok, unavailable, deleted atomic.Int64
	for w := 0; w < 2; w++ {
		wg.Add(1)
		seed := e.rng.Uint64() // e.rng belongs to this goroutine
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			h.eachPick(stop, rng, func(s step) bool {
				out := filepath.Join(e.dir, "r", string(rune('a'+w)), time.Now().Format("150405.000000000"))
				os.MkdirAll(filepath.Dir(out), 0o755)
				res, err := restorepkg.RunReplanning(ctx, e.client, restorepkg.Options{OutputPath: out, TXID: s.txid, Logger: opts.Logger})
				switch {
				case err == nil:
					got, rerr := os.ReadFile(out)
					if rerr != nil {
						t.Error(rerr)
						return false
					}
					if res.TXID != s.txid || digest(got) != s.sum {
						t.Errorf("restore of TXID %s returned wrong data", s.txid)
						return false
					}
					ok.Add(1)
				case errors.Is(err, index.ErrNotAvailable):
					unavailable.Add(1)
				case errors.Is(err, restorepkg.ErrPlanDeleted):
					deleted.Add(1)
				default:
					t.Errorf("restore of TXID %s: %v", s.txid, err)
					return false
				}
				os.Remove(out)
				return true
			})
		}(w)
	}
	deadline := time.Now().Add(4 * time.Second)
	for i := 0; time.Now().Before(deadline) && !t.Failed(); i++ {
		e.insert(5, 300)
		record()
		if i%3 != 0 {
			continue // level 1 ends every third TXID: the others become unavailable
		}
		if _, err := d.Compact(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := d.EnforceRetention(ctx); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d TXIDs; restores: %d exact, %d unavailable, %d deleted twice", len(h.steps), ok.Load(), unavailable.Load(), deleted.Load())
	if ok.Load() == 0 {
		t.Errorf("no restore succeeded")
	}
}
