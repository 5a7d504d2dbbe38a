package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	_ "github.com/mattn/go-sqlite3" // the primary's SQLite, and the one the VFS registers into

	"github.com/litestream-go/litestream/internal/testserver"
	"github.com/litestream-go/litestream/internal/testsupport"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/backends"
	"github.com/litestream-go/litestream/remote/crypt"
	"github.com/litestream-go/litestream/restore"
	"github.com/litestream-go/litestream/vfs"
	"github.com/litestream-go/litestream/writer"
)

// replica is a backend under test: a URL and options, as a user writes
// them in a config file.
type replica struct {
	url  string
	opts backends.Options
	// wrap, when set, wraps every client the test opens (age encryption).
	wrap func(remote.Client) (remote.Client, error)
	// storeDir, when set, is where the storage keeps the replica's bytes
	// at rest; none of them may hold plaintext (an encrypted replica).
	storeDir string
}

// open opens a client of the replica, wrapped as the replica asks.
func (r replica) open(ctx context.Context, u string, opts backends.Options) (remote.Client, error) {
	c, err := backends.OpenWithOptions(ctx, u, opts)
	if err != nil || r.wrap == nil {
		return c, err
	}
	return r.wrap(c)
}

// ageReplica is rep encrypted with a fresh age key (remote/crypt), its
// bytes kept at rest under storeDir.
func ageReplica(t *testing.T, rep replica, storeDir string) replica {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	rep.wrap = func(c remote.Client) (remote.Client, error) {
		return crypt.New(c, crypt.Options{Recipients: []age.Recipient{id.Recipient()}, Identities: []age.Identity{id}})
	}
	rep.storeDir = storeDir
	return rep
}

var backendsUnderTest = []struct {
	name  string
	setup func(t *testing.T) replica
}{
	{"file", func(t *testing.T) replica {
		return replica{url: "file://" + filepath.Join(t.TempDir(), "replica")}
	}},
	{"file+age", func(t *testing.T) replica {
		dir := filepath.Join(t.TempDir(), "replica")
		return ageReplica(t, replica{url: "file://" + dir}, dir)
	}},
	{"s3+age", func(t *testing.T) replica {
		data := t.TempDir()
		s := startMinIOAt(t, "e2e", data)
		return ageReplica(t, replica{
			url:  "s3://e2e/db/app?endpoint=" + url.QueryEscape(s.Endpoint),
			opts: backends.Options{AccessKeyID: testserver.MinIOUser, SecretAccessKey: testserver.MinIOPassword},
		}, data)
	}},
	{"s3", func(t *testing.T) replica {
		s := startMinIO(t, "e2e")
		return replica{
			url:  "s3://e2e/db/app?endpoint=" + url.QueryEscape(s.Endpoint),
			opts: backends.Options{AccessKeyID: testserver.MinIOUser, SecretAccessKey: testserver.MinIOPassword},
		}
	}},
	{"gs", func(t *testing.T) replica {
		g := testserver.StartFakeGCS(t)
		g.Server.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "e2e"})
		return replica{url: "gs://e2e/db/app?endpoint=" + url.QueryEscape(g.Endpoint)}
	}},
	{"abs", func(t *testing.T) replica {
		s := testserver.StartAzurite(t, t.TempDir())
		cred, _ := azblob.NewSharedKeyCredential(testserver.AzuriteAccount, testserver.AzuriteKey)
		azb, err := azblob.NewClientWithSharedKeyCredential(s.Endpoint, cred, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := azb.CreateContainer(t.Context(), "e2e", nil); err != nil {
			t.Fatal(err)
		}
		return replica{
			url:  fmt.Sprintf("abs://%s@e2e/db/app?endpoint=%s", testserver.AzuriteAccount, url.QueryEscape(s.Endpoint)),
			opts: backends.Options{AccountKey: testserver.AzuriteKey},
		}
	}},
	{"sftp", func(t *testing.T) replica {
		s := testserver.StartSFTP(t)
		return replica{
			url:  fmt.Sprintf("sftp://%s:%s@%s/backups/app", s.User, s.Password, s.Addr),
			opts: backends.Options{HostKey: s.HostKey},
		}
	}},
	{"nats", func(t *testing.T) replica {
		n := testserver.StartNATS(t)
		n.CreateBucket(t, "e2e")
		u, _ := url.Parse(n.URL)
		return replica{url: "nats://" + u.Host + "/e2e/db/app"}
	}},
	{"webdav", func(t *testing.T) replica {
		return replica{url: "webdav://" + testserver.StartWebDAV(t) + "/backups/app"}
	}},
}

// startMinIO starts MinIO with one bucket, stopped when the test ends.
func startMinIO(t *testing.T, bucket string) *testserver.Server {
	t.Helper()
	return startMinIOAt(t, bucket, t.TempDir())
}

// startMinIOAt is startMinIO with its data in dataDir.
func startMinIOAt(t *testing.T, bucket, dataDir string) *testserver.Server {
	t.Helper()
	s := testserver.StartMinIO(t, dataDir)
	testserver.CreateMinIOBucket(t, s.Endpoint, bucket)
	return s
}

// TestEndToEnd replicates a database under write load to each backend,
// restores it with restore.Run, and queries it through the VFS; the three
// must hold the same rows.
func TestEndToEnd(t *testing.T) {
	for _, b := range backendsUnderTest {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			rep := b.setup(t)
			runEndToEnd(t, rep)
		})
	}
}

func quiet(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

var vfsSeq atomic.Int64

func runEndToEnd(t *testing.T, rep replica) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))

	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	app := openApp(t, path)

	opts := rep.opts
	opts.Logger = quiet(t)
	client, err := rep.open(ctx, rep.url, opts)
	if err != nil {
		t.Fatal(err)
	}
	// A row the storage must never see in an encrypted replica.
	const marker = "E2E-PLAINTEXT-MARKER-5d1c"
	if _, err := app.Exec(`INSERT INTO t(n, v) VALUES (0, ?)`, marker); err != nil {
		t.Fatal(err)
	}
	d := writer.New(path, client, writer.Options{
		MonitorInterval:   20 * time.Millisecond,
		SyncInterval:      50 * time.Millisecond,
		Levels:            []time.Duration{time.Second}, // compactions into level 1 during the load
		SnapshotInterval:  -1,
		RetentionDisabled: true,
		StagingDir:        filepath.Join(dir, "staging"),
		Logger:            quiet(t),
	})
	if err := d.Open(ctx); err != nil {
		t.Fatal(err)
	}
	d.Start(ctx)

	// Write load: small transactions for about two seconds, some with
	// large rows so files span many pages, while the writer syncs.
	deadline := time.Now().Add(2 * time.Second)
	txs := 0
	for time.Now().Before(deadline) {
		tx, err := app.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for range 1 + rng.IntN(20) {
			size := 16 + rng.IntN(200)
			if rng.IntN(50) == 0 {
				size = 20_000
			}
			v := make([]byte, size)
			for i := range v {
				v[i] = byte(rng.Uint32())
			}
			if _, err := tx.Exec(`INSERT INTO t(n, v) VALUES (?, ?)`, rng.Int64N(1000), v); err != nil {
				t.Fatal(err)
			}
		}
		if rng.IntN(10) == 0 {
			if _, err := tx.Exec(`DELETE FROM t WHERE n = ?`, rng.Int64N(1000)); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		txs++
	}
	if err := d.Sync(ctx); err != nil {
		t.Fatalf("final sync: %v", err)
	}
	want := digest(t, app)
	st := d.Status()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("close writer: %v", err)
	}
	l1, err := client.LTXFiles(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d transactions, replica at TXID %s, %d level-1 files; %s", txs, st.TXID, len(l1), want)
	if rep.storeDir != "" {
		checkNoPlaintext(t, rep.storeDir, marker)
	}

	// Restore through a fresh client from the same URL.
	rc, err := rep.open(ctx, rep.url, opts)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "restored.db")
	res, err := restore.Run(ctx, rc, restore.Options{OutputPath: out, Logger: quiet(t)})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if res.TXID != st.TXID {
		t.Fatalf("restored TXID %s, writer reported %s", res.TXID, st.TXID)
	}
	restored := openReadOnly(t, out)
	if got := digest(t, restored); got != want {
		t.Fatalf("restored database differs: %s, want %s", got, want)
	}
	var check string
	if err := restored.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check of the restored database: %s %v", check, err)
	}

	// Query through the VFS, which opens its own client from the URL.
	name := fmt.Sprintf("e2e%d", vfsSeq.Add(1))
	v, err := vfs.Register(name, vfs.Options{
		OpenClient: func(ctx context.Context, u string) (remote.Client, error) {
			return rep.open(ctx, u, opts)
		},
		Logger: quiet(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	// Closed before the VFS (deferred above) is.
	viaVFS, err := sql.Open("sqlite3", "file:app.db?vfs="+name+"&replica="+url.QueryEscape(rep.url))
	if err != nil {
		t.Fatal(err)
	}
	defer viaVFS.Close()
	if got := digest(t, viaVFS); got != want {
		t.Fatalf("VFS reads %s, want %s", got, want)
	}
}

// openReadOnly opens a restored database read-only; it is closed when the
// test ends.
func openReadOnly(t *testing.T, path string) *sql.DB {
	t.Helper()
	return openDSN(t, "file:"+path+"?mode=ro")
}

// openDSN opens a database by its go-sqlite3 data source name; it is closed
// when the test ends.
func openDSN(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openApp creates the application's database at path: WAL mode, table t
// with an index on n, one connection. It is closed when the test ends.
func openApp(t *testing.T, path string) *sql.DB {
	t.Helper()
	app := openDSN(t, "file:"+path+"?_busy_timeout=5000")
	app.SetMaxOpenConns(1)
	for _, q := range []string{`PRAGMA journal_mode=WAL`, `CREATE TABLE t(id INTEGER PRIMARY KEY, n INTEGER, v BLOB)`, `CREATE INDEX t_n ON t(n)`} {
		if _, err := app.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return app
}

// digest hashes every row in id order.
func digest(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.Query(`SELECT id, n, v FROM t ORDER BY id`)
	if err != nil {
		t.Fatalf("digest: %v", err)
	}
	defer rows.Close()
	h := sha256.New()
	n := 0
	for rows.Next() {
		var id, num int64
		var v []byte
		if err := rows.Scan(&id, &num, &v); err != nil {
			t.Fatalf("digest: %v", err)
		}
		fmt.Fprintf(h, "%d|%d|%d|", id, num, len(v))
		h.Write(v)
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("digest: %v", err)
	}
	return fmt.Sprintf("%d rows, sha256 %x", n, h.Sum(nil)[:8])
}

// checkNoPlaintext fails the test if any file under dir holds marker or an
// LTX file's magic, and if there are no files at all.
func checkNoPlaintext(t *testing.T, dir, marker string) {
	t.Helper()
	files := testsupport.ReadTree(t, dir)
	if len(files) == 0 {
		t.Fatalf("walk %s: no files", dir)
	}
	for p, b := range files {
		if bytes.Contains(b, []byte(marker)) || bytes.Contains(b, []byte("LTX1")) {
			t.Errorf("%s holds plaintext", p)
		}
	}
}
