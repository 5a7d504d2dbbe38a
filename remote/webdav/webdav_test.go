package webdav

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/webdav"

	"github.com/litestream-go/litestream/internal/faultproxy"
	"github.com/litestream-go/litestream/internal/testserver"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/remotetest"
	"github.com/litestream-go/litestream/remote/retry"
)

// serve runs h on 127.0.0.1 until the test ends and returns its URL.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

func davHandler(fs webdav.FileSystem) http.Handler {
	return &webdav.Handler{FileSystem: fs, LockSystem: webdav.NewMemLS()}
}

func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestContract runs the contract against golang.org/x/net/webdav with its
// in-memory file system, which keeps dead properties (as Apache mod_dav
// and Nextcloud do), behind Basic authentication.
func TestContract(t *testing.T) {
	const user, pass = "litestream", "dav-s3cret"
	fs := webdav.NewMemFS()
	h := davHandler(fs)
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="dav"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	var n atomic.Int64
	remotetest.RunContract(t, func(t *testing.T) remote.Client {
		return newClient(t, Config{URL: url, Path: "replicas/" + string(rune('a'+n.Add(1))), Username: user, Password: pass})
	})

	t.Run("wrong password", func(t *testing.T) {
		c := newClient(t, Config{URL: url, Path: "x", Username: user, Password: "wrong-pass"})
		_, err := c.LTXFiles(t.Context(), 0, 0)
		if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "wrong-pass") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestDirFallback uses a server without dead properties (x/net/webdav
// over a directory): everything works, and listing falls back to the
// upload time, as Litestream lists. The files land where Litestream puts
// them.
func TestDirFallback(t *testing.T) {
	root := t.TempDir()
	url := serve(t, davHandler(webdav.Dir(root)))
	c := newClient(t, Config{URL: url, Path: "backups/app"})
	ts := time.Date(2021, 3, 4, 5, 6, 7, 89_000_000, time.UTC)
	data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 0x1a, MaxTXID: 0x2b, Timestamp: ts, Pages: 3})
	before := time.Now().Add(-2 * time.Second)
	for range 2 { // the second write skips the refused PROPPATCH
		if _, err := c.WriteLTXFile(t.Context(), 3, 0x1a, 0x2b, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	if !c.noDeadProps.Load() {
		t.Fatal("server without dead properties not detected")
	}
	got, err := os.ReadFile(filepath.Join(root, "backups/app/ltx/3/000000000000001a-000000000000002b.ltx"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file on the server: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "backups/app/ltx/3"))
	if len(entries) != 1 {
		t.Fatalf("level directory holds %d entries (temporary files left?)", len(entries))
	}
	infos, err := c.LTXFiles(t.Context(), 3, 0)
	if err != nil || len(infos) != 1 {
		t.Fatalf("list: %d, %v", len(infos), err)
	}
	if infos[0].Size != int64(len(data)) || infos[0].CreatedAt.Before(before) {
		t.Fatalf("info %+v", infos[0])
	}
	if part, err := remotetest.ReadRange(t.Context(), c, 3, 0x1a, 0x2b, 100, 50); err != nil || !bytes.Equal(part, data[100:150]) {
		t.Fatalf("range read: %v", err)
	}
}

// TestRanges checks that reads are real Range requests, and that a server
// ignoring Range still yields exactly the requested bytes.
func TestRanges(t *testing.T) {
	fs := webdav.NewMemFS()
	h := davHandler(fs)
	var ranges atomic.Int64
	var ignore atomic.Bool
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.Header.Get("Range") != "" {
			ranges.Add(1)
			if ignore.Load() {
				r.Header.Del("Range")
			}
		}
		h.ServeHTTP(w, r)
	}))
	c := newClient(t, Config{URL: url, Path: "db"})
	data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 1, MaxTXID: 1, Timestamp: time.Now(), Pages: 8})
	if _, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	n := int64(len(data))
	for _, ign := range []bool{false, true} {
		ignore.Store(ign)
		for _, r := range [][2]int64{{0, 0}, {10, 20}, {n - 5, 0}, {n - 5, 5}} {
			got, err := remotetest.ReadRange(t.Context(), c, 0, 1, 1, r[0], r[1])
			want := data[r[0]:]
			if r[1] > 0 {
				want = want[:r[1]]
			}
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("ignore=%v %v: %d bytes, %v", ign, r, len(got), err)
			}
		}
		for _, r := range [][2]int64{{n, 0}, {n - 1, 2}} {
			if _, err := remotetest.ReadRange(t.Context(), c, 0, 1, 1, r[0], r[1]); err == nil {
				t.Fatalf("ignore=%v %v: no error", ign, r)
			}
		}
	}
	if ranges.Load() < 6 {
		t.Fatalf("only %d range requests", ranges.Load())
	}
}

// TestRetries injects 503s and connection resets: the client retries them,
// and does not retry a 403.
func TestRetries(t *testing.T) {
	h := davHandler(webdav.NewMemFS())
	var failNext atomic.Int64
	var mode atomic.Value
	mode.Store("503")
	var requests atomic.Int64
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if failNext.Add(-1) >= 0 {
			switch mode.Load() {
			case "503":
				http.Error(w, "busy", http.StatusServiceUnavailable)
			case "403":
				http.Error(w, "forbidden", http.StatusForbidden)
			case "reset":
				conn, _, _ := w.(http.Hijacker).Hijack()
				conn.(*net.TCPConn).SetLinger(0)
				conn.Close()
			}
			return
		}
		h.ServeHTTP(w, r)
	}))
	c := newClient(t, Config{URL: url, Path: "db", Retry: retry.Policy{Attempts: 4, Base: time.Millisecond, Max: 5 * time.Millisecond}})
	data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 1, MaxTXID: 1, Timestamp: time.Now()})

	for _, m := range []string{"503", "reset"} {
		mode.Store(m)
		failNext.Store(2)
		if _, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(data)); err != nil {
			t.Fatalf("%s: write: %v", m, err)
		}
		failNext.Store(2)
		if infos, err := c.LTXFiles(t.Context(), 0, 0); err != nil || len(infos) != 1 {
			t.Fatalf("%s: list: %d %v", m, len(infos), err)
		}
	}

	mode.Store("403")
	failNext.Store(1)
	requests.Store(0)
	_, err := c.LTXFiles(t.Context(), 0, 0)
	var se *statusError
	if !errors.As(err, &se) || se.code != 403 || requests.Load() != 1 {
		t.Fatalf("403: %v after %d requests", err, requests.Load())
	}
	if !strings.Contains(err.Error(), `webdav 127.0.0.1`) || !strings.Contains(err.Error(), `"/db/ltx/0"`) {
		t.Fatalf("error does not name server and path: %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "http://", "http://u:p@host/"} {
		if _, err := New(Config{URL: u}); err == nil {
			t.Errorf("%q: no error", u)
		}
	}
}

// TestFaultProxy runs remotetest.RunFaults through the fault proxy in front
// of a WebDAV server: every fault kind on every operation.
func TestFaultProxy(t *testing.T) {
	proxy := faultproxy.StartT(t, "http://"+testserver.StartWebDAV(t), faultproxy.Options{SlowFor: 50 * time.Millisecond, Logf: t.Logf})
	c := newClient(t, Config{URL: proxy.URL(), Path: "backups/app", Timeout: 500 * time.Millisecond, Logger: remotetest.Quiet,
		Retry: retry.Policy{Attempts: 4, Base: time.Millisecond, Max: 10 * time.Millisecond}})
	remotetest.RunFaults(t, proxy, c, remotetest.FaultOptions{LargeSize: 6 << 20})
}
