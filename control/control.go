// Package control is the replication daemon's local control socket: an HTTP
// server on a Unix socket that answers the status, databases and ltx
// commands with the daemon's live state, and the client those commands use.
//
// A Unix socket, not TCP: access is governed by the socket file's
// permissions, and nothing is reachable from the network.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"
)

// DefaultPath is Litestream's default control socket path.
const DefaultPath = "/var/run/litestream.sock"

// DBStatus is the live state of one replicated database.
type DBStatus struct {
	Database string `json:"database"`
	Replica  string `json:"replica"` // redacted URL
	// LocalTXID is the TXID of the newest LTX file made from the local
	// database: ReplicaTXID, plus one while a staged file waits for upload.
	LocalTXID string `json:"local_txid"`
	// ReplicaTXID is the newest TXID this daemon has uploaded.
	ReplicaTXID string `json:"replica_txid"`
	// LagSeconds: seconds since the replica last held every local commit
	// (the last successful sync).
	LagSeconds float64   `json:"lag_seconds"`
	WALSize    int64     `json:"wal_size"`
	LastSync   time.Time `json:"last_sync,omitzero"`
	LastUpload time.Time `json:"last_upload,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
	Pending    bool      `json:"pending,omitempty"`
}

// Status is what GET /status answers.
type Status struct {
	Version   string     `json:"version"`
	PID       int        `json:"pid"`
	StartedAt time.Time  `json:"started_at"`
	DBs       []DBStatus `json:"dbs"`
}

// StatusFunc produces the daemon's current state.
type StatusFunc func(ctx context.Context) Status

// Server serves the control socket.
type Server struct {
	path string
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

// Listen creates the socket at path with mode perm (0 means 0600) and
// serves it until Close. A stale socket file left by a crashed daemon is
// replaced; a live one (another daemon answers) is an error.
func Listen(path string, perm fs.FileMode, status StatusFunc, logger *slog.Logger) (*Server, error) {
	if perm == 0 {
		perm = 0o600
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
	if err := os.Chmod(path, perm); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(status(r.Context()))
	})
	s := &Server{
		path: path,
		ln:   ln,
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && logger != nil {
			logger.Error("control socket stopped", "path", path, "error", err)
		}
	}()
	return s, nil
}

// Path returns the socket path.
func (s *Server) Path() string { return s.path }

// Close stops serving and removes the socket file.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	_ = os.Remove(s.path)
	return err
}

// ErrNoDaemon is returned (wrapped) by Get when nothing listens on the socket.
var ErrNoDaemon = errors.New("no daemon listening")

// GetStatus asks the daemon on the socket at path for its status.
func GetStatus(ctx context.Context, path string) (*Status, error) {
	var st Status
	if err := get(ctx, path, "/status", &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func get(ctx context.Context, path, endpoint string, v any) error {
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://litestream"+endpoint, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("control socket %s: %w: %v", path, ErrNoDaemon, err)
		}
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("control socket %s: %s: %s", path, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("control socket %s: decode %s: %w", path, endpoint, err)
	}
	return nil
}
