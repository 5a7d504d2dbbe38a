package vfs_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/file"
	"github.com/litestream-go/litestream/restore"
	"github.com/litestream-go/litestream/vfs"
	"github.com/litestream-go/litestream/writer"
)

// gapSource is a database replicated by the real writer, one transaction
// per sync, with compaction driven by the test. rows[txid] is the table's
// content digest at each TXID the writer uploaded.
type gapSource struct {
	t      *testing.T
	app    *sql.DB
	w      *writer.DB
	client remote.Client
	root   string
	n      int
	rows   map[ltx.TXID]string
}

const gapQuery = "select count(*), total(id), total(length(v)) from t"

func newGapSource(t *testing.T) *gapSource {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "src.db")
	s := &gapSource{t: t, root: filepath.Join(dir, "replica"), rows: make(map[ltx.TXID]string)}
	s.client = file.New(s.root)
	app, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	app.SetMaxOpenConns(1)
	t.Cleanup(func() { app.Close() })
	if _, err := app.Exec("create table t(id integer primary key, v text)"); err != nil {
		t.Fatal(err)
	}
	s.app = app
	// Maintenance is driven by the test: no loops, no retention.
	s.w = writer.New(path, s.client, writer.Options{Levels: []time.Duration{}, SnapshotInterval: -1, RetentionDisabled: true, Logger: quietLogger(t)})
	if err := s.w.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.w.Close(context.Background()) })
	s.commit(1)
	return s
}

// commit makes k transactions, each synced as its own level-0 file, and
// records the content at each TXID.
func (s *gapSource) commit(k int) ltx.TXID {
	s.t.Helper()
	ctx := context.Background()
	for range k {
		s.n++
		if _, err := s.app.Exec("insert into t(v) values (?)", fmt.Sprintf("row %d %0*d", s.n, 50+s.n%200, s.n)); err != nil {
			s.t.Fatal(err)
		}
		if err := s.w.Sync(ctx); err != nil {
			s.t.Fatal(err)
		}
		s.rows[s.w.Status().TXID] = row(ctx, s.t, s.app, gapQuery)
	}
	return s.w.Status().TXID
}

func (s *gapSource) compact(levels ...int) {
	s.t.Helper()
	for _, l := range levels {
		if _, err := s.w.Compact(context.Background(), l); err != nil {
			s.t.Fatal(err)
		}
	}
}

func (s *gapSource) deleteL0(txid ltx.TXID) {
	s.t.Helper()
	if err := s.client.DeleteLTXFiles(context.Background(), []*ltx.FileInfo{{Level: remote.L0, MinTXID: txid, MaxTXID: txid}}); err != nil {
		s.t.Fatal(err)
	}
}

// checkNoFileClaims fails if any file's range includes txid: compaction
// must never write a file that claims TXIDs no input held.
func (s *gapSource) checkNoFileClaims(txid ltx.TXID) {
	s.t.Helper()
	files, err := remote.ListAll(context.Background(), s.client)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, f := range files {
		if f.MinTXID <= txid && txid <= f.MaxTXID && f.MinTXID != 1 {
			s.t.Fatalf("%s claims TXID %s, which no file held", remote.FileDesc(f.Level, f.MinTXID, f.MaxTXID), txid)
		}
	}
}

// Deleting one level-0 file in the middle of the history, with compaction
// merging around the hole, used to make restore and the VFS serve the state
// before the hole as "latest" with no word (the VFS returned 309 wrong rows
// in the adversarial suite). Now restore fails naming the missing TXIDs
// unless told to accept the older state, and the VFS serves the consistent
// state before the gap with litestream_error saying why, until a snapshot
// heals the history.
func TestGapInHistory(t *testing.T) {
	ctx := context.Background()
	s := newGapSource(t)
	s.commit(30)
	s.compact(1)
	const u = "file:///gap"
	v, name := register(t, map[string]remote.Client{u: s.client}, vfs.Options{Replica: vfs.ReplicaOptions{PollInterval: time.Hour}})
	early := openDB(t, name, u) // a reader open before the damage
	early.SetMaxOpenConns(1)
	if got, want := row(ctx, t, early, gapQuery), s.rows[s.w.Status().TXID]; got != want {
		t.Fatalf("reader before the gap: %s, want %s", got, want)
	}

	s.commit(30)
	hole := s.w.Status().TXID - 15
	s.deleteL0(hole)
	s.compact(1)
	last := s.commit(5)
	s.compact(1, 2)
	s.checkNoFileClaims(hole)
	before := hole - 1
	wantRange := fmt.Sprintf("TXIDs %s-%s", hole, hole)

	checkGapRestores(t, s, hole, last)

	// A reader opened now serves the state before the gap, and says why.
	v2, name2 := register(t, map[string]remote.Client{u: s.client}, vfs.Options{Replica: vfs.ReplicaOptions{PollInterval: time.Hour}})
	db := openDB(t, name2, u)
	db.SetMaxOpenConns(1)
	checkGapped(t, db, "fresh reader", s.rows[before], before, wantRange)
	r2, err := v2.Replica(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := r2.Poll(ctx); !errors.Is(err, index.ErrGap) {
			t.Fatalf("poll %d over the gap: %v", i, err)
		}
		checkGapped(t, db, fmt.Sprintf("fresh reader, poll %d", i), s.rows[before], before, wantRange)
	}

	// The reader that was open before the damage moves up to the gap and
	// stops there.
	r, err := v.Replica(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		err := r.Poll(ctx)
		if r.Version().TXID() == before && err == nil {
			continue // caught up to the gap; the next poll reports it
		}
		if !errors.Is(err, index.ErrGap) {
			t.Fatalf("early reader, poll %d: %v (at TXID %s)", i, err, r.Version().TXID())
		}
	}
	checkGapped(t, early, "early reader", s.rows[before], before, wantRange)

	// A snapshot heals the history: both readers reach the latest state and
	// the error clears.
	if _, err := s.w.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	for _, rr := range []*vfs.Replica{r, r2} {
		if err := rr.Poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []*sql.DB{early, db} {
		if got, want := row(ctx, t, d, gapQuery), s.rows[last]; got != want {
			t.Fatalf("after the snapshot: %s, want %s", got, want)
		}
		if _, err := rowErr(ctx, d, "PRAGMA litestream_error"); err == nil {
			t.Fatal("litestream_error still set after the snapshot healed the gap")
		}
	}
	if _, err := restore.Run(ctx, s.client, restore.Options{OutputPath: filepath.Join(t.TempDir(), "healed.db"), Logger: quietLogger(t)}); err != nil {
		t.Fatalf("restore after the snapshot: %v", err)
	}
}

// checkGapRestores checks restore over a history whose TXID hole is in no
// file: latest fails naming it and leaves no output; AllowGap, or the TXID
// before the hole, restores exactly that state; last (after the hole) is not
// available, and the error says why.
func checkGapRestores(t *testing.T, s *gapSource, hole, last ltx.TXID) {
	t.Helper()
	ctx := context.Background()
	before := hole - 1
	wantRange := fmt.Sprintf("TXIDs %s-%s", hole, hole)
	// Restore of the latest state fails, names the missing TXIDs and leaves
	// no output.
	out := filepath.Join(t.TempDir(), "out.db")
	_, err := restore.Run(ctx, s.client, restore.Options{OutputPath: out, Logger: quietLogger(t)})
	if !errors.Is(err, index.ErrGap) || !strings.Contains(err.Error(), wantRange) {
		t.Fatalf("restore of latest over a gap: %v", err)
	}
	if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
		t.Fatalf("restore left %s behind: %v", out, serr)
	}
	// Accepting the older state, or asking for a TXID before the gap, gives
	// exactly that state.
	res, err := restore.Run(ctx, s.client, restore.Options{OutputPath: out, AllowGap: true, Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.TXID != before || res.Gap == nil || res.Gap.First != hole {
		t.Fatalf("restore with AllowGap: TXID %s, gap %v; want %s", res.TXID, res.Gap, before)
	}
	checkFile(t, out, s.rows[before])
	out2 := filepath.Join(t.TempDir(), "out.db")
	if _, err := restore.Run(ctx, s.client, restore.Options{OutputPath: out2, TXID: before, Logger: quietLogger(t)}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, out2, s.rows[before])
	// A TXID after the gap is not available, and the error says why.
	_, err = restore.Run(ctx, s.client, restore.Options{OutputPath: out2 + "x", TXID: last, Logger: quietLogger(t)})
	if !errors.Is(err, index.ErrNotAvailable) || !strings.Contains(err.Error(), wantRange) {
		t.Fatalf("restore of a TXID after the gap: %v", err)
	}
}

// checkGapped checks a reader that serves the state before a gap: the
// content (want) and TXID before it, litestream_error naming the missing
// TXIDs (wantRange), a lag at least the age of the state it serves, and an
// intact database.
func checkGapped(t *testing.T, db *sql.DB, step, want string, before ltx.TXID, wantRange string) {
	t.Helper()
	ctx := context.Background()
	if got := row(ctx, t, db, gapQuery); got != want {
		t.Fatalf("%s: reader shows %s, want the state before the gap %s", step, got, want)
	}
	if got := row(ctx, t, db, "PRAGMA litestream_txid"); got != strconv.FormatUint(uint64(before), 10) {
		t.Fatalf("%s: litestream_txid %s, want %d", step, got, before)
	}
	if got := row(ctx, t, db, "PRAGMA litestream_error"); !strings.Contains(got, "gap") || !strings.Contains(got, wantRange) {
		t.Fatalf("%s: litestream_error %q does not name the gap", step, got)
	}
	lag, err := strconv.ParseFloat(row(ctx, t, db, "PRAGMA litestream_lag"), 64)
	if err != nil {
		t.Fatal(err)
	}
	if age := time.Since(stateTime(t, db)).Seconds(); lag < age-1 {
		t.Fatalf("%s: litestream_lag %.3fs, but the state served is %.3fs old", step, lag, age)
	}
	if got := row(ctx, t, db, "PRAGMA integrity_check"); got != "ok" {
		t.Fatalf("%s: integrity %s", step, got)
	}
}

// stateTime is the time of the state a connection serves.
func stateTime(t *testing.T, db *sql.DB) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, row(context.Background(), t, db, "PRAGMA litestream_time"))
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// checkFile opens a restored database and compares its content digest.
func checkFile(t *testing.T, path, want string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := row(context.Background(), t, db, gapQuery); got != want {
		t.Fatalf("%s holds %s, want %s", path, got, want)
	}
	if got := row(context.Background(), t, db, "PRAGMA integrity_check"); got != "ok" {
		t.Fatalf("%s: integrity %s", path, got)
	}
}
