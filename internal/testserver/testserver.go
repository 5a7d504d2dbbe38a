// Package testserver finds and starts the test servers on 127.0.0.1: the
// external ones (MinIO for s3, Azurite for abs), installed once by
// scripts/testservers/*.sh into a cache directory, and in-process ones
// (fake-gcs-server, NATS, SFTP, WebDAV). It is imported by tests only, of
// any package (the backends', chaos/, e2e/, cmd/litestream), so none of
// them needs its own copy of a server starter.
//
// When a server is not installed its tests skip, with the command that
// installs it; with LITESTREAM_REQUIRE_SERVERS set (as `make test` and CI
// do after running the install scripts) they fail instead, so a broken
// install cannot pass as a green run.
package testserver

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/litestream-go/litestream/internal/testsupport"
)

// Pinned versions; keep in step with scripts/testservers/*.sh.
const (
	MinIOVersion   = "v0.0.0-20260212201848-7aac2a2c5b7c"
	AzuriteVersion = "3.37.0"
)

// RequireEnv makes missing servers a failure instead of a skip.
const RequireEnv = "LITESTREAM_REQUIRE_SERVERS"

// CacheDir is where the install scripts put the servers (see
// scripts/testservers/common.sh).
func CacheDir() string {
	if d := os.Getenv("LITESTREAM_TESTSERVERS_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "litestream-testservers")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "litestream-testservers")
}

// find returns the first executable among paths, or "".
func find(paths ...string) string {
	for _, p := range paths {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// missing skips or fails the test for a server that is not installed.
func missing(tb testing.TB, what, script string) {
	tb.Helper()
	msg := fmt.Sprintf("%s is not installed: run scripts/testservers/%s (or make deps)", what, script)
	if os.Getenv(RequireEnv) != "" {
		tb.Fatalf("%s; %s is set, so this is a failure", msg, RequireEnv)
	}
	tb.Skip(msg)
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Server is a running external server.
type Server struct {
	// Endpoint is the base URL, e.g. "http://127.0.0.1:40123".
	Endpoint string
	cmd      *exec.Cmd
	done     chan struct{}
	log      *testsupport.LockedBuffer
}

// Stop kills the server and waits for it; a second call does nothing.
func (s *Server) Stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
	}
	<-s.done
}

// Log returns the server's output so far (for failure messages).
func (s *Server) Log() string { return s.log.String() }

func start(cmd *exec.Cmd, out io.Writer) (*Server, error) {
	lb := &testsupport.LockedBuffer{Limit: 1 << 20}
	if out != nil {
		cmd.Stdout, cmd.Stderr = io.MultiWriter(lb, out), io.MultiWriter(lb, out)
	} else {
		cmd.Stdout, cmd.Stderr = lb, lb
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{cmd: cmd, done: make(chan struct{}), log: lb}
	go func() { _ = cmd.Wait(); close(s.done) }()
	return s, nil
}

// MinIO credentials of the test server.
const (
	MinIOUser     = "litestream-test"
	MinIOPassword = "litestream-test-secret"
)

// MinIOBinary returns the MinIO binary: $LITESTREAM_MINIO_BIN, the install
// script's cache, or `minio` on PATH; "" if none.
func MinIOBinary() string {
	p, _ := exec.LookPath("minio")
	return find(os.Getenv("LITESTREAM_MINIO_BIN"), filepath.Join(CacheDir(), "minio-"+MinIOVersion, "minio"), p)
}

// StartMinIO starts a MinIO server on 127.0.0.1 with a fresh data
// directory, or skips/fails the test if MinIO is not installed. It stops
// when the test ends (Stop stops it sooner).
func StartMinIO(tb testing.TB, dataDir string) *Server {
	tb.Helper()
	return startMinIO(tb, "MinIO", "http", http.DefaultClient, nil, dataDir)
}

// startMinIO runs `minio server dataDir extraArgs...` on free ports of
// 127.0.0.1 with the test credentials (and extraEnv), reached at
// scheme://addr through client, and waits until it serves S3 requests. It
// tries three times (a free port may be taken meanwhile) and fails the test
// after that; what names the server in messages.
func startMinIO(tb testing.TB, what, scheme string, client *http.Client, extraEnv []string, dataDir string, extraArgs ...string) *Server {
	tb.Helper()
	bin := MinIOBinary()
	if bin == "" {
		missing(tb, "MinIO", "minio.sh")
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // the free port may be taken meanwhile
		port, err := freePort()
		if err != nil {
			tb.Fatal(err)
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		consolePort, err := freePort()
		if err != nil {
			tb.Fatal(err)
		}
		args := append([]string{"server", dataDir, "--address", addr, "--console-address", "127.0.0.1:" + strconv.Itoa(consolePort)}, extraArgs...)
		cmd := exec.Command(bin, append(args, "--quiet")...)
		cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+MinIOUser, "MINIO_ROOT_PASSWORD="+MinIOPassword,
			"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
		cmd.Env = append(cmd.Env, extraEnv...)
		s, err := start(cmd, nil)
		if err != nil {
			tb.Fatalf("start %s %s: %v", what, bin, err)
		}
		s.Endpoint = scheme + "://" + addr
		// Not just live: MinIO answers its health checks before its object
		// layer is up, and S3 requests then fail with 503
		// XMinioServerNotInitialized. An anonymous request is answered 403
		// once it is up.
		if err := waitHTTP(s, client, s.Endpoint+"/", 30*time.Second, http.StatusForbidden); err != nil {
			s.Stop()
			lastErr = fmt.Errorf("%w\n%s", err, s.Log())
			continue
		}
		tb.Cleanup(s.Stop)
		return s
	}
	tb.Fatalf("%s did not start: %v", what, lastErr)
	return nil
}

// waitHTTP polls url through client until it answers the status want, the
// process exits, or timeout.
func waitHTTP(s *Server, client *http.Client, url string, timeout time.Duration, want int) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("server exited")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond) // polling interval while waiting for startup
	}
	return fmt.Errorf("no answer from %s within %v", url, timeout)
}

// Azurite's well-known development account.
const (
	AzuriteAccount = "devstoreaccount1"
	AzuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// AzuriteBinary returns azurite-blob: $LITESTREAM_AZURITE_BIN, the install
// script's cache, or `azurite-blob` on PATH; "" if none.
func AzuriteBinary() string {
	p, _ := exec.LookPath("azurite-blob")
	return find(os.Getenv("LITESTREAM_AZURITE_BIN"), filepath.Join(CacheDir(), "azurite-"+AzuriteVersion, "node_modules", ".bin", "azurite-blob"), p)
}

var azuritePort = regexp.MustCompile(`listens on http://127\.0\.0\.1:(\d+)`)

// StartAzurite starts Azurite's blob service on 127.0.0.1 with a port of
// its choosing, in memory, or skips/fails the test if it is not installed.
// It stops when the test ends (Stop stops it sooner).
func StartAzurite(tb testing.TB, workDir string) *Server {
	tb.Helper()
	bin := AzuriteBinary()
	if bin == "" {
		missing(tb, "Azurite", "azurite.sh")
	}
	cmd := exec.Command(bin, "--blobHost", "127.0.0.1", "--blobPort", "0", "--inMemoryPersistence",
		"--skipApiVersionCheck", "--silent")
	cmd.Dir = workDir // in case it writes anything despite in-memory persistence
	pr, pw := io.Pipe()
	s, err := start(cmd, pw)
	if err != nil {
		tb.Fatalf("start Azurite %s: %v", bin, err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			if m := azuritePort.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m[1]
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() { <-s.done; pw.Close() }()
	select {
	case port := <-found:
		s.Endpoint = "http://127.0.0.1:" + port + "/" + AzuriteAccount
		tb.Cleanup(s.Stop)
		return s
	case <-s.done:
		tb.Fatalf("Azurite exited:\n%s", s.Log())
	case <-time.After(60 * time.Second):
		s.Stop()
		tb.Fatalf("Azurite did not report its port:\n%s", s.Log())
	}
	return nil
}
