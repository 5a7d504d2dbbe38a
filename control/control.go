// Package control is the replication daemon's local control socket: an HTTP
// server on a Unix socket speaking Litestream v0.5's control API (start,
// stop, sync, register, unregister, list, info, txid, debug/sync-status,
// pprof) plus this program's GET /status, and the client the commands use.
// Either tool's client works against either daemon.
//
// A Unix socket, not TCP: access is governed by the socket file's
// permissions, and nothing is reachable from the network.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"
)

// DefaultPath is Litestream's default control socket path.
const DefaultPath = "/var/run/litestream.sock"

// Errors a Daemon returns (wrapped) so that the server answers with
// Litestream's status codes.
var (
	// ErrNotFound: no database with that path.
	ErrNotFound = errors.New("database not found")
	// ErrNotOpen: the database is stopped.
	ErrNotOpen = errors.New("database not open")
	// ErrInvalid: the request cannot be served as given (a replica URL
	// that does not parse, say).
	ErrInvalid = errors.New("invalid request")
)

// Daemon is what the control socket controls. Paths arrive expanded
// (absolute, "~" resolved). Methods must be safe for concurrent use.
type Daemon interface {
	Info() InfoResponse
	List() ListResponse
	Status(ctx context.Context) Status
	// Start opens a stopped database; Stop closes one after its final sync.
	Start(ctx context.Context, path string) (StartResponse, error)
	Stop(ctx context.Context, path string) (StopResponse, error)
	// Register adds and opens a database replicating to replicaURL;
	// Unregister closes and removes one.
	Register(ctx context.Context, path, replicaURL string) (RegisterDatabaseResponse, error)
	Unregister(ctx context.Context, path string) (UnregisterDatabaseResponse, error)
	// Sync syncs a database now; with wait, until the replica holds it.
	Sync(ctx context.Context, path string, wait bool) (SyncResponse, error)
	TXID(path string) (uint64, error)
	// SyncDiagnostics describes the database at path, or all when "".
	SyncDiagnostics(path string) ([]SyncDiagnostic, error)
}

// Server serves the control socket.
type Server struct {
	path   string
	d      Daemon
	expand func(string) (string, error)
	log    *slog.Logger
	ln     net.Listener
	srv    *http.Server
	done   chan struct{}

	// ctx bounds the operations that must not stop when a client hangs
	// up (start, stop, unregister): it ends at Close.
	ctx    context.Context
	cancel context.CancelFunc
}

// Options configures Listen.
type Options struct {
	// Perm is the socket file's mode (0 means 0600, Litestream's default).
	Perm fs.FileMode
	// ExpandPath resolves a request's database path (nil: as given).
	ExpandPath func(string) (string, error)
	Logger     *slog.Logger
}

// Listen creates the socket at path and serves d on it until Close. A stale
// socket file left by a crashed daemon is replaced; a live one (another
// daemon answers) is an error, as is any other kind of file.
func Listen(path string, d Daemon, opts Options) (*Server, error) {
	if opts.Perm == 0 {
		opts.Perm = 0o600
	}
	if opts.ExpandPath == nil {
		opts.ExpandPath = func(p string) (string, error) { return p, nil }
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("control socket %s: file exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: another process is listening on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale control socket %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, opts.Perm); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{path: path, d: d, expand: opts.ExpandPath, log: opts.Logger, ln: ln,
		done: make(chan struct{}), ctx: ctx, cancel: cancel}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /start", func(w http.ResponseWriter, r *http.Request) {
		var req StartRequest
		serveOp(s, w, r, &req, &req.Path, req.timeout, 0, func(ctx context.Context) (any, error) { return d.Start(ctx, req.Path) })
	})
	mux.HandleFunc("POST /stop", func(w http.ResponseWriter, r *http.Request) {
		var req StopRequest
		serveOp(s, w, r, &req, &req.Path, req.timeout, 30, func(ctx context.Context) (any, error) { return d.Stop(ctx, req.Path) })
	})
	mux.HandleFunc("GET /txid", s.handleTXID)
	mux.HandleFunc("POST /register", func(w http.ResponseWriter, r *http.Request) {
		var req RegisterDatabaseRequest
		serveOp(s, w, r, &req, &req.Path, func() int { return 0 }, 0, func(ctx context.Context) (any, error) {
			if req.ReplicaURL == "" {
				return nil, fmt.Errorf("%w: replica_url required", errRequired)
			}
			return d.Register(ctx, req.Path, req.ReplicaURL)
		})
	})
	mux.HandleFunc("POST /unregister", func(w http.ResponseWriter, r *http.Request) {
		var req UnregisterDatabaseRequest
		serveOp(s, w, r, &req, &req.Path, req.timeout, 30, func(ctx context.Context) (any, error) { return d.Unregister(ctx, req.Path) })
	})
	mux.HandleFunc("POST /sync", s.handleSync)
	mux.HandleFunc("GET /list", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, d.List()) })
	mux.HandleFunc("GET /info", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, d.Info()) })
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, d.Status(r.Context())) })
	mux.HandleFunc("GET /debug/sync-status", s.handleSyncStatus)
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("control socket stopped", "path", path, "error", err)
		}
	}()
	return s, nil
}

// Path returns the socket path.
func (s *Server) Path() string { return s.path }

// Close stops serving, cancels the operations in progress and removes the
// socket file.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	_ = os.Remove(s.path)
	return err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string, details any) {
	writeJSON(w, status, ErrorResponse{Error: msg, Details: details})
}

// decode reads a request body and its path, expanded; on failure it has
// answered already.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any, path *string) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid request body", err.Error())
		return false
	}
	if *path == "" {
		writeError(w, http.StatusBadRequest, "path required", nil)
		return false
	}
	return s.expandPath(w, path)
}

// expandPath expands *path in place; on failure it has answered already.
func (s *Server) expandPath(w http.ResponseWriter, path *string) bool {
	p, err := s.expand(*path)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid path: %v", err), nil)
		return false
	}
	*path = p
	return true
}

// lookupFailed answers a daemon's error for a request that names a
// database (txid, debug/sync-status) and reports whether there was one.
func lookupFailed(w http.ResponseWriter, err error) bool {
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "database not found", nil)
	case err != nil:
		writeError(w, status(err, http.StatusNotFound), err.Error(), nil)
	}
	return err != nil
}

// opContext bounds an operation by the server's lifetime and timeout
// seconds (def when 0 or less; none when def is 0 too).
func (s *Server) opContext(timeout, def int) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		timeout = def
	}
	if timeout <= 0 {
		return context.WithCancel(s.ctx)
	}
	return context.WithTimeout(s.ctx, time.Duration(timeout)*time.Second)
}

// status picks the HTTP status of a daemon error; notFound is the endpoint's
// code for ErrNotFound (Litestream answers 500 on some endpoints).
func status(err error, notFound int) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return notFound
	case errors.Is(err, ErrNotOpen):
		return http.StatusConflict
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	default:
		return http.StatusInternalServerError
	}
}

// errRequired marks a missing request field: answered 400 with the field
// alone, as Litestream does ("replica_url required").
var errRequired = errors.New("required")

// serveOp serves a POST operation that runs until it ends, not until the
// client hangs up (start, stop, register, unregister): decode the body into
// req (its path expanded), bound the operation by timeout() seconds (def
// when none; no bound when both are 0) and the server's life, run op and
// answer its result or error with Litestream's status codes.
func serveOp(s *Server, w http.ResponseWriter, r *http.Request, req any, path *string, timeout func() int, def int, op func(context.Context) (any, error)) {
	if !s.decode(w, r, req, path) {
		return
	}
	ctx, cancel := s.opContext(timeout(), def)
	defer cancel()
	resp, err := op(ctx)
	switch {
	case errors.Is(err, errRequired):
		writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), errRequired.Error()+": "), nil)
	case err != nil:
		writeError(w, status(err, http.StatusInternalServerError), err.Error(), nil)
	default:
		writeJSON(w, http.StatusOK, resp)
	}
}

func (s *Server) handleTXID(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Query().Get("path")
	if path == "" {
		writeError(w, http.StatusBadRequest, "path required", nil)
		return
	}
	if !s.expandPath(w, &path) {
		return
	}
	txid, err := s.d.TXID(path)
	if lookupFailed(w, err) {
		return
	}
	writeJSON(w, http.StatusOK, TXIDResponse{TXID: txid})
}

func (s *Server) handleSyncStatus(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Query().Get("path")
	if path != "" && !s.expandPath(w, &path) {
		return
	}
	diags, err := s.d.SyncDiagnostics(path)
	if lookupFailed(w, err) {
		return
	}
	if diags == nil {
		diags = []SyncDiagnostic{}
	}
	writeJSON(w, http.StatusOK, SyncDiagnosticsResponse{Databases: diags})
}

func (s *Server) handleSync(w http.ResponseWriter, r *http.Request) {
	var req SyncRequest
	if !s.decode(w, r, &req, &req.Path) {
		return
	}
	// A sync is bounded by the client too: nobody waits for its answer
	// once the client is gone.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()
	if req.Wait && req.Timeout == 0 {
		req.Timeout = 30
	}
	if req.Timeout > 0 {
		var c context.CancelFunc
		ctx, c = context.WithTimeout(ctx, time.Duration(req.Timeout)*time.Second)
		defer c()
	}
	resp, err := s.d.Sync(ctx, req.Path, req.Wait)
	if err != nil {
		writeError(w, status(err, http.StatusNotFound), err.Error(), nil)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}
