package control

import "time"

// The request and response bodies of Litestream v0.5's control API (its
// server.go), field for field, so that its client commands work against
// this daemon and this program's against Litestream's. Paths are database
// paths; the daemon expands "~" and makes them absolute. Timeouts are in
// seconds.

// StartRequest is the body of POST /start.
type StartRequest struct {
	Path    string `json:"path"`
	Timeout int    `json:"timeout,omitempty"`
}

// StartResponse answers POST /start: Status is "started" or
// "already_running"; TXID the database's last TXID.
type StartResponse struct {
	Status string `json:"status"`
	Path   string `json:"path"`
	TXID   uint64 `json:"txid"`
}

func (r *StartRequest) timeout() int { return r.Timeout }

// StopRequest is the body of POST /stop; Timeout defaults to 30 seconds.
type StopRequest struct {
	Path    string `json:"path"`
	Timeout int    `json:"timeout,omitempty"`
}

func (r *StopRequest) timeout() int { return r.Timeout }

// StopResponse answers POST /stop: Status is "stopped" or
// "already_stopped"; TXID the last TXID, after the final sync.
type StopResponse struct {
	Status string `json:"status"`
	Path   string `json:"path"`
	TXID   uint64 `json:"txid"`
}

// ErrorResponse is the body of every non-200 answer.
type ErrorResponse struct {
	Error   string `json:"error"`
	Details any    `json:"details,omitempty"`
}

// TXIDResponse answers GET /txid?path=.
type TXIDResponse struct {
	TXID uint64 `json:"txid"`
}

// SyncRequest is the body of POST /sync. With Wait the answer comes once
// the replica holds the result; Timeout then defaults to 30 seconds.
type SyncRequest struct {
	Path    string `json:"path"`
	Wait    bool   `json:"wait,omitempty"`
	Timeout int    `json:"timeout,omitempty"`
}

// SyncResponse answers POST /sync: Status is "no_change", "synced" (with
// wait) or "synced_local".
type SyncResponse struct {
	Status         string `json:"status"`
	Path           string `json:"path"`
	TXID           uint64 `json:"txid"`
	ReplicatedTXID uint64 `json:"replicated_txid"`
}

// ListResponse answers GET /list.
type ListResponse struct {
	Databases []DatabaseSummary `json:"databases"`
}

// DatabaseSummary is one database of GET /list. Status is "replicating",
// "open" or "stopped"; LastSyncAt the last successful upload to the
// replica, absent before the first.
type DatabaseSummary struct {
	Path       string     `json:"path"`
	Status     string     `json:"status"`
	LastSyncAt *time.Time `json:"last_sync_at,omitempty"`
}

// InfoResponse answers GET /info.
type InfoResponse struct {
	Version       string    `json:"version"`
	PID           int       `json:"pid"`
	UptimeSeconds int64     `json:"uptime_seconds"`
	StartedAt     time.Time `json:"started_at"`
	DatabaseCount int       `json:"database_count"`
}

// RegisterDatabaseRequest is the body of POST /register.
type RegisterDatabaseRequest struct {
	Path       string `json:"path"`
	ReplicaURL string `json:"replica_url"`
}

// RegisterDatabaseResponse answers POST /register: Status is "registered"
// or "already_registered".
type RegisterDatabaseResponse struct {
	Status string `json:"status"`
	Path   string `json:"path"`
}

// UnregisterDatabaseRequest is the body of POST /unregister; Timeout
// defaults to 30 seconds.
type UnregisterDatabaseRequest struct {
	Path    string `json:"path"`
	Timeout int    `json:"timeout,omitempty"`
}

func (r *UnregisterDatabaseRequest) timeout() int { return r.Timeout }

// UnregisterDatabaseResponse answers POST /unregister: Status is
// "unregistered" or "already_unregistered"; TXID the last TXID.
type UnregisterDatabaseResponse struct {
	Status string `json:"status"`
	Path   string `json:"path"`
	TXID   uint64 `json:"txid"`
}

// SyncDiagnosticsResponse answers GET /debug/sync-status.
type SyncDiagnosticsResponse struct {
	Databases []SyncDiagnostic `json:"databases"`
}

// SyncDiagnostic is Litestream's per-database sync diagnostic; this daemon
// fills the fields it has.
type SyncDiagnostic struct {
	Path                string     `json:"path"`
	Active              bool       `json:"active"`
	Operation           string     `json:"operation,omitempty"`
	Phase               string     `json:"phase,omitempty"`
	StartedAt           *time.Time `json:"started_at,omitempty"`
	UpdatedAt           *time.Time `json:"updated_at,omitempty"`
	ElapsedSeconds      float64    `json:"elapsed_seconds,omitempty"`
	TXID                uint64     `json:"txid,omitempty"`
	WALSize             int64      `json:"wal_size,omitempty"`
	LastSyncedWALOffset int64      `json:"last_synced_wal_offset,omitempty"`
	Snapshotting        bool       `json:"snapshotting,omitempty"`
	CheckpointMode      string     `json:"checkpoint_mode,omitempty"`
	Reason              string     `json:"reason,omitempty"`
	Error               string     `json:"error,omitempty"`
}

// DBStatus is the live state of one replicated database (GET /status, this
// program's own endpoint).
type DBStatus struct {
	Database string `json:"database"`
	Replica  string `json:"replica"` // redacted URL
	// State is "replicating", "opening" (retrying to open, e.g. while the
	// replica is unreachable) or "stopped".
	State string `json:"state,omitempty"`
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
