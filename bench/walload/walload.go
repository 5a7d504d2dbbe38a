// Package walload is the workload of the WAL-bound benchmark (bench's
// BenchmarkWALBound) and of the writer's test of the same bound: small
// transactions at a fixed rate, each commit's latency and the WAL file's size
// measured after every commit.
package walload

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"
)

// Schema creates the workload's table; Open runs it.
const Schema = `CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, k INTEGER, v BLOB);
CREATE INDEX IF NOT EXISTS t_k ON t(k);`

// Open opens the application's connection to the database at path, creating
// it in WAL mode with the workload's table: one connection, as an
// application with a single writer has, with SQLite's defaults otherwise
// (automatic checkpoints at 1000 pages) and a 5 s busy timeout.
func Open(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000&_journal_mode=WAL")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(Schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("create schema in %s: %w", path, err)
	}
	return db, nil
}

// Result is what one run measured.
type Result struct {
	Txns     int
	Elapsed  time.Duration
	PeakWAL  int64 // largest WAL file size seen after a commit
	FinalWAL int64
	DBSize   int64
	// Commit latencies: the time each INSERT's Exec took. MaxCommit is the
	// longest writer stall.
	MaxCommit, P99Commit, P50Commit time.Duration
	// Late counts commits that started more than one interval after their
	// scheduled time (the workload could not keep its rate).
	Late int
}

func (r Result) String() string {
	return fmt.Sprintf("%d txns in %v (%.0f/s), peak WAL %.1f MiB, final WAL %.1f MiB, db %.1f MiB, commit p50 %v p99 %v max %v, late %d",
		r.Txns, r.Elapsed.Round(time.Millisecond), float64(r.Txns)/r.Elapsed.Seconds(),
		float64(r.PeakWAL)/(1<<20), float64(r.FinalWAL)/(1<<20), float64(r.DBSize)/(1<<20),
		r.P50Commit.Round(10*time.Microsecond), r.P99Commit.Round(10*time.Microsecond), r.MaxCommit.Round(10*time.Microsecond), r.Late)
}

// Run commits one small transaction (a row of about 100 bytes into an
// indexed table) every 1/rate seconds on db, whose database file is at path,
// for d or until ctx is done. The schedule is fixed: a slow commit delays the
// ones after it (counted as late), it does not lower the rate asked for.
func Run(ctx context.Context, db *sql.DB, path string, rate int, d time.Duration, seed uint64) (Result, error) {
	rng := rand.New(rand.NewPCG(seed, 3))
	interval := time.Second / time.Duration(rate)
	var res Result
	lat := make([]time.Duration, 0, int(d/interval)+1)
	start := time.Now()
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if due.Sub(start) >= d || ctx.Err() != nil {
			break
		}
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait) // pacing the workload, not synchronization
		} else if -wait > interval {
			res.Late++
		}
		v := make([]byte, 80+rng.IntN(40))
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		t0 := time.Now()
		if _, err := db.ExecContext(ctx, `INSERT INTO t(k, v) VALUES(?, ?)`, rng.Int64(), v); err != nil {
			return res, fmt.Errorf("commit %d: %w", i, err)
		}
		lat = append(lat, time.Since(t0))
		if fi, err := os.Stat(path + "-wal"); err == nil {
			res.PeakWAL = max(res.PeakWAL, fi.Size())
		}
	}
	res.Elapsed = time.Since(start)
	res.Txns = len(lat)
	if fi, err := os.Stat(path + "-wal"); err == nil {
		res.FinalWAL = fi.Size()
	}
	if fi, err := os.Stat(path); err == nil {
		res.DBSize = fi.Size()
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		res.MaxCommit = lat[len(lat)-1]
		res.P99Commit = lat[len(lat)*99/100]
		res.P50Commit = lat[len(lat)/2]
	}
	return res, nil
}
