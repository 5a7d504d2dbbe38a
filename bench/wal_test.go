package bench

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/litestream-go/litestream/bench/walload"
	"github.com/litestream-go/litestream/internal/testsupport"
)

// BenchmarkWALBound runs the same workload twice, one run after the other:
// $BENCH_WAL_RATE small transactions per second (default 500; one indexed
// row of about 100 bytes each, one connection, SQLite's defaults) for
// $BENCH_WAL_SECONDS (default 600), first on plain SQLite, then with
// `litestream replicate` (the real binary, Litestream's default checkpoint
// settings, a file replica) running beside it. It prints, for each, the peak
// WAL size and the commit latencies (the longest is the longest writer
// stall). Targets (issue 9): peak WAL below 64 MiB, longest stall under
// 100 ms. After the replicated run the daemon gets SIGTERM (it must exit 0)
// and the replica is restored and compared with the database. The daemon's
// debug log gives how often it forced a restart of the log and the longest
// time it held the write lock: the part of a stall that is ours.
//
//	go test -run '^$' -bench '^BenchmarkWALBound$' -benchtime 1x -timeout 30m ./bench/
//	BENCH_WAL_SECONDS=60 go test -run '^$' -bench '^BenchmarkWALBound$' -benchtime 1x ./bench/
func BenchmarkWALBound(b *testing.B) {
	work, bin := oneShot(b, "litestream-bench-wal-")
	secs := testsupport.EnvInt(b, "BENCH_WAL_SECONDS", 600)
	rate := testsupport.EnvInt(b, "BENCH_WAL_RATE", 500)
	dur := time.Duration(secs) * time.Second
	seed := uint64(time.Now().UnixNano())
	fmt.Printf("WAL bound: %d transactions/s for %v, plain SQLite then with litestream replicate (seed %d)\n", rate, dur, seed)

	// Plain SQLite.
	plainDir := filepath.Join(work, "plain")
	if err := os.MkdirAll(plainDir, 0o755); err != nil {
		b.Fatal(err)
	}
	plain := walRun(b, filepath.Join(plainDir, "app.db"), rate, dur, seed)
	fmt.Printf("plain SQLite:      %v\n", plain)

	// The same with the daemon.
	dir := filepath.Join(work, "replicated")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, "app.db")
	replica := filepath.Join(dir, "replica")
	app, err := walload.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	cfg := filepath.Join(dir, "litestream.yml")
	// Debug logging: the daemon logs every forced restart of the log with
	// how long it held the write lock.
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("logging:\n  level: debug\ndbs:\n  - path: %s\n    replica:\n      url: file://%s\n", path, replica)), 0o644); err != nil {
		b.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "daemon.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	daemon := exec.Command(bin, "replicate", "-config", cfg)
	daemon.Stdout, daemon.Stderr = logf, logf
	if err := daemon.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- daemon.Wait() }()
	defer func() {
		if daemon.ProcessState == nil {
			_ = daemon.Process.Kill()
			<-exited
		}
	}()
	deadline := time.Now().Add(time.Minute)
	for {
		if l0, _ := filepath.Glob(filepath.Join(replica, "ltx", "0", "*.ltx")); len(l0) > 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the daemon wrote nothing in a minute; log in %s", logf.Name())
		}
		time.Sleep(50 * time.Millisecond) // polling the replica, with a deadline
	}
	replicated, err := walload.Run(context.Background(), app, path, rate, dur, seed)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Printf("with litestream:   %v\n", replicated)
	restarts, held := lockHolds(b, logf.Name())
	fmt.Printf("the daemon forced %d restarts of the log, holding the write lock %v at the longest\n", restarts, held)

	if err := daemon.Process.Signal(syscall.SIGTERM); err != nil {
		b.Fatal(err)
	}
	if err := <-exited; err != nil {
		b.Fatalf("replicate after SIGTERM: %v (log in %s)", err, logf.Name())
	}
	out := filepath.Join(dir, "restored.db")
	run(b, bin, "restore", "-o", out, "file://"+replica)
	want, got := walDigest(b, app), walDigest(b, nil, out)
	app.Close()
	fmt.Printf("daemon exited 0 on SIGTERM; restored replica equals the database: %v (%s)\n", want == got, want)
	if want != got {
		b.Errorf("restored %s, database %s", got, want)
	}
	fmt.Printf("machine: %d CPUs, %s/%s, load average %s\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, loadavg())
	b.ReportMetric(float64(replicated.PeakWAL)/(1<<20), "peak-WAL-MiB")
	b.ReportMetric(float64(replicated.MaxCommit.Microseconds())/1000, "max-stall-ms")
	b.ReportMetric(float64(plain.PeakWAL)/(1<<20), "plain-peak-WAL-MiB")
	b.ReportMetric(float64(plain.MaxCommit.Microseconds())/1000, "plain-max-stall-ms")
}

// walRun runs the workload on a new database at path.
func walRun(b *testing.B, path string, rate int, dur time.Duration, seed uint64) walload.Result {
	db, err := walload.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	res, err := walload.Run(context.Background(), db, path, rate, dur, seed)
	if err != nil {
		b.Fatal(err)
	}
	return res
}

// walDigest summarizes the workload's table: row count and a hash of every
// row, through db or, if db is nil, a new connection to path.
func walDigest(b *testing.B, db *sql.DB, path ...string) string {
	if db == nil {
		var err error
		if db, err = sql.Open("sqlite3", "file:"+path[0]+"?mode=ro"); err != nil {
			b.Fatal(err)
		}
		defer db.Close()
	}
	var n int64
	var sum string
	err := db.QueryRow(`SELECT count(*), coalesce(sum(length(v)), 0) || '/' || coalesce(sum(k % 1000003), 0) FROM t`).Scan(&n, &sum)
	if err != nil {
		b.Fatal(err)
	}
	return fmt.Sprintf("%d rows, %s", n, sum)
}

// lockHolds reads the daemon's debug log: how many forced restarts of the log
// it made and the longest time one held SQLite's write lock.
func lockHolds(b *testing.B, log string) (n int, longest time.Duration) {
	data, err := os.ReadFile(log)
	if err != nil {
		b.Fatal(err)
	}
	re := regexp.MustCompile(`msg="forced WAL restart".* stall=(\S+)`)
	for _, m := range re.FindAllSubmatch(data, -1) {
		d, err := time.ParseDuration(string(m[1]))
		if err != nil {
			b.Fatalf("%s: %v", m[0], err)
		}
		n++
		longest = max(longest, d)
	}
	return n, longest
}
