// Package sftp is the remote.Client for a directory on an SSH server, over
// SFTP, in the layout Litestream v0.5 writes:
//
//	<path>/ltx/<level decimal>/<%016x-%016x>.ltx
//
// The URL is sftp://user[:password]@host[:22]/path. As in Litestream, the
// path is relative to the login directory (sftp://u@h/backups/app is
// ~u/backups/app); the server decides what an absolute path means.
//
// Host keys are verified, always, unless InsecureIgnoreHostKey is set
// explicitly: against HostKey (the server's public key in authorized_keys
// format, "ssh-ed25519 AAAA...", or a file holding it), else against
// known_hosts files (KnownHosts, default ~/.ssh/known_hosts). With neither,
// New fails rather than trust whatever answers.
//
// A file's creation time (the LTX header timestamp) is its mtime. SFTP
// version 3 carries whole seconds, so listed times are the header
// timestamp truncated to the second (Litestream has the same limit).
//
// Writes go to a hidden temporary file in the level directory, get their
// mtime, and are renamed over the final name with the posix-rename@openssh.com
// extension, so a reader never sees a partial file. Uploads are spooled (to
// memory, or a temporary file past 8 MiB) so a write can be retried on a
// new connection after the old one dropped. Reads are positioned SFTP reads
// of exactly the requested range.
package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"github.com/superfly/ltx"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/internal/backend"
	"github.com/litestream-go/litestream/remote/retry"
)

// Config configures a Client.
type Config struct {
	// Host is host[:port]; the port defaults to 22.
	Host string
	// User is the login name; required.
	User string
	// Password and KeyPath (a private key file, unencrypted) are the ways
	// to authenticate; either or both.
	Password string
	KeyPath  string
	// HostKey is the server's public key in authorized_keys format, or
	// the path of a file holding it.
	HostKey string
	// KnownHosts lists known_hosts files, used when HostKey is empty
	// (default ~/.ssh/known_hosts).
	KnownHosts []string
	// InsecureIgnoreHostKey accepts any host key. Never implied.
	InsecureIgnoreHostKey bool
	// Path is the replica root on the server.
	Path string
	// Timeout bounds connecting and each request that does not stream
	// data back (default 30s; uploads get one more second per MiB).
	Timeout time.Duration
	// Retry is the policy for transient failures (zero: retry.Default).
	Retry retry.Policy
	// Logger receives debug and retry messages (nil: slog.Default()).
	Logger *slog.Logger
	// SequentialWrites turns off pkg/sftp's concurrent writes of one file,
	// for servers that do not take them (Litestream's concurrent-writes:
	// false).
	SequentialWrites bool
}

// Client is a replica on an SFTP server. It connects on first use,
// reconnects after a connection is lost, and is safe for concurrent use.
type Client struct {
	cfg     Config
	keys    remote.Keys
	addr    string
	ssh     *ssh.ClientConfig
	log     *slog.Logger
	what    string
	secrets []string

	mu   sync.Mutex
	conn *ssh.Client
	sftp *sftp.Client

	// reqs counts the operations tried, by kind (see do).
	reqs remote.Requests
}

// RequestCounts returns the operations tried so far, by kind, retries
// included: a directory read is a LIST, an open a GET, a write a PUT, a
// delete a DELETE.
func (c *Client) RequestCounts() remote.RequestCounts { return c.reqs.RequestCounts() }

// opKind is the kind of a do operation, from its first word.
func opKind(op string) remote.RequestKind {
	switch verb, _, _ := strings.Cut(op, " "); verb {
	case "list":
		return remote.ReqList
	case "open":
		return remote.ReqGet
	case "delete":
		return remote.ReqDelete
	}
	return remote.ReqPut
}

var _ remote.Client = (*Client)(nil)

// New returns a client for cfg. It reads the key files and resolves host
// key verification, but does not connect.
func New(cfg Config) (*Client, error) {
	if cfg.Host == "" {
		return nil, errors.New("sftp replica: host is required")
	}
	if cfg.User == "" {
		return nil, fmt.Errorf("sftp replica %s: user is required (sftp://user@host/path)", cfg.Host)
	}
	addr := cfg.Host
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), "22")
	}
	cfg.Path = remote.CleanRoot(cfg.Path)
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	log := backend.Logger(cfg.Logger, &cfg.Retry, "backend", "sftp", "host", addr)
	c := &Client{
		cfg:     cfg,
		keys:    remote.Keys{Root: cfg.Path, Layout: remote.LayoutLTX},
		addr:    addr,
		log:     log,
		what:    fmt.Sprintf("sftp %s@%s", cfg.User, addr),
		secrets: []string{cfg.Password},
	}
	sc, err := c.clientConfig()
	if err != nil {
		return nil, backend.Redact(fmt.Errorf("%s: %w", c.what, err), cfg.Password)
	}
	c.ssh = sc
	return c, nil
}

func (c *Client) clientConfig() (*ssh.ClientConfig, error) {
	cfg := c.cfg
	sc := &ssh.ClientConfig{User: cfg.User, Timeout: cfg.Timeout}
	if cfg.KeyPath != "" {
		b, err := os.ReadFile(expandHome(cfg.KeyPath))
		if err != nil {
			return nil, fmt.Errorf("read private key: %w", err)
		}
		signer, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("parse private key %s: %w", cfg.KeyPath, err)
		}
		sc.Auth = append(sc.Auth, ssh.PublicKeys(signer))
	}
	if cfg.Password != "" {
		sc.Auth = append(sc.Auth, ssh.Password(cfg.Password))
	}
	if len(sc.Auth) == 0 {
		return nil, errors.New("no credentials: set a password or key-path")
	}

	switch {
	case cfg.InsecureIgnoreHostKey:
		sc.HostKeyCallback = ssh.InsecureIgnoreHostKey()
	case cfg.HostKey != "":
		key, err := parseHostKey(cfg.HostKey)
		if err != nil {
			return nil, err
		}
		sc.HostKeyCallback = ssh.FixedHostKey(key)
		sc.HostKeyAlgorithms = []string{key.Type()}
	default:
		files := cfg.KnownHosts
		if len(files) == 0 {
			home, _ := os.UserHomeDir()
			files = []string{filepath.Join(home, ".ssh", "known_hosts")}
		}
		var existing []string
		for _, f := range files {
			f = expandHome(f)
			if _, err := os.Stat(f); err == nil {
				existing = append(existing, f)
			}
		}
		if len(existing) == 0 {
			return nil, fmt.Errorf("cannot verify the host key: set host-key, or add the server to %s (insecure-ignore-host-key only for throwaway setups)", strings.Join(files, ", "))
		}
		cb, err := knownhosts.New(existing...)
		if err != nil {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
		sc.HostKeyCallback = cb
	}
	return sc, nil
}

// parseHostKey accepts an authorized_keys line or a file holding one.
func parseHostKey(s string) (ssh.PublicKey, error) {
	if key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s)); err == nil {
		return key, nil
	}
	b, err := os.ReadFile(expandHome(s))
	if err != nil {
		return nil, fmt.Errorf("host-key is neither a public key (\"ssh-ed25519 AAAA...\") nor a readable file: %w", err)
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return nil, fmt.Errorf("host-key file %s: %w", s, err)
	}
	return key, nil
}

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

// Type returns "sftp".
func (c *Client) Type() string { return "sftp" }

// Config returns the client's configuration, defaults applied.
func (c *Client) Config() Config { return c.cfg }

// Close closes the connection, if one is open.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resetLocked()
	return nil
}

func (c *Client) resetLocked() {
	if c.sftp != nil {
		_ = c.sftp.Close()
	}
	if c.conn != nil {
		_ = c.conn.Close()
	}
	c.sftp, c.conn = nil, nil
}

// client returns the SFTP session, connecting first if needed.
func (c *Client) client(ctx context.Context) (*sftp.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sftp != nil {
		return c.sftp, nil
	}
	d := net.Dialer{Timeout: c.cfg.Timeout}
	nc, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	// The SSH handshake takes no context: bound it with a deadline.
	_ = nc.SetDeadline(time.Now().Add(c.cfg.Timeout))
	sconn, chans, reqs, err := ssh.NewClientConn(nc, c.addr, c.ssh)
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("ssh handshake: %w", err)
	}
	_ = nc.SetDeadline(time.Time{})
	conn := ssh.NewClient(sconn, chans, reqs)
	sc, err := sftp.NewClient(conn, sftp.UseConcurrentWrites(!c.cfg.SequentialWrites))
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("start sftp subsystem: %w", err)
	}
	c.conn, c.sftp = conn, sc
	return sc, nil
}

// dropIfLost forgets a session whose connection failed, so that the next
// try reconnects. sc is the session the failed call used.
func (c *Client) dropIfLost(sc *sftp.Client, err error) {
	if err == nil || !connLost(err) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sftp == sc {
		c.resetLocked()
	}
}

func connLost(err error) bool {
	return errors.Is(err, sftp.ErrSSHFxConnectionLost) || errors.Is(err, io.EOF) ||
		errors.Is(err, context.DeadlineExceeded) || retry.IsTransientNet(err)
}

// transient reports whether a failure is worth retrying on a new
// connection. Authentication and host key failures are not.
func transient(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	if strings.Contains(msg, "unable to authenticate") || strings.Contains(msg, "host key") || strings.Contains(msg, "knownhosts") {
		return false
	}
	return errors.Is(err, sftp.ErrSSHFxConnectionLost) || errors.Is(err, io.EOF) || retry.IsTransientNet(err)
}

// do runs fn with a session, retrying transient failures on a new one.
func (c *Client) do(ctx context.Context, op string, timeout time.Duration, fn func(context.Context, *sftp.Client) error) error {
	r := c.cfg.Retry
	if timeout > 0 {
		r = r.WithAttemptTimeout(timeout)
	}
	return r.Do(ctx, c.what+": "+op, transient, func(ctx context.Context) error {
		c.reqs.Add(opKind(op))
		sc, err := c.client(ctx)
		if err != nil {
			return err
		}
		// pkg/sftp calls take no context: close the session if ctx ends
		// first, which fails the call at once.
		stop := context.AfterFunc(ctx, func() { c.dropIfLost(sc, context.DeadlineExceeded) })
		err = fn(ctx, sc)
		stop()
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		c.dropIfLost(sc, err)
		return err
	})
}

// FilePath returns the server path of one LTX file.
func (c *Client) FilePath(level int, minTXID, maxTXID ltx.TXID) string {
	return c.keys.File(level, minTXID, maxTXID)
}

func (c *Client) fail(op, p string, err error) error {
	return backend.Redact(fmt.Errorf("%s: %s %q: %w", c.what, op, p, err), c.secrets...)
}

func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, sftp.ErrSSHFxNoSuchFile)
}

// LTXFiles lists the files of level with MinTXID >= seek, by MinTXID.
func (c *Client) LTXFiles(ctx context.Context, level int, seek ltx.TXID) ([]*ltx.FileInfo, error) {
	dir := c.keys.LevelDir(level)
	if err := backend.CheckLevel(level); err != nil {
		return nil, c.fail("list", dir, err)
	}
	var entries []os.FileInfo
	err := c.do(ctx, "list "+dir, c.cfg.Timeout, func(_ context.Context, sc *sftp.Client) error {
		var err error
		entries, err = sc.ReadDir(dir)
		return err
	})
	if isNotExist(err) {
		return nil, nil
	} else if err != nil {
		return nil, c.fail("list", dir, err)
	}
	var infos []*ltx.FileInfo
	for _, e := range entries {
		if !e.Mode().IsRegular() {
			continue
		}
		minTXID, maxTXID, ok := remote.ParseFileName(e.Name())
		if !ok || minTXID < seek {
			continue
		}
		infos = append(infos, &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: e.Size(), CreatedAt: e.ModTime().UTC()})
	}
	backend.SortInfos(infos)
	return infos, nil
}

// OpenLTXFile opens bytes [offset, offset+size) of a file (size 0: to the
// end). The file stays open on the server until the reader is closed.
func (c *Client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	p := c.FilePath(level, minTXID, maxTXID)
	if err := backend.CheckOpen(c.fail, p, level, offset, size); err != nil {
		return nil, err
	}
	var f *sftp.File
	var end int64
	err := c.do(ctx, "open "+p, c.cfg.Timeout, func(_ context.Context, sc *sftp.Client) error {
		var err error
		if f, err = sc.Open(p); err != nil {
			return err
		}
		fi, err := f.Stat()
		if err != nil {
			_ = f.Close()
			return err
		}
		if end, err = backend.RangeEnd(offset, size, fi.Size()); err != nil {
			_ = f.Close()
			return err
		}
		return nil
	})
	if isNotExist(err) {
		return nil, c.fail("open", p, fmt.Errorf("%w: %w", remote.ErrNotExist, err))
	} else if err != nil {
		return nil, c.fail("open", p, err)
	}
	desc := fmt.Sprintf("%s file %q", c.what, p)
	return backend.ExactReader(&sectionFile{f: f, r: io.NewSectionReader(f, offset, end-offset)}, end-offset, desc), nil
}

type sectionFile struct {
	f *sftp.File
	r *io.SectionReader
}

func (s *sectionFile) Read(p []byte) (int, error) { return s.r.Read(p) }
func (s *sectionFile) Close() error               { return s.f.Close() }

// WriteLTXFile stores the LTX file read from r atomically, with its mtime
// set to the header timestamp (to the second).
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	p := c.FilePath(level, minTXID, maxTXID)
	info, err := backend.WriteSpooled(ctx, c.fail, p, level, minTXID, maxTXID, r, 0, func(ctx context.Context, spool *backend.Spool, createdAt time.Time) error {
		dir := path.Dir(p)
		timeout := backend.UploadTimeout(c.cfg.Timeout, spool.Size())
		err := c.do(ctx, "write "+p, timeout, func(ctx context.Context, sc *sftp.Client) error {
			tmp := backend.TempPath(p)
			err := c.writeOnce(ctx, sc, dir, tmp, p, spool, createdAt)
			if err != nil {
				_ = sc.Remove(tmp) // best effort; fails too if the connection is gone
			}
			return err
		})
		if err == nil {
			c.log.Debug("wrote ltx file", "path", p, "size", spool.Size())
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	info.CreatedAt = info.CreatedAt.Truncate(time.Second) // the mtime keeps seconds
	return info, nil
}

func (c *Client) writeOnce(ctx context.Context, sc *sftp.Client, dir, tmp, p string, spool *backend.Spool, createdAt time.Time) error {
	if err := sc.MkdirAll(dir); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	f, err := sc.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	if _, err := f.ReadFrom(backend.ContextReader(ctx, spool.Reader())); err != nil {
		_ = f.Close()
		return fmt.Errorf("upload: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := sc.Chtimes(tmp, createdAt, createdAt); err != nil {
		return fmt.Errorf("set mtime: %w", err)
	}
	if err := sc.PosixRename(tmp, p); err != nil {
		var se *sftp.StatusError
		if !errors.As(err, &se) || se.FxCode() != sftp.ErrSSHFxOpUnsupported {
			return fmt.Errorf("rename into place: %w", err)
		}
		// No posix-rename: SFTP's plain rename refuses to replace, so
		// remove first. A reader may briefly miss the file; it never sees
		// a partial one.
		if err := sc.Remove(p); err != nil && !isNotExist(err) {
			return fmt.Errorf("replace: %w", err)
		}
		if err := sc.Rename(tmp, p); err != nil {
			return fmt.Errorf("rename into place: %w", err)
		}
	}
	return nil
}

// DeleteLTXFiles removes files; missing ones are skipped. It tries every
// file and returns all failures.
func (c *Client) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	return backend.DeleteFiles(ctx, files, c.FilePath, c.fail, c.deletePaths)
}

func (c *Client) deletePaths(ctx context.Context, paths []string) error {
	return backend.DeleteEach(ctx, c.fail, paths, func(ctx context.Context, p string) error {
		err := c.do(ctx, "delete "+p, c.cfg.Timeout, func(_ context.Context, sc *sftp.Client) error {
			return sc.Remove(p)
		})
		if err != nil && !isNotExist(err) {
			return c.fail("delete", p, err)
		}
		return nil
	})
}

// DeleteAll removes <path>/ltx and everything in it.
func (c *Client) DeleteAll(ctx context.Context) error {
	dir := strings.TrimSuffix(c.keys.DeletePrefixes()[0], "/")
	err := c.do(ctx, "delete all "+dir, 0, func(_ context.Context, sc *sftp.Client) error {
		return sc.RemoveAll(dir)
	})
	if err != nil && !isNotExist(err) {
		return c.fail("delete all", dir, err)
	}
	return nil
}
