package vfs_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // the in-process SQLite the VFS registers into
	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/testsupport"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/file"
	"github.com/litestream-go/litestream/vfs"
	"github.com/litestream-go/litestream/vfs/vfstest"
)

// The README's queries and their results at the TXIDs it lists.
const (
	usersQuery  = "select count(*), total(id), total(length(name)) from users"
	eventsQuery = "select count(*), total(id), total(user_id), total(length(payload)), hex(substr(max(payload),1,8)) from events"
)

var fixtureWant = map[ltx.TXID][2]string{
	1:  {"0|0|0", "0|0|0|0|"},
	5:  {"2000|2001000|15796", "1069|662200|2690966|213800|FFB33BF0C0A7EF89"},
	9:  {"4000|8002000|32561", "1931|2485056|4912375|386200|FFE0B5640D7B1F57"},
	15: {"6000|18003000|49796", "2585|5218136|6556214|517000|FFCA921B602616FE"},
}

var vfsSeq atomic.Int64

// quietLogger drops everything below errors unless -v.
func quietLogger(t *testing.T) *slog.Logger {
	level := slog.LevelError + 4
	if testing.Verbose() {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// register registers a new VFS whose replica URLs name clients in
// clients, and returns it with its name.
func register(t *testing.T, clients map[string]remote.Client, opts vfs.Options) (*vfs.VFS, string) {
	t.Helper()
	name := fmt.Sprintf("lstest%d", vfsSeq.Add(1))
	if opts.OpenClient == nil {
		opts.OpenClient = func(ctx context.Context, u string) (remote.Client, error) {
			c, ok := clients[u]
			if !ok {
				return nil, fmt.Errorf("no test client for %q", u)
			}
			return c, nil
		}
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger(t)
	}
	v, err := vfs.Register(name, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v, name
}

func openDB(t *testing.T, vfsName, replica string, params ...string) *sql.DB {
	t.Helper()
	dsn := "file:app.db?vfs=" + vfsName
	if replica != "" {
		dsn += "&replica=" + url.QueryEscape(replica)
	}
	for _, p := range params {
		dsn += "&" + p
	}
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openConn opens one connection to a new database of vfsName on replica,
// closed when the test ends: a reader whose session state (its pinned TXID,
// litestream_set_time) a test follows.
func openConn(t *testing.T, vfsName, replica string, params ...string) *sql.Conn {
	t.Helper()
	c, err := openDB(t, vfsName, replica, params...).Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// checkFixtureRows compares the answers to usersQuery and eventsQuery with
// the fixture's at txid.
func checkFixtureRows(ctx context.Context, t *testing.T, conn *sql.Conn, txid ltx.TXID) {
	t.Helper()
	want := fixtureWant[txid]
	if got := row(ctx, t, conn, usersQuery); got != want[0] {
		t.Errorf("TXID %d users: got %s, want %s", txid, got, want[0])
	}
	if got := row(ctx, t, conn, eventsQuery); got != want[1] {
		t.Errorf("TXID %d events: got %s, want %s", txid, got, want[1])
	}
}

// row runs a query and returns its one row as "a|b|c", with floats that are
// integral printed as integers (total() returns floats).
func row(ctx context.Context, t testing.TB, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any) string {
	t.Helper()
	s, err := rowErr(ctx, q, query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return s
}

func rowErr(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any) (string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return "", err
		}
		return "", io.EOF
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return "", err
	}
	parts := make([]string, len(vals))
	for i, v := range vals {
		switch v := v.(type) {
		case nil:
			parts[i] = ""
		case float64:
			if v == float64(int64(v)) {
				parts[i] = fmt.Sprint(int64(v))
			} else {
				parts[i] = fmt.Sprint(v)
			}
		case []byte:
			parts[i] = string(v)
		default:
			parts[i] = fmt.Sprint(v)
		}
	}
	if err := rows.Close(); err != nil {
		return "", err
	}
	return strings.Join(parts, "|"), nil
}

func TestFixtureInProcess(t *testing.T) {
	ctx := context.Background()
	const u = "file:///fixture"
	_, name := register(t, map[string]remote.Client{u: file.New(testsupport.FixtureReplica(t))}, vfs.Options{})
	conn := openConn(t, name, u)

	check := func(txid ltx.TXID) {
		t.Helper()
		checkFixtureRows(ctx, t, conn, txid)
		if got := row(ctx, t, conn, "PRAGMA litestream_txid"); got != fmt.Sprint(uint64(txid)) {
			t.Errorf("litestream_txid = %s, want %d", got, txid)
		}
		if got := row(ctx, t, conn, "PRAGMA integrity_check"); got != "ok" {
			t.Errorf("TXID %d integrity_check: %s", txid, got)
		}
	}
	check(15)
	if got := row(ctx, t, conn, "PRAGMA journal_mode"); got != "delete" {
		t.Errorf("journal_mode = %s, want delete (header bytes 18/19 read as rollback mode)", got)
	}
	for _, target := range []string{"5", "0000000000000009", "1", "latest", "0000000000000005", "f"} {
		txid, _, latest, err := vfs.ParseTarget(target)
		if err != nil {
			t.Fatal(err)
		}
		if latest {
			txid = 15
		}
		if got := row(ctx, t, conn, "PRAGMA litestream_set_time = '"+target+"'"); got != fmt.Sprint(uint64(txid)) {
			t.Errorf("set_time %s returned %s, want %d", target, got, txid)
		}
		check(txid)
	}
	// A target the replica cannot build is an error and changes nothing.
	if _, err := rowErr(ctx, conn, "PRAGMA litestream_set_time = '99'"); err == nil {
		t.Error("set_time to TXID 99 succeeded")
	}
	check(15)
}

func TestWritesAreReadOnly(t *testing.T) {
	ctx := context.Background()
	const u = "file:///fixture"
	_, name := register(t, map[string]remote.Client{u: file.New(testsupport.FixtureReplica(t))}, vfs.Options{})
	db := openDB(t, name, u)
	for _, stmt := range []string{
		"insert into users(id, name) values (999999, 'x')",
		"create table t(x)",
		"delete from events",
		"pragma user_version = 7",
	} {
		_, err := db.ExecContext(ctx, stmt)
		if err == nil || !strings.Contains(err.Error(), "readonly") {
			t.Errorf("%s: err = %v, want a readonly error", stmt, err)
		}
	}
	// Still readable, unchanged.
	if got := row(ctx, t, db, usersQuery); got != fixtureWant[15][0] {
		t.Errorf("users after failed writes: %s", got)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	_, name := register(t, map[string]remote.Client{"file:///empty": file.New(t.TempDir())}, vfs.Options{})
	for _, tc := range []struct{ name, replica string }{
		{"no replica URL", ""},
		{"empty replica", "file:///empty"},
		{"unknown client", "file:///nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openDB(t, name, tc.replica)
			if err := db.PingContext(ctx); err == nil || !strings.Contains(err.Error(), "unable to open") {
				t.Fatalf("ping: %v, want unable to open", err)
			}
		})
	}
}

func TestTemporaryFiles(t *testing.T) {
	// Sorting more than SQLite's cache holds spills to temporary files that
	// SQLite opens through the same VFS; they live in memory.
	ctx := context.Background()
	const u = "file:///fixture"
	_, name := register(t, map[string]remote.Client{u: file.New(testsupport.FixtureReplica(t))}, vfs.Options{})
	db := openDB(t, name, u)
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, "PRAGMA cache_size = 2; PRAGMA temp_store = FILE"); err != nil {
		t.Fatal(err)
	}
	got := row(ctx, t, db, "select count(*), total(n) from (select length(payload) n from events order by payload desc, id)")
	if got != "2585|517000" {
		t.Fatalf("sorted scan: %s", got)
	}
	if _, err := db.ExecContext(ctx, "create temp table tt as select id from events"); err != nil {
		t.Fatalf("temp table: %v", err)
	}
	if got := row(ctx, t, db, "select count(*) from tt"); got != "2585" {
		t.Fatalf("temp table count: %s", got)
	}
}

// newPrimary returns a test primary publishing to a file replica in a temp
// dir, with the table t(id integer primary key, v int, pad blob).
func newPrimary(t *testing.T) (*vfstest.Primary, string) {
	t.Helper()
	return vfstest.NewFilePrimary(t, "create table t(id integer primary key, v int, pad blob)")
}

// waitTXID polls until the replica's latest state reaches txid.
func waitTXID(t *testing.T, r *vfs.Replica, txid ltx.TXID) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for r.Version().TXID() < txid {
		if time.Now().After(deadline) {
			t.Fatalf("replica at TXID %s, want %s (status %+v)", r.Version().TXID(), txid, r.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// insertRows returns a statement that appends n rows with v = 1..n and a
// random pad of padLen bytes.
func insertRows(n, padLen int) string {
	return fmt.Sprintf("insert into t(v, pad) with recursive s(x) as (select 1 union all select x+1 from s where x < %d) select x, randomblob(%d) from s", n, padLen)
}

const sumQuery = "select count(*), total(v), total(length(pad)) from t"

func TestReadTransactionIsPinned(t *testing.T) {
	ctx := context.Background()
	p, root := newPrimary(t)
	const u = "file:///primary"
	v, name := register(t, map[string]remote.Client{u: file.New(root)}, vfs.Options{Replica: vfs.ReplicaOptions{PollInterval: 5 * time.Millisecond}})
	if _, err := p.Exec(ctx, insertRows(500, 300)); err != nil {
		t.Fatal(err)
	}
	db := openDB(t, name, u)
	before := row(ctx, t, db, sumQuery)
	if before != "500|125250|150000" {
		t.Fatalf("before: %s", before)
	}
	r, err := v.Replica(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	txBefore := r.Version().TXID()

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := row(ctx, t, tx, sumQuery); got != before {
		t.Fatalf("in tx: %s", got)
	}
	// The primary writes, shrinks and grows the table while the reader's
	// transaction is open; the reader's replica follows.
	for _, stmt := range []string{
		"update t set v = v * 2",
		"delete from t where id % 3 = 0",
		insertRows(300, 2000),
	} {
		if _, err := p.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.DB.ExecContext(ctx, "vacuum"); err != nil {
		t.Fatal(err)
	}
	last, err := p.Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitTXID(t, r, last)
	for range 3 {
		if got := row(ctx, t, tx, sumQuery); got != before {
			t.Fatalf("in tx after the primary moved on: %s, want %s", got, before)
		}
		if got := row(ctx, t, tx, "PRAGMA litestream_txid"); got != fmt.Sprint(uint64(txBefore)) {
			t.Fatalf("in tx litestream_txid: %s, want %d", got, txBefore)
		}
	}
	if got := row(ctx, t, tx, "PRAGMA integrity_check"); got != "ok" {
		t.Fatalf("integrity in tx: %s", got)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	want := row(ctx, t, p.DB, sumQuery)
	if got := row(ctx, t, db, sumQuery); got != want {
		t.Fatalf("after tx: %s, want %s", got, want)
	}
	if got := row(ctx, t, db, "PRAGMA integrity_check"); got != "ok" {
		t.Fatalf("integrity after: %s", got)
	}
}

func TestSQLiteCacheKeptUntilTXIDMoves(t *testing.T) {
	ctx := context.Background()
	p, root := newPrimary(t)
	const u = "file:///primary"
	// Prefetch off: read-ahead started by the first query can land after
	// it returns and would be counted against the second.
	v, name := register(t, map[string]remote.Client{u: file.New(root)}, vfs.Options{Replica: vfs.ReplicaOptions{
		PollInterval: time.Hour,
		Prefetch:     vfs.PrefetchOptions{Disable: true},
	}})
	if _, err := p.Exec(ctx, insertRows(400, 1000)); err != nil {
		t.Fatal(err)
	}
	db := openDB(t, name, u)
	db.SetMaxOpenConns(1)
	r, err := v.Replica(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	reads := func() int64 { s := r.Fetcher().Stats(); return s.Hits + s.Misses + s.Waits }

	first := row(ctx, t, db, sumQuery)
	n0 := reads()
	if got := row(ctx, t, db, sumQuery); got != first {
		t.Fatalf("second run: %s", got)
	}
	if d := reads() - n0; d > 2 {
		t.Errorf("second run of the same query read %d pages; SQLite should have kept its cache (only page 1's header is re-read)", d)
	}
	txid, err := p.Exec(ctx, "update t set v = v + 1 where id = 7")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if r.Version().TXID() != txid {
		t.Fatalf("replica at %s after poll, want %s", r.Version().TXID(), txid)
	}
	n1 := reads()
	want := row(ctx, t, p.DB, sumQuery)
	if got := row(ctx, t, db, sumQuery); got != want || got == first {
		t.Fatalf("after the TXID moved: %s, want %s", got, want)
	}
	if d := reads() - n1; d < 50 {
		t.Errorf("after the TXID moved the query read only %d pages; SQLite kept a stale cache", d)
	}
}

func TestTimeTravelByTimestamp(t *testing.T) {
	ctx := context.Background()
	p, root := vfstest.NewFilePrimary(t)
	base := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	var clock time.Time
	p.Now = func() time.Time { return clock }
	want := make(map[ltx.TXID]string)
	at := make(map[ltx.TXID]time.Time)
	for i := 1; i <= 10; i++ {
		clock = base.Add(time.Duration(i) * time.Minute)
		stmt := "create table t(id integer primary key, v int, pad blob)"
		if i > 1 {
			stmt = insertRows(i*10, 100)
		}
		txid, err := p.Exec(ctx, stmt)
		if err != nil {
			t.Fatal(err)
		}
		want[txid], at[txid] = row(ctx, t, p.DB, sumQuery), clock
	}
	const u = "file:///primary"
	_, name := register(t, map[string]remote.Client{u: file.New(root)}, vfs.Options{})
	db := openDB(t, name, u)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	for _, tc := range []struct {
		target string
		txid   ltx.TXID
	}{
		{"2026-11-20T10:05:00Z", 5},      // exactly when TXID 5 was written
		{"2026-11-20T10:05:59.999Z", 5},  // just before TXID 6
		{"2026-11-20 10:07:30", 7},       // SQLite's datetime() format
		{"2026-11-20T11:07:30+01:00", 7}, // another zone
		{"2026-11-21T00:00:00Z", 10},     // after the last write
		{"latest", 10},
		{"2026-11-20T10:01:00Z", 1},
	} {
		got := row(ctx, t, conn, "PRAGMA litestream_set_time = '"+tc.target+"'")
		if got != fmt.Sprint(uint64(tc.txid)) {
			t.Fatalf("set_time %s: TXID %s, want %d", tc.target, got, tc.txid)
		}
		if got := row(ctx, t, conn, sumQuery); got != want[tc.txid] {
			t.Fatalf("at %s: %s, want %s", tc.target, got, want[tc.txid])
		}
		if got := row(ctx, t, conn, "PRAGMA litestream_time"); got != at[tc.txid].Format(time.RFC3339Nano) {
			t.Fatalf("litestream_time at %s: %s, want %s", tc.target, got, at[tc.txid].Format(time.RFC3339Nano))
		}
	}
	if _, err := rowErr(ctx, conn, "PRAGMA litestream_set_time = '2026-11-20T09:00:00Z'"); err == nil {
		t.Fatal("time travel to before the first write succeeded")
	}
	// Other connections are not affected.
	if got := row(ctx, t, db, "PRAGMA litestream_txid"); got != "10" {
		t.Fatalf("another connection: TXID %s", got)
	}
}
