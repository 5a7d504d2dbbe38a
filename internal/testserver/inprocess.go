package testserver

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/net/webdav"
)

// The in-process servers below stop when the test ends.

// NATS is an embedded NATS server with JetStream.
type NATS struct {
	Server *natsserver.Server
	// URL is the client URL, e.g. "nats://127.0.0.1:40000".
	URL string
	// connOpts authenticate CreateBucket's connection (StartNATSWith).
	connOpts []nats.Option
}

// StartNATS runs nats-server with JetStream on 127.0.0.1 and a free port.
func StartNATS(tb testing.TB) *NATS {
	tb.Helper()
	return StartNATSWith(tb, natsserver.Options{})
}

// StartNATSWith runs nats-server with JetStream and opts (authentication, a
// store directory, a port): the one way the tests start NATS. Host is always
// 127.0.0.1 and JetStream on, logging and signal handlers off; Port 0 picks
// a free port and an empty StoreDir a temporary one. connOpts are what
// CreateBucket connects with (credentials matching opts).
func StartNATSWith(tb testing.TB, opts natsserver.Options, connOpts ...nats.Option) *NATS {
	tb.Helper()
	opts.Host = "127.0.0.1"
	if opts.Port == 0 {
		opts.Port = -1
	}
	if opts.StoreDir == "" {
		opts.StoreDir = tb.TempDir()
	}
	opts.JetStream, opts.NoLog, opts.NoSigs = true, true, true
	s, err := natsserver.NewServer(&opts)
	if err != nil {
		tb.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		tb.Fatal("nats server did not start")
	}
	tb.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return &NATS{Server: s, URL: s.ClientURL(), connOpts: connOpts}
}

// CreateBucket creates an object store bucket, as `nats object add` does.
func (n *NATS) CreateBucket(tb testing.TB, bucket string) {
	tb.Helper()
	nc, err := nats.Connect(n.URL, n.connOpts...)
	if err != nil {
		tb.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := js.CreateObjectStore(tb.Context(), jetstream.ObjectStoreConfig{Bucket: bucket}); err != nil {
		tb.Fatal(err)
	}
}

// listen returns a listener on a free port of 127.0.0.1.
func listen(tb testing.TB) net.Listener {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

func serveHTTP(tb testing.TB, l net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	tb.Cleanup(func() { srv.Close() })
}

// StartWebDAV serves golang.org/x/net/webdav over an in-memory file system
// (which keeps dead properties) on 127.0.0.1 and returns host:port.
func StartWebDAV(tb testing.TB) string {
	tb.Helper()
	l := listen(tb)
	serveHTTP(tb, l, &webdav.Handler{FileSystem: webdav.NewMemFS(), LockSystem: webdav.NewMemLS()})
	return l.Addr().String()
}

// FakeGCS is fake-gcs-server on 127.0.0.1.
type FakeGCS struct {
	Server *fakestorage.Server
	// Endpoint is the JSON API base, ".../storage/v1/".
	Endpoint string
}

// StartFakeGCS runs fake-gcs-server in memory on 127.0.0.1.
func StartFakeGCS(tb testing.TB) *FakeGCS {
	tb.Helper()
	l := listen(tb)
	base := "http://" + l.Addr().String()
	s, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http", NoListener: true, ExternalURL: base, PublicHost: l.Addr().String(), Writer: io.Discard,
	})
	if err != nil {
		tb.Fatal(err)
	}
	serveHTTP(tb, l, s.HTTPHandler())
	tb.Cleanup(s.Stop)
	return &FakeGCS{Server: s, Endpoint: base + "/storage/v1/"}
}

// SFTP is an SSH server on 127.0.0.1 serving SFTP (pkg/sftp's server) over
// a temporary directory, with one user and password (and, with
// SFTPOptions.ClientKey, a public key login).
type SFTP struct {
	Addr string
	Root string
	// HostKey is the server's public key in authorized_keys format.
	HostKey string
	User    string
	// Password of User.
	Password string

	logins atomic.Int64
	mu     sync.Mutex
	conns  []net.Conn
}

// SFTPOptions configure StartSFTPWith.
type SFTPOptions struct {
	// ClientKey, if set, also logs User in by this public key.
	ClientKey ssh.PublicKey
}

// StartSFTP runs the SFTP server.
func StartSFTP(tb testing.TB) *SFTP {
	tb.Helper()
	return StartSFTPWith(tb, SFTPOptions{})
}

// StartSFTPWith runs the SFTP server with opts.
func StartSFTPWith(tb testing.TB, opts SFTPOptions) *SFTP {
	tb.Helper()
	signer := NewSSHKey(tb)
	s := &SFTP{Root: tb.TempDir(), User: "litestream", Password: "sftp-test-secret",
		HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))}
	cfg := &ssh.ServerConfig{
		PasswordCallback: func(m ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			if m.User() == s.User && bytes.Equal(pw, []byte(s.Password)) {
				s.logins.Add(1)
				return nil, nil
			}
			return nil, fmt.Errorf("bad password")
		},
		PublicKeyCallback: func(m ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if opts.ClientKey != nil && m.User() == s.User && bytes.Equal(key.Marshal(), opts.ClientKey.Marshal()) {
				s.logins.Add(1)
				return nil, nil
			}
			return nil, fmt.Errorf("unknown key")
		},
	}
	cfg.AddHostKey(signer)
	l := listen(tb)
	s.Addr = l.Addr().String()
	var wg sync.WaitGroup
	tb.Cleanup(func() {
		l.Close()
		s.DropAll()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, nc)
			s.mu.Unlock()
			wg.Go(func() { serveSSH(nc, cfg, s.Root) })
		}
	})
	return s
}

// NewSSHKey returns a new ed25519 key: a server's host key or a client's
// login key.
func NewSSHKey(tb testing.TB) ssh.Signer {
	tb.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		tb.Fatal(err)
	}
	return signer
}

// Logins counts the successful logins so far.
func (s *SFTP) Logins() int64 { return s.logins.Load() }

// DropAll cuts every open connection, as a network failure would.
func (s *SFTP) DropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

func serveSSH(nc net.Conn, cfg *ssh.ServerConfig, root string) {
	defer nc.Close()
	_, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, reqs, err := nch.Accept()
		if err != nil {
			return
		}
		go func() {
			for req := range reqs {
				ok := req.Type == "subsystem" && len(req.Payload) > 4 && string(req.Payload[4:]) == "sftp"
				_ = req.Reply(ok, nil)
				if ok {
					if srv, err := sftp.NewServer(ch, sftp.WithServerWorkingDirectory(root)); err == nil {
						_ = srv.Serve()
						_ = srv.Close()
					}
					return
				}
			}
		}()
	}
}
