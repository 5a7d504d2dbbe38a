package main

// The parts of `replicate` that make it a service: the subprocess run with
// -exec, the Prometheus endpoint, the control socket, the heartbeat, and the
// bounded final sync at shutdown.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/litestream-go/litestream/metrics"
)

// Defaults of Litestream v0.5 for the service keys.
const (
	DefaultShutdownSyncTimeout  = 30 * time.Second
	DefaultShutdownSyncInterval = 500 * time.Millisecond
	DefaultHeartbeatInterval    = 5 * time.Minute
)

// exitError carries a subprocess's exit status out of replicate -exec, so
// that litestream exits with the status of the application it ran.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// splitCommand splits an -exec command line into arguments the way a POSIX
// shell splits words: blanks separate, single quotes keep everything,
// double quotes keep everything but \" and \\, a backslash outside quotes
// escapes the next character. No expansion, globbing or operators: the
// command is run directly, not through a shell, so signals reach it.
func splitCommand(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			inWord = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated single quote in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			inWord = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated double quote in %q", s)
			}
		case c == '\\':
			inWord = true
			if i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			}
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args, nil
}

// startChild starts the -exec subprocess with litestream's environment and
// output. Its exit is reported on the returned channel.
func (m *Main) startChild(cmdline string, logger *slog.Logger) (*exec.Cmd, <-chan error, error) {
	args, err := splitCommand(cmdline)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot parse exec command: %w", err)
	}
	if len(args) == 0 {
		return nil, nil, fmt.Errorf("cannot parse exec command: empty command")
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr, cmd.Stdin = m.Stdout, m.Stderr, os.Stdin
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("cannot start exec command: %w", err)
	}
	logger.Info("subprocess started", "cmd", args[0], "pid", cmd.Process.Pid)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return cmd, done, nil
}

// childExit turns the subprocess's Wait result into replicate's result.
func childExit(err error) error {
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		if code < 0 {
			code = 1
		}
		return &exitError{code: code, err: fmt.Errorf("subprocess: %w", err)}
	}
	return fmt.Errorf("subprocess: %w", err)
}

// localAddr applies a localhost default to an address without a host
// (":3001" binds 127.0.0.1 only); one with a host, even 0.0.0.0, is kept.
// The MCP endpoint uses it. The metrics address is taken literally, as by
// Litestream: ":9090" is every interface.
func localAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "" {
		return addr
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// httpServer is a started HTTP listener (metrics).
type httpServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

func startHTTP(addr string, h http.Handler, logger *slog.Logger, what string) (*httpServer, error) {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return nil, fmt.Errorf("%s: must specify port for bind address: %q", what, addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen %s: %w", what, addr, err)
	}
	s := &httpServer{srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, ln: ln, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error(what+" server stopped", "addr", ln.Addr().String(), "error", err)
		}
	}()
	logger.Info(what+" listening", "addr", ln.Addr().String())
	return s, nil
}

func (s *httpServer) Addr() string { return s.ln.Addr().String() }

func (s *httpServer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	<-s.done
}

func metricsMux(m *metrics.Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "litestream: metrics at /metrics")
	})
	return mux
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// heartbeat pings url every interval while every database replicates: each
// one has had a successful sync since the previous check and its last sync
// did not fail. A dead-man's switch on the other end then alerts when the
// pings stop. It returns when ctx is done.
func heartbeat(ctx context.Context, url string, interval time.Duration, d *daemon, logger *slog.Logger) {
	red := redactURL(url)
	hc := &http.Client{Timeout: 30 * time.Second}
	t := time.NewTicker(interval)
	defer t.Stop()
	since := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			healthy := true
			for _, r := range d.entries() {
				s := r.status()
				if s.LastError != "" || !s.LastSync.After(since) {
					healthy = false
					logger.Warn("heartbeat skipped: database not replicating", "db", r.path, "last_sync", s.LastSync, "last_error", s.LastError)
					break
				}
			}
			since = now
			if !healthy {
				continue
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				logger.Error("heartbeat", "url", red, "error", redactErr(err, url))
				continue
			}
			resp, err := hc.Do(req)
			if err != nil {
				if ctx.Err() == nil {
					logger.Error("heartbeat failed", "url", red, "error", redactErr(err, url))
				}
				continue
			}
			resp.Body.Close()
			if resp.StatusCode >= 300 {
				logger.Error("heartbeat failed", "url", red, "status", resp.Status)
				continue
			}
			logger.Debug("heartbeat sent", "url", red)
		}
	}
}

// shutdownSync brings every open database's replica up to date before
// exit: syncs are retried every interval until they succeed or syncCtx
// (bounded by shutdown-sync-timeout) is done; then each database is closed
// under ctx (shutdown-timeout; a second signal cancels it).
func shutdownSync(syncCtx, ctx context.Context, entries []*dbEntry, interval time.Duration, logger *slog.Logger) error {
	var wg sync.WaitGroup
	errs := make([]error, len(entries))
	for i, e := range entries {
		db := e.writer()
		if db == nil {
			_, st := e.current()
			if st.LastError != "" {
				errs[i] = fmt.Errorf("final sync of %s: %w (%s)", e.path, errNeverOpened, redactString(st.LastError, e.ref))
				logger.Error("final sync impossible", "db", e.path, "replica", e.red, "error", errs[i])
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for attempt := 1; ; attempt++ {
				err := e.redact(db.Sync(syncCtx))
				if err == nil {
					break
				}
				if syncCtx.Err() != nil {
					errs[i] = fmt.Errorf("final sync of %s to %s: gave up after %d attempts: %w", e.path, e.red, attempt, err)
					logger.Error("final sync abandoned", "db", e.path, "replica", e.red, "attempts", attempt, "error", err)
					break
				}
				logger.Warn("final sync failed, retrying", "db", e.path, "replica", e.red, "attempt", attempt, "error", err)
				select {
				case <-syncCtx.Done():
				case <-time.After(interval):
				}
			}
			// Nothing is left to upload unless the application is still
			// writing; Close's own final sync catches that. After an
			// abandoned sync the database is still released.
			closeCtx := ctx
			if errs[i] != nil {
				closeCtx = syncCtx
			}
			if _, err := e.close(closeCtx); err != nil {
				if errs[i] == nil {
					errs[i] = err
				}
				logger.Error("final sync failed", "db", e.path, "replica", e.red, "error", err)
				return
			}
			if errs[i] == nil {
				_, st := e.current()
				logger.Info("database closed, final sync done", "db", e.path, "txid", st.TXID.String())
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
