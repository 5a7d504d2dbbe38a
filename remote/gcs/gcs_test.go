package gcs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/googleapi"

	"github.com/litestream-go/litestream/internal/faultproxy"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/remotetest"
	"github.com/litestream-go/litestream/remote/retry"
)

// fake is fake-gcs-server's handler served on 127.0.0.1 behind a fault
// injector: failNext requests get the status failCode.
type fake struct {
	gcs      *fakestorage.Server
	endpoint string
	failNext atomic.Int64
	failCode atomic.Int64
	requests atomic.Int64
	ranges   atomic.Int64
}

func startFake(t *testing.T) *fake {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	gcs, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http", NoListener: true, ExternalURL: base, PublicHost: l.Addr().String(), Writer: io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &fake{gcs: gcs, endpoint: base + "/storage/v1/"}
	h := gcs.HTTPHandler()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		if r.Header.Get("Range") != "" {
			f.ranges.Add(1)
		}
		if f.failNext.Add(-1) >= 0 {
			http.Error(w, `{"error":{"code":`+fmt.Sprint(f.failCode.Load())+`,"message":"injected"}}`, int(f.failCode.Load()))
			return
		}
		h.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close(); gcs.Stop() })
	return f
}

func (f *fake) bucket(name string) {
	f.gcs.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
}

func (f *fake) client(t *testing.T, bucket, p string) *Client {
	t.Helper()
	c, err := New(Config{Bucket: bucket, Path: p, Endpoint: f.endpoint, ChunkSize: 5 << 20,
		Retry: retry.Policy{Attempts: 5, Base: time.Millisecond, Max: 10 * time.Millisecond}})
	return remotetest.CloseAtEnd(t, c, err)
}

func TestContract(t *testing.T) {
	f := startFake(t)
	var n atomic.Int64
	remotetest.RunContract(t, func(t *testing.T) remote.Client {
		bucket := fmt.Sprintf("contract-%d", n.Add(1))
		f.bucket(bucket)
		return f.client(t, bucket, "db/app")
	})
}

// TestLayout checks the object name and the metadata Litestream reads.
func TestLayout(t *testing.T) {
	f := startFake(t)
	f.bucket("layout")
	ts := time.Date(2021, 3, 4, 5, 6, 7, 89_000_000, time.UTC)
	data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 0x1a, MaxTXID: 0x2b, Timestamp: ts, Pages: 2})
	for _, tt := range []struct{ path, name string }{
		{"backups/app", "backups/app/ltx/3/000000000000001a-000000000000002b.ltx"},
		{"", "ltx/3/000000000000001a-000000000000002b.ltx"},
	} {
		c := f.client(t, "layout", tt.path)
		if _, err := c.WriteLTXFile(t.Context(), 3, 0x1a, 0x2b, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		obj, err := f.gcs.GetObject("layout", tt.name)
		if err != nil {
			t.Fatalf("object %s: %v", tt.name, err)
		}
		if got := obj.Metadata["litestream-timestamp"]; got != "2021-03-04T05:06:07.089Z" {
			t.Fatalf("litestream-timestamp = %q", got)
		}
		if !bytes.Equal(obj.Content, data) {
			t.Fatal("content differs")
		}
	}
}

// TestFaults injects server errors: 503s are retried (reads, listings and
// uploads), a 403 is not, and a missing bucket is reported as such.
func TestFaults(t *testing.T) {
	f := startFake(t)
	f.bucket("faults")
	c := f.client(t, "faults", "db")
	data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 1, MaxTXID: 1, Timestamp: time.Now(), Pages: 3})

	f.failCode.Store(503)
	f.failNext.Store(2)
	if _, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(data)); err != nil {
		t.Fatalf("write through 503s: %v", err)
	}
	f.failNext.Store(2)
	if infos, err := c.LTXFiles(t.Context(), 0, 0); err != nil || len(infos) != 1 {
		t.Fatalf("list through 503s: %d %v", len(infos), err)
	}
	f.failNext.Store(2)
	f.ranges.Store(0)
	if got, err := remotetest.ReadRange(t.Context(), c, 0, 1, 1, 100, 200); err != nil || !bytes.Equal(got, data[100:300]) {
		t.Fatalf("range read through 503s: %v", err)
	}
	if f.ranges.Load() == 0 {
		t.Fatal("no Range request was sent")
	}

	f.failCode.Store(403)
	f.failNext.Store(1)
	f.requests.Store(0)
	_, err := c.LTXFiles(t.Context(), 0, 0)
	if err == nil || f.requests.Load() != 1 {
		t.Fatalf("403: %v after %d requests", err, f.requests.Load())
	}
	if !strings.Contains(err.Error(), `gs bucket "faults"`) || !strings.Contains(err.Error(), `"db/ltx/0/"`) {
		t.Fatalf("error does not name bucket and key: %v", err)
	}
	f.failNext.Store(0)

	missing := f.client(t, "no-such-bucket", "db")
	_, err = missing.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(data))
	if err == nil || !strings.Contains(err.Error(), `gs bucket "no-such-bucket"`) {
		t.Fatalf("missing bucket: %v", err)
	}
	t.Log(err)
	if errors.Is(err, remote.ErrNotExist) {
		t.Fatal("missing bucket reported as a missing file")
	}
}

// TestFaultProxy runs remotetest.RunFaults through the fault proxy in front
// of fake-gcs-server: every fault kind on every operation. The server
// learns the proxy's URL as its own, so resumable upload sessions go
// through the proxy too.
func TestFaultProxy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxy := faultproxy.StartT(t, "http://"+l.Addr().String(), faultproxy.Options{SlowFor: 50 * time.Millisecond, Logf: t.Logf})
	gcs, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http", NoListener: true, ExternalURL: proxy.URL(), PublicHost: proxy.Addr(), Writer: io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: gcs.HTTPHandler()}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close(); gcs.Stop() })
	gcs.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "faults"})
	c, err := New(Config{Bucket: "faults", Path: "db", Endpoint: proxy.URL() + "/storage/v1/", ChunkSize: 2 << 20,
		Retry:  retry.Policy{Attempts: 4, Base: time.Millisecond, Max: 10 * time.Millisecond, AttemptTimeout: time.Second},
		Logger: remotetest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	remotetest.RunFaults(t, proxy, c, remotetest.FaultOptions{LargeSize: 5 << 20})
}

// TestRangeNotSatisfiable: a 416 is told by its status, never by "416"
// anywhere in a message (a connection reset from local port 34164 was
// taken for a range outside the file, permanently, in TestFaultProxy).
func TestRangeNotSatisfiable(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{&googleapi.Error{Code: http.StatusRequestedRangeNotSatisfiable}, true},
		{fmt.Errorf("read: %w", &googleapi.Error{Code: http.StatusRequestedRangeNotSatisfiable}), true},
		{&googleapi.Error{Code: http.StatusServiceUnavailable, Message: "416"}, false},
		{errors.New(`Get "http://127.0.0.1:43017/storage/v1/b/faults/o/x?alt=media": read tcp 127.0.0.1:34164->127.0.0.1:43017: read: connection reset by peer`), false},
		{nil, false},
	} {
		if got := rangeNotSatisfiable(tt.err); got != tt.want {
			t.Errorf("rangeNotSatisfiable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
