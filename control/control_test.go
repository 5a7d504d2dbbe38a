package control

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestServer(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ls.sock")
	if _, err := GetStatus(ctx, path); !errors.Is(err, ErrNoDaemon) {
		t.Fatalf("no daemon: %v, want ErrNoDaemon", err)
	}

	// A stale socket file (its listener gone without removing it) is replaced.
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()

	want := Status{Version: "v1", PID: 7, DBs: []DBStatus{{Database: "/a.db", LocalTXID: "0000000000000003", LagSeconds: 1.5}}}
	s, err := Listen(path, 0, func(context.Context) Status { return want }, nil)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, %v; want 0600", fi.Mode(), err)
	}
	got, err := GetStatus(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != "v1" || got.PID != 7 || len(got.DBs) != 1 || got.DBs[0] != want.DBs[0] {
		t.Errorf("status = %+v, want %+v", got, want)
	}

	// A live socket is not taken over.
	if _, err := Listen(path, 0, nil, nil); err == nil {
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
	if _, err := Listen(path, 0, nil, nil); err == nil {
		t.Error("Listen replaced a regular file")
	}
}
