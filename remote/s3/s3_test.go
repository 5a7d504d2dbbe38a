package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/faultproxy"

	"github.com/litestream-go/litestream/internal/testserver"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/remotetest"
	"github.com/litestream-go/litestream/remote/retry"
)

func newClient(t *testing.T, endpoint, bucket, p string) *Client {
	t.Helper()
	c, err := New(Config{Bucket: bucket, Path: p, Endpoint: endpoint,
		AccessKeyID: testserver.MinIOUser, SecretAccessKey: testserver.MinIOPassword,
		Retry: retry.Policy{Attempts: 4, Max: 20 * time.Millisecond}, Logger: remotetest.Quiet})
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
	// MinIO may answer 503 for a moment after it starts. A try that timed
	// out on a loaded machine may still have created the bucket: the retry
	// then gets BucketAlreadyOwnedByYou, which is success.
	err = c.do(t.Context(), c.cfg.Retry, "create bucket", func(ctx context.Context) error {
		_, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(c.cfg.Bucket)})
		if owned := (*types.BucketAlreadyOwnedByYou)(nil); errors.As(err, &owned) {
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatalf("create bucket %s: %v", c.cfg.Bucket, err)
	}
}

func TestContract(t *testing.T) {
	endpoint := testserver.StartMinIO(t, t.TempDir()).Endpoint
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
	endpoint := testserver.StartMinIO(t, t.TempDir()).Endpoint
	ts := time.Date(2021, 3, 4, 5, 6, 7, 89_000_000, time.UTC)
	small := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 0x1a, MaxTXID: 0x2b, Timestamp: ts, Pages: 2})
	large := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 1, MaxTXID: 0x2b, Timestamp: ts, Pages: (7 << 20) / 4096})
	for _, tt := range []struct {
		path, prefix string
	}{
		{"backups/app", "backups/app/"},
		{"", "/"}, // Litestream's leading "/" at the bucket root (package doc)
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

// TestFaults forces each fault kind on each request class and checks
// that every operation still succeeds with the right content: listings
// whose body is cut short, reads reset or stalled mid-body, writes whose
// answer was lost, multipart parts that fail. It failed before the s3
// client moved to remote/retry: the SDK does not retry a listing body cut
// short ("failed to decode response body, unexpected EOF"), a GET body
// that fails after the headers was returned as an error, and a stall
// hung for the transport's two-minute header timeout.
func TestFaults(t *testing.T) {
	endpoint := testserver.StartMinIO(t, t.TempDir()).Endpoint
	proxy := faultproxy.StartT(t, endpoint, faultproxy.Options{StallFor: time.Minute, SlowFor: 100 * time.Millisecond})
	cfg := Config{Bucket: "faults", Path: "db", Endpoint: proxy.URL(), PartSize: 5 << 20,
		AccessKeyID: testserver.MinIOUser, SecretAccessKey: testserver.MinIOPassword,
		Retry: retry.Policy{Attempts: 4, Base: time.Millisecond, Max: 20 * time.Millisecond, AttemptTimeout: 600 * time.Millisecond}, Logger: remotetest.Quiet}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	createBucket(t, c)
	ts := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	small := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 1, MaxTXID: 1, Timestamp: ts, Pages: 40})
	large := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 1, MaxTXID: 2, Timestamp: ts, Pages: (11 << 20) / 4096})

	readBack := func(t *testing.T, level int, min, max ltx.TXID, want []byte, off, size int64) {
		t.Helper()
		rc, err := c.OpenLTXFile(t.Context(), level, min, max, off, size)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		defer rc.Close()
		got, err := io.ReadAll(rc)
		end := int64(len(want))
		if size > 0 {
			end = off + size
		}
		if err != nil || !bytes.Equal(got, want[off:end]) {
			t.Fatalf("read %d+%d: %v; %d bytes, equal %v", off, size, err, len(got), bytes.Equal(got, want[off:end]))
		}
	}
	for _, kind := range faultproxy.Kinds {
		t.Run(kind.String(), func(t *testing.T) {
			n := 2
			if kind == faultproxy.Stall || kind == faultproxy.StallMidBody {
				n = 1 // each costs the attempt timeout
			}
			proxy.Force(faultproxy.ClassPUT, kind, n)
			if _, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(small)); err != nil {
				t.Fatalf("write: %v", err)
			}
			proxy.Force(faultproxy.ClassLIST, kind, n)
			if infos, err := c.LTXFiles(t.Context(), 0, 0); err != nil || len(infos) != 1 || infos[0].Size != int64(len(small)) {
				t.Fatalf("list: %v %v", infos, err)
			}
			proxy.Force(faultproxy.ClassHEAD, kind, n)
			fresh, _ := New(cfg) // no remembered timestamps: it sends HEADs
			if infos, err := fresh.LTXFiles(t.Context(), 0, 0); err != nil || len(infos) != 1 || !infos[0].CreatedAt.Equal(ts) {
				t.Fatalf("list with HEAD: %v %v", infos, err)
			}
			proxy.Force(faultproxy.ClassGET, kind, n)
			readBack(t, 0, 1, 1, small, 1000, 100_000)
			proxy.Force(faultproxy.ClassGET, kind, n)
			readBack(t, 0, 1, 1, small, 0, 0)

			// Multipart: the create, a part and the completion may fail.
			proxy.Force(faultproxy.ClassPUT, kind, n+1)
			if _, err := c.WriteLTXFile(t.Context(), 9, 1, 2, bytes.NewReader(large)); err != nil {
				t.Fatalf("multipart write: %v", err)
			}
			readBack(t, 9, 1, 2, large, 0, 0)

			proxy.Force(faultproxy.ClassDELETE, kind, n)
			if err := c.DeleteLTXFiles(t.Context(), []*ltx.FileInfo{{Level: 0, MinTXID: 1, MaxTXID: 1}, {Level: 9, MinTXID: 1, MaxTXID: 2}}); err != nil {
				t.Fatalf("delete: %v", err)
			}
			for _, level := range []int{0, 9} {
				if infos, err := c.LTXFiles(t.Context(), level, 0); err != nil || len(infos) != 0 {
					t.Fatalf("after delete, level %d: %v %v", level, infos, err)
				}
			}
		})
	}
	s := proxy.Stats()
	for _, kind := range faultproxy.Kinds {
		if s.Faults[kind] == 0 {
			t.Errorf("%s was never injected: %s", kind, s)
		}
	}

	// A denied request is not retried, and says so.
	proxy.ResetStats()
	bad, _ := New(Config{Bucket: "faults", Path: "db", Endpoint: proxy.URL(), AccessKeyID: testserver.MinIOUser, SecretAccessKey: "wrong-secret",
		Retry: cfg.Retry, Logger: remotetest.Quiet})
	_, err = bad.LTXFiles(t.Context(), 0, 0)
	if err == nil || proxy.Stats().TotalRequests() != 1 || !strings.Contains(err.Error(), "access denied") || !retry.IsPermanent(err) {
		t.Fatalf("403: %v after %d requests", err, proxy.Stats().TotalRequests())
	}
	if !strings.Contains(err.Error(), `s3 bucket "faults"`) || !strings.Contains(err.Error(), `"db/0000/"`) {
		t.Fatalf("error does not name bucket and key: %v", err)
	}
	// A missing file is not retried either, and is remote.ErrNotExist.
	proxy.ResetStats()
	if _, err := c.OpenLTXFile(t.Context(), 0, 7, 7, 0, 0); !errors.Is(err, remote.ErrNotExist) || proxy.Stats().TotalRequests() != 1 {
		t.Fatalf("missing file: %v after %d requests", err, proxy.Stats().TotalRequests())
	}
}

// TestFaultsRandom runs whole client operations under random transient
// faults and stalls; each must succeed with the right content.
func TestFaultsRandom(t *testing.T) {
	endpoint := testserver.StartMinIO(t, t.TempDir()).Endpoint
	proxy := faultproxy.StartT(t, endpoint, faultproxy.Options{Rates: faultproxy.Transient(0.25).Plus(faultproxy.Stalls(0.02)).Plus(faultproxy.Rates{faultproxy.SlowBody: 0.05})})
	// About 27% of requests fail, so an operation gives up only when every
	// attempt does: 0.27^6 = 4e-4 per operation was about 2% per run of
	// this test's ~50 operations (CI hit it with seed 1796411729016717010:
	// six faults in a row on one PUT). 0.27^14 = 1e-8 per operation.
	c, err := New(Config{Bucket: "random", Path: "db", Endpoint: proxy.URL(),
		AccessKeyID: testserver.MinIOUser, SecretAccessKey: testserver.MinIOPassword,
		Retry: retry.Policy{Attempts: 14, Base: time.Millisecond, Max: 20 * time.Millisecond, AttemptTimeout: time.Second}, Logger: remotetest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	proxy.SetEnabled(false)
	createBucket(t, c)
	proxy.SetEnabled(true)
	files := map[ltx.TXID][]byte{}
	for txid := ltx.TXID(1); txid <= 12; txid++ {
		data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: txid, MaxTXID: txid, Timestamp: time.Now(), Pages: 10 + int(txid)*20, Seed: uint64(txid)})
		if _, err := c.WriteLTXFile(t.Context(), 0, txid, txid, bytes.NewReader(data)); err != nil {
			t.Fatalf("write %d: %v", txid, err)
		}
		files[txid] = data
	}
	for range 3 {
		infos, err := c.LTXFiles(t.Context(), 0, 3)
		if err != nil || len(infos) != 10 || infos[0].MinTXID != 3 {
			t.Fatalf("list: %d files, %v", len(infos), err)
		}
		for _, info := range infos {
			got, err := remotetest.ReadRange(t.Context(), c, 0, info.MinTXID, info.MaxTXID, 0, 0)
			if err != nil || !bytes.Equal(got, files[info.MinTXID]) {
				t.Fatalf("read %d: %v (equal %v)", info.MinTXID, err, bytes.Equal(got, files[info.MinTXID]))
			}
		}
	}
	if err := c.DeleteAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s := proxy.Stats(); s.Failures() == 0 {
		t.Fatalf("no faults were injected: %s", s)
	}
}

func TestPermanentErrors(t *testing.T) {
	endpoint := testserver.StartMinIO(t, t.TempDir()).Endpoint
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

// TestListAllRequests counts, through a proxy in front of MinIO, what
// listing every level costs: one LIST for the whole replica (not one per
// level), no HEAD when the times are not needed, and one HEAD per file a
// client has not seen when they are. Keys outside the layout under the
// path (a v0.3 generations/ tree) are not listed. The client's own counts
// (RequestCounts) must agree with the proxy's.
func TestListAllRequests(t *testing.T) {
	endpoint := testserver.StartMinIO(t, t.TempDir()).Endpoint
	proxy := faultproxy.StartT(t, endpoint, faultproxy.Options{})
	cfg := Config{Bucket: "count", Path: "db", Endpoint: proxy.URL(),
		AccessKeyID: testserver.MinIOUser, SecretAccessKey: testserver.MinIOPassword, Logger: remotetest.Quiet}
	writer, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	createBucket(t, writer)
	ts := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	var want []string
	for _, level := range []int{0, 1, 2, 9} {
		for txid := ltx.TXID(1); txid <= 3; txid++ {
			data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: txid, MaxTXID: txid, Timestamp: ts.Add(time.Duration(txid) * time.Second), Pages: 1})
			if _, err := writer.WriteLTXFile(t.Context(), level, txid, txid, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			want = append(want, fmt.Sprintf("%d/%s", level, remote.FileName(txid, txid)))
		}
	}
	// A v0.3 tree beside the levels, which sorts after them.
	cl, err := writer.client(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		key := fmt.Sprintf("db/generations/0123456789abcdef/wal/%08x/00000000.wal.lz4", i)
		if _, err := cl.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String("count"), Key: aws.String(key), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}

	names := func(files []*ltx.FileInfo) []string {
		var out []string
		for _, f := range files {
			out = append(out, fmt.Sprintf("%d/%s", f.Level, remote.FileName(f.MinTXID, f.MaxTXID)))
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		exact     bool
		fresh     bool // a new client, which has seen none of the files
		list, hd  int64
		wantStamp bool
	}{
		{"untimed, fresh client", false, true, 1, 0, false},
		{"exact, fresh client", true, true, 1, 12, true},
		{"exact, writer", true, false, 1, 0, true},
		{"untimed, writer", false, false, 1, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := writer
			if tc.fresh {
				if c, err = New(cfg); err != nil {
					t.Fatal(err)
				}
			}
			proxy.ResetStats()
			before := c.RequestCounts()
			list := remote.ListAllUntimed
			if tc.exact {
				list = remote.ListAll
			}
			files, err := list(t.Context(), c)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(files); !slices.Equal(got, want) {
				t.Fatalf("listed %s, want %s", got, want)
			}
			for _, f := range files {
				stamped := f.CreatedAt.Equal(ts.Add(time.Duration(f.MinTXID) * time.Second))
				if tc.wantStamp && !stamped {
					t.Fatalf("%s: CreatedAt %s, want the stored timestamp", remote.IDOf(f), f.CreatedAt)
				}
			}
			st := proxy.Stats()
			if st.Requests[faultproxy.ClassLIST] != tc.list || st.Requests[faultproxy.ClassHEAD] != tc.hd || st.TotalRequests() != tc.list+tc.hd {
				t.Fatalf("requests %s, want %d LIST and %d HEAD", st, tc.list, tc.hd)
			}
			d := c.RequestCounts().Sub(before)
			if d.List != tc.list || d.Head != tc.hd || d.Total() != st.TotalRequests() {
				t.Fatalf("client counted %+v, the proxy %s", d, st)
			}
		})
	}
}
