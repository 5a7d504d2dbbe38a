package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWALBound: an application commits 500 small transactions a second
// without a pause while `litestream replicate` runs with Litestream's
// default checkpoint settings; the WAL must stay bounded (the full
// 10-minute figure, with writer stalls, is bench/'s). Afterwards the
// replica must catch up and equal the source.
func TestWALBound(t *testing.T) {
	c, _, rng, dir := startTrials(t)
	const (
		rate  = 500
		bound = 64 << 20 // issue 9's target for 10 minutes
	)
	runFor := pick(30*time.Second, 3*time.Minute)
	db, replica := filepath.Join(dir, "app.db"), filepath.Join(dir, "replica")
	w := newWorkload(rng)
	createDB(t, db)
	cfg := filepath.Join(dir, "litestream.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "dbs:\n  - path: %s\n    replica: {url: '%s'}\n", db, fileURL(replica)), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startLS(t, "replicate", cleanEnv(), "replicate", "-config", cfg)

	sh := startShell(t, "writer", appEnv(), db)
	if _, err := sh.run(".timeout 60000\nPRAGMA synchronous=NORMAL;", time.Minute); err != nil {
		t.Fatal(err)
	}
	// Markers every batch of 5 commits; their arrival times give the
	// rate and the longest wait for a batch.
	arrivals := make(chan time.Time, 1<<16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for l := range sh.lines {
			if strings.HasPrefix(l, "b:") {
				arrivals <- time.Now()
			}
		}
	}()
	var peak, halfPeak int64
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	batches := 0
	for time.Since(start) < runFor {
		<-tick.C
		// Keep to the rate: send what is due since the start.
		for due := int(time.Since(start)/(10*time.Millisecond)) + 1; batches < due; batches++ {
			var b strings.Builder
			for range rate / 100 {
				id, sql := w.hot("h")
				b.WriteString("BEGIN;\n" + sql + "\nCOMMIT;\n")
				_ = id
			}
			fmt.Fprintf(&b, "SELECT 'b:%d';", batches)
			sh.send(b.String())
		}
		peak = max(peak, walSize(db))
		if time.Since(start) < runFor/2 {
			halfPeak = peak
		}
		if d.Exited() {
			t.Fatalf("replicate exited:\n%s", tail(d.Out.String(), 3000))
		}
	}
	tick.Stop()
	if err := sh.close(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
	<-done
	close(arrivals)
	elapsed := time.Since(start)
	var n int
	var last time.Time
	var longest time.Duration
	for a := range arrivals {
		if !last.IsZero() {
			longest = max(longest, a.Sub(last))
		}
		last = a
		n++
	}
	txns := n * rate / 100
	fmt.Printf("%s: %d transactions in %s (%.0f/s), peak WAL %.1f MiB (%.1f MiB in the first half; bound %d MiB), longest gap between batches of %d commits %s\n",
		t.Name(), txns, elapsed.Round(time.Millisecond), float64(txns)/elapsed.Seconds(), float64(peak)/(1<<20), float64(halfPeak)/(1<<20), bound>>20, rate/100, longest.Round(time.Millisecond))
	// Each transaction writes at least four pages (the leaves of hot, of
	// its index, of txlog and of txlog's unique index); without reuse the
	// WAL would hold them all. Below twice the bound the run could not
	// have shown anything.
	if unbounded := int64(txns) * 4 * 4096; unbounded < 2*bound {
		t.Errorf("only %d transactions (a never-reused WAL would reach %d MiB, under twice the bound): the machine was too slow for this run to prove anything", txns, unbounded>>20)
	}
	if peak > bound {
		t.Errorf("the WAL reached %.1f MiB under non-stop writes (bound %d MiB)", float64(peak)/(1<<20), bound>>20)
	}

	ch := newChecker(t, w, c, dir, db, replica)
	ch.check("after the writes", false)
	if code := d.Term(2 * time.Minute); code != 0 {
		t.Errorf("replicate exited %d after SIGTERM:\n%s", code, tail(d.Out.String(), 3000))
	}
	ch.check("final", true)
}
