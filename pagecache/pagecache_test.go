package pagecache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pierrec/lz4/v4"
	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/index/indextest"
	"github.com/litestream-go/litestream/internal/testsupport"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/retry"
)

const pageSize = 4096

var quiet = slog.New(slog.DiscardHandler)

// testFile is one LTX file stored in a Mem client with its page index and
// the pages it holds.
type testFile struct {
	info  *ltx.FileInfo
	fi    *index.FileIndex
	pages map[uint32][]byte
	data  []byte // the whole file
}

func (tf *testFile) req(t *testing.T, pgno uint32) Request {
	t.Helper()
	for _, p := range tf.fi.Pages {
		if p.Pgno == pgno {
			return Request{Range: remote.Range{File: tf.info, Offset: p.Offset, Size: p.Size}, Pgno: pgno, PageSize: pageSize}
		}
	}
	t.Fatalf("page %d not in file", pgno)
	return Request{}
}

// putFile stores a file with pages 1..n of random (incompressible) content,
// so frames are about a page long and gaps are predictable.
func putFile(t *testing.T, c *indextest.Mem, rng *rand.Rand, level int, txid ltx.TXID, n uint32) *testFile {
	t.Helper()
	tf := &testFile{pages: map[uint32][]byte{}}
	var pages []indextest.Page
	for p := uint32(1); p <= n; p++ {
		b := make([]byte, pageSize)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		tf.pages[p] = b
		pages = append(pages, indextest.Page{Pgno: p, Data: b})
	}
	minTXID := txid
	if level == remote.SnapshotLevel {
		minTXID = 1
	}
	data, err := indextest.Encode(ltx.Header{PageSize: pageSize, Commit: n, MinTXID: minTXID, MaxTXID: txid}, pages)
	if err != nil {
		t.Fatal(err)
	}
	tf.data = data
	if tf.info, err = c.Put(level, data, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if tf.fi, err = index.ReadFileIndex(context.Background(), c, tf.info); err != nil {
		t.Fatal(err)
	}
	c.Opens.Store(0)
	return tf
}

func newRNG(t *testing.T) *rand.Rand {
	t.Helper()
	return testsupport.Rand(t, 2)
}

func checkPages(t *testing.T, tf *testFile, pgnos []uint32, got [][]byte) {
	t.Helper()
	if len(got) != len(pgnos) {
		t.Fatalf("%d pages, want %d", len(got), len(pgnos))
	}
	for i, p := range pgnos {
		if !bytes.Equal(got[i], tf.pages[p]) {
			t.Fatalf("page %d content differs", p)
		}
	}
}

func TestCoalescing(t *testing.T) {
	rng := newRNG(t)
	c := indextest.NewMem()
	a := putFile(t, c, rng, 9, 1, 300)
	b := putFile(t, c, rng, 0, 2, 300)
	frame := a.fi.Pages[1].Size // every random page's frame is about this long

	tests := []struct {
		name      string
		opts      Options
		reqs      func() ([]Request, []*testFile, []uint32)
		wantFetch int64
	}{
		{
			name: "contiguous run is one request",
			reqs: func() ([]Request, []*testFile, []uint32) { return reqsOf(t, a, pgnoRange(10, 60)) },
			// 51 pages of ~4 KiB < 4 MiB.
			wantFetch: 1,
		},
		{
			name: "small gaps are read through",
			reqs: func() ([]Request, []*testFile, []uint32) { return reqsOf(t, a, []uint32{1, 3, 5, 9, 17}) },
			// Gaps of at most 7 frames (~28 KiB) < 64 KiB.
			wantFetch: 1,
		},
		{
			name:      "large gap splits",
			reqs:      func() ([]Request, []*testFile, []uint32) { return reqsOf(t, a, []uint32{1, 2, 100, 101, 250}) },
			wantFetch: 3,
		},
		{
			name: "request size bound splits a run",
			opts: Options{MaxRequestBytes: 10 * frame},
			reqs: func() ([]Request, []*testFile, []uint32) { return reqsOf(t, a, pgnoRange(1, 40)) },
			// ~10 frames per request, frames vary by a few bytes.
			wantFetch: 5,
		},
		{
			name: "files are never merged",
			reqs: func() ([]Request, []*testFile, []uint32) {
				r1, f1, p1 := reqsOf(t, a, []uint32{5, 6})
				r2, f2, p2 := reqsOf(t, b, []uint32{5, 6})
				return append(r1, r2...), append(f1, f2...), append(p1, p2...)
			},
			wantFetch: 2,
		},
		{
			name: "unsorted duplicate requests",
			reqs: func() ([]Request, []*testFile, []uint32) { return reqsOf(t, a, []uint32{30, 10, 20, 10, 30}) },
			// 10..30 spans 20 frames (~80 KiB); gaps of 9 frames < 64 KiB.
			wantFetch: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFetcher(c, New(64<<20), tt.opts)
			reqs, files, pgnos := tt.reqs()
			got, err := f.ReadPages(context.Background(), reqs)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if !bytes.Equal(got[i], files[i].pages[pgnos[i]]) {
					t.Fatalf("request %d (page %d) content differs", i, pgnos[i])
				}
			}
			st := f.Stats()
			if tt.name == "request size bound splits a run" {
				if st.Fetches < 4 || st.Fetches > 5 {
					t.Fatalf("%d range requests, want 4 or 5", st.Fetches)
				}
			} else if st.Fetches != tt.wantFetch {
				t.Fatalf("%d range requests, want %d", st.Fetches, tt.wantFetch)
			}
			// A second read is served from the cache.
			if _, err := f.ReadPages(context.Background(), reqs); err != nil {
				t.Fatal(err)
			}
			if st2 := f.Stats(); st2.Fetches != st.Fetches || st2.Hits != st.Hits+int64(len(reqs)) {
				t.Fatalf("second read: %+v after %+v", st2, st)
			}
		})
	}
}

func pgnoRange(from, to uint32) []uint32 {
	var out []uint32
	for p := from; p <= to; p++ {
		out = append(out, p)
	}
	return out
}

func reqsOf(t *testing.T, tf *testFile, pgnos []uint32) ([]Request, []*testFile, []uint32) {
	var reqs []Request
	var files []*testFile
	for _, p := range pgnos {
		reqs = append(reqs, tf.req(t, p))
		files = append(files, tf)
	}
	return reqs, files, pgnos
}

// blockingClient makes every OpenLTXFile wait until release is closed, and
// reports each call on entered.
func blockingHook(entered chan<- struct{}, release <-chan struct{}) func(int, ltx.TXID, ltx.TXID, int64, int64) error {
	return func(int, ltx.TXID, ltx.TXID, int64, int64) error {
		entered <- struct{}{}
		<-release
		return nil
	}
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDedupConcurrentMisses(t *testing.T) {
	rng := newRNG(t)
	c := indextest.NewMem()
	a := putFile(t, c, rng, 9, 1, 50)
	entered := make(chan struct{}, 100)
	release := make(chan struct{})
	c.OpenHook = blockingHook(entered, release)
	f := NewFetcher(c, New(64<<20), Options{})

	const readers = 32
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Half ask for page 7 alone, half for 6..8 in one batch.
			var got [][]byte
			var err error
			if i%2 == 0 {
				var b []byte
				b, err = f.ReadPage(context.Background(), a.req(t, 7))
				got = [][]byte{nil, b, nil}
			} else {
				got, err = f.ReadPages(context.Background(), []Request{a.req(t, 6), a.req(t, 7), a.req(t, 8)})
			}
			if err == nil && !bytes.Equal(got[1], a.pages[7]) {
				err = errors.New("page 7 content differs")
			}
			errs <- err
		}()
	}
	// Every reader has either registered a miss or joined one before any
	// request is allowed to complete.
	waitFor(t, "all readers to join", func() bool {
		st := f.Stats()
		return st.Misses+st.Waits >= readers*2 // 16 readers x 1 page + 16 x 3 pages = 64 page requests
	})
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st := f.Stats()
	// Page 7 is fetched once; 6 and 8 at most once each (possibly coalesced
	// with 7 if the first reader asked for the batch).
	if st.Misses > 3 || c.Opens.Load() > 3 {
		t.Fatalf("stats %+v, %d requests: concurrent misses were not deduplicated", st, c.Opens.Load())
	}
	if st.Misses+st.Waits+st.Hits != 16+16*3 {
		t.Fatalf("stats %+v do not add up to 64 page requests", st)
	}
}

func TestLRUBound(t *testing.T) {
	rng := newRNG(t)
	c := indextest.NewMem()
	a := putFile(t, c, rng, 9, 1, 40)
	cache := New(10 * pageSize)
	f := NewFetcher(c, cache, Options{})
	ctx := context.Background()

	for p := uint32(1); p <= 31; p++ {
		if _, err := f.ReadPage(ctx, a.req(t, p)); err != nil {
			t.Fatal(err)
		}
		if st := cache.Stats(); st.Bytes > 10*pageSize || st.Pages > 10 {
			t.Fatalf("cache over budget after page %d: %+v", p, st)
		}
		if p == 25 {
			// Touch page 21: page 31 then evicts 22 instead.
			if _, err := f.ReadPage(ctx, a.req(t, 21)); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := cache.Stats()
	if st.Pages != 10 || st.Bytes != 10*pageSize || st.Evictions != 21 {
		t.Fatalf("cache stats %+v", st)
	}
	for _, tc := range []struct {
		pgno   uint32
		cached bool
	}{{1, false}, {20, false}, {21, true}, {22, false}, {23, true}, {31, true}} {
		if got := f.Cached(a.req(t, tc.pgno)); got != tc.cached {
			t.Errorf("page %d cached = %v, want %v", tc.pgno, got, tc.cached)
		}
	}

	// A sharded cache keeps its total budget too.
	big := putFile(t, c, rng, 0, 2, 2000)
	cache = New(16 << 20)
	f = NewFetcher(c, cache, Options{})
	reqs, _, _ := reqsOf(t, big, pgnoRange(1, 2000))
	if _, err := f.ReadPages(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	if st := cache.Stats(); st.Bytes > 16<<20 || st.Pages < 3000 && st.Pages > 2000 {
		t.Fatalf("sharded cache stats %+v", st)
	}
	// 2000 pages = 8000 KiB fit in 16 MiB only if shards are balanced
	// enough: expect nearly all of them cached.
	if st := cache.Stats(); st.Pages < 1900 {
		t.Errorf("sharded cache kept only %d of 2000 pages: %+v", st.Pages, st)
	}
}

func TestSharedCacheNamespaces(t *testing.T) {
	// Two replicas with a file of the same name but different content.
	rng := newRNG(t)
	c1, c2 := indextest.NewMem(), indextest.NewMem()
	a1 := putFile(t, c1, rng, 9, 1, 5)
	a2 := putFile(t, c2, rng, 9, 1, 5)
	cache := New(1 << 20)
	f1, f2 := NewFetcher(c1, cache, Options{}), NewFetcher(c2, cache, Options{})
	b1, err := f1.ReadPage(context.Background(), a1.req(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	b2, err := f2.ReadPage(context.Background(), a2.req(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1, a1.pages[3]) || !bytes.Equal(b2, a2.pages[3]) {
		t.Fatal("replicas sharing a cache saw each other's pages")
	}
}

// oldFrame encodes a page the way ltx before v0.5.2 did: page header without
// the size flag, then an LZ4 frame.
func oldFrame(t *testing.T, pgno uint32, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	hb, _ := (&ltx.PageHeader{Pgno: pgno}).MarshalBinary()
	buf.Write(hb)
	zw := lz4.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPageEncodingsAndChecks(t *testing.T) {
	rng := newRNG(t)
	page := func(seed byte) []byte {
		b := make([]byte, pageSize)
		for i := range b {
			b[i] = seed + byte(i%7)
		}
		return b
	}
	// A file whose frames use both encodings: 1 and 3 old LZ4 frames, 2 a
	// block. The fetcher only needs the header and the frames.
	hdr := ltx.Header{Version: ltx.Version, Flags: ltx.HeaderFlagNoChecksum, PageSize: pageSize, Commit: 3, MinTXID: 4, MaxTXID: 4, Timestamp: 1}
	hb, _ := hdr.MarshalBinary()
	file := bytes.NewBuffer(hb)
	var frames []remote.Range
	info := &ltx.FileInfo{Level: 0, MinTXID: 4, MaxTXID: 4}
	blockFile := putFile(t, indextest.NewMem(), rng, 0, 4, 3)
	blockFrame := func(pgno uint32) []byte {
		r := blockFile.req(t, pgno)
		return blockFile.raw(t)[r.Offset : r.Offset+r.Size]
	}
	want := map[uint32][]byte{1: page(1), 2: blockFile.pages[2], 3: page(3)}
	for pgno := uint32(1); pgno <= 3; pgno++ {
		var fr []byte
		if pgno == 2 {
			fr = blockFrame(2)
		} else {
			fr = oldFrame(t, pgno, want[pgno])
		}
		frames = append(frames, remote.Range{File: info, Offset: int64(file.Len()), Size: int64(len(fr))})
		file.Write(fr)
	}
	c := indextest.NewMem()
	if _, err := c.Put(0, file.Bytes(), time.Time{}); err != nil {
		t.Fatal(err)
	}
	f := NewFetcher(c, New(1<<20), Options{})
	ctx := context.Background()
	var reqs []Request
	for i, fr := range frames {
		reqs = append(reqs, Request{Range: fr, Pgno: uint32(i + 1), PageSize: pageSize})
	}
	got, err := f.ReadPages(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if !bytes.Equal(got[i], want[uint32(i+1)]) {
			t.Fatalf("page %d differs", i+1)
		}
		if cap(got[i]) != pageSize {
			t.Errorf("page %d keeps a %d-byte buffer alive", i+1, cap(got[i]))
		}
	}

	// Wrong page number and wrong page size are errors naming the file.
	for _, tc := range []struct {
		name   string
		req    Request
		errHas string
	}{
		{"wrong pgno (old encoding)", Request{Range: frames[0], Pgno: 9, PageSize: pageSize}, "holds page 1"},
		{"wrong pgno (block)", Request{Range: frames[1], Pgno: 3, PageSize: pageSize}, "holds page 2"},
		{"wrong page size (old encoding)", Request{Range: frames[2], Pgno: 3, PageSize: 1024}, "page size is 1024"},
		{"wrong page size (block)", Request{Range: frames[1], Pgno: 2, PageSize: 8192}, "page size is 8192"},
		{"frame cut short", Request{Range: remote.Range{File: info, Offset: frames[1].Offset, Size: 20}, Pgno: 2, PageSize: pageSize}, "exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewFetcher(c, New(1<<20), Options{}).ReadPage(ctx, tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.errHas) || !strings.Contains(err.Error(), "level 0 file 0000000000000004-0000000000000004.ltx") {
				t.Fatalf("error %v, want one naming the file and containing %q", err, tc.errHas)
			}
		})
	}
}

func (tf *testFile) raw(t *testing.T) []byte { return tf.data }

func TestRetries(t *testing.T) {
	rng := newRNG(t)
	c := indextest.NewMem()
	a := putFile(t, c, rng, 9, 1, 5)
	ctx := context.Background()

	var calls atomic.Int64
	var failures int64
	c.OpenHook = func(int, ltx.TXID, ltx.TXID, int64, int64) error {
		if calls.Add(1) <= failures {
			return fmt.Errorf("injected failure")
		}
		return nil
	}
	tests := []struct {
		name        string
		failures    int64
		wantErr     bool
		wantFetches int64
	}{
		{"transient failures are retried", 2, false, 3},
		{"persistent failure gives up", 100, true, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls.Store(0)
			failures = tt.failures
			f := NewFetcher(c, New(1<<20), Options{Retry: retry.Policy{Base: time.Millisecond}, Logger: quiet})
			b, err := f.ReadPage(ctx, a.req(t, 2))
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "injected failure") || !strings.Contains(err.Error(), "0000000000000001-0000000000000001.ltx") || !strings.Contains(err.Error(), "4 attempts") {
					t.Fatalf("error %v", err)
				}
			} else if err != nil || !bytes.Equal(b, a.pages[2]) {
				t.Fatalf("read: %v", err)
			}
			if st := f.Stats(); st.Fetches != tt.wantFetches {
				t.Fatalf("stats %+v, want %d fetches", st, tt.wantFetches)
			}
		})
	}

	// A missing file is not retried.
	c.OpenHook = nil
	f := NewFetcher(c, New(1<<20), Options{Retry: retry.Policy{Base: time.Millisecond}, Logger: quiet})
	missing := a.req(t, 2)
	missing.File = &ltx.FileInfo{Level: 9, MinTXID: 1, MaxTXID: 99}
	if _, err := f.ReadPage(ctx, missing); !errors.Is(err, remote.ErrNotExist) || f.Stats().Fetches != 1 {
		t.Fatalf("error %v, stats %+v", err, f.Stats())
	}

	// Nor is a failure the backend marked permanent (denied access), or
	// one it already retried to exhaustion: budgets do not multiply.
	for _, fail := range []error{
		retry.Permanent(errors.New("access denied")),
		&retry.ExhaustedError{Attempts: 5, Err: errors.New("connection reset")},
	} {
		c.OpenHook = func(int, ltx.TXID, ltx.TXID, int64, int64) error { return fail }
		f := NewFetcher(c, New(1<<20), Options{Retry: retry.Policy{Base: time.Millisecond}, Logger: quiet})
		if _, err := f.ReadPage(ctx, a.req(t, 2)); !errors.Is(err, fail) || f.Stats().Fetches != 1 {
			t.Fatalf("%v: error %v, stats %+v", fail, err, f.Stats())
		}
	}
}

// TestShortBody: a remote whose reader yields fewer bytes than asked (a
// body cut short) is an error or a retry, never a page decoded from a
// partial buffer.
func TestShortBody(t *testing.T) {
	rng := newRNG(t)
	c := indextest.NewMem()
	a := putFile(t, c, rng, 9, 1, 5)
	short := &shortClient{Client: c}
	f := NewFetcher(short, New(1<<20), Options{Retry: retry.Policy{Attempts: 3, Base: time.Millisecond}, Logger: quiet})
	short.cut.Store(1)
	b, err := f.ReadPage(t.Context(), a.req(t, 3))
	if err != nil || !bytes.Equal(b, a.pages[3]) || f.Stats().Retries != 1 {
		t.Fatalf("one short body: %v, equal %v, stats %+v", err, bytes.Equal(b, a.pages[3]), f.Stats())
	}
	short.cut.Store(100)
	if _, err := f.ReadPage(t.Context(), a.req(t, 4)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short bodies only: %v", err)
	}
}

// shortClient cuts the body of the next cut reads in half.
type shortClient struct {
	remote.Client
	cut atomic.Int64
}

func (c *shortClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	rc, err := c.Client.OpenLTXFile(ctx, level, minTXID, maxTXID, offset, size)
	if err != nil || c.cut.Add(-1) < 0 {
		return rc, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(rc, size/2), rc}, nil
}

// A reader waiting on another reader's fetch is not failed by that reader's
// cancellation: it fetches the page itself.
func TestWaiterSurvivesOwnerCancel(t *testing.T) {
	rng := newRNG(t)
	c := indextest.NewMem()
	a := putFile(t, c, rng, 9, 1, 5)
	entered := make(chan struct{}, 10)
	release := make(chan struct{})
	var first atomic.Bool
	c.OpenHook = func(int, ltx.TXID, ltx.TXID, int64, int64) error {
		if first.CompareAndSwap(false, true) {
			entered <- struct{}{}
			<-release
		}
		return nil
	}
	f := NewFetcher(c, New(1<<20), Options{})

	ctxA, cancelA := context.WithCancel(context.Background())
	errA := make(chan error, 1)
	go func() {
		_, err := f.ReadPage(ctxA, a.req(t, 3))
		errA <- err
	}()
	<-entered
	type result struct {
		b   []byte
		err error
	}
	resB := make(chan result, 1)
	go func() {
		b, err := f.ReadPage(context.Background(), a.req(t, 3))
		resB <- result{b, err}
	}()
	waitFor(t, "B to join A's fetch", func() bool { return f.Stats().Waits == 1 })
	cancelA()
	close(release)
	if err := <-errA; !errors.Is(err, context.Canceled) {
		t.Fatalf("A: %v", err)
	}
	r := <-resB
	if r.err != nil || !bytes.Equal(r.b, a.pages[3]) {
		t.Fatalf("B: %v", r.err)
	}
}

// Many readers over several files with a cache smaller than the data: every
// page read is correct (run with -race).
func TestConcurrentStress(t *testing.T) {
	rng := newRNG(t)
	c := indextest.NewMem()
	files := []*testFile{putFile(t, c, rng, 9, 1, 200), putFile(t, c, rng, 1, 2, 200), putFile(t, c, rng, 0, 3, 200)}
	f := NewFetcher(c, New(100*pageSize), Options{Parallelism: 4})
	seeds := make([]uint64, 8)
	for i := range seeds {
		seeds[i] = rng.Uint64()
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(seeds))
	for _, seed := range seeds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 3))
			for i := 0; i < 200; i++ {
				tf := files[r.IntN(len(files))]
				n := 1 + r.IntN(16)
				start := uint32(1 + r.IntN(200-n))
				pgnos := pgnoRange(start, start+uint32(n)-1)
				var reqs []Request
				for _, p := range pgnos {
					reqs = append(reqs, tf.req(t, p))
				}
				got, err := f.ReadPages(context.Background(), reqs)
				if err != nil {
					errs <- err
					return
				}
				for j, p := range pgnos {
					if !bytes.Equal(got[j], tf.pages[p]) {
						errs <- fmt.Errorf("page %d of %s differs", p, ltx.FormatFilename(tf.info.MinTXID, tf.info.MaxTXID))
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := f.Stats()
	t.Logf("stats %+v, cache %+v", st, f.Cache().Stats())
	if f.Cache().Stats().Bytes > 100*pageSize {
		t.Fatal("cache over budget")
	}
}

func BenchmarkReadPageHit(b *testing.B) {
	t := &testing.T{}
	rng := rand.New(rand.NewPCG(1, 1))
	c := indextest.NewMem()
	a := putFile(t, c, rng, 9, 1, 1000)
	f := NewFetcher(c, New(64<<20), Options{})
	reqs, _, _ := reqsOf(t, a, pgnoRange(1, 1000))
	if _, err := f.ReadPages(context.Background(), reqs); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := f.ReadPage(context.Background(), reqs[i%1000]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

func BenchmarkReadPagesMiss(b *testing.B) {
	t := &testing.T{}
	rng := rand.New(rand.NewPCG(1, 1))
	c := indextest.NewMem()
	a := putFile(t, c, rng, 9, 1, 1000)
	reqs, _, _ := reqsOf(t, a, pgnoRange(1, 1000))
	b.SetBytes(1000 * pageSize)
	for b.Loop() {
		f := NewFetcher(c, New(64<<20), Options{})
		if _, err := f.ReadPages(context.Background(), reqs); err != nil {
			b.Fatal(err)
		}
	}
}
