package writer

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"
	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/testsupport"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/file"
	"github.com/litestream-go/litestream/writer/wal"
)

// faultyClient wraps a remote.Client with hooks for injecting upload
// failures and observing uploads.
type faultyClient struct {
	remote.Client
	mu sync.Mutex
	// failWrite, if set, is consulted before every write; a non-nil error
	// fails it.
	failWrite func(level int, txid ltx.TXID) error
	// writeHook, if set, runs before every write (outside mu).
	writeHook func(level int, txid ltx.TXID)
	writes    []string
	// written counts the bytes of the successful writes.
	written int64
}

func (c *faultyClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	c.mu.Lock()
	fail, hook := c.failWrite, c.writeHook
	c.mu.Unlock()
	if hook != nil {
		hook(level, minTXID)
	}
	if fail != nil {
		if err := fail(level, minTXID); err != nil {
			return nil, err
		}
	}
	info, err := c.Client.WriteLTXFile(ctx, level, minTXID, maxTXID, r)
	if err == nil {
		c.mu.Lock()
		c.writes = append(c.writes, remote.FileDesc(level, minTXID, maxTXID))
		c.written += info.Size
		c.mu.Unlock()
	}
	return info, err
}

func (c *faultyClient) set(fn func(*faultyClient)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fn(c)
}

// env is a database written by an "application" connection and replicated to
// a file-backend replica.
type env struct {
	t       *testing.T
	dir     string
	path    string
	app     *sql.DB
	client  *faultyClient
	staging string
	rng     *rand.Rand
}

func newEnv(t *testing.T) *env {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	dir := t.TempDir()
	e := &env{
		t:       t,
		dir:     dir,
		path:    filepath.Join(dir, "app.db"),
		client:  &faultyClient{Client: file.New(filepath.Join(dir, "replica"))},
		staging: filepath.Join(dir, "staging"),
		rng:     rand.New(rand.NewPCG(seed, 1)),
	}
	e.createApp()
	return e
}

// createApp opens the application's connection to e.path and creates the
// WAL-mode database with table t.
func (e *env) createApp() {
	e.t.Helper()
	e.openApp()
	e.exec(`PRAGMA journal_mode=WAL`)
	e.exec(`CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)`)
	e.exec(`CREATE INDEX t_v ON t(v)`)
}

func (e *env) openApp() {
	e.t.Helper()
	app, err := sql.Open("sqlite3", "file:"+e.path+"?_busy_timeout=5000")
	if err != nil {
		e.t.Fatal(err)
	}
	app.SetMaxOpenConns(1) // one connection: its view is the latest commit
	e.app = app
	e.t.Cleanup(func() { app.Close() })
}

func (e *env) exec(q string, args ...any) {
	e.t.Helper()
	if _, err := e.app.Exec(q, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
}

// insert adds n rows with random blobs of about size bytes in one
// transaction.
func (e *env) insert(n, size int) {
	e.t.Helper()
	tx, err := e.app.Begin()
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		b := make([]byte, size/2+e.rng.IntN(size+1))
		for j := range b {
			b[j] = byte(e.rng.Uint32())
		}
		if _, err := tx.Exec(`INSERT INTO t(v) VALUES(?)`, b); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) opts() Options {
	return Options{
		StagingDir: e.staging,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// eagerRetention returns opts with the given number of compaction levels
// (hourly: they compact when a test calls Compact) and level-0 files deleted
// as soon as a compaction covers them, with no grace period.
func eagerRetention(opts Options, levels int) Options {
	opts.Levels = slices.Repeat([]time.Duration{time.Hour}, levels)
	opts.L0Retention = time.Nanosecond
	opts.RetentionGrace = -1
	return opts
}

func (e *env) open(opts Options) *DB {
	e.t.Helper()
	d := New(e.path, e.client, opts)
	if err := d.Open(context.Background()); err != nil {
		e.t.Fatalf("open: %v", err)
	}
	e.t.Cleanup(func() { d.Close(context.Background()) })
	return d
}

// close closes d; its error fails the test.
func (e *env) close(d *DB) {
	e.t.Helper()
	if err := d.Close(context.Background()); err != nil {
		e.t.Fatalf("close: %v", err)
	}
}

// checkpoint runs d's checkpoint; its error fails the test.
func (e *env) checkpoint(d *DB) {
	e.t.Helper()
	if err := d.Checkpoint(context.Background()); err != nil {
		e.t.Fatalf("checkpoint: %v", err)
	}
}

func (e *env) sync(d *DB) {
	e.t.Helper()
	if err := d.Sync(context.Background()); err != nil {
		e.t.Fatalf("sync: %v", err)
	}
}

// image returns the database as the application sees it, read through
// SQLite (sqlite3_serialize), independently of the writer.
func (e *env) image() []byte {
	e.t.Helper()
	conn, err := e.app.Conn(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	var img []byte
	err = conn.Raw(func(dc any) error {
		var err error
		img, err = dc.(*sqlite3.SQLiteConn).Serialize("main")
		return err
	})
	if err != nil {
		e.t.Fatalf("serialize: %v", err)
	}
	return img
}

func (e *env) walHeader() (wal.Header, bool) {
	e.t.Helper()
	b, err := os.ReadFile(e.path + "-wal")
	if err != nil || len(b) < wal.HeaderSize {
		return wal.Header{}, false
	}
	h, err := wal.ParseHeader(b)
	return h, err == nil
}

func (e *env) files(level int) []*ltx.FileInfo {
	e.t.Helper()
	files, err := e.client.LTXFiles(context.Background(), level, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return files
}

// ltxFile is a decoded LTX file.
type ltxFile struct {
	hdr   ltx.Header
	pgnos []uint32
	pages map[uint32][]byte
	raw   []byte
}

func readLTX(t *testing.T, c remote.Client, level int, minTXID, maxTXID ltx.TXID) ltxFile {
	t.Helper()
	rc, err := c.OpenLTXFile(context.Background(), level, minTXID, maxTXID, 0, 0)
	if err != nil {
		t.Fatalf("open %s: %v", remote.FileDesc(level, minTXID, maxTXID), err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	dec := ltx.NewDecoder(bytes.NewReader(raw))
	if err := dec.DecodeHeader(); err != nil {
		t.Fatalf("decode header of %s: %v", remote.FileDesc(level, minTXID, maxTXID), err)
	}
	f := ltxFile{hdr: dec.Header(), pages: map[uint32][]byte{}, raw: raw}
	for {
		var ph ltx.PageHeader
		buf := make([]byte, f.hdr.PageSize)
		if err := dec.DecodePage(&ph, buf); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode page of %s: %v", remote.FileDesc(level, minTXID, maxTXID), err)
		}
		f.pgnos = append(f.pgnos, ph.Pgno)
		f.pages[ph.Pgno] = buf
	}
	if err := dec.Close(); err != nil {
		t.Fatalf("verify %s: %v", remote.FileDesc(level, minTXID, maxTXID), err)
	}
	return f
}

// checkFile checks the format rules every file we write must follow.
func checkFile(t *testing.T, f ltxFile, txid ltx.TXID) {
	t.Helper()
	h := f.hdr
	if h.MinTXID != txid || h.MaxTXID != txid {
		t.Errorf("file TXIDs %d-%d, want %d", h.MinTXID, h.MaxTXID, txid)
	}
	if h.Flags != ltx.HeaderFlagNoChecksum || h.PreApplyChecksum != 0 {
		t.Errorf("flags %d pre-apply %x", h.Flags, h.PreApplyChecksum)
	}
	if !slices.IsSorted(f.pgnos) {
		t.Errorf("pages not ascending: %v", f.pgnos)
	}
	lock := ltx.LockPgno(h.PageSize)
	for _, p := range f.pgnos {
		if p > h.Commit || p == lock {
			t.Errorf("page %d written (commit %d, lock page %d)", p, h.Commit, lock)
		}
	}
	if d := time.Since(time.UnixMilli(h.Timestamp)); d < 0 || d > time.Minute {
		t.Errorf("timestamp %d is not now", h.Timestamp)
	}
}

// isSnapshot reports whether f holds every page 1..Commit but the lock page.
func isSnapshot(f ltxFile) bool {
	lock := ltx.LockPgno(f.hdr.PageSize)
	want := uint32(0)
	for p := uint32(1); p <= f.hdr.Commit; p++ {
		if p != lock {
			want++
		}
	}
	return uint32(len(f.pgnos)) == want
}

// restore applies the newest level-9 snapshot (else the first sync's level-0
// file, which starts at TXID 1) and the level-0 files after it to a page
// buffer, the way a restore does, checking that TXIDs are contiguous. It
// returns the image and the last TXID.
func restore(t *testing.T, c remote.Client) ([]byte, ltx.TXID) {
	t.Helper()
	ctx := context.Background()
	snaps, err := c.LTXFiles(ctx, remote.SnapshotLevel, 0)
	if err != nil {
		t.Fatal(err)
	}
	base := remote.SnapshotLevel
	if len(snaps) == 0 {
		base = remote.L0
		if snaps, err = c.LTXFiles(ctx, remote.L0, 1); err != nil {
			t.Fatal(err)
		}
		if len(snaps) == 0 || snaps[0].MinTXID != 1 {
			t.Fatal("replica has no level-9 snapshot and no level-0 file at TXID 1")
		}
		snaps = snaps[:1]
	}
	snap := snaps[len(snaps)-1]
	var img []byte
	apply := func(level int, info *ltx.FileInfo) {
		f := readLTX(t, c, level, info.MinTXID, info.MaxTXID)
		ps := int(f.hdr.PageSize)
		size := int(f.hdr.Commit) * ps
		if len(img) < size {
			img = append(img, make([]byte, size-len(img))...)
		}
		img = img[:size]
		for pgno, data := range f.pages {
			copy(img[(int(pgno)-1)*ps:], data)
		}
	}
	apply(base, snap)
	txid := snap.MaxTXID
	l0, err := c.LTXFiles(ctx, remote.L0, txid+1)
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range l0 {
		if info.MinTXID != txid+1 {
			t.Fatalf("replica not contiguous: %s after TXID %d", remote.FileDesc(0, info.MinTXID, info.MaxTXID), txid)
		}
		apply(remote.L0, info)
		txid = info.MaxTXID
	}
	return img, txid
}

// checkReplica asserts that restoring the replica gives the application's
// database byte for byte.
func (e *env) checkReplica() ltx.TXID {
	e.t.Helper()
	got, txid := restore(e.t, e.client)
	want := e.image()
	if !bytes.Equal(got, want) {
		e.t.Fatalf("restored replica at TXID %d differs from the database: %s", txid, diffPages(got, want, 4096))
	}
	return txid
}

// checkReplicaAt is checkReplica, and the replica must end at TXID want.
func (e *env) checkReplicaAt(want ltx.TXID) {
	e.t.Helper()
	if txid := e.checkReplica(); txid != want {
		e.t.Errorf("replica at TXID %d, want %d", txid, want)
	}
}

func diffPages(got, want []byte, ps int) string {
	if len(got) != len(want) {
		return fmt.Sprintf("size %d pages, want %d", len(got)/ps, len(want)/ps)
	}
	var diff []int
	for i := 0; i < len(got); i += ps {
		if !bytes.Equal(got[i:i+ps], want[i:i+ps]) {
			diff = append(diff, i/ps+1)
		}
	}
	return fmt.Sprintf("pages %v differ", diff)
}

// changedPages returns the pages that differ between two images, plus the
// pages of after beyond the end of before.
func changedPages(before, after []byte, ps int) []uint32 {
	var out []uint32
	for i := 0; i < len(after); i += ps {
		if i+ps > len(before) || !bytes.Equal(before[i:i+ps], after[i:i+ps]) {
			out = append(out, uint32(i/ps+1))
		}
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !testsupport.Poll(timeout, 5*time.Millisecond, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// syncCheck syncs d and asserts that the replica restores to the
// application's database; it returns the replica's TXID.
func (e *env) syncCheck(d *DB) ltx.TXID {
	e.t.Helper()
	e.sync(d)
	return e.checkReplica()
}

// insertSync commits n rows (e.insert) and syncs d.
func (e *env) insertSync(d *DB, n, size int) {
	e.t.Helper()
	e.insert(n, size)
	e.sync(d)
}

// insertSyncCheck commits n rows (e.insert), then does syncCheck.
func (e *env) insertSyncCheck(d *DB, n, size int) ltx.TXID {
	e.t.Helper()
	e.insert(n, size)
	return e.syncCheck(d)
}

// openSynced is openSyncedWith(e.opts(), n, size).
func (e *env) openSynced(n, size int) *DB {
	e.t.Helper()
	return e.openSyncedWith(e.opts(), n, size)
}

// openSyncedWith commits n rows (e.insert), opens a writer with opts and
// syncs it once.
func (e *env) openSyncedWith(opts Options, n, size int) *DB {
	e.t.Helper()
	e.insert(n, size)
	d := e.open(opts)
	e.sync(d)
	return d
}
