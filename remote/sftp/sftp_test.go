package sftp

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/litestream-go/litestream/internal/testserver"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/remotetest"
	"github.com/litestream-go/litestream/remote/retry"
)

func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	return remotetest.CloseAtEnd(t, c, err)
}

func TestContract(t *testing.T) {
	s := testserver.StartSFTP(t)
	var n atomic.Int64
	// SFTP version 3 stores mtimes in whole seconds.
	remotetest.RunContractWithOptions(t, remotetest.Options{TimestampPrecision: time.Second}, func(t *testing.T) remote.Client {
		return newClient(t, Config{Host: s.Addr, User: s.User, Password: s.Password, HostKey: s.HostKey,
			Path: fmt.Sprintf("r%d/app", n.Add(1))})
	})
}

// TestLayout checks where the files land on the server and their mtime.
func TestLayout(t *testing.T) {
	s := testserver.StartSFTP(t)
	c := newClient(t, Config{Host: s.Addr, User: s.User, Password: s.Password, HostKey: s.HostKey, Path: "backups/app"})
	ts := time.Date(2021, 3, 4, 5, 6, 7, 89_000_000, time.UTC)
	data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 0x1a, MaxTXID: 0x2b, Timestamp: ts, Pages: 2})
	info, err := c.WriteLTXFile(t.Context(), 3, 0x1a, 0x2b, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if !info.CreatedAt.Equal(ts.Truncate(time.Second)) {
		t.Fatalf("CreatedAt %v", info.CreatedAt)
	}
	p := filepath.Join(s.Root, "backups/app/ltx/3/000000000000001a-000000000000002b.ltx")
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file on the server: %v", err)
	}
	fi, _ := os.Stat(p)
	if !fi.ModTime().Equal(ts.Truncate(time.Second)) {
		t.Fatalf("mtime %v", fi.ModTime())
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Fatalf("%d entries in the level directory (temporary files left?)", len(entries))
	}
}

func TestHostKeyVerification(t *testing.T) {
	s := testserver.StartSFTP(t)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	otherSigner, _ := ssh.NewSignerFromKey(otherPriv)
	wrongKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(otherSigner.PublicKey())))
	base := Config{Host: s.Addr, User: s.User, Password: s.Password, Path: "db",
		Retry: retry.Policy{Attempts: 3, Base: time.Millisecond}}

	t.Run("wrong host key is refused, not retried", func(t *testing.T) {
		cfg := base
		cfg.HostKey = wrongKey
		c := newClient(t, cfg)
		before := s.Logins()
		_, err := c.LTXFiles(t.Context(), 0, 0)
		if err == nil || !strings.Contains(err.Error(), "host key") {
			t.Fatalf("got %v", err)
		}
		if s.Logins() != before {
			t.Fatal("logged in despite a wrong host key")
		}
		t.Log(err)
	})
	t.Run("host key from a file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "host.pub")
		os.WriteFile(f, []byte(s.HostKey+"\n"), 0o600)
		cfg := base
		cfg.HostKey = f
		if _, err := newClient(t, cfg).LTXFiles(t.Context(), 0, 0); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("known_hosts", func(t *testing.T) {
		home := t.TempDir()
		t.Setenv("HOME", home)
		cfg := base
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "cannot verify the host key") {
			t.Fatalf("no host key and no known_hosts: got %v", err)
		}
		os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
		line := fmt.Sprintf("[127.0.0.1]:%s %s\n", s.Addr[strings.LastIndex(s.Addr, ":")+1:], s.HostKey)
		os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), []byte(line), 0o600)
		if _, err := newClient(t, cfg).LTXFiles(t.Context(), 0, 0); err != nil {
			t.Fatal(err)
		}
		// A known_hosts entry with another key is a mismatch.
		os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), []byte(strings.Replace(line, s.HostKey, wrongKey, 1)), 0o600)
		if _, err := newClient(t, cfg).LTXFiles(t.Context(), 0, 0); err == nil {
			t.Fatal("known_hosts mismatch accepted")
		}
	})
	t.Run("insecure only when asked", func(t *testing.T) {
		t.Setenv("HOME", t.TempDir())
		cfg := base
		cfg.InsecureIgnoreHostKey = true
		if _, err := newClient(t, cfg).LTXFiles(t.Context(), 0, 0); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAuth(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	s := testserver.StartSFTPWith(t, testserver.SFTPOptions{ClientKey: signer.PublicKey()})

	t.Run("private key file", func(t *testing.T) {
		block, err := ssh.MarshalPrivateKey(priv, "")
		if err != nil {
			t.Fatal(err)
		}
		keyPath := filepath.Join(t.TempDir(), "id_ed25519")
		os.WriteFile(keyPath, pem.EncodeToMemory(block), 0o600)
		c := newClient(t, Config{Host: s.Addr, User: s.User, KeyPath: keyPath, HostKey: s.HostKey, Path: "k"})
		data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 1, MaxTXID: 1, Timestamp: time.Now()})
		if _, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		c := newClient(t, Config{Host: s.Addr, User: s.User, Password: "wrong-pass", HostKey: s.HostKey, Path: "k",
			Retry: retry.Policy{Attempts: 5, Base: 50 * time.Millisecond}})
		start := time.Now()
		_, err := c.LTXFiles(t.Context(), 0, 0)
		if err == nil || !strings.Contains(err.Error(), "unable to authenticate") || strings.Contains(err.Error(), "wrong-pass") {
			t.Fatalf("got %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("auth failure took %v: retried?", d)
		}
		if !strings.Contains(err.Error(), "sftp litestream@127.0.0.1") || !strings.Contains(err.Error(), `"k/ltx/0"`) {
			t.Fatalf("error does not name host and path: %v", err)
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		if _, err := New(Config{Host: s.Addr, User: s.User, HostKey: s.HostKey}); err == nil {
			t.Fatal("no error")
		}
	})
}

// TestReconnect cuts the connection between operations and in the middle
// of a read: the client reconnects and retries.
func TestReconnect(t *testing.T) {
	s := testserver.StartSFTP(t)
	c := newClient(t, Config{Host: s.Addr, User: s.User, Password: s.Password, HostKey: s.HostKey, Path: "db",
		Retry: retry.Policy{Attempts: 5, Base: time.Millisecond, Max: 10 * time.Millisecond}})
	data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 1, MaxTXID: 1, Timestamp: time.Now(), Pages: 4})
	if _, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		s.DropAll()
		want := min(i+1, 2) // file 2 exists from round 1 on
		if infos, err := c.LTXFiles(t.Context(), 0, 0); err != nil || len(infos) != want {
			t.Fatalf("round %d: list after a dropped connection: %d %v", i, len(infos), err)
		}
		s.DropAll()
		data2 := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 2, MaxTXID: 2, Timestamp: time.Now()})
		if _, err := c.WriteLTXFile(t.Context(), 0, 2, 2, bytes.NewReader(data2)); err != nil {
			t.Fatalf("round %d: write after a dropped connection: %v", i, err)
		}
	}
	// A reader whose connection drops fails; it never returns short data.
	rc, err := c.OpenLTXFile(t.Context(), 0, 1, 1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.DropAll()
	if b, err := io.ReadAll(rc); err == nil && !bytes.Equal(b, data) {
		t.Fatal("short read without an error")
	}
	rc.Close()
}
