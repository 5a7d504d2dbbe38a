// Package faultproxy is an HTTP reverse proxy on 127.0.0.1 that injects
// storage faults between a client and a real server (MinIO, Azurite,
// fake-gcs-server, a WebDAV server): 500 and 503 answers, connection resets
// before the response, after the server applied the request, or in the
// middle of the body, bodies truncated under their full Content-Length,
// stalls before or inside the body, and slow bodies.
//
// Faults are drawn per request from a seeded random source, at a
// configurable rate per kind (Rates; Transient and Stalls give the usual
// mixes), can be switched on and off at runtime, and can be forced on the
// next requests of a class (Force) for tests of one specific failure.
// Requests and injected faults are counted by kind and by request class
// (GET, HEAD, PUT, LIST, DELETE, as object stores bill them).
//
// The proxy keeps the request's Host header, so signed requests (S3 SigV4,
// Azure shared key) stay valid. It speaks HTTP/1.1 to the client and is
// meant for tests only.
package faultproxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Proxy. The zero value injects nothing.
type Options struct {
	// Seed seeds the random source that picks faults and cut points.
	// Print it: with the same seed and the same sequence of requests the
	// same faults are injected (concurrent requests arrive in an order
	// the seed does not fix).
	Seed uint64
	// Rates are the fault probabilities per request (see Rates).
	Rates Rates
	// Disabled starts the proxy with random injection off (SetEnabled
	// turns it on). Forced faults apply either way.
	Disabled bool
	// StallFor is how long a stall lasts if the client does not give up
	// first (default 1 minute: beyond any client timeout worth testing).
	StallFor time.Duration
	// SlowFor is how long a slow body takes to deliver (default 300ms).
	SlowFor time.Duration
	// Classify returns a request's class (default: Classify).
	Classify func(*http.Request) Class
	// Eligible, if set, limits random faults to the requests it accepts.
	Eligible func(*http.Request, Class) bool
	// ErrorBody returns the content type and body of an injected error
	// answer (default: an S3 XML error, InternalError or SlowDown).
	ErrorBody func(status int) (contentType string, body []byte)
	// Logf, if set, receives one line per injected fault.
	Logf func(format string, args ...any)
	// Latency is added to every request before it is forwarded (or its
	// fault injected), as a distant object store adds it: the benchmarks'
	// "20 ms per request". SetLatency changes it at runtime.
	Latency time.Duration
}

// Proxy is a running fault-injecting proxy. Its methods are safe for
// concurrent use.
type Proxy struct {
	opts   Options
	target *url.URL
	url    string
	ln     net.Listener
	srv    *http.Server
	rp     *httputil.ReverseProxy
	tr     *http.Transport
	closed chan struct{}
	wg     sync.WaitGroup // hijacked connections still being served

	connsMu sync.Mutex
	conns   map[net.Conn]struct{} // hijacked connections, closed by Close

	enabled atomic.Bool
	latency atomic.Int64 // time.Duration

	mu     sync.Mutex
	rng    *rand.Rand
	rates  Rates
	kinds  []Kind // rates' kinds with a positive rate, in order
	forced []forced

	requests [numClasses]atomic.Int64
	faults   [numClasses][numKinds]atomic.Int64
}

type forced struct {
	class Class
	any   bool
	kind  Kind
}

// Start starts a proxy on 127.0.0.1 (a free port) in front of target, a
// base URL such as "http://127.0.0.1:9000".
func Start(target string, opts Options) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: target %q is not a base URL", target)
	}
	if err := opts.Rates.Validate(); err != nil {
		return nil, err
	}
	if opts.StallFor <= 0 {
		opts.StallFor = time.Minute
	}
	if opts.SlowFor <= 0 {
		opts.SlowFor = 300 * time.Millisecond
	}
	if opts.Classify == nil {
		opts.Classify = Classify
	}
	if opts.ErrorBody == nil {
		opts.ErrorBody = s3ErrorBody
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{
		opts:   opts,
		target: u,
		url:    "http://" + ln.Addr().String(),
		ln:     ln,
		closed: make(chan struct{}),
		conns:  make(map[net.Conn]struct{}),
		rng:    rand.New(rand.NewPCG(opts.Seed, 0x6661756c74)),
		tr: &http.Transport{
			Proxy:               nil,
			DisableCompression:  true, // bodies pass as the server sent them
			MaxIdleConnsPerHost: 64,
		},
	}
	p.setRates(opts.Rates)
	p.enabled.Store(!opts.Disabled)
	p.latency.Store(int64(opts.Latency))
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host // signatures cover the Host header
		},
		Transport: p.tr,
		ErrorLog:  log.New(io.Discard, "", 0), // clients that give up are expected
	}
	p.srv = &http.Server{Handler: p, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// URL returns the proxy's base URL, "http://127.0.0.1:PORT".
func (p *Proxy) URL() string { return p.url }

// Addr returns the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetLatency sets the delay added to every request from now on.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// SetEnabled switches random injection on or off.
func (p *Proxy) SetEnabled(on bool) { p.enabled.Store(on) }

// Enabled reports whether random injection is on.
func (p *Proxy) Enabled() bool { return p.enabled.Load() }

// SetRates replaces the fault rates.
func (p *Proxy) SetRates(r Rates) error {
	if err := r.Validate(); err != nil {
		return err
	}
	p.setRates(r)
	return nil
}

func (p *Proxy) setRates(r Rates) {
	c := Rates{}
	for k, v := range r {
		c[k] = v
	}
	p.mu.Lock()
	p.rates, p.kinds = c, c.sortedKinds()
	p.mu.Unlock()
}

// Rates returns the current fault rates.
func (p *Proxy) Rates() Rates {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rates.Plus(nil)
}

// Force makes the next n requests of class get kind, whether random
// injection is on or not. Forced faults queue in the order given. Kind 0
// lets the requests pass unharmed, so that Force(c, 0, 2) then
// Force(c, Reset, 1) resets the third request of class c.
func (p *Proxy) Force(class Class, kind Kind, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range n {
		p.forced = append(p.forced, forced{class: class, kind: kind})
	}
}

// ForceAny makes the next n requests, of any class, get kind.
func (p *Proxy) ForceAny(kind Kind, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range n {
		p.forced = append(p.forced, forced{any: true, kind: kind})
	}
}

// ClearForced drops the forced faults not yet injected and returns how
// many there were.
func (p *Proxy) ClearForced() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.forced)
	p.forced = nil
	return n
}

// Close stops the proxy, ends stalls, and closes every connection.
func (p *Proxy) Close() error {
	select {
	case <-p.closed:
		return nil
	default:
	}
	close(p.closed)
	err := p.srv.Close()
	p.connsMu.Lock()
	for c := range p.conns {
		reset(c)
	}
	p.connsMu.Unlock()
	p.wg.Wait()
	p.tr.CloseIdleConnections()
	return err
}

// decide counts the request and returns the fault it gets (0: none).
func (p *Proxy) decide(r *http.Request, class Class) Kind {
	p.requests[class].Add(1)
	p.mu.Lock()
	var kind Kind
	forcedPass := false
	for i, f := range p.forced {
		if f.any || f.class == class {
			kind = f.kind
			forcedPass = kind == 0
			p.forced = append(p.forced[:i], p.forced[i+1:]...)
			break
		}
	}
	if kind == 0 && !forcedPass && p.enabled.Load() && len(p.kinds) > 0 &&
		(p.opts.Eligible == nil || p.opts.Eligible(r, class)) {
		x := p.rng.Float64()
		for _, k := range p.kinds {
			if x < p.rates[k] {
				kind = k
				break
			}
			x -= p.rates[k]
		}
	}
	p.mu.Unlock()
	return kind
}

// cut returns how many of n body bytes to send before a mid-body fault: at
// least one fewer than n.
func (p *Proxy) cut(n int) int {
	if n <= 1 {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.IntN(n)
}

func (p *Proxy) count(class Class, kind Kind, r *http.Request, detail string) {
	p.faults[class][kind].Add(1)
	if p.opts.Logf != nil {
		p.opts.Logf("faultproxy: %s %s %s: %s%s", class, r.Method, r.URL.RequestURI(), kind, detail)
	}
}

// ServeHTTP forwards the request, or injects a fault.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if d := time.Duration(p.latency.Load()); d > 0 && !p.sleep(r.Context(), d) {
		return // the client gave up, or the proxy is closing
	}
	class := p.opts.Classify(r)
	kind := p.decide(r, class)
	switch kind {
	case 0:
		p.rp.ServeHTTP(w, r)
	case Status500, Status503, Reset, Stall:
		p.faultInstead(w, r, class, kind)
	default:
		p.faultOnResponse(w, r, class, kind)
	}
}

// faultInstead answers r with a fault without asking the server: an error
// status, a reset connection, or a stall.
func (p *Proxy) faultInstead(w http.ResponseWriter, r *http.Request, class Class, kind Kind) {
	p.count(class, kind, r, "")
	switch kind {
	case Status500, Status503:
		code := map[Kind]int{Status500: 500, Status503: 503}[kind]
		ct, body := p.opts.ErrorBody(code)
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		if kind == Status503 {
			w.Header().Set("Retry-After", "0")
		}
		w.WriteHeader(code)
		_, _ = w.Write(body)
	case Reset:
		p.hijack(w, func(c net.Conn, _ *bufio.ReadWriter) { reset(c) })
	case Stall:
		p.hijack(w, func(c net.Conn, _ *bufio.ReadWriter) { p.stall(c) })
	}
}

// faultOnResponse forwards r and damages the server's response: lost, cut
// (reset, truncated or stalled mid-body) or slow.
func (p *Proxy) faultOnResponse(w http.ResponseWriter, r *http.Request, class Class, kind Kind) {
	resp, body, err := p.roundTrip(r)
	if err != nil {
		// Not a fault of ours: the server failed (or the client gave up).
		http.Error(w, "faultproxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	head := r.Method == http.MethodHead
	if len(body) == 0 && kind != SlowBody && kind != LostResponse {
		// Nothing to cut: the response is lost as a whole instead.
		if kind == StallMidBody {
			kind = Stall
		} else {
			kind = LostResponse
		}
	}
	switch kind {
	case LostResponse:
		p.count(class, kind, r, fmt.Sprintf(" (the server answered %d)", resp.StatusCode))
		p.hijack(w, func(c net.Conn, _ *bufio.ReadWriter) { reset(c) })
	case Stall:
		p.count(class, kind, r, " (after the server answered)")
		p.hijack(w, func(c net.Conn, _ *bufio.ReadWriter) { p.stall(c) })
	case ResetMidBody, Truncate, StallMidBody:
		n := p.cut(len(body))
		p.count(class, kind, r, fmt.Sprintf(" after %d of %d body bytes", n, len(body)))
		p.hijack(w, func(c net.Conn, bw *bufio.ReadWriter) {
			writeHead(bw.Writer, resp, int64(len(body)), head)
			_, _ = bw.Write(body[:n])
			if bw.Flush() != nil {
				reset(c)
				return
			}
			switch kind {
			case ResetMidBody:
				reset(c)
			case Truncate:
				// A clean close: the client sees the body end early.
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				_ = c.Close()
			case StallMidBody:
				p.stall(c)
			}
		})
	case SlowBody:
		p.count(class, kind, r, fmt.Sprintf(" (%d bytes over %v)", len(body), p.opts.SlowFor))
		p.slowBody(w, r, resp, body, head)
	}
}

// slowBody sends the response in eight pieces over SlowFor.
func (p *Proxy) slowBody(w http.ResponseWriter, r *http.Request, resp *http.Response, body []byte, head bool) {
	copyHeader(w.Header(), resp.Header)
	if !head {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	}
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	const pieces = 8
	step := (len(body) + pieces - 1) / pieces
	for i := 0; i < len(body); i += step {
		if !p.sleep(r.Context(), p.opts.SlowFor/pieces) {
			return
		}
		if _, err := w.Write(body[i:min(i+step, len(body))]); err != nil {
			return
		}
		_ = rc.Flush()
	}
}

// roundTrip forwards r to the server and reads the whole response.
func (p *Proxy) roundTrip(r *http.Request) (*http.Response, []byte, error) {
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host = p.target.Scheme, p.target.Host
	out.RequestURI = ""
	out.Host = r.Host
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	if r.ContentLength == 0 {
		out.Body = nil
	}
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("read the server's response: %w", err)
	}
	return resp, body, nil
}

// hijack takes over the client connection and runs fn on it; fn must close
// it. Close waits for fn.
func (p *Proxy) hijack(w http.ResponseWriter, fn func(net.Conn, *bufio.ReadWriter)) {
	c, bw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // closes the connection
	}
	p.wg.Add(1)
	defer p.wg.Done()
	p.connsMu.Lock()
	select {
	case <-p.closed:
		p.connsMu.Unlock()
		reset(c)
		return
	default:
	}
	p.conns[c] = struct{}{}
	p.connsMu.Unlock()
	defer func() {
		p.connsMu.Lock()
		delete(p.conns, c)
		p.connsMu.Unlock()
	}()
	fn(c, bw)
}

// stall holds c until StallFor passes, the client closes it, or the proxy
// closes; then resets it.
func (p *Proxy) stall(c net.Conn) {
	gone := make(chan struct{})
	go func() {
		// The client's next action on an unanswered request is to close.
		_, _ = io.Copy(io.Discard, c)
		close(gone)
	}()
	t := time.NewTimer(p.opts.StallFor)
	defer t.Stop()
	select {
	case <-t.C:
	case <-gone:
	case <-p.closed:
	}
	reset(c)
	<-gone
}

// sleep waits d; false if ctx ended or the proxy closed first.
// (time.After's timer needs no Stop: since Go 1.23 an unreferenced timer
// is collected before it fires.)
func (p *Proxy) sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
	case <-p.closed:
	}
	return false
}

// reset closes c with an RST instead of a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func copyHeader(dst, src http.Header) {
	for k, vs := range src {
		dst[k] = append([]string(nil), vs...)
	}
	for _, h := range hopHeaders {
		dst.Del(h)
	}
	dst.Del("Content-Length")
}

// writeHead writes the status line and headers of resp with a
// Content-Length of n (for HEAD, the server's own) and Connection: close.
func writeHead(w *bufio.Writer, resp *http.Response, n int64, head bool) {
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\n", resp.StatusCode, http.StatusText(resp.StatusCode))
	h := http.Header{}
	copyHeader(h, resp.Header)
	if head {
		if cl := resp.Header.Get("Content-Length"); cl != "" {
			h.Set("Content-Length", cl)
		}
	} else {
		h.Set("Content-Length", fmt.Sprint(n))
	}
	h.Set("Connection", "close")
	_ = h.Write(w)
	_, _ = w.WriteString("\r\n")
}

func s3ErrorBody(status int) (string, []byte) {
	code, msg := "InternalError", "We encountered an internal error. Please try again."
	if status == http.StatusServiceUnavailable {
		code, msg = "SlowDown", "Please reduce your request rate."
	}
	return "application/xml", []byte(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<Error><Code>` + code + `</Code><Message>` + msg + ` (injected by faultproxy)</Message></Error>`)
}

// Stats are a proxy's counters.
type Stats struct {
	// Requests counts every request the proxy received, by class.
	Requests map[Class]int64
	// Faults counts injected faults by kind (SlowBody included).
	Faults map[Kind]int64
	// ByClass counts injected faults by class, then kind.
	ByClass map[Class]map[Kind]int64
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	s := Stats{Requests: map[Class]int64{}, Faults: map[Kind]int64{}, ByClass: map[Class]map[Kind]int64{}}
	for c := range numClasses {
		if n := p.requests[c].Load(); n > 0 {
			s.Requests[c] = n
		}
		for k := range numKinds {
			if n := p.faults[c][k].Load(); n > 0 {
				s.Faults[k] += n
				if s.ByClass[c] == nil {
					s.ByClass[c] = map[Kind]int64{}
				}
				s.ByClass[c][k] = n
			}
		}
	}
	return s
}

// ResetStats sets every counter to zero.
func (p *Proxy) ResetStats() {
	for c := range numClasses {
		p.requests[c].Store(0)
		for k := range numKinds {
			p.faults[c][k].Store(0)
		}
	}
}

// TotalRequests is the number of requests of every class.
func (s Stats) TotalRequests() int64 {
	var n int64
	for _, v := range s.Requests {
		n += v
	}
	return n
}

// Failures is the number of injected faults that fail a request (every
// kind but SlowBody).
func (s Stats) Failures() int64 {
	var n int64
	for k, v := range s.Faults {
		if k.Failure() {
			n += v
		}
	}
	return n
}

// String summarizes the stats on one line, e.g. "requests 120 (GET 80,
// LIST 20, ...); failures 24; injected: 500 4, reset 3, ..., slow-body 2".
func (s Stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "requests %d (", s.TotalRequests())
	sep := ""
	for _, c := range Classes {
		if n := s.Requests[c]; n > 0 {
			fmt.Fprintf(&b, "%s%s %d", sep, c, n)
			sep = ", "
		}
	}
	fmt.Fprintf(&b, "); failures %d; injected:", s.Failures())
	sep = " "
	for _, k := range Kinds {
		if n := s.Faults[k]; n > 0 {
			fmt.Fprintf(&b, "%s%s %d", sep, k, n)
			sep = ", "
		}
	}
	if sep == " " {
		b.WriteString(" none")
	}
	return b.String()
}
