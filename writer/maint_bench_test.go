package writer

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
)

// peakHeap samples the heap in use until stop is called and returns the
// highest value seen above the starting point.
func peakHeap() (stop func() uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var mu sync.Mutex
	peak := base
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				mu.Lock()
				peak = max(peak, ms.HeapInuse)
				mu.Unlock()
			}
		}
	}()
	return func() uint64 {
		close(done)
		mu.Lock()
		defer mu.Unlock()
		return peak - base
	}
}

// BenchmarkL9Snapshot measures a level-9 snapshot of a 64 MiB database
// streamed from a read transaction, and the peak extra heap it needs.
func BenchmarkL9Snapshot(b *testing.B) {
	path, app := benchDB(b, 64)
	d := openBench(b, path)
	ctx := context.Background()
	defer d.Close(ctx)
	b.SetBytes(64 << 20)
	var peak uint64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if _, err := app.Exec(`UPDATE t SET v = randomblob(1000) WHERE id % 500 = ?`, i%500); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		stop := peakHeap()
		if info, err := d.Snapshot(ctx); err != nil || info == nil {
			b.Fatalf("snapshot: %v, %v", info, err)
		}
		peak = max(peak, stop())
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// BenchmarkCompactL1 measures merging 64 level-0 files (about 100 pages of
// a 64 MiB database each) into one level-1 file.
func BenchmarkCompactL1(b *testing.B) {
	path, app := benchDB(b, 64)
	ctx := context.Background()
	var peak uint64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		d := openBench(b, path)
		if err := d.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		for j := 0; j < 64; j++ {
			if _, err := app.Exec(`UPDATE t SET v = randomblob(1000) WHERE id % 160 = ?`, j); err != nil {
				b.Fatal(err)
			}
			if err := d.Sync(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		stop := peakHeap()
		out, err := d.Compact(ctx, 1)
		if err != nil || len(out) != 1 {
			b.Fatalf("compact: %v, %v", out, err)
		}
		peak = max(peak, stop())
		b.StopTimer()
		d.Close(ctx)
		b.StartTimer()
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}
