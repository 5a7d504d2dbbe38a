package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/control"
	"github.com/litestream-go/litestream/index"
)

// dbStatus is what status and databases report about one configured
// database. The replica fields come from listing the replica.
type dbStatus struct {
	Database    string    `json:"database"`
	Replica     string    `json:"replica"` // redacted URL
	Local       string    `json:"local"`   // "ok", "missing" or an error
	WALSize     int64     `json:"wal_size"`
	Status      string    `json:"status"` // "ok", "no backup", "no snapshot" or an error
	ReplicaTXID string    `json:"replica_txid,omitempty"`
	LastFile    time.Time `json:"last_file,omitzero"`
	Files       int       `json:"files"`

	// Live state, set when the running daemon answered on its control
	// socket (Source "daemon"); otherwise Source is "files": the row was
	// read from the local files and a listing of the replica.
	Source     string    `json:"source"`
	LocalTXID  string    `json:"local_txid,omitempty"`
	LagSeconds *float64  `json:"lag_seconds,omitempty"`
	LastSync   time.Time `json:"last_sync,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
}

func (m *Main) runStatus(ctx context.Context, args []string) error {
	fs := m.newFlagSet("status", "\tlitestream status [arguments] [DB_PATH]")
	var cf configFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	socket := fs.String("socket", "", "ask the daemon on this control socket (default: the config's socket.path when socket.enabled)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("%w: too many arguments", errUsage)
	}
	cfg, err := m.loadConfig(&cf)
	if err != nil {
		return err
	}
	dbs := cfg.DBs
	if fs.NArg() == 1 {
		db := cfg.DBConfig(fs.Arg(0))
		if db == nil {
			return fmt.Errorf("database %s not found in config %s", fs.Arg(0), cfg.Path)
		}
		dbs = []*DBConfig{db}
	}
	statuses, live := m.daemonStatus(ctx, cfg, *socket, dbs)
	if !live {
		statuses = m.collectStatus(ctx, dbs)
	}
	if *asJSON {
		return writeJSON(m, statuses)
	}
	w := tabwriter.NewWriter(m.Stdout, 0, 8, 2, ' ', 0)
	if live {
		fmt.Fprintln(w, "database\tlocal txid\treplica txid\tlag\twal size\tlast sync\tlast error\treplica")
		for _, s := range statuses {
			lag := "-"
			if s.LagSeconds != nil {
				lag = (time.Duration(*s.LagSeconds * float64(time.Second))).Round(time.Millisecond).String()
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", s.Database, dash(s.LocalTXID), dash(s.ReplicaTXID),
				lag, s.WALSize, timeOrDash(s.LastSync), dash(s.LastError), s.Replica)
		}
		return w.Flush()
	}
	fmt.Fprintln(w, "database\tlocal\twal size\tstatus\treplica txid\tlast file\treplica")
	for _, s := range statuses {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", s.Database, s.Local, s.WALSize, s.Status,
			dash(s.ReplicaTXID), timeOrDash(s.LastFile), s.Replica)
	}
	return w.Flush()
}

func (m *Main) runDatabases(ctx context.Context, args []string) error {
	fs := m.newFlagSet("databases", "\tlitestream databases [arguments]")
	var cf configFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: databases takes no arguments", errUsage)
	}
	cfg, err := m.loadConfig(&cf)
	if err != nil {
		return err
	}
	statuses := m.collectStatus(ctx, cfg.DBs)
	if *asJSON {
		return writeJSON(m, statuses)
	}
	w := tabwriter.NewWriter(m.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "path\treplica\treplica txid\tlast file")
	for _, s := range statuses {
		txid := s.ReplicaTXID
		if txid == "" {
			txid = s.Status
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", s.Database, s.Replica, txid, timeOrDash(s.LastFile))
	}
	return w.Flush()
}

// daemonStatus asks the running daemon for the live state of dbs, through
// the socket given with -socket or configured with socket.enabled. It
// reports false when no daemon answers (the caller then reads the files);
// a database the daemon does not replicate gets a row saying so.
func (m *Main) daemonStatus(ctx context.Context, cfg *Config, socket string, dbs []*DBConfig) ([]dbStatus, bool) {
	if socket == "" {
		if !cfg.Socket.Enabled {
			return nil, false
		}
		socket = cfg.Socket.Path
		if socket == "" {
			socket = control.DefaultPath
		}
	}
	st, err := control.GetStatus(ctx, socket)
	if err != nil {
		fmt.Fprintf(m.Stderr, "litestream: daemon not reachable (%v); reading the files and the replica instead\n", err)
		return nil, false
	}
	byPath := make(map[string]control.DBStatus, len(st.DBs))
	for _, d := range st.DBs {
		byPath[d.Database] = d
	}
	out := make([]dbStatus, 0, len(dbs))
	for _, db := range dbs {
		d, ok := byPath[db.Path]
		if !ok {
			out = append(out, dbStatus{Database: db.Path, Source: "daemon", Local: "-", Status: "not replicated by the daemon"})
			continue
		}
		lag := d.LagSeconds
		s := dbStatus{
			Database: d.Database, Replica: d.Replica, Local: "ok", WALSize: d.WALSize,
			Status: "ok", ReplicaTXID: d.ReplicaTXID, Source: "daemon",
			LocalTXID: d.LocalTXID, LagSeconds: &lag, LastSync: d.LastSync, LastError: d.LastError,
		}
		if d.LastError != "" {
			s.Status = "error"
		}
		out = append(out, s)
	}
	return out, true
}

// collectStatus reads each database's local files and lists its replica.
// A failure for one database is reported in its row, not as an error.
func (m *Main) collectStatus(ctx context.Context, dbs []*DBConfig) []dbStatus {
	out := make([]dbStatus, 0, len(dbs))
	for _, db := range dbs {
		s := dbStatus{Database: db.Path, Local: "ok", Source: "files"}
		if db.Path == "" {
			s.Database, s.Local = db.Dir, "directory (not supported yet)"
		} else if _, err := os.Stat(db.Path); errors.Is(err, os.ErrNotExist) {
			s.Local = "missing"
		} else if err != nil {
			s.Local = err.Error()
		}
		if fi, err := os.Stat(db.Path + "-wal"); err == nil {
			s.WALSize = fi.Size()
		}
		s.Status = m.replicaStatus(ctx, db, &s)
		out = append(out, s)
	}
	return out
}

func (m *Main) replicaStatus(ctx context.Context, db *DBConfig, s *dbStatus) string {
	rc, err := db.ReplicaConfig()
	if err != nil {
		return err.Error()
	}
	ref, err := rc.Replica()
	if err != nil {
		return err.Error()
	}
	s.Replica = ref.redacted()
	client, err := openReplica(ctx, ref, newLogger(m.Stderr, m.Getenv("LOG_LEVEL"), "text"))
	if err != nil {
		return "error: " + err.Error()
	}
	files, err := index.ListAll(ctx, client)
	if err != nil {
		return "error: " + ref.redactErr(err).Error()
	}
	s.Files = len(files)
	if len(files) == 0 {
		return "no backup"
	}
	var maxTXID ltx.TXID
	for _, f := range files {
		if f.CreatedAt.After(s.LastFile) {
			s.LastFile = f.CreatedAt.UTC()
		}
		maxTXID = max(maxTXID, f.MaxTXID)
	}
	plan, err := index.PlanFromFiles(files, 0, time.Time{})
	if err != nil {
		s.ReplicaTXID = maxTXID.String()
		return "no snapshot"
	}
	s.ReplicaTXID = plan.TXID.String()
	return "ok"
}

func writeJSON(m *Main, v any) error {
	enc := json.NewEncoder(m.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
