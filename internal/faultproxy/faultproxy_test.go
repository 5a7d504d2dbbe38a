package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// upstream is a small object server: GET returns a fixed body per path,
// PUT stores nothing, and it counts what reaches it and the Host it saw.
type upstream struct {
	*httptest.Server
	hits  atomic.Int64
	mu    sync.Mutex
	hosts []string
}

func body(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func startUpstream(t *testing.T, size int) *upstream {
	t.Helper()
	u := &upstream{}
	data := body(size)
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		u.mu.Lock()
		u.hosts = append(u.hosts, r.Host)
		u.mu.Unlock()
		_, _ = io.Copy(io.Discard, r.Body)
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			w.Header().Set("ETag", `"abc"`)
			if r.Method == http.MethodGet {
				_, _ = w.Write(data)
			}
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	t.Cleanup(u.Close)
	return u
}

// client makes one connection per request, so Go's transport never
// retries a request on its own (it does for idempotent requests on reused
// connections) and the test sees exactly the injected fault.
func client(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, []byte, error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestPassThrough(t *testing.T) {
	up := startUpstream(t, 100_000)
	p := StartT(t, up.URL, Options{})
	c := client(10 * time.Second)
	resp, b, err := get(t, c, p.URL()+"/bucket/db/0000/x.ltx")
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(b, body(100_000)) {
		t.Fatalf("GET through the proxy: %v, %d bytes, status %v", err, len(b), resp)
	}
	req, _ := http.NewRequest(http.MethodPut, p.URL()+"/bucket/db/0000/y.ltx", strings.NewReader("hello"))
	if resp, err := c.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT: %v %v", resp, err)
	}
	if _, _, err := get(t, c, p.URL()+"/bucket?list-type=2&prefix=db/"); err != nil {
		t.Fatal(err)
	}
	up.mu.Lock()
	for _, h := range up.hosts {
		if h != p.Addr() {
			t.Errorf("server saw Host %q, want the proxy's %q (signatures cover it)", h, p.Addr())
		}
	}
	up.mu.Unlock()
	s := p.Stats()
	if s.Requests[ClassGET] != 1 || s.Requests[ClassPUT] != 1 || s.Requests[ClassLIST] != 1 || s.Failures() != 0 {
		t.Fatalf("stats %s", s)
	}
}

// TestKinds forces each kind on one GET and checks what the client sees.
func TestKinds(t *testing.T) {
	const size = 200_000
	want := body(size)
	up := startUpstream(t, size)
	p := StartT(t, up.URL, Options{StallFor: 30 * time.Second, SlowFor: 200 * time.Millisecond})
	url := p.URL() + "/bucket/key"

	for _, k := range Kinds {
		t.Run(k.String(), func(t *testing.T) {
			before := up.hits.Load()
			p.Force(ClassGET, k, 1)
			timeout := 10 * time.Second
			if k == Stall || k == StallMidBody {
				timeout = 300 * time.Millisecond
			}
			start := time.Now()
			resp, b, err := get(t, client(timeout), url)
			took := time.Since(start)
			forwarded := up.hits.Load() - before
			t.Logf("%s: err=%v, %d bytes, %v, forwarded %d", k, err, len(b), took, forwarded)
			switch k {
			case Status500, Status503:
				if err != nil || resp.StatusCode != map[Kind]int{Status500: 500, Status503: 503}[k] || forwarded != 0 {
					t.Fatalf("want an injected %s, got %v %v (forwarded %d)", k, resp, err, forwarded)
				}
				if !strings.Contains(string(b), "<Code>") {
					t.Fatalf("error body %q is not an S3 error", b)
				}
			case Reset, LostResponse:
				if !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("want a connection reset, got %v", err)
				}
				if wantFwd := int64(map[Kind]int{Reset: 0, LostResponse: 1}[k]); forwarded != wantFwd {
					t.Fatalf("forwarded %d requests, want %d", forwarded, wantFwd)
				}
			case ResetMidBody, Truncate, StallMidBody:
				if resp == nil || resp.ContentLength != size {
					t.Fatalf("want the full Content-Length %d, got %v (%v)", size, resp, err)
				}
				if len(b) >= size || !bytes.Equal(b, want[:len(b)]) {
					t.Fatalf("got %d bytes, want a correct prefix shorter than %d", len(b), size)
				}
				switch k {
				case ResetMidBody:
					if !errors.Is(err, syscall.ECONNRESET) {
						t.Fatalf("want a reset, got %v", err)
					}
				case Truncate:
					if !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Fatalf("want unexpected EOF, got %v", err)
					}
				case StallMidBody:
					if !isTimeout(err) {
						t.Fatalf("want a client timeout, got %v", err)
					}
				}
			case Stall:
				if !isTimeout(err) || forwarded != 0 {
					t.Fatalf("want a client timeout before any response, got %v (forwarded %d)", err, forwarded)
				}
			case SlowBody:
				if err != nil || !bytes.Equal(b, want) {
					t.Fatalf("slow body: %v, %d bytes", err, len(b))
				}
				if took < 150*time.Millisecond {
					t.Fatalf("slow body took %v, want about 200ms", took)
				}
			}
			if got := p.Stats().ByClass[ClassGET][k]; got != 1 {
				t.Fatalf("%s counted %d times", k, got)
			}
		})
	}
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// TestEmptyBodies: kinds that cut a body fall back to losing the response
// when there is none (HEAD, PUT), and are counted as what they did.
func TestEmptyBodies(t *testing.T) {
	up := startUpstream(t, 1000)
	p := StartT(t, up.URL, Options{})
	c := client(10 * time.Second)
	p.Force(ClassPUT, Truncate, 1)
	req, _ := http.NewRequest(http.MethodPut, p.URL()+"/bucket/k", strings.NewReader("x"))
	if _, err := c.Do(req); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("PUT with a truncated empty answer: %v", err)
	}
	p.Force(ClassHEAD, ResetMidBody, 1)
	req, _ = http.NewRequest(http.MethodHead, p.URL()+"/bucket/k", nil)
	if _, err := c.Do(req); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("HEAD: %v", err)
	}
	s := p.Stats()
	if s.ByClass[ClassPUT][LostResponse] != 1 || s.ByClass[ClassHEAD][LostResponse] != 1 || up.hits.Load() != 2 {
		t.Fatalf("stats %s, server hits %d", s, up.hits.Load())
	}
}

// TestRates: the injected fraction matches the rates, per kind, and
// switching off stops it.
func TestRates(t *testing.T) {
	up := startUpstream(t, 2000)
	rates := Transient(0.2)
	p := StartT(t, up.URL, Options{Rates: rates})
	c := &http.Client{Timeout: 10 * time.Second}
	const n = 1000
	for range n {
		resp, err := c.Get(p.URL() + "/bucket/key")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	s := p.Stats()
	// Go's transport silently retries an idempotent request whose reused
	// connection was reset, so there can be more requests than calls.
	total := float64(s.TotalRequests())
	frac := float64(s.Failures()) / total
	t.Logf("%s: failing fraction %.3f", s, frac)
	// 4 standard deviations of a binomial(1000, 0.2) are about 0.05.
	if math.Abs(frac-0.2) > 0.05 {
		t.Fatalf("failing fraction %.3f, want 0.2", frac)
	}
	for _, k := range quickFailures {
		// Each kind has p = 1/30; 5 standard deviations are about 0.028.
		if f := float64(s.Faults[k]) / total; math.Abs(f-rates[k]) > 0.03 {
			t.Errorf("%s: fraction %.3f, want %.3f", k, f, rates[k])
		}
	}

	p.SetEnabled(false)
	p.ResetStats()
	for range 100 {
		resp, b, err := get(t, c, p.URL()+"/bucket/key")
		if err != nil || resp.StatusCode != 200 || len(b) != 2000 {
			t.Fatalf("with injection off: %v %v", resp, err)
		}
	}
	if s := p.Stats(); s.Failures() != 0 || s.Requests[ClassGET] != 100 {
		t.Fatalf("with injection off: %s", s)
	}
}

// TestSeedDeterminism: two proxies with one seed decide alike for one
// sequence of requests.
func TestSeedDeterminism(t *testing.T) {
	seed := Seed(t)
	var seqs [2][]Kind
	for i := range seqs {
		p, err := Start("http://127.0.0.1:1", Options{Seed: seed, Rates: Transient(0.3).Plus(Stalls(0.1))})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodGet, "/b/k", nil)
		for range 500 {
			seqs[i] = append(seqs[i], p.decide(r, ClassGET))
		}
		p.Close()
	}
	if fmt.Sprint(seqs[0]) != fmt.Sprint(seqs[1]) {
		t.Fatal("one seed gave two sequences of faults")
	}
}

// TestCloseEndsStalls: Close does not wait for StallFor.
func TestCloseEndsStalls(t *testing.T) {
	up := startUpstream(t, 1000)
	p, err := Start(up.URL, Options{Rates: Rates{Stall: 1}, StallFor: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, _, err := get(t, client(0), p.URL()+"/bucket/key")
		errc <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().Faults[Stall] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the request never arrived")
		}
		time.Sleep(5 * time.Millisecond) // polling for the request to arrive
	}
	start := time.Now()
	p.Close()
	if err := <-errc; err == nil {
		t.Fatal("a stalled request succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v", d)
	}
}

func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		method, url string
		want        Class
	}{
		// S3, path style and virtual-host style.
		{"GET", "/bucket?list-type=2&prefix=db%2F0000%2F&delimiter=%2F", ClassLIST},
		{"GET", "/bucket", ClassLIST},
		{"GET", "/?list-type=2", ClassLIST},
		{"GET", "/bucket/db/0000/0000000000000001-0000000000000001.ltx", ClassGET},
		{"GET", "/bucket?location=", ClassOther},
		{"HEAD", "/bucket/db/0000/x.ltx", ClassHEAD},
		{"PUT", "/bucket/db/0000/x.ltx", ClassPUT},
		{"PUT", "/bucket/db/0009/x.ltx?partNumber=2&uploadId=abc", ClassPUT},
		{"POST", "/bucket/db/0009/x.ltx?uploads=", ClassPUT},
		{"POST", "/bucket/db/0009/x.ltx?uploadId=abc", ClassPUT},
		{"POST", "/bucket?delete=", ClassDELETE},
		{"DELETE", "/bucket/db/0009/x.ltx?uploadId=abc", ClassDELETE},
		// Azure Blob (Azurite, path style).
		{"GET", "/devstoreaccount1/c?restype=container&comp=list&prefix=db", ClassLIST},
		{"GET", "/devstoreaccount1/c/db/ltx/0/x.ltx", ClassGET},
		{"PUT", "/devstoreaccount1/c/db/ltx/0/x.ltx?comp=blocklist", ClassPUT},
		// GCS JSON API.
		{"GET", "/storage/v1/b/bucket/o?prefix=db", ClassLIST},
		{"GET", "/storage/v1/b/bucket/o/db%2Fltx%2F0%2Fx.ltx?alt=media", ClassGET},
		{"POST", "/upload/storage/v1/b/bucket/o?uploadType=multipart", ClassPUT},
		// WebDAV.
		{"PROPFIND", "/backups/app/ltx/0/", ClassLIST},
		{"MKCOL", "/backups/app/ltx/0/", ClassPUT},
		{"MOVE", "/backups/app/ltx/0/.x.tmp", ClassPUT},
		{"GET", "/backups/app/ltx/0/x.ltx", ClassGET},
	} {
		r := httptest.NewRequest(tt.method, tt.url, nil)
		if got := Classify(r); got != tt.want {
			t.Errorf("%s %s: %s, want %s", tt.method, tt.url, got, tt.want)
		}
	}
}

func TestParseRates(t *testing.T) {
	r, err := ParseRates("500=0.1, reset=0.05,truncate=0.05")
	if err != nil || r[Status500] != 0.1 || r[Reset] != 0.05 || r[Truncate] != 0.05 || len(r) != 3 {
		t.Fatalf("%v %v", r, err)
	}
	if back, err := ParseRates(r.String()); err != nil || back.String() != r.String() {
		t.Fatalf("round trip %q: %v %v", r, back, err)
	}
	r, err = ParseRates("transient=0.2,stalls=0.02,slow-body=0.1")
	if err != nil || math.Abs(r.Failing()-0.22) > 1e-9 || r[SlowBody] != 0.1 {
		t.Fatalf("%v %v", r, err)
	}
	for _, bad := range []string{"500", "nope=0.1", "500=x", "500=0.7,503=0.7", "reset=-1"} {
		if _, err := ParseRates(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if r, err := ParseRates(""); err != nil || len(r) != 0 {
		t.Fatalf("empty: %v %v", r, err)
	}
}

// TestConcurrent: many clients at once under faults; every response that
// succeeds is complete and correct (the proxy never corrupts data), and
// the proxy closes cleanly.
func TestConcurrent(t *testing.T) {
	const size = 50_000
	want := body(size)
	up := startUpstream(t, size)
	p := StartT(t, up.URL, Options{Rates: Transient(0.3).Plus(Stalls(0.05)).Plus(Rates{SlowBody: 0.05}),
		StallFor: 5 * time.Second, SlowFor: 20 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	for range 8 {
		wg.Go(func() {
			c := &http.Client{Timeout: 500 * time.Millisecond}
			for range 40 {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL()+"/bucket/key", nil)
				resp, err := c.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case err != nil:
					failed.Add(1)
				case resp.StatusCode != 200:
					failed.Add(1)
				case !bytes.Equal(b, want):
					t.Errorf("a complete response of %d bytes has wrong content", len(b))
				default:
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d ok, %d failed: %s", ok.Load(), failed.Load(), p.Stats())
	if ok.Load() == 0 || failed.Load() == 0 {
		t.Fatal("want both successes and failures")
	}
}

// TestLatency checks that every request waits Latency before it reaches the
// server, and that SetLatency changes it.
func TestLatency(t *testing.T) {
	up := startUpstream(t, 10)
	p := StartT(t, up.URL, Options{Latency: 80 * time.Millisecond})
	c := client(10 * time.Second)
	timed := func() time.Duration {
		start := time.Now()
		if resp, _, err := get(t, c, p.URL()+"/bucket/db/x"); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET: %v %v", resp, err)
		}
		return time.Since(start)
	}
	if d := timed(); d < 80*time.Millisecond {
		t.Fatalf("GET with 80ms latency took %v", d)
	}
	p.SetLatency(0)
	timed()
	p.SetLatency(300 * time.Millisecond)
	if d := timed(); d < 300*time.Millisecond {
		t.Fatalf("GET after SetLatency(300ms) took %v", d)
	}
	if up.hits.Load() != 3 {
		t.Fatalf("server saw %d requests, want 3", up.hits.Load())
	}
}
