package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeDaemon records requests and answers from a map of databases.
type fakeDaemon struct {
	mu      sync.Mutex
	open    map[string]bool
	calls   []string
	syncCtx context.Context
}

func (f *fakeDaemon) log(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}

func (f *fakeDaemon) Info() InfoResponse {
	return InfoResponse{Version: "v9", PID: 42, StartedAt: time.Unix(1, 0).UTC(), DatabaseCount: len(f.open)}
}

func (f *fakeDaemon) List() ListResponse {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := ListResponse{Databases: []DatabaseSummary{}}
	for p, open := range f.open {
		st := "stopped"
		if open {
			st = "replicating"
		}
		r.Databases = append(r.Databases, DatabaseSummary{Path: p, Status: st})
	}
	return r
}

func (f *fakeDaemon) Status(context.Context) Status {
	return Status{Version: "v9", PID: 42, DBs: []DBStatus{{Database: "/a.db", LocalTXID: "0000000000000003", LagSeconds: 1.5}}}
}

func (f *fakeDaemon) get(path string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	open, ok := f.open[path]
	if !ok {
		return false, fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	return open, nil
}

// setOpen marks the database at path open or not; status is the answer's
// status: already when it was so before, else done.
func (f *fakeDaemon) setOpen(path string, open bool, already, done string) (StartResponse, error) {
	was, err := f.get(path)
	if err != nil {
		return StartResponse{}, err
	}
	f.mu.Lock()
	f.open[path] = open
	f.mu.Unlock()
	status := done
	if was == open {
		status = already
	}
	return StartResponse{Status: status, Path: path, TXID: 7}, nil
}

func (f *fakeDaemon) Start(ctx context.Context, path string) (StartResponse, error) {
	f.log("start " + path)
	return f.setOpen(path, true, "already_running", "started")
}

func (f *fakeDaemon) Stop(ctx context.Context, path string) (StopResponse, error) {
	f.log("stop " + path)
	if _, ok := ctx.Deadline(); !ok {
		return StopResponse{}, errors.New("stop without a deadline")
	}
	r, err := f.setOpen(path, false, "already_stopped", "stopped")
	return StopResponse(r), err
}

func (f *fakeDaemon) Register(ctx context.Context, path, u string) (RegisterDatabaseResponse, error) {
	f.log("register " + path + " " + u)
	if !strings.Contains(u, "://") {
		return RegisterDatabaseResponse{}, fmt.Errorf("%w: invalid replica url: %s", ErrInvalid, u)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.open[path]; ok {
		return RegisterDatabaseResponse{Status: "already_registered", Path: path}, nil
	}
	f.open[path] = true
	return RegisterDatabaseResponse{Status: "registered", Path: path}, nil
}

func (f *fakeDaemon) Unregister(ctx context.Context, path string) (UnregisterDatabaseResponse, error) {
	f.log("unregister " + path)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.open[path]; !ok {
		return UnregisterDatabaseResponse{Status: "already_unregistered", Path: path}, nil
	}
	delete(f.open, path)
	return UnregisterDatabaseResponse{Status: "unregistered", Path: path, TXID: 9}, nil
}

func (f *fakeDaemon) Sync(ctx context.Context, path string, wait bool) (SyncResponse, error) {
	f.log(fmt.Sprintf("sync %s %v", path, wait))
	open, err := f.get(path)
	if err != nil {
		return SyncResponse{}, err
	}
	if !open {
		return SyncResponse{}, fmt.Errorf("%w: %s", ErrNotOpen, path)
	}
	dl, ok := ctx.Deadline()
	if wait && (!ok || time.Until(dl) > 31*time.Second) {
		return SyncResponse{}, errors.New("sync -wait without the 30s default deadline")
	}
	return SyncResponse{Status: "synced", Path: path, TXID: 8, ReplicatedTXID: 8}, nil
}

func (f *fakeDaemon) TXID(path string) (uint64, error) {
	if _, err := f.get(path); err != nil {
		return 0, err
	}
	return 8, nil
}

func (f *fakeDaemon) SyncDiagnostics(path string) ([]SyncDiagnostic, error) {
	return []SyncDiagnostic{{Path: "/a.db", Active: true}}, nil
}

// TestServerClient drives every endpoint through the client: answers,
// status codes mapped to Litestream's error messages, path expansion.
func TestServerClient(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ls.sock")
	f := &fakeDaemon{open: map[string]bool{"/a.db": true, "/b.db": false}}
	s, err := Listen(path, f, Options{ExpandPath: func(p string) (string, error) {
		return strings.Replace(p, "~", "", 1), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := NewClient(path, 5*time.Second)

	if r, err := c.Info(ctx); err != nil || r.Version != "v9" || r.PID != 42 || r.DatabaseCount != 2 {
		t.Errorf("info = %+v, %v", r, err)
	}
	if r, err := c.List(ctx); err != nil || len(r.Databases) != 2 {
		t.Errorf("list = %+v, %v", r, err)
	}
	if r, err := c.Start(ctx, StartRequest{Path: "~/b.db"}); err != nil || r.Status != "started" || r.Path != "/b.db" {
		t.Errorf("start = %+v, %v", r, err)
	}
	if r, err := c.Start(ctx, StartRequest{Path: "/b.db"}); err != nil || r.Status != "already_running" {
		t.Errorf("start again = %+v, %v", r, err)
	}
	if _, err := c.Start(ctx, StartRequest{Path: "/none.db"}); err == nil || err.Error() != "start failed: database not found: /none.db" {
		t.Errorf("start unknown: %v", err)
	}
	if r, err := c.Stop(ctx, StopRequest{Path: "/b.db"}); err != nil || r.Status != "stopped" || r.TXID != 7 {
		t.Errorf("stop = %+v, %v", r, err)
	}
	if _, err := c.Sync(ctx, SyncRequest{Path: "/b.db"}); err == nil || !strings.HasPrefix(err.Error(), "sync failed: database not open") {
		t.Errorf("sync of a stopped database: %v", err)
	}
	if r, err := c.Sync(ctx, SyncRequest{Path: "/a.db", Wait: true}); err != nil || r.Status != "synced" || r.ReplicatedTXID != 8 {
		t.Errorf("sync -wait = %+v, %v", r, err)
	}
	if _, err := c.Register(ctx, RegisterDatabaseRequest{Path: "/c.db", ReplicaURL: "nope"}); err == nil || !strings.Contains(err.Error(), "register failed: invalid request: invalid replica url") {
		t.Errorf("register bad url: %v", err)
	}
	if _, err := c.Register(ctx, RegisterDatabaseRequest{Path: "/c.db"}); err == nil || err.Error() != "register failed: replica_url required" {
		t.Errorf("register without url: %v", err)
	}
	if r, err := c.Register(ctx, RegisterDatabaseRequest{Path: "/c.db", ReplicaURL: "file:///x"}); err != nil || r.Status != "registered" {
		t.Errorf("register = %+v, %v", r, err)
	}
	if r, err := c.Unregister(ctx, UnregisterDatabaseRequest{Path: "/c.db"}); err != nil || r.Status != "unregistered" || r.TXID != 9 {
		t.Errorf("unregister = %+v, %v", r, err)
	}
	if r, err := c.Unregister(ctx, UnregisterDatabaseRequest{Path: "/c.db"}); err != nil || r.Status != "already_unregistered" {
		t.Errorf("unregister again = %+v, %v", r, err)
	}
	if txid, err := c.TXID(ctx, "/a.db"); err != nil || txid != 8 {
		t.Errorf("txid = %d, %v", txid, err)
	}
	if _, err := c.TXID(ctx, "/none.db"); err == nil || err.Error() != "txid failed: database not found" {
		t.Errorf("txid unknown: %v", err)
	}
	if st, err := GetStatus(ctx, path); err != nil || len(st.DBs) != 1 || st.DBs[0].LagSeconds != 1.5 {
		t.Errorf("status = %+v, %v", st, err)
	}
	if _, err := c.Stop(ctx, StopRequest{}); err == nil || err.Error() != "stop failed: path required" {
		t.Errorf("stop without a path: %v", err)
	}
}

func TestServerSocketFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ls.sock")
	if _, err := GetStatus(ctx, path); !errors.Is(err, ErrNoDaemon) || !strings.HasPrefix(err.Error(), "failed to connect to control socket") {
		t.Fatalf("no daemon: %v, want ErrNoDaemon", err)
	}

	// A stale socket file (its listener gone without removing it) is replaced.
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()

	f := &fakeDaemon{open: map[string]bool{}}
	s, err := Listen(path, f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, %v; want 0600", fi.Mode(), err)
	}

	// A live socket is not taken over.
	if _, err := Listen(path, f, Options{}); err == nil {
		t.Error("a second server took over a live socket")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}

	// A regular file at the path is never removed.
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, f, Options{}); err == nil {
		t.Error("Listen replaced a regular file")
	}
}
