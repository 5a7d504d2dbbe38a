package vfs_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/file"
	"github.com/litestream-go/litestream/vfs"
)

// TestPragmaStats checks that PRAGMA litestream_stats is one JSON object
// whose counters move as queries run: a cold query misses and fetches, the
// same query on a second connection (SQLite's own cache is per connection)
// hits the shared page cache and fetches nothing.
func TestPragmaStats(t *testing.T) {
	ctx := context.Background()
	p, root := newPrimary(t)
	const u = "file:///primary"
	_, name := register(t, map[string]remote.Client{u: file.New(root)}, vfs.Options{Replica: vfs.ReplicaOptions{
		PollInterval: time.Hour, CacheSize: 8 << 20, Prefetch: vfs.PrefetchOptions{Disable: true},
	}})
	txid, err := p.Exec(ctx, insertRows(400, 1000))
	if err != nil {
		t.Fatal(err)
	}
	stats := func(db interface {
		QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	}) vfs.Stats {
		t.Helper()
		s := row(ctx, t, db, "PRAGMA litestream_stats")
		var st vfs.Stats
		dec := json.NewDecoder(strings.NewReader(s))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&st); err != nil {
			t.Fatalf("PRAGMA litestream_stats = %q: %v", s, err)
		}
		return st
	}

	db1 := openDB(t, name, u)
	db1.SetMaxOpenConns(1)
	before := stats(db1)
	if before.TXID != uint64(txid) || before.CacheMaxBytes != 8<<20 {
		t.Errorf("stats before queries: %+v, want TXID %s and an 8 MiB cache", before, txid)
	}
	want := row(ctx, t, p.DB, sumQuery)
	if got := row(ctx, t, db1, sumQuery); got != want {
		t.Fatalf("query: %s, want %s", got, want)
	}
	cold := stats(db1)
	if cold.Misses <= before.Misses || cold.Fetches <= before.Fetches || cold.BytesFetched <= before.BytesFetched {
		t.Errorf("a cold query did not miss and fetch: before %+v, after %+v", before, cold)
	}
	// The open listed and read (small files are read whole and verified,
	// so the query may be served from them); a reader never writes.
	if b, d := before.Requests, cold.Requests; b.List == 0 || b.Get == 0 || d.Get < b.Get || d.Put != 0 || d.Delete != 0 {
		t.Errorf("storage requests: before the query %+v, after %+v", b, d)
	}
	if cold.CachePages == 0 || cold.CacheBytes < int64(cold.CachePages)*4096 {
		t.Errorf("cache after a cold query: %d pages, %d bytes", cold.CachePages, cold.CacheBytes)
	}
	if cold.PollLagSeconds < 0 || cold.PollLagSeconds > 60 {
		t.Errorf("poll lag %v s", cold.PollLagSeconds)
	}

	db2 := openDB(t, name, u)
	db2.SetMaxOpenConns(1)
	if got := row(ctx, t, db2, sumQuery); got != want {
		t.Fatalf("query on a second connection: %s, want %s", got, want)
	}
	warm := stats(db2)
	if warm.Hits-cold.Hits < int64(cold.Misses)/2 {
		t.Errorf("the repeated query hit the cache %d times, want about the %d pages the cold one fetched", warm.Hits-cold.Hits, cold.Misses)
	}
	if warm.Fetches != cold.Fetches || warm.Misses != cold.Misses || warm.Requests != cold.Requests {
		t.Errorf("the repeated query fetched: before %+v, after %+v", cold, warm)
	}
}
