package e2etest

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
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/litestream-go/litestream/internal/faultproxy"
	"github.com/litestream-go/litestream/remote/internal/testserver"
	"github.com/litestream-go/litestream/remote/s3"
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
	d := writer.New(path, rig.client(t, false, s3.Config{}), writer.Options{
		MonitorInterval: time.Hour, SyncInterval: time.Hour, // syncs only when called
		Levels: []time.Duration{}, SnapshotInterval: -1, RetentionDisabled: true,
		StagingDir: filepath.Join(dir, "staging"), Logger: quiet(t),
	})
	if err := d.Open(ctx); err != nil {
		t.Fatal(err)
	}
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
func TestS3RestoreUnderFaults(t *testing.T) {
	seed := faultproxy.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	rig := startFaultRig(t, faultproxy.Options{Seed: seed, Rates: faultproxy.Transient(0.2), Disabled: true})
	want := buildReplica(t, rig, rng, 20)

	dir := t.TempDir()
	ref := filepath.Join(dir, "reference.db")
	if _, err := vfs.Restore(t.Context(), rig.client(t, true, s3.Config{}), vfs.RestoreOptions{OutputPath: ref, Logger: quiet(t)}); err != nil {
		t.Fatalf("restore without faults: %v", err)
	}
	checkDB(t, ref, want)
	refBytes, err := os.ReadFile(ref)
	if err != nil {
		t.Fatal(err)
	}

	n := envInt(t, "LITESTREAM_FAULT_RESTORES", 30)
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
			_, err := vfs.Restore(ctx, rig.client(t, true, s3.Config{}), vfs.RestoreOptions{OutputPath: out, Logger: quiet(t)})
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
	t.Logf("%d of %d restores under 20%% transient faults failed, in %v; %s", len(failed), n, time.Since(start).Round(time.Millisecond), rig.proxy.Stats())
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
