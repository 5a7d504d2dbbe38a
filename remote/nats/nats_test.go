package nats

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/litestream-go/litestream/internal/testserver"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/remotetest"
	"github.com/litestream-go/litestream/remote/retry"
)

// startServer runs an embedded NATS server with JetStream on 127.0.0.1
// (internal/testserver, the one way the tests start NATS); port 0 picks a
// free port. It stops when the test ends. connOpts are what its
// CreateBucket (an operator's `nats object add`) connects with.
func startServer(t *testing.T, opts server.Options, connOpts ...nats.Option) *testserver.NATS {
	t.Helper()
	return testserver.StartNATSWith(t, opts, connOpts...)
}

func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	return remotetest.CloseAtEnd(t, c, err)
}

func TestContract(t *testing.T) {
	s := startServer(t, server.Options{})
	var n atomic.Int64
	remotetest.RunContract(t, func(t *testing.T) remote.Client {
		bucket := fmt.Sprintf("contract%d", n.Add(1))
		s.CreateBucket(t, bucket)
		return newClient(t, Config{URL: s.URL, Bucket: bucket, Path: "db/app"})
	})
}

// TestLayout checks the object names and the timestamp header that
// Litestream v0.5 reads, through a plain object store handle.
func TestLayout(t *testing.T) {
	s := startServer(t, server.Options{})
	s.CreateBucket(t, "layout")
	ts := time.Date(2021, 3, 4, 5, 6, 7, 89_000_000, time.UTC)
	data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 0x1a, MaxTXID: 0x2b, Timestamp: ts, Pages: 2})

	for _, tt := range []struct{ path, name string }{
		{"backups/app", "backups/app/ltx/3/000000000000001a-000000000000002b.ltx"},
		{"", "ltx/3/000000000000001a-000000000000002b.ltx"},
	} {
		t.Run("path="+tt.path, func(t *testing.T) {
			c := newClient(t, Config{URL: s.URL, Bucket: "layout", Path: tt.path})
			if _, err := c.WriteLTXFile(t.Context(), 3, 0x1a, 0x2b, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			nc, err := nats.Connect(s.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			obs, err := js.ObjectStore(t.Context(), "layout")
			if err != nil {
				t.Fatal(err)
			}
			info, err := obs.GetInfo(t.Context(), tt.name)
			if err != nil {
				t.Fatalf("object %s: %v", tt.name, err)
			}
			if got := info.Headers.Get("Litestream-Timestamp"); got != "2021-03-04T05:06:07.089Z" {
				t.Fatalf("Litestream-Timestamp = %q", got)
			}
			got, err := obs.GetBytes(t.Context(), tt.name)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("content differs (%v)", err)
			}
		})
	}
}

// TestPathsShareBucket checks that replicas at different paths of one
// bucket do not see or delete each other's files, and that listing ignores
// foreign objects.
func TestPathsShareBucket(t *testing.T) {
	s := startServer(t, server.Options{})
	s.CreateBucket(t, "shared")
	a := newClient(t, Config{URL: s.URL, Bucket: "shared", Path: "a"})
	ab := newClient(t, Config{URL: s.URL, Bucket: "shared", Path: "a/b"})
	b := newClient(t, Config{URL: s.URL, Bucket: "shared", Path: "b"})
	data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 1, MaxTXID: 1, Timestamp: time.Now()})
	for _, c := range []*Client{a, ab, b} {
		if _, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	// Foreign objects in a's level directory.
	nc, _ := nats.Connect(s.URL)
	defer nc.Close()
	js, _ := jetstream.New(nc)
	obs, _ := js.ObjectStore(t.Context(), "shared")
	for _, name := range []string{"a/ltx/0/README", "a/ltx/0/x/0000000000000002-0000000000000002.ltx", "a/ltx/0/000000000000000A-000000000000000A.ltx"} {
		if _, err := obs.PutBytes(t.Context(), name, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if infos, err := a.LTXFiles(t.Context(), 0, 0); err != nil || len(infos) != 1 {
		t.Fatalf("a lists %d files, %v", len(infos), err)
	}
	if err := a.DeleteAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Client{ab, b} {
		if infos, err := c.LTXFiles(t.Context(), 0, 0); err != nil || len(infos) != 1 {
			t.Fatalf("after DeleteAll of a, %s lists %d files, %v", c.cfg.Path, len(infos), err)
		}
	}
	if infos, _ := a.LTXFiles(t.Context(), 0, 0); len(infos) != 0 {
		t.Fatalf("a still lists %d files", len(infos))
	}
}

func TestMissingBucket(t *testing.T) {
	s := startServer(t, server.Options{})
	c := newClient(t, Config{URL: s.URL, Bucket: "nope", Path: "db"})
	start := time.Now()
	_, err := c.LTXFiles(t.Context(), 0, 0)
	if err == nil || !strings.Contains(err.Error(), `bucket "nope"`) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("got %v", err)
	}
	// Permanent: no retries with backoff.
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("missing bucket took %v: retried?", d)
	}
	t.Log(err)
}

// TestAuth checks user/password authentication, and that a wrong password
// is reported without the password.
func TestAuth(t *testing.T) {
	const user, pass = "litestream", "s3cret-pass"
	s := startServer(t, server.Options{Username: user, Password: pass}, nats.UserInfo(user, pass))
	s.CreateBucket(t, "auth")
	data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 1, MaxTXID: 1, Timestamp: time.Now()})

	ok := newClient(t, Config{URL: s.URL, Bucket: "auth", Username: user, Password: pass})
	if _, err := ok.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}

	bad := newClient(t, Config{URL: s.URL, Bucket: "auth", Username: user, Password: "wrong-pass"})
	start := time.Now()
	_, err := bad.LTXFiles(t.Context(), 0, 0)
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("got %v, want an authorization error", err)
	}
	if strings.Contains(err.Error(), "wrong-pass") || strings.Contains(err.Error(), pass) {
		t.Fatalf("error leaks the password: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("auth failure took %v: retried?", d)
	}
	t.Log(err)
}

// TestServerRestart stops the server under a connected client and starts
// it again on the same port and store: the next write and read succeed
// through reconnection and retries, and the data written before is there.
func TestServerRestart(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, server.Options{StoreDir: dir})
	s.CreateBucket(t, "restart")
	c := newClient(t, Config{URL: s.URL, Bucket: "restart", ReconnectWait: 50 * time.Millisecond, OpTimeout: time.Second,
		Retry: retry.Policy{Attempts: 20, Base: 50 * time.Millisecond, Max: 500 * time.Millisecond}})
	first := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 1, MaxTXID: 1, Timestamp: time.Now()})
	if _, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(first)); err != nil {
		t.Fatal(err)
	}
	tcpPort := s.Server.Addr().(*net.TCPAddr).Port
	s.Server.Shutdown()
	s.Server.WaitForShutdown()

	// Restart in the background; the write below starts while the server
	// is down and must ride it out.
	restarted := make(chan *server.Server, 1)
	go func() {
		time.Sleep(300 * time.Millisecond) // outage length, not synchronization
		opts := server.Options{Host: "127.0.0.1", Port: tcpPort, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true}
		s2, err := server.NewServer(&opts)
		if err != nil {
			restarted <- nil
			return
		}
		go s2.Start()
		s2.ReadyForConnections(10 * time.Second)
		restarted <- s2
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	second := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 2, MaxTXID: 2, Timestamp: time.Now()})
	_, err := c.WriteLTXFile(ctx, 0, 2, 2, bytes.NewReader(second))
	s2 := <-restarted
	if s2 == nil {
		t.Fatal("restart failed")
	}
	t.Cleanup(func() { s2.Shutdown(); s2.WaitForShutdown() })
	if err != nil {
		t.Fatalf("write across a restart: %v", err)
	}
	infos, err := c.LTXFiles(ctx, 0, 0)
	if err != nil || len(infos) != 2 {
		t.Fatalf("after restart: %d files, %v", len(infos), err)
	}
	if got, err := remotetest.ReadRange(ctx, c, 0, 1, 1, 0, 0); err != nil || !bytes.Equal(got, first) {
		t.Fatalf("file written before the restart: %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Config{Bucket: "b"}); err == nil {
		t.Fatal("no error without URL")
	}
	if _, err := New(Config{URL: "nats://127.0.0.1:1"}); err == nil || !strings.Contains(err.Error(), "bucket") {
		t.Fatalf("got %v", err)
	}
	// A server that is not there: the error names the server and bucket,
	// and the retries end.
	c := newClient(t, Config{URL: "nats://127.0.0.1:1", Bucket: "b", Timeout: 200 * time.Millisecond,
		Retry: retry.Policy{Attempts: 2, Base: time.Millisecond}})
	_, err := c.LTXFiles(t.Context(), 0, 0)
	if err == nil || !strings.Contains(err.Error(), `nats 127.0.0.1:1 bucket "b"`) {
		t.Fatalf("got %v", err)
	}
	if errors.Is(err, remote.ErrNotExist) {
		t.Fatal("connection failure reported as a missing file")
	}
}

// bigObject writes an LTX file of about 24 MiB of incompressible pages at
// level 0, TXID 1: more than the server sends ahead of a reader, so a
// reader that stops part-way leaves chunks on the server.
func bigObject(t *testing.T, c *Client) []byte {
	t.Helper()
	data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 1, MaxTXID: 1, Timestamp: time.Now(), Pages: 6000, Seed: 5})
	if _, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return data
}

// readAllWithin reads rc to the end in a goroutine and fails the test if
// that takes longer than limit (a hang, not a speed target).
func readAllWithin(t *testing.T, rc io.Reader, limit time.Duration) ([]byte, error) {
	t.Helper()
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		data, err := io.ReadAll(rc)
		done <- result{data, err}
	}()
	select {
	case r := <-done:
		return r.data, r.err
	case <-time.After(limit):
		t.Fatalf("read still blocked after %v", limit)
		return nil, nil
	}
}

// TestReadStalls: the object store's reader blocks until the next chunk
// arrives or its context's deadline passes, and neither cancelling that
// context nor closing it interrupts the wait. Before our reader guarded
// it, a connection lost mid-read hung compaction until the caller's
// deadline (two minutes in the end-to-end test that caught it), and a
// caller without a deadline got the library's 5 s limit on the whole read.
func TestReadStalls(t *testing.T) {
	open := func(t *testing.T, ctx context.Context, opTimeout time.Duration) (*testserver.NATS, io.ReadCloser) {
		s := startServer(t, server.Options{})
		s.CreateBucket(t, "stall")
		c := newClient(t, Config{URL: s.URL, Bucket: "stall", OpTimeout: opTimeout, MaxReconnects: 1, ReconnectWait: 10 * time.Millisecond,
			Retry: retry.Policy{Attempts: 1}})
		bigObject(t, c)
		rc, err := c.OpenLTXFile(ctx, 0, 1, 1, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rc.Close() })
		if _, err := io.ReadFull(rc, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		return s, rc
	}
	t.Run("lost connection fails the read after OpTimeout", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		s, rc := open(t, ctx, time.Second)
		s.Server.Shutdown()
		_, err := readAllWithin(t, rc, 30*time.Second)
		if !errors.Is(err, nats.ErrTimeout) || !strings.Contains(err.Error(), "0000000000000001-0000000000000001.ltx") {
			t.Fatalf("read after the server went away: %v, want a timeout naming the object", err)
		}
	})
	t.Run("cancel ends a stalled read", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		s, rc := open(t, ctx, time.Minute)
		s.Server.Shutdown()
		cancel()
		if _, err := readAllWithin(t, rc, 30*time.Second); !errors.Is(err, context.Canceled) {
			t.Fatalf("read after cancel: %v, want context.Canceled", err)
		}
	})
	t.Run("a slow reader without a deadline reads to the end", func(t *testing.T) {
		s := startServer(t, server.Options{})
		s.CreateBucket(t, "slow")
		c := newClient(t, Config{URL: s.URL, Bucket: "slow"})
		want := bigObject(t, c)
		rc, err := c.OpenLTXFile(context.Background(), 0, 1, 1, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		head := make([]byte, 1<<20)
		if _, err := io.ReadFull(rc, head); err != nil {
			t.Fatal(err)
		}
		time.Sleep(6 * time.Second) // a consumer slower than the library's 5 s default, not synchronization
		rest, err := readAllWithin(t, rc, time.Minute)
		if err != nil || !bytes.Equal(append(head, rest...), want) {
			t.Fatalf("slow read: %v (equal %v)", err, bytes.Equal(append(head, rest...), want))
		}
	})
}
