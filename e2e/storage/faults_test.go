package storage

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/faultproxy"
	"github.com/litestream-go/litestream/internal/testserver"
	"github.com/litestream-go/litestream/pagecache"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/retry"
	"github.com/litestream-go/litestream/remote/s3"
	"github.com/litestream-go/litestream/restore"
	"github.com/litestream-go/litestream/vfs"
	"github.com/litestream-go/litestream/writer"
)

// faultRig is MinIO with a fault proxy in front of it.
type faultRig struct {
	minio  *testserver.Server
	proxy  *faultproxy.Proxy
	bucket string
}

func startFaultRig(t *testing.T, opts faultproxy.Options) *faultRig {
	t.Helper()
	m := startMinIO(t, "faults")
	return &faultRig{minio: m, proxy: faultproxy.StartT(t, m.Endpoint, opts), bucket: "faults"}
}

// client returns an s3 client with default settings, through the proxy or
// straight to MinIO.
func (r *faultRig) client(t *testing.T, viaProxy bool, cfg s3.Config) *s3.Client {
	t.Helper()
	cfg.Bucket, cfg.Path = r.bucket, "db/app"
	cfg.Endpoint = r.minio.Endpoint
	if viaProxy {
		cfg.Endpoint = r.proxy.URL()
	}
	cfg.AccessKeyID, cfg.SecretAccessKey = testserver.MinIOUser, testserver.MinIOPassword
	cfg.Logger = quiet(t)
	c, err := s3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// buildReplica writes a database of about 8 MiB (one snapshot, read in
// several range requests) and then small transactions, one level-0 file
// each, straight to MinIO. It returns the rows' digest.
func buildReplica(t *testing.T, rig *faultRig, rng *rand.Rand, txs int) string {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	app := openApp(t, path)
	insert := func(tx *sql.Tx, n, size int) {
		v := make([]byte, size)
		for i := range v {
			v[i] = byte(rng.Uint32())
		}
		if _, err := tx.Exec(`INSERT INTO t(n, v) VALUES (?, ?)`, n, v); err != nil {
			t.Fatal(err)
		}
	}
	tx, _ := app.Begin()
	for i := range 2000 {
		insert(tx, i, 4000)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	d := openManualWriter(t, path, rig.client(t, false, s3.Config{}), dir)
	defer d.Close(ctx)
	if err := d.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for range txs {
		tx, _ := app.Begin()
		for range 1 + rng.IntN(5) {
			insert(tx, rng.IntN(1000), 16+rng.IntN(3000))
		}
		if _, err := tx.Exec(`UPDATE t SET n = n + 1 WHERE id = ?`, 1+rng.IntN(2000)); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := d.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return digest(t, app)
}

// envInt returns the integer in environment variable name, or def.
func envInt(t *testing.T, name string, def int) int {
	if s := os.Getenv(name); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("%s=%q: %v", name, s, err)
		}
		return n
	}
	return def
}

// TestS3RestoreUnderFaults restores a replica N times (30 by default;
// LITESTREAM_FAULT_RESTORES) through the fault proxy with 20% of requests
// failing transiently (500, 503, resets, lost responses, resets and
// truncation mid-body). Every restore must succeed and be byte-identical
// to a restore made without faults.
//
// The restores insist for 10 attempts per request instead of the default
// 5: what this test proves is that every kind of fault is recovered from
// (none is taken as permanent, no resumed body is spliced wrongly), and at
// 20% per attempt the default gives up on about one request in 3,000
// (0.2^5), about once per run of this test's ~2,900 requests; that is the
// default's chosen patience, not a defect, and it would make the test fail
// at random. With 10 attempts a give-up is 0.2^10 ≈ 1e-7 per request.
// LITESTREAM_FAULT_ATTEMPTS sets the attempts (e.g. 5 to measure the
// default's rate).
func TestS3RestoreUnderFaults(t *testing.T) {
	seed := faultproxy.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	rig := startFaultRig(t, faultproxy.Options{Seed: seed, Rates: faultproxy.Transient(0.2), Disabled: true})
	want := buildReplica(t, rig, rng, 20)

	dir := t.TempDir()
	ref := filepath.Join(dir, "reference.db")
	if _, err := restore.Run(t.Context(), rig.client(t, true, s3.Config{}), restore.Options{OutputPath: ref, Logger: quiet(t)}); err != nil {
		t.Fatalf("restore without faults: %v", err)
	}
	checkDB(t, ref, want)
	refBytes, err := os.ReadFile(ref)
	if err != nil {
		t.Fatal(err)
	}

	n := envInt(t, "LITESTREAM_FAULT_RESTORES", 30)
	patient := s3.Config{Retry: retry.Policy{Attempts: envInt(t, "LITESTREAM_FAULT_ATTEMPTS", 10), Base: 20 * time.Millisecond, Max: 200 * time.Millisecond}}
	rig.proxy.ResetStats()
	rig.proxy.SetEnabled(true)
	var mu sync.Mutex
	var failed []string
	start := time.Now()
	var g errgroup.Group
	g.SetLimit(3) // restores spend most of their time in backoff waits
	for i := range n {
		g.Go(func() error {
			out := filepath.Join(dir, fmt.Sprintf("restore-%d.db", i))
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			_, err := restore.Run(ctx, rig.client(t, true, patient), restore.Options{OutputPath: out, Logger: quiet(t)})
			if err != nil {
				mu.Lock()
				failed = append(failed, err.Error())
				mu.Unlock()
				return nil
			}
			got, err := os.ReadFile(out)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, refBytes) {
				t.Errorf("restore %d succeeded with different bytes (%d, want %d): wrong data", i, len(got), len(refBytes))
			}
			return os.Remove(out)
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	rig.proxy.SetEnabled(false)
	t.Logf("%d of %d restores under 20%% transient faults (%d attempts per request) failed, in %v; %s", len(failed), n, patient.Retry.Attempts, time.Since(start).Round(time.Millisecond), rig.proxy.Stats())
	for _, e := range failed {
		t.Errorf("restore failed: %s", e)
	}
}

// checkDB opens a restored database and compares its rows with want.
func checkDB(t *testing.T, path, want string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := digest(t, db); got != want {
		t.Fatalf("%s holds %s, want %s", path, got, want)
	}
	var check string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check of %s: %s %v", path, check, err)
	}
}

// rowValue is the content of row id: a function of the seed and the id, so
// any reader can check any row it sees. Every 50th row spans pages.
func rowValue(seed uint64, id int64) []byte {
	n := 16 + int(id%500)
	if id%50 == 0 {
		n = 20_000
	}
	r := rand.New(rand.NewPCG(seed, uint64(id)))
	v := make([]byte, n)
	for i := range v {
		v[i] = byte(r.Uint32())
	}
	return v
}

// checkRows reads every row of t through db and checks that the rows are
// exactly ids 1..n with their values, for an n that committed(n) accepts
// (a row count the application committed; asked after the query, since a
// transaction is recorded before it commits). It returns n, or an error: a
// query error (wrong false), or wrong data (wrong true).
func checkRows(db *sql.DB, seed uint64, committed func(n int64) bool) (n int64, wrong bool, err error) {
	rows, err := db.Query(`SELECT id, n, v FROM t ORDER BY id`)
	if err != nil {
		return 0, false, err
	}
	defer rows.Close()
	for rows.Next() {
		var id, num int64
		var v []byte
		if err := rows.Scan(&id, &num, &v); err != nil {
			return 0, false, err
		}
		if id != n+1 || num != id*7%1000 || !bytes.Equal(v, rowValue(seed, id)) {
			return 0, true, fmt.Errorf("row %d (after %d good rows): n=%d, %d value bytes: not what was written", id, n, num, len(v))
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, false, err
	}
	if !committed(n) {
		return n, true, fmt.Errorf("%d rows: no committed transaction left the table in that state", n)
	}
	return n, false, nil
}

// TestS3ReplicationUnderFaults runs the writer and a VFS reader through
// the fault proxy (20% transient failures, stalls, slow bodies) while the
// application commits: the reader only ever sees states the application
// committed, with the right rows, or a query error; after the faults stop
// the replica catches up within seconds; the level-0 chain has every
// transaction once; and restores at the final and at earlier TXIDs hold
// exactly the rows committed by then.
func TestS3ReplicationUnderFaults(t *testing.T) {
	seed := faultproxy.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 2))
	rig := startFaultRig(t, faultproxy.Options{Seed: seed, StallFor: time.Minute,
		Rates: faultproxy.Transient(0.2).Plus(faultproxy.Stalls(0.01)).Plus(faultproxy.Rates{faultproxy.SlowBody: 0.05})})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	// Short attempt timeouts: a stall costs its client one timeout.
	clientCfg := s3.Config{Retry: retry.Policy{AttemptTimeout: 2 * time.Second}}

	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	app := openApp(t, path)
	var statesMu sync.Mutex
	states := map[int64]bool{0: true}
	d := writer.New(path, rig.client(t, true, clientCfg), writer.Options{
		MonitorInterval: 20 * time.Millisecond, SyncInterval: 100 * time.Millisecond,
		Levels: []time.Duration{time.Second}, SnapshotInterval: -1, RetentionDisabled: true,
		StagingDir: filepath.Join(dir, "staging"), Logger: quiet(t),
	})
	if err := d.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.WithoutCancel(ctx))
	d.Start(ctx)

	// The reader: a VFS through the proxy with small caches (its own and
	// SQLite's), so queries keep fetching pages.
	name := fmt.Sprintf("faults%d", vfsSeq.Add(1))
	v, err := vfs.Register(name, vfs.Options{
		OpenClient: func(ctx context.Context, u string) (remote.Client, error) { return rig.client(t, true, clientCfg), nil },
		// Files up to 16 KiB are read whole and verified (most level-0
		// files), larger ones by range: both read paths under faults.
		Replica: vfs.ReplicaOptions{CacheSize: 64 << 10, WholeFileSize: 16 << 10, PollInterval: 100 * time.Millisecond, RequestTimeout: 5 * time.Second,
			Fetch: pagecache.Options{Retry: retry.Policy{Base: 10 * time.Millisecond}}},
		Logger: quiet(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()

	// Commit for a few seconds; the table must exist on the replica before
	// a reader can open it, so the first commit is synced first.
	var id int64
	commit := func() {
		tx, err := app.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for range 1 + rng.IntN(5) {
			id++
			if _, err := tx.Exec(`INSERT INTO t(id, n, v) VALUES (?, ?, ?)`, id, id*7%1000, rowValue(seed, id)); err != nil {
				t.Fatal(err)
			}
		}
		statesMu.Lock()
		states[id] = true
		statesMu.Unlock()
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	commit()
	if err := d.Sync(ctx); err != nil {
		t.Fatalf("first sync: %v", err)
	}
	viaVFS, err := sql.Open("sqlite3", "file:app.db?vfs="+name+"&replica=s3&_cache_size=2")
	if err != nil {
		t.Fatal(err)
	}
	defer viaVFS.Close()
	viaVFS.SetMaxOpenConns(1)

	var queries, queryErrs, maxSeen atomic.Int64
	var wrong []string
	var wrongMu sync.Mutex
	stopReader := make(chan struct{})
	readerDone := make(chan struct{})
	committed := func(n int64) bool {
		statesMu.Lock()
		defer statesMu.Unlock()
		return states[n]
	}
	readState := func() (int64, bool, error) { return checkRows(viaVFS, seed, committed) }
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stopReader:
				return
			default:
			}
			n, bad, err := readState()
			queries.Add(1)
			switch {
			case bad:
				wrongMu.Lock()
				wrong = append(wrong, err.Error())
				wrongMu.Unlock()
			case err != nil:
				queryErrs.Add(1)
				t.Logf("reader: query failed (allowed: a clear error): %v", err)
			default:
				maxSeen.Store(max(maxSeen.Load(), n))
			}
			time.Sleep(5 * time.Millisecond) // leave the 2 cores to the writer too
		}
	}()
	loadEnd := time.Now().Add(5 * time.Second)
	txs := 1
	for time.Now().Before(loadEnd) {
		commit()
		txs++
		time.Sleep(time.Duration(5+rng.IntN(30)) * time.Millisecond) // the application's pace
	}
	faultStats := rig.proxy.Stats()

	// Faults off: the replica must catch up within seconds.
	rig.proxy.SetEnabled(false)
	off := time.Now()
	var caughtUp time.Duration
	for deadline := off.Add(30 * time.Second); ; {
		if st := d.Status(); st.LastError == "" && !st.Pending && st.LastSync.After(off) && maxSeen.Load() == id {
			caughtUp = time.Since(off)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30s after the faults stopped the replica has not caught up: writer %+v, reader saw %d of %d rows", d.Status(), maxSeen.Load(), id)
		}
		time.Sleep(20 * time.Millisecond) // polling for the catch-up
	}
	close(stopReader)
	<-readerDone
	t.Logf("%d transactions (%d rows) under faults (%s); caught up %v after the faults stopped; reader: %d queries, %d failed with an error, %d wrong",
		txs, id, faultStats, caughtUp.Round(time.Millisecond), queries.Load(), queryErrs.Load(), len(wrong))
	for _, w := range wrong {
		t.Errorf("reader saw wrong data: %s", w)
	}
	if caughtUp > 10*time.Second {
		t.Errorf("catching up took %v after the faults stopped", caughtUp)
	}
	if faultStats.Failures() == 0 {
		t.Fatalf("no faults were injected: %s", faultStats)
	}

	// Reads that keep failing are a clear error, not rows: every GET
	// answers 500 until the faults are cleared. The reader's caches are
	// too small for the table, so the scan must fetch.
	rig.proxy.Force(faultproxy.ClassGET, faultproxy.Status500, 1_000_000)
	_, bad, err := readState()
	rig.proxy.ClearForced()
	if err == nil || bad {
		t.Fatalf("with every read failing the reader returned %v (wrong data: %v)", err, bad)
	}
	t.Logf("with every read failing: %v", err)
	if n, bad, err := readState(); err != nil || n != id {
		t.Fatalf("after the reads recovered: %d rows of %d, %v (wrong data: %v)", n, id, err, bad)
	}
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// The level-0 chain has every transaction exactly once.
	direct := rig.client(t, false, s3.Config{})
	l0, err := direct.LTXFiles(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, info := range l0 {
		if info.MinTXID != ltx.TXID(i+1) || info.MaxTXID != info.MinTXID {
			t.Fatalf("level-0 file %d is %s-%s: the chain has a gap or a duplicate", i, info.MinTXID, info.MaxTXID)
		}
	}
	final := l0[len(l0)-1].MaxTXID

	// Restores at the end and at earlier TXIDs hold committed states.
	for _, txid := range []ltx.TXID{final, 1 + ltx.TXID(rng.Int64N(int64(final))), 1 + ltx.TXID(rng.Int64N(int64(final)))} {
		out := filepath.Join(dir, fmt.Sprintf("restore-%d.db", txid))
		if _, err := restore.Run(ctx, direct, restore.Options{OutputPath: out, TXID: txid, Force: true, Logger: quiet(t)}); err != nil {
			t.Fatalf("restore at %s: %v", txid, err)
		}
		db, err := sql.Open("sqlite3", "file:"+out+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		n, _, err := checkRows(db, seed, committed)
		db.Close()
		if err != nil {
			t.Fatalf("restore at %s: %v", txid, err)
		}
		if txid == final && n != id {
			t.Fatalf("restore of the final TXID %s holds %d rows, the application committed %d", txid, n, id)
		}
	}
}
