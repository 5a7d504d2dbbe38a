package bench

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	_ "github.com/mattn/go-sqlite3"

	"github.com/litestream-go/litestream/internal/faultproxy"
	"github.com/litestream-go/litestream/internal/testserver"
	"github.com/litestream-go/litestream/remote/s3"
	"github.com/litestream-go/litestream/vfs"
	"github.com/litestream-go/litestream/writer"
)

// AWS S3 Standard request prices (us-east-1), dollars per 1,000 requests:
// PUT, COPY, POST, LIST $0.005; GET, HEAD and others $0.0004; DELETE free.
const (
	priceWrite = 0.005 / 1000
	priceRead  = 0.0004 / 1000
)

// BenchmarkCost measures the storage requests of one database, by kind,
// through a counting proxy in front of real MinIO, for this program and
// for Litestream v0.5.18 (the real binary, when the test servers' install
// script built it) in the same run, and prints requests per hour and a
// dollar estimate at S3 prices:
//
//   - idle daemon: after a warm-up (start-up and first compactions), no writes;
//   - daemon at one write per second;
//   - idle reader (this program's VFS at its defaults; Litestream's VFS
//     extension is not built by the suite, so not measured here).
//
// Each window is BENCH_COST_SECONDS (default 60) after a warm-up of 15 s;
// per-hour figures are the window's counts scaled, so a check that runs
// every 10 minutes shows as 0 or 6 per hour depending on the window.
//
//	go test -run '^$' -bench '^BenchmarkCost$' -benchtime 1x -timeout 30m ./bench/
func BenchmarkCost(b *testing.B) {
	window := 60 * time.Second
	if s := os.Getenv("BENCH_COST_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("BENCH_COST_SECONDS=%q", s)
		}
		window = time.Duration(n) * time.Second
	}
	const warmup = 15 * time.Second
	minio := testserver.StartMinIO(b, b.TempDir())
	b.Cleanup(minio.Stop)
	createBucket(b, minio.Endpoint, "cost")
	ls := filepath.Join(testserver.CacheDir(), "litestream-v0.5.18", "litestream")
	if _, err := os.Stat(ls); err != nil {
		ls = ""
		b.Logf("Litestream v0.5.18 is not installed (%v): measuring this program only", err)
	}

	type row struct {
		what   string
		counts map[faultproxy.Class]int64
	}
	var rows []row
	measure := func(what string, run func(b *testing.B, endpoint, path string, stop <-chan struct{}, ready chan<- struct{})) {
		proxy := faultproxy.StartT(b, minio.Endpoint, faultproxy.Options{Disabled: true, Logf: func(string, ...any) {}})
		stop := make(chan struct{})
		ready := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			run(b, proxy.URL(), strings.ReplaceAll(what, " ", "-"), stop, ready)
		}()
		<-ready
		time.Sleep(warmup)
		proxy.ResetStats()
		time.Sleep(window)
		st := proxy.Stats()
		close(stop)
		<-done
		rows = append(rows, row{what, st.Requests})
		b.Logf("%s: %s in %s", what, st, window)
	}

	measure("ours idle daemon", func(b *testing.B, ep, path string, stop <-chan struct{}, ready chan<- struct{}) {
		oursDaemon(b, ep, path, false, stop, ready)
	})
	measure("ours daemon 1 write/s", func(b *testing.B, ep, path string, stop <-chan struct{}, ready chan<- struct{}) {
		oursDaemon(b, ep, path, true, stop, ready)
	})
	if ls != "" {
		measure("Litestream idle daemon", func(b *testing.B, ep, path string, stop <-chan struct{}, ready chan<- struct{}) {
			litestreamDaemon(b, ls, ep, path, false, stop, ready)
		})
		measure("Litestream daemon 1 write/s", func(b *testing.B, ep, path string, stop <-chan struct{}, ready chan<- struct{}) {
			litestreamDaemon(b, ls, ep, path, true, stop, ready)
		})
	}
	measure("ours idle reader", func(b *testing.B, ep, path string, stop <-chan struct{}, ready chan<- struct{}) {
		oursReader(b, minio.Endpoint, ep, path, stop, ready)
	})

	scale := float64(time.Hour) / float64(window)
	fmt.Printf("\nrequests per hour by kind (window %s, scaled), S3 request cost per hour and per day\n", window)
	fmt.Printf("%-30s %8s %8s %8s %8s %8s %10s %10s\n", "", "LIST", "HEAD", "GET", "PUT", "DELETE", "$/hour", "$/day")
	for _, r := range rows {
		c := func(k faultproxy.Class) float64 { return float64(r.counts[k]) * scale }
		cost := (c(faultproxy.ClassLIST)+c(faultproxy.ClassPUT))*priceWrite + (c(faultproxy.ClassGET)+c(faultproxy.ClassHEAD)+c(faultproxy.ClassOther))*priceRead
		fmt.Printf("%-30s %8.0f %8.0f %8.0f %8.0f %8.0f %10.5f %10.4f\n", r.what, c(faultproxy.ClassLIST), c(faultproxy.ClassHEAD),
			c(faultproxy.ClassGET), c(faultproxy.ClassPUT), c(faultproxy.ClassDELETE), cost, cost*24)
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newDB creates a database of about 4 MiB in WAL mode and returns it open.
func newDB(b *testing.B, dir string) (*sql.DB, string) {
	path := filepath.Join(dir, "app.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_busy_timeout=5000&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	for _, q := range []string{`CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)`,
		`WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 1000) INSERT INTO t(v) SELECT randomblob(4000) FROM c`} {
		if _, err := db.Exec(q); err != nil {
			b.Fatal(err)
		}
	}
	return db, path
}

// writeEverySecond inserts a row every second until stop.
func writeEverySecond(b *testing.B, db *sql.DB, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if _, err := db.Exec(`INSERT INTO t(v) VALUES (randomblob(200))`); err != nil {
			b.Error(err)
			return
		}
	}
}

func s3Client(b *testing.B, endpoint, path string) *s3.Client {
	c, err := s3.New(s3.Config{Bucket: "cost", Path: path, Endpoint: endpoint,
		AccessKeyID: testserver.MinIOUser, SecretAccessKey: testserver.MinIOPassword, Logger: quietLog()})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func createBucket(b *testing.B, endpoint, bucket string) {
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(testserver.MinIOUser, testserver.MinIOPassword, "")))
	if err != nil {
		b.Fatal(err)
	}
	cl := awss3.NewFromConfig(cfg, func(o *awss3.Options) { o.BaseEndpoint = aws.String(endpoint); o.UsePathStyle = true })
	if _, err := cl.CreateBucket(context.Background(), &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		b.Fatal(err)
	}
}

// oursDaemon runs this program's writer at its defaults (the daemon's).
func oursDaemon(b *testing.B, endpoint, path string, writes bool, stop <-chan struct{}, ready chan<- struct{}) {
	dir := b.TempDir()
	db, dbPath := newDB(b, dir)
	defer db.Close()
	w := writer.New(dbPath, s3Client(b, endpoint, path), writer.Options{Logger: quietLog()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := w.Open(ctx); err != nil {
		b.Error(err)
		close(ready)
		return
	}
	defer w.Close(context.Background())
	w.Start(ctx)
	close(ready)
	if writes {
		writeEverySecond(b, db, stop)
	}
	<-stop
}

// litestreamDaemon runs `litestream replicate` v0.5.18 at its defaults.
func litestreamDaemon(b *testing.B, bin, endpoint, path string, writes bool, stop <-chan struct{}, ready chan<- struct{}) {
	dir := b.TempDir()
	db, dbPath := newDB(b, dir)
	defer db.Close()
	cfg := filepath.Join(dir, "litestream.yml")
	y := fmt.Sprintf("dbs:\n  - path: %s\n    replica:\n      type: s3\n      bucket: cost\n      path: %s\n      endpoint: %s\n      region: us-east-1\n      force-path-style: true\n      access-key-id: %s\n      secret-access-key: %s\n",
		dbPath, path, endpoint, testserver.MinIOUser, testserver.MinIOPassword)
	if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "replicate", "-config", cfg)
	env := []string{}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "AWS_CA_BUNDLE=") { // Litestream cannot start with it set (FIELD-NOTES)
			env = append(env, e)
		}
	}
	cmd.Env = env
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		b.Error(err)
		close(ready)
		return
	}
	close(ready)
	if writes {
		writeEverySecond(b, db, stop)
	}
	<-stop
	_ = cmd.Process.Signal(os.Interrupt)
	_ = cmd.Wait()
	if testing.Verbose() {
		b.Logf("litestream log:\n%s", log.String())
	}
}

// oursReader keeps a replica open at the VFS defaults (poll every second),
// with nothing written, as a process with one connection does.
func oursReader(b *testing.B, direct, endpoint, path string, stop <-chan struct{}, ready chan<- struct{}) {
	dir := b.TempDir()
	db, dbPath := newDB(b, dir)
	defer db.Close()
	ctx := context.Background()
	w := writer.New(dbPath, s3Client(b, direct, path), writer.Options{Logger: quietLog()})
	if err := w.Open(ctx); err != nil {
		b.Error(err)
		close(ready)
		return
	}
	if err := w.Sync(ctx); err != nil {
		b.Error(err)
	}
	w.Close(ctx)
	r, err := vfs.OpenReplica(ctx, "cost", s3Client(b, endpoint, path), vfs.ReplicaOptions{Logger: quietLog()})
	if err != nil {
		b.Error(err)
		close(ready)
		return
	}
	r.Acquire(ctx)
	defer r.Release()
	close(ready)
	<-stop
}
