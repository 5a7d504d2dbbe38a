package bench_test

// BenchmarkColdQueryS3 is issue 11 item 5: one cold point query in a fresh
// sqlite3 process (extension load and database open included) through the
// read-replica VFS on S3 (MinIO on 127.0.0.1) behind internal/faultproxy
// adding 20 ms to every request. It reports the process's wall time, its
// requests by kind, the response bytes and the sequential round trips (the
// longest chain of requests each sent after the previous one answered),
// for this project's extension and, when built (FIELD-NOTES: the real
// Litestream v0.5.18 VFS extension, ~/.cache/litestream-v0.5.18-vfs/
// litestream-vfs.so), for Litestream's beside it, on the same replica.
//
// The database (200,000 rows with an index; the users table's B-tree has
// depth 3) is built once in LITESTREAM_BENCH_DIR and uploaded as one level-9
// snapshot twice: in the LZ4 block encoding (Litestream's, which both
// extensions read) and in the frame encoding (this project's writer's).
//
//	go test -run '^$' -bench '^BenchmarkColdQueryS3$' -benchtime 1x ./bench/
//
// COLD_QUERY_RUNS (default 5) fresh processes per configuration, each a
// different random key. COLD_QUERY_TRACE=1 prints every request;
// COLD_QUERY_BY=email looks the row up through the users_email index
// (whose root is not near page 1) instead of by primary key.

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/litestream-go/litestream/internal/faultproxy"
	"github.com/litestream-go/litestream/internal/testserver"
	"github.com/litestream-go/litestream/internal/testsupport"
	"github.com/litestream-go/litestream/remote/s3"
)

const coldQueryRows = 200_000

// coldTrace records the requests that pass through a faultproxy.
type coldTrace struct {
	mu   sync.Mutex
	reqs []coldReq
}

type coldReq struct {
	class      faultproxy.Class
	start, end time.Time
	bytes      int64
	what       string // method, path and range, for COLD_QUERY_TRACE
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (t *coldTrace) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w}
		start := time.Now()
		h.ServeHTTP(cw, r)
		t.mu.Lock()
		t.reqs = append(t.reqs, coldReq{faultproxy.Classify(r), start, time.Now(), cw.n, r.Method + " " + r.URL.RequestURI() + " " + r.Header.Get("Range")})
		t.mu.Unlock()
	})
}

func (t *coldTrace) take() []coldReq {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.reqs
	t.reqs = nil
	return r
}

// sequential is the longest chain of requests in which each starts after
// the previous one ended: the round trips on the critical path.
func sequential(reqs []coldReq) int {
	sort.Slice(reqs, func(i, j int) bool { return reqs[i].start.Before(reqs[j].start) })
	chain := make([]int, len(reqs))
	best := 0
	for i, r := range reqs {
		chain[i] = 1
		for j := range i {
			if !reqs[j].end.After(r.start) && chain[j]+1 > chain[i] {
				chain[i] = chain[j] + 1
			}
		}
		best = max(best, chain[i])
	}
	return best
}

func BenchmarkColdQueryS3(b *testing.B) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		b.Skip("sqlite3 shell not installed")
	}
	runs := 5
	if s := os.Getenv("COLD_QUERY_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("COLD_QUERY_RUNS=%q", s)
		}
		runs = n
	}
	base := os.Getenv("LITESTREAM_BENCH_DIR")
	if base == "" {
		base = filepath.Join(os.TempDir(), "litestream-bench")
	}
	dir := filepath.Join(base, fmt.Sprintf("cold-%d", coldQueryRows))
	dbPath := filepath.Join(dir, "app.db")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if _, err := os.Stat(dbPath + ".done"); err != nil {
		os.Remove(dbPath)
		vfsBenchRun(b, "sqlite3", []string{dbPath}, usersScript(coldQueryRows, 50))
		if err := os.WriteFile(dbPath+".done", nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	depth := vfsBenchDepth(b, &vfsBenchEnv{db: dbPath})
	if depth < 3 {
		b.Fatalf("B-tree depth %d, want >= 3", depth)
	}
	ext, err := testsupport.BuildExtension()
	if err != nil {
		b.Fatal(err)
	}
	home, _ := os.UserHomeDir()
	lsExt := filepath.Join(home, ".cache", "litestream-v0.5.18-vfs", "litestream-vfs.so")
	if _, err := os.Stat(lsExt); err != nil {
		b.Logf("Litestream v0.5.18's VFS extension is not built (%v): measuring this project's only", err)
		lsExt = ""
	}

	minio := testserver.StartMinIO(b, b.TempDir())
	testserver.CreateMinIOBucket(b, minio.Endpoint, "cold")
	for _, enc := range []string{"block", "frame"} {
		c, err := s3.New(s3.Config{Bucket: "cold", Path: enc, Endpoint: minio.Endpoint,
			AccessKeyID: testserver.MinIOUser, SecretAccessKey: testserver.MinIOPassword, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		if err := vfsBenchSnapshot(dbPath, c, enc); err != nil {
			b.Fatal(err)
		}
	}
	proxy := faultproxy.StartT(b, minio.Endpoint, faultproxy.Options{Disabled: true, Latency: 20 * time.Millisecond, Logf: func(string, ...any) {}})
	trace := &coldTrace{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: trace.wrap(proxy)}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { srv.Close() })
	endpoint := "http://" + ln.Addr().String()

	seed := uint64(time.Now().UnixNano())
	b.Logf("seed %d, %d rows, depth %d", seed, coldQueryRows, depth)
	rng := rand.New(rand.NewPCG(seed, 2))
	env := []string{"AWS_ACCESS_KEY_ID=" + testserver.MinIOUser, "AWS_SECRET_ACCESS_KEY=" + testserver.MinIOPassword,
		"AWS_REGION=us-east-1", "LITESTREAM_ACCESS_KEY_ID=" + testserver.MinIOUser, "LITESTREAM_SECRET_ACCESS_KEY=" + testserver.MinIOPassword}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "AWS_CA_BUNDLE=") && !strings.HasPrefix(e, "LITESTREAM_") { // Litestream cannot start with it set (FIELD-NOTES)
			env = append(env, e)
		}
	}

	byEmail := os.Getenv("COLD_QUERY_BY") == "email"
	type config struct{ name, ext, replica string }
	configs := []config{
		{"ours, frame replica", ext, "frame"},
		{"ours, block replica", ext, "block"},
	}
	if lsExt != "" {
		configs = append(configs, config{"Litestream v0.5.18, block replica", lsExt, "block"})
	}
	for range b.N {
		fmt.Printf("\ncold point query (by email: %v), fresh sqlite3 process (open included), S3 (MinIO) + 20 ms per request, %d rows, depth %d\n", byEmail, coldQueryRows, depth)
		fmt.Printf("%-36s %8s %5s %5s %5s %5s %9s %6s\n", "", "wall", "req", "LIST", "HEAD", "GET", "KB", "seq")
		for _, cfg := range configs {
			for range runs {
				key := 1 + rng.IntN(coldQueryRows)
				url := fmt.Sprintf("s3://cold/%s?endpoint=%s&region=us-east-1&force-path-style=true", cfg.replica, endpoint)
				open := ".open file:app.db?vfs=litestream&replica=" + url
				cmdEnv := env
				if cfg.ext == lsExt {
					open = ".open file:app.db?vfs=litestream"
					cmdEnv = append(append([]string{}, env...), "LITESTREAM_REPLICA_URL="+url)
				}
				where := fmt.Sprintf("id = %d", key)
				if byEmail {
					where = fmt.Sprintf("email = 'user%d@example.com'", (key*7919)%coldQueryRows)
				}
				script := fmt.Sprintf(".load %s\n%s\nselect id, email, name, length(bio) from users where %s;\n", cfg.ext, open, where)
				trace.take()
				cmd := exec.Command("sqlite3")
				cmd.Stdin = strings.NewReader(script)
				cmd.Env = cmdEnv
				start := time.Now()
				out, err := cmd.CombinedOutput()
				wall := time.Since(start)
				if err != nil || !strings.HasPrefix(string(out), fmt.Sprintf("%d|", key)) {
					b.Fatalf("%s: %v\n%s", cfg.name, err, out)
				}
				reqs := trace.take()
				by := map[faultproxy.Class]int{}
				var bytes int64
				for _, r := range reqs {
					by[r.class]++
					bytes += r.bytes
				}
				if os.Getenv("COLD_QUERY_TRACE") != "" {
					for _, r := range reqs {
						fmt.Printf("  +%4dms %4dms %7d %s\n", r.start.Sub(start).Milliseconds(), r.end.Sub(r.start).Milliseconds(), r.bytes, r.what)
					}
				}
				fmt.Printf("%-36s %8v %5d %5d %5d %5d %9.1f %6d\n", cfg.name, wall.Round(time.Millisecond), len(reqs),
					by[faultproxy.ClassLIST], by[faultproxy.ClassHEAD], by[faultproxy.ClassGET], float64(bytes)/1000, sequential(reqs))
			}
		}
		la, _ := os.ReadFile("/proc/loadavg")
		fmt.Printf("load average: %s\n", strings.TrimSpace(string(la)))
	}
}
