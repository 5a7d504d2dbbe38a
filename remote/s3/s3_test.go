package s3

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/internal/backend"
	"github.com/litestream-go/litestream/remote/internal/testserver"
	"github.com/litestream-go/litestream/remote/remotetest"
)

// minio starts one MinIO server for the test (about a second).
func minio(t *testing.T) string {
	t.Helper()
	s := testserver.StartMinIO(t, t.TempDir())
	t.Cleanup(s.Stop)
	return s.Endpoint
}

func newClient(t *testing.T, endpoint, bucket, p string) *Client {
	t.Helper()
	c, err := New(Config{Bucket: bucket, Path: p, Endpoint: endpoint,
		AccessKeyID: testserver.MinIOUser, SecretAccessKey: testserver.MinIOPassword,
		Retry: backend.Retry{Attempts: 4, Max: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func createBucket(t *testing.T, c *Client) {
	t.Helper()
	cl, err := c.client(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(c.cfg.Bucket)}); err != nil {
		t.Fatalf("create bucket %s: %v", c.cfg.Bucket, err)
	}
}

func TestContract(t *testing.T) {
	endpoint := minio(t)
	var n atomic.Int64
	remotetest.RunContract(t, func(t *testing.T) remote.Client {
		c := newClient(t, endpoint, fmt.Sprintf("contract-%d", n.Add(1)), "db/app")
		createBucket(t, c)
		return c
	})
}

// TestLayout checks keys and metadata as Litestream writes them, single
// PUT below the part size and multipart above it, through a plain SDK
// client, and that it works with AWS_CA_BUNDLE set (this machine sets it).
func TestLayout(t *testing.T) {
	if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		t.Setenv("AWS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
	}
	endpoint := minio(t)
	ts := time.Date(2021, 3, 4, 5, 6, 7, 89_000_000, time.UTC)
	small := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 0x1a, MaxTXID: 0x2b, Timestamp: ts, Pages: 2})
	large := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 1, MaxTXID: 0x2b, Timestamp: ts, Pages: (7 << 20) / 4096})
	for _, tt := range []struct {
		path, prefix string
	}{
		{"backups/app", "backups/app/"},
		{"", ""}, // see the package doc on Litestream's leading "/"
	} {
		t.Run("path="+tt.path, func(t *testing.T) {
			c := newClient(t, endpoint, "layout"+strings.ReplaceAll(tt.path, "/", "-"), tt.path)
			createBucket(t, c)
			if _, err := c.WriteLTXFile(t.Context(), 3, 0x1a, 0x2b, bytes.NewReader(small)); err != nil {
				t.Fatal(err)
			}
			if _, err := c.WriteLTXFile(t.Context(), 9, 1, 0x2b, bytes.NewReader(large)); err != nil {
				t.Fatal(err)
			}
			cl, _ := c.client(t.Context())
			for _, f := range []struct {
				key       string
				multipart bool
			}{
				{tt.prefix + "0003/000000000000001a-000000000000002b.ltx", false},
				{tt.prefix + "0009/0000000000000001-000000000000002b.ltx", true},
			} {
				head, err := cl.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(c.cfg.Bucket), Key: aws.String(f.key)})
				if err != nil {
					t.Fatalf("%s: %v", f.key, err)
				}
				if got := head.Metadata["litestream-timestamp"]; got != "2021-03-04T05:06:07.089Z" {
					t.Fatalf("%s: litestream-timestamp = %q", f.key, got)
				}
				// A multipart ETag ends in -<parts>.
				if mp := strings.Contains(aws.ToString(head.ETag), "-"); mp != f.multipart {
					t.Fatalf("%s: ETag %s, multipart %v, want %v", f.key, aws.ToString(head.ETag), mp, f.multipart)
				}
			}
			// A fresh client (empty timestamp memory) lists the stored
			// timestamps through HEAD requests.
			fresh := newClient(t, endpoint, c.cfg.Bucket, tt.path)
			infos, err := fresh.LTXFiles(t.Context(), 9, 0)
			if err != nil || len(infos) != 1 || !infos[0].CreatedAt.Equal(ts) {
				t.Fatalf("fresh list: %v %v", infos, err)
			}
		})
	}
}

// faultProxy forwards to MinIO, failing the next failNext requests with
// failCode.
type faultProxy struct {
	url      string
	failNext atomic.Int64
	failCode atomic.Int64
	requests atomic.Int64
}

func startProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &faultProxy{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.url = "http://" + l.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		if p.failNext.Add(-1) >= 0 {
			code := int(p.failCode.Load())
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(code)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected</Message></Error>`,
				map[int]string{503: "SlowDown", 500: "InternalError", 403: "AccessDenied"}[code])
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return p
}

func TestFaults(t *testing.T) {
	endpoint := minio(t)
	proxy := startProxy(t, endpoint)
	c := newClient(t, proxy.url, "faults", "db")
	createBucket(t, c)
	data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 1, MaxTXID: 1, Timestamp: time.Now(), Pages: 3})

	for _, code := range []int64{503, 500} {
		proxy.failCode.Store(code)
		proxy.failNext.Store(2)
		if _, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(data)); err != nil {
			t.Fatalf("write through %ds: %v", code, err)
		}
		proxy.failNext.Store(2)
		if infos, err := c.LTXFiles(t.Context(), 0, 0); err != nil || len(infos) != 1 {
			t.Fatalf("list through %ds: %d %v", code, len(infos), err)
		}
		proxy.failNext.Store(2)
		rc, err := c.OpenLTXFile(t.Context(), 0, 1, 1, 10, 20)
		if err != nil {
			t.Fatalf("read through %ds: %v", code, err)
		}
		rc.Close()
	}

	proxy.failCode.Store(403)
	proxy.failNext.Store(1)
	proxy.requests.Store(0)
	_, err := c.LTXFiles(t.Context(), 0, 0)
	if err == nil || proxy.requests.Load() != 1 || !strings.Contains(err.Error(), "access denied") {
		t.Fatalf("403: %v after %d requests", err, proxy.requests.Load())
	}
	if !strings.Contains(err.Error(), `s3 bucket "faults"`) || !strings.Contains(err.Error(), `"db/0000/"`) {
		t.Fatalf("error does not name bucket and key: %v", err)
	}
}

func TestPermanentErrors(t *testing.T) {
	endpoint := minio(t)
	data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 1, MaxTXID: 1, Timestamp: time.Now()})

	missing := newClient(t, endpoint, "no-such-bucket", "db")
	_, err := missing.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(data))
	if err == nil || !strings.Contains(err.Error(), "bucket does not exist") || errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("missing bucket: %v", err)
	}

	ok := newClient(t, endpoint, "perm", "db")
	createBucket(t, ok)
	bad, _ := New(Config{Bucket: "perm", Path: "db", Endpoint: endpoint, AccessKeyID: testserver.MinIOUser, SecretAccessKey: "not-the-secret-key"})
	start := time.Now()
	_, err = bad.LTXFiles(t.Context(), 0, 0)
	if err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Fatalf("wrong secret: %v", err)
	}
	if strings.Contains(err.Error(), "not-the-secret-key") || strings.Contains(err.Error(), testserver.MinIOPassword) {
		t.Fatalf("error leaks the secret: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("wrong credentials took %v: retried?", d)
	}
	t.Log(err)
}
