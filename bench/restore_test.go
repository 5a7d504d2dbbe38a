package bench

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/litestream-go/litestream/internal/testsupport"
)

// BenchmarkRestoreVsDD builds a database of $BENCH_DB_MB MiB (default
// 1024), replicates it once to a file replica with the real binary
// (one snapshot), then alternates
//
//	dd if=DB of=OUT bs=1M conv=fsync
//	litestream restore -integrity-check none -o OUT file://REPLICA
//
// $BENCH_RUNS times (default 3) and prints both wall times and their ratio.
// The restore's own integrity check (quick_check by default) is timed once,
// separately. Both inputs are in the page cache: the comparison is of the
// write path, not of cold reads. Work files go to $BENCH_DIR (default the
// system temp directory; about 3.5x the database size is needed) and are
// removed afterwards ($BENCH_KEEP=1 keeps them). Each measurement starts
// after sync(1), with no dirty pages waiting for writeback.
//
// Run it with bench/restore.sh, or make bench.
func BenchmarkRestoreVsDD(b *testing.B) {
	work, bin := oneShot(b, "litestream-bench-")
	mib, runs := restoreScale(b)
	dbPath := filepath.Join(work, "bench.db")
	replica := filepath.Join(work, "replica")
	out := filepath.Join(work, "out.db")

	size := buildDB(b, dbPath, mib)

	start := time.Now()
	run(b, bin, "replicate", "-once", dbPath, "file://"+replica)
	// The first sync writes the snapshot once, as the level-0 file of TXID 1.
	ltxBytes := dirSize(b, filepath.Join(replica, "ltx", "0"))
	fmt.Printf("replica: one snapshot of %.0f MiB (%.0f%% of the database; %.0f MiB in all levels), written in %s\n",
		float64(ltxBytes)/(1<<20), 100*float64(ltxBytes)/float64(size), float64(dirSize(b, replica))/(1<<20), since(start))

	loadBefore := loadavg()
	type row struct{ dd, restore, ddCPU, restoreCPU time.Duration }
	var rows []row
	for i := 0; i < runs; i++ {
		var r row
		// dd first in odd runs, restore first in even ones, so neither
		// always runs on the heels of the other's writeback.
		steps := []func(){
			func() { r.dd, r.ddCPU = timed(b, "dd", "if="+dbPath, "of="+out, "bs=1M", "conv=fsync", "status=none") },
			func() {
				r.restore, r.restoreCPU = timed(b, bin, "restore", "-integrity-check", "none", "-o", out, "file://"+replica)
			},
		}
		if i%2 == 1 {
			steps[0], steps[1] = steps[1], steps[0]
		}
		for _, step := range steps {
			// Start each measurement with no dirty pages queued for
			// writeback, so neither pays for the other's (or the build's).
			run(b, "sync")
			step()
			if err := os.Remove(out); err != nil {
				b.Fatal(err)
			}
		}
		rows = append(rows, r)
	}
	run(b, "sync")
	checked, _ := timed(b, bin, "restore", "-o", out, "file://"+replica)
	if !sameFile(b, dbPath, out) {
		b.Fatalf("restored %s differs from %s", out, dbPath)
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\tdd (s)\tdd MiB/s\tdd CPU (s)\trestore (s)\trestore MiB/s\trestore CPU (s)\trestore/dd\t")
	var sum row
	for i, r := range rows {
		sum.dd += r.dd
		sum.restore += r.restore
		sum.ddCPU += r.ddCPU
		sum.restoreCPU += r.restoreCPU
		fmt.Fprintf(tw, "%d\t%.2f\t%.0f\t%.2f\t%.2f\t%.0f\t%.2f\t%.2fx\t\n", i+1, r.dd.Seconds(), mibps(size, r.dd), r.ddCPU.Seconds(),
			r.restore.Seconds(), mibps(size, r.restore), r.restoreCPU.Seconds(), r.restore.Seconds()/r.dd.Seconds())
	}
	n := time.Duration(len(rows))
	fmt.Fprintf(tw, "mean\t%.2f\t%.0f\t%.2f\t%.2f\t%.0f\t%.2f\t%.2fx\t\n", (sum.dd / n).Seconds(), mibps(size, sum.dd/n), (sum.ddCPU / n).Seconds(),
		(sum.restore / n).Seconds(), mibps(size, sum.restore/n), (sum.restoreCPU / n).Seconds(), sum.restore.Seconds()/sum.dd.Seconds())
	tw.Flush()
	sumDD, sumRestore := sum.dd, sum.restore
	fmt.Printf("CPU = user + system time of the process; load average before %s, after %s\n", loadBefore, loadavg())
	fmt.Printf("restore with its default integrity check (quick_check): %.2f s; output identical to the source: yes\n", checked.Seconds())
	fmt.Printf("machine: %d CPUs, %s/%s\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	b.ReportMetric(sumRestore.Seconds()/sumDD.Seconds(), "restore/dd")
	b.ReportMetric((sumRestore / n).Seconds(), "restore-s")
	b.ReportMetric((sumDD / n).Seconds(), "dd-s")
}

// restoreScale returns the database size in MiB ($BENCH_DB_MB, default 1024)
// and the number of runs ($BENCH_RUNS, default 3) of the restore benchmarks.
func restoreScale(b *testing.B) (mib, runs int) {
	return testsupport.EnvInt(b, "BENCH_DB_MB", 1024), testsupport.EnvInt(b, "BENCH_RUNS", 3)
}

// oneShot starts a benchmark whose one iteration is the whole measurement
// (it skips when b.N > 1): it returns its work directory, made in
// $BENCH_DIR (default the system temp directory) and removed when the
// benchmark ends unless $BENCH_KEEP is set, and the litestream binary
// (internal/testsupport's build, cached by source content and shared with
// the other packages' tests).
func oneShot(b *testing.B, prefix string) (work, bin string) {
	if b.N > 1 {
		b.Skip("one iteration is the whole benchmark; run with -benchtime 1x")
	}
	work, err := os.MkdirTemp(os.Getenv("BENCH_DIR"), prefix)
	if err != nil {
		b.Fatal(err)
	}
	if os.Getenv("BENCH_KEEP") == "" {
		b.Cleanup(func() { os.RemoveAll(work) })
	} else {
		fmt.Printf("work files kept in %s\n", work)
	}
	bin, err = testsupport.BuildCLI()
	if err != nil {
		b.Fatal(err)
	}
	return work, bin
}

func since(t time.Time) string { return time.Since(t).Round(10 * time.Millisecond).String() }

func mibps(size int64, d time.Duration) float64 { return float64(size) / (1 << 20) / d.Seconds() }

// buildDB creates a WAL-mode database of about mib MiB with page size 4096:
// rows of a text key (indexed) and a 1000-byte payload, half random and
// half zeros, so LZ4 has something, but not everything, to compress. It
// prints its size and build time and returns its size in bytes.
func buildDB(b *testing.B, path string, mib int) int64 {
	start := time.Now()
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	rows := int64(mib) << 20 / 1410 // measured: payload, key, index entry, free space
	for _, q := range []string{
		"PRAGMA page_size=4096", "PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF",
		`CREATE TABLE items(id INTEGER PRIMARY KEY, key TEXT NOT NULL, payload BLOB NOT NULL)`,
		`CREATE INDEX items_key ON items(key)`,
		`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?1)
		 INSERT INTO items(id, key, payload) SELECT i, hex(randomblob(12)), randomblob(500) || zeroblob(500) FROM s`,
		"PRAGMA journal_mode=WAL",
	} {
		if _, err := db.Exec(q, rows); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	var pages int64
	if err := db.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		b.Fatal(err)
	}
	size := pages * 4096
	fmt.Printf("database: %d pages of 4096 bytes (%.0f MiB), built in %s\n", pages, float64(size)/(1<<20), since(start))
	return size
}

// run runs a command and fails the benchmark if it fails; it returns the
// process's CPU time (user + system).
func run(b *testing.B, name string, args ...string) time.Duration {
	cmd := exec.Command(name, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// timed runs a command and returns its wall time and CPU time.
func timed(b *testing.B, name string, args ...string) (wall, cpu time.Duration) {
	start := time.Now()
	cpu = run(b, name, args...)
	return time.Since(start), cpu
}

// loadavg returns the 1-minute load average: the machine is shared, and
// the figures mean little when it is busy.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "unknown"
	}
	return f[0]
}

func dirSize(b *testing.B, dir string) int64 {
	var n int64
	if err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return err
	}); err != nil {
		b.Fatal(err)
	}
	return n
}

// sameFile compares two files byte for byte.
func sameFile(b *testing.B, x, y string) bool {
	pos, err := testsupport.FirstDiff(x, y)
	if err != nil {
		b.Fatal(err)
	}
	return pos < 0
}
