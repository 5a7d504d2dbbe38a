package vfs_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/pagecache"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/file"
	"github.com/litestream-go/litestream/remote/retry"
	"github.com/litestream-go/litestream/vfs"
	"github.com/litestream-go/litestream/vfs/vfstest"
)

// commitN makes n small transactions on the primary and returns the last
// TXID.
func commitN(t *testing.T, p *vfstest.Primary, n int) ltx.TXID {
	t.Helper()
	var txid ltx.TXID
	for i := range n {
		var err error
		if txid, err = p.Exec(context.Background(), insertRows(3, 50+i)); err != nil {
			t.Fatal(err)
		}
	}
	return txid
}

func TestPollerFollowsCompactionAndDeletion(t *testing.T) {
	ctx := context.Background()
	p, root := newPrimary(t)
	const u = "file:///primary"
	v, name := register(t, map[string]remote.Client{u: file.New(root)}, vfs.Options{Replica: vfs.ReplicaOptions{PollInterval: time.Hour}})
	commitN(t, p, 9) // TXIDs 2..10
	db := openDB(t, name, u)
	db.SetMaxOpenConns(1)
	r, err := v.Replica(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string, want ltx.TXID) {
		t.Helper()
		if got := r.Version().TXID(); got != want {
			t.Fatalf("%s: replica at TXID %s, want %s (status %+v)", step, got, want, r.Status())
		}
		if got, want := row(ctx, t, db, sumQuery), row(ctx, t, p.DB, sumQuery); got != want {
			t.Fatalf("%s: reader %s, primary %s", step, got, want)
		}
		if got := row(ctx, t, db, "PRAGMA integrity_check"); got != "ok" {
			t.Fatalf("%s: integrity %s", step, got)
		}
	}
	check("open", 10)

	// A gap at level 0 bridged by a level-1 compaction.
	commitN(t, p, 10) // 11..20
	if err := p.Compact(ctx, 1, 11, 20); err != nil {
		t.Fatal(err)
	}
	if err := p.Delete(ctx, remote.L0, 11, 15); err != nil {
		t.Fatal(err)
	}
	if err := r.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	check("gap bridged", 20)

	// A compaction that starts before the reader's TXID, with every level-0
	// file after the reader deleted: level 0 shows nothing new, so the
	// reader finds it on a periodic full listing.
	commitN(t, p, 10) // 21..30
	if err := p.Compact(ctx, 1, 15, 30); err != nil {
		t.Fatal(err)
	}
	if err := p.Delete(ctx, remote.L0, 21, 30); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20 && r.Version().TXID() < 30; i++ {
		if err := r.Poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	check("overlapping compaction", 30)

	// A gap nothing bridges: the poll fails and says so, the reader keeps
	// serving TXID 30, and the error shows in litestream_error.
	commitN(t, p, 10) // 31..40
	if err := p.Delete(ctx, remote.L0, 31, 35); err != nil {
		t.Fatal(err)
	}
	if err := r.Poll(ctx); !errors.Is(err, index.ErrGap) || !strings.Contains(err.Error(), "TXIDs 000000000000001f-0000000000000023") {
		t.Fatalf("poll over an unbridgeable gap: %v", err)
	}
	if got := row(ctx, t, db, "PRAGMA litestream_error"); !strings.Contains(got, "000000000000001f-0000000000000023") {
		t.Fatalf("litestream_error: %q", got)
	}
	if got := row(ctx, t, db, sumQuery); got == "" {
		t.Fatal("no result while the poller is stuck")
	}
	// The primary takes a snapshot; the next poll starts from a fresh plan.
	if err := p.Compact(ctx, remote.SnapshotLevel, 1, 40); err != nil {
		t.Fatal(err)
	}
	if err := r.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	check("recovered", 40)
	if _, err := rowErr(ctx, db, "PRAGMA litestream_error"); err == nil {
		t.Fatal("litestream_error still set after recovery")
	}

	// A reader that fell far behind catches up through a compaction rather
	// than hundreds of level-0 files.
	commitN(t, p, 100) // 41..140
	if err := p.Compact(ctx, 2, 41, 140); err != nil {
		t.Fatal(err)
	}
	if err := r.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	check("far behind", 140)
}

func TestLongReadTransactionWhilePrimaryCompacts(t *testing.T) {
	ctx := context.Background()
	p, root := newPrimary(t)
	const u = "file:///primary"
	v, name := register(t, map[string]remote.Client{u: file.New(root)}, vfs.Options{Replica: vfs.ReplicaOptions{PollInterval: 5 * time.Millisecond, CacheSize: 64 << 10}})
	if _, err := p.Exec(ctx, insertRows(2000, 200)); err != nil {
		t.Fatal(err)
	}
	db := openDB(t, name, u)
	if _, err := db.ExecContext(ctx, "PRAGMA cache_size = 4"); err != nil {
		t.Fatal(err)
	}
	r, _ := v.Replica(ctx, u)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := row(ctx, t, tx, sumQuery)
	for round := range 5 {
		first := p.TXID() + 1
		for range 5 {
			if _, err := p.Exec(ctx, "update t set v = v + 1 where id % 7 = 0", insertRows(50, 100)); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Compact(ctx, 1, first, p.TXID()); err != nil {
			t.Fatal(err)
		}
		waitTXID(t, r, p.TXID())
		// The database is larger than both caches: the transaction reads
		// most pages from the remote again, at its pinned TXID.
		if got := row(ctx, t, tx, sumQuery); got != want {
			t.Fatalf("round %d: %s, want %s", round, got, want)
		}
	}
	if got := row(ctx, t, tx, "PRAGMA integrity_check"); got != "ok" {
		t.Fatal(got)
	}
	tx.Commit()
	if got, want := row(ctx, t, db, sumQuery), row(ctx, t, p.DB, sumQuery); got != want {
		t.Fatalf("after: %s, want %s", got, want)
	}
}

func TestPinnedFilesDeleted(t *testing.T) {
	// The primary compacts and deletes the level-0 files a pinned
	// transaction reads from. If the pinned TXID can be rebuilt from the
	// remaining files the transaction goes on; if not, it gets an I/O
	// error. Never wrong rows. (Verified small files are kept whole and
	// would still answer after their deletion: turned off here so that
	// the reads do reach the remote.)
	ctx := context.Background()
	p, root := newPrimary(t)
	const u = "file:///primary"
	_, name := register(t, map[string]remote.Client{u: file.New(root)}, vfs.Options{Replica: vfs.ReplicaOptions{PollInterval: time.Hour, CacheSize: 16 << 10, WholeFileSize: -1}})
	if _, err := p.Exec(ctx, insertRows(1000, 300)); err != nil {
		t.Fatal(err)
	}
	commitN(t, p, 4) // 3..6
	db := openDB(t, name, u)
	if _, err := db.ExecContext(ctx, "PRAGMA cache_size = 2"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		compact  [2]ltx.TXID // level-1 file written
		wantRows bool
	}{
		{"rebuildable", [2]ltx.TXID{1, 6}, true}, // a chain ends exactly at 6
		{"not rebuildable", [2]ltx.TXID{1, 8}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			want := row(ctx, t, tx, sumQuery)
			commitN(t, p, 2)
			if err := p.Compact(ctx, 1, tc.compact[0], tc.compact[1]); err != nil {
				t.Fatal(err)
			}
			if err := p.Delete(ctx, remote.L0, 1, p.TXID()); err != nil {
				t.Fatal(err)
			}
			if err := p.Delete(ctx, 1, 1, tc.compact[1]-1); err != nil {
				t.Fatal(err)
			}
			got, err := rowErr(ctx, tx, sumQuery)
			switch {
			case err == nil && got != want:
				t.Fatalf("wrong rows: %s, want %s", got, want)
			case err == nil && !tc.wantRows:
				t.Fatalf("rows after the pinned TXID became unbuildable: %s", got)
			case err != nil && (tc.wantRows || !strings.Contains(err.Error(), "disk I/O error")):
				t.Fatalf("err %v", err)
			}
		})
	}
}

func TestOneReplicaOnePoller(t *testing.T) {
	ctx := context.Background()
	p, root := newPrimary(t)
	commitN(t, p, 3)
	const u = "file:///primary"
	fc := &vfstest.Faulty{Client: file.New(root)}
	v, name := register(t, map[string]remote.Client{u: fc}, vfs.Options{Replica: vfs.ReplicaOptions{PollInterval: 20 * time.Millisecond}})
	var conns []*sql.Conn
	for range 10 {
		c := openConn(t, name, u)
		if got, want := row(ctx, t, c, sumQuery), row(ctx, t, p.DB, sumQuery); got != want {
			t.Fatalf("%s, want %s", got, want)
		}
		conns = append(conns, c)
	}
	r, _ := v.Replica(ctx, u)
	// Ten connections share one replica, so one index was built: one listing
	// of each of the 10 levels.
	if opens := fc.Lists.Load(); opens > 10+2*r.Status().Polls {
		t.Fatalf("%d listings for %d polls", opens, r.Status().Polls)
	}
	before, polls0 := fc.Lists.Load(), r.Status().Polls
	deadline := time.Now().Add(10 * time.Second)
	for r.Status().Polls < polls0+20 {
		if time.Now().After(deadline) {
			t.Fatal("poller stopped")
		}
		time.Sleep(5 * time.Millisecond)
	}
	lists, polls := fc.Lists.Load()-before, r.Status().Polls-polls0
	// One level-0 listing per poll, plus a full listing (10 levels) every
	// tenth idle poll: about 1.9 per poll, whatever the connection count.
	if lists > 2*polls+10 {
		t.Fatalf("%d listings in %d polls with 10 connections", lists, polls)
	}
	t.Logf("%d listings in %d polls with %d connections", lists, polls, len(conns))
	// New data reaches all of them.
	txid := commitN(t, p, 1)
	waitTXID(t, r, txid)
	want := row(ctx, t, p.DB, sumQuery)
	for _, c := range conns {
		if got := row(ctx, t, c, sumQuery); got != want {
			t.Fatalf("%s, want %s", got, want)
		}
	}
}

func pagecacheOpts() pagecache.Options {
	return pagecache.Options{Retry: retry.Policy{Attempts: 3, Base: time.Millisecond}}
}

func TestFaultyRemote(t *testing.T) {
	// A remote that fails, stalls or cuts off some requests: every query
	// returns either the primary's rows at the reported TXID or an I/O
	// error, never other rows.
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	var rngMu sync.Mutex
	roll := func() float64 { rngMu.Lock(); defer rngMu.Unlock(); return rng.Float64() }

	ctx := context.Background()
	p, root := newPrimary(t)
	if _, err := p.Exec(ctx, insertRows(1000, 200)); err != nil {
		t.Fatal(err)
	}
	var faults atomic.Bool
	var injected atomic.Int64
	fc := &vfstest.Faulty{Client: file.New(root)}
	fc.Hook = func(ctx context.Context, r vfstest.Request) error {
		if !faults.Load() || r.Op != "open" {
			return nil
		}
		switch x := roll(); {
		case x < 0.05:
			injected.Add(1)
			return errors.New("injected failure")
		case x < 0.06:
			injected.Add(1)
			<-ctx.Done() // stall until the request timeout
			return ctx.Err()
		case x < 0.08 && r.ReadBody:
			injected.Add(1)
			return errors.New("injected connection reset")
		}
		return nil
	}
	const u = "file:///primary"
	v, name := register(t, map[string]remote.Client{u: fc}, vfs.Options{Replica: vfs.ReplicaOptions{
		PollInterval:   10 * time.Millisecond,
		RequestTimeout: 20 * time.Millisecond,
		CacheSize:      32 << 10,
		Fetch:          pagecacheOpts(),
		// Small enough that most page reads reach the faulty remote by
		// range (verified whole files would be served from memory).
		WholeFileSize: 16 << 10,
	}})
	db := openDB(t, name, u)
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, "PRAGMA cache_size = 2"); err != nil {
		t.Fatal(err)
	}
	r, _ := v.Replica(ctx, u)

	var mu sync.Mutex
	want := map[ltx.TXID]string{p.TXID(): row(ctx, t, p.DB, sumQuery)}
	faults.Store(true)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// The lock is held from the commit until its expected
			// row is recorded: the reader may see the new TXID as soon
			// as Exec has uploaded it, and must then find it in want.
			mu.Lock()
			txid, err := p.Exec(ctx, fmt.Sprintf("update t set v = v + 1 where id %% 5 = %d", i%5))
			if err != nil {
				mu.Unlock()
				t.Error(err)
				return
			}
			var w string
			w, err = rowErr(ctx, p.DB, sumQuery)
			want[txid] = w
			mu.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	// The writer goroutine ends before the test does, also when the test
	// fails (it must not call t.Error after the test returned).
	var stopOnce sync.Once
	stopWriter := func() { stopOnce.Do(func() { close(stop); <-done }) }
	defer stopWriter()
	var okRows, ioErrs int
	for i := 0; i < 60; i++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := rowErr(ctx, tx, sumQuery)
		if err == nil {
			var txs string
			txs, err = rowErr(ctx, tx, "PRAGMA litestream_txid")
			if err == nil {
				var id uint64
				fmt.Sscan(txs, &id)
				mu.Lock()
				w, ok := want[ltx.TXID(id)]
				mu.Unlock()
				if !ok || got != w {
					t.Fatalf("query %d at TXID %d: got %s, primary had %s", i, id, got, w)
				}
				okRows++
			}
		}
		if err != nil {
			if !strings.Contains(err.Error(), "disk I/O error") {
				t.Fatalf("query %d: %v, want rows or a disk I/O error", i, err)
			}
			ioErrs++
		}
		tx.Rollback()
	}
	stopWriter()
	faults.Store(false)
	t.Logf("%d correct results, %d I/O errors, %d injected faults, fetcher %+v", okRows, ioErrs, injected.Load(), r.Fetcher().Stats())
	if okRows == 0 {
		t.Fatal("no query succeeded")
	}
	if injected.Load() == 0 {
		t.Fatal("no fault was injected")
	}
	// Once the remote behaves, queries succeed again.
	waitTXID(t, r, p.TXID())
	if got, w := row(ctx, t, db, sumQuery), row(ctx, t, p.DB, sumQuery); got != w {
		t.Fatalf("after faults: %s, want %s", got, w)
	}
}
