package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/control"
	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/remote"
)

// dbStatus is one row of status. The first four fields are Litestream's
// (docs/CLI_JSON_OUTPUT.md), with its names, types and values; the others
// are this program's additions.
type dbStatus struct {
	Database string `json:"database"`
	// Status is "ok", "not initialized" (nothing replicated yet), "no
	// database" (the file is missing) or "error".
	Status    string `json:"status"`
	LocalTXID string `json:"local_txid"` // "-" if unavailable
	WALSize   string `json:"wal_size"`   // human-readable, "-" if unavailable

	Replica     string    `json:"replica"` // redacted URL
	ReplicaTXID string    `json:"replica_txid,omitempty"`
	WALBytes    int64     `json:"wal_bytes"`
	LastFile    time.Time `json:"last_file,omitzero"`
	Files       int       `json:"files"`
	// Source is "daemon" when the running daemon answered on its control
	// socket (live state), "files" when the row was read from the local
	// files and a listing of the replica.
	Source     string    `json:"source"`
	State      string    `json:"state,omitempty"` // daemon: replicating, opening, stopped
	LagSeconds *float64  `json:"lag_seconds,omitempty"`
	LastSync   time.Time `json:"last_sync,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
}

func (m *Main) runStatus(ctx context.Context, args []string) error {
	fs, cf := m.newConfigFlagSet("status", m.statusUsage)
	asJSON := fs.Bool("json", false, "output raw JSON")
	socket := fs.String("socket", "", "ask the running daemon on this control socket (default: the config's socket.path when socket.enabled)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return errors.New("too many arguments")
	}
	cfg, err := m.loadConfig(cf)
	if err != nil {
		return err
	}
	dbs := cfg.DBs
	if fs.NArg() == 1 {
		db := cfg.DBConfig(fs.Arg(0))
		if db == nil {
			return fmt.Errorf("database not found in config: %s", fs.Arg(0))
		}
		dbs = []*DBConfig{db}
	}
	statuses, live := m.daemonStatus(ctx, cfg, *socket, dbs)
	if !live {
		statuses = m.collectStatus(ctx, dbs)
	}
	if *asJSON {
		return printJSON(m, statuses)
	}
	// Litestream's four columns first, then this program's.
	w := tabwriter.NewWriter(m.Stdout, 0, 8, 2, ' ', 0)
	if live {
		fmt.Fprintln(w, "database\tstatus\tlocal txid\twal size\treplica txid\tlag\tlast sync\tlast error\treplica")
	} else {
		fmt.Fprintln(w, "database\tstatus\tlocal txid\twal size\treplica txid\tlast file\tlast error\treplica")
	}
	for _, s := range statuses {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t", s.Database, s.Status, s.LocalTXID, s.WALSize, dash(s.ReplicaTXID))
		if live {
			lag := "-"
			if s.LagSeconds != nil {
				lag = (time.Duration(*s.LagSeconds * float64(time.Second))).Round(time.Millisecond).String()
			}
			fmt.Fprintf(w, "%s\t%s\t", lag, timeOrDash(s.LastSync))
		} else {
			fmt.Fprintf(w, "%s\t", timeOrDash(s.LastFile))
		}
		fmt.Fprintf(w, "%s\t%s\n", dash(s.LastError), s.Replica)
	}
	return w.Flush()
}

// walSize returns the WAL's size, human-readable as Litestream prints it,
// and in bytes.
func walSize(dbPath string) (string, int64) {
	fi, err := os.Stat(dbPath + "-wal")
	switch {
	case err == nil:
		return humanBytes(uint64(fi.Size())), fi.Size()
	case errors.Is(err, os.ErrNotExist):
		return "0 B", 0
	default:
		return "-", 0
	}
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
		human, bytes := walSize(db.Path)
		if !ok {
			out = append(out, dbStatus{Database: db.Path, Status: "not initialized", LocalTXID: "-", WALSize: human,
				WALBytes: bytes, Source: "daemon", LastError: "not replicated by the daemon"})
			continue
		}
		lag := d.LagSeconds
		s := dbStatus{
			Database: d.Database, Status: "ok", LocalTXID: d.LocalTXID, WALSize: humanBytes(uint64(d.WALSize)),
			Replica: d.Replica, ReplicaTXID: d.ReplicaTXID, WALBytes: d.WALSize, Source: "daemon",
			State: d.State, LagSeconds: &lag, LastSync: d.LastSync, LastError: d.LastError,
		}
		switch {
		case d.LastError != "":
			s.Status = "error"
		case d.ReplicaTXID == ltx.TXID(0).String() && d.LocalTXID == ltx.TXID(0).String():
			s.Status, s.LocalTXID = "not initialized", "-"
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
		s := dbStatus{Database: db.Path, Status: "unknown", LocalTXID: "-", WALSize: "-", Source: "files"}
		if db.Path == "" {
			s.Database, s.Status = db.Dir, "error"
			s.LastError = "a directory entry: its databases are listed by the running daemon (status -socket)"
			out = append(out, s)
			continue
		}
		m.replicaStatus(ctx, db, &s)
		if _, err := os.Stat(db.Path); errors.Is(err, os.ErrNotExist) {
			s.Status, s.LocalTXID = "no database", "-"
		} else if err != nil {
			s.Status, s.LastError = "error", err.Error()
		} else {
			s.WALSize, s.WALBytes = walSize(db.Path)
		}
		out = append(out, s)
	}
	return out
}

// replicaStatus fills s from a listing of db's replica: the TXID a restore
// would reach is the local TXID too, since this writer uploads each file
// as it makes it.
func (m *Main) replicaStatus(ctx context.Context, db *DBConfig, s *dbStatus) {
	fail := func(err error) {
		s.Status, s.LastError = "error", err.Error()
	}
	rc, err := db.ReplicaConfig()
	if err != nil {
		fail(err)
		return
	}
	ref, err := rc.Replica()
	if err != nil {
		fail(err)
		return
	}
	s.Replica = ref.redacted()
	client, err := openReplica(ctx, ref, m.cmdLogger())
	if err != nil {
		fail(err)
		return
	}
	files, err := remote.ListAll(ctx, client)
	if err != nil {
		fail(ref.redactErr(err))
		return
	}
	s.Files = len(files)
	if len(files) == 0 {
		s.Status = "not initialized"
		return
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
		fail(fmt.Errorf("no restorable state: %w", err))
		return
	}
	s.Status, s.LocalTXID, s.ReplicaTXID = "ok", plan.TXID.String(), plan.TXID.String()
}

func (m *Main) statusUsage() {
	fmt.Fprintf(m.Stdout, `The status command displays the replication status of databases.

Usage:

	litestream status [arguments] [database path]

Arguments:

`+argConfig+"\n"+argJSON+"\n"+argNoExpandEnv+`
	-socket PATH
	    Asks the running daemon on this control socket for live state
	    (replica TXID, lag, last sync, last error). Defaults to the
	    config's socket.path when socket.enabled is set.

If a database path is provided, only that database's status is shown.
Otherwise, all configured databases are displayed.

Output columns:
  database      Path to the SQLite database
  status        Current status (ok, not initialized, no database, error)
  local txid    Latest local transaction ID
  wal size      Current WAL file size

Note: To see replica TXID and sync status, inspect daemon diagnostics or logs
while the replication daemon is running.

Examples:

	$ litestream status
	$ litestream status /path/to/db
	$ litestream status -json

`, m.defaultConfigPath())
}

// databaseInfo is one row of databases (Litestream's stable fields, then
// this program's).
type databaseInfo struct {
	Path    string `json:"path"`
	Replica string `json:"replica"` // the replica client type: file, s3, ...
	URL     string `json:"url"`     // the replica URL, redacted
}

func (m *Main) runDatabases(ctx context.Context, args []string) error {
	fs, cf := m.newConfigFlagSet("databases", m.databasesUsage)
	asJSON := fs.Bool("json", false, "output raw JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return errors.New("too many arguments")
	}
	cfg, err := m.loadConfig(cf)
	if err != nil {
		return err
	}
	rows := make([]databaseInfo, 0, len(cfg.DBs))
	for _, db := range cfg.DBs {
		rc, err := db.ReplicaConfig()
		if err != nil {
			return err
		}
		ref, err := rc.Replica()
		if err != nil {
			return err
		}
		path := db.Path
		if path == "" {
			path = db.Dir
		}
		rows = append(rows, databaseInfo{Path: path, Replica: replicaType(rc, ref.URL), URL: ref.redacted()})
	}
	if *asJSON {
		return printJSON(m, rows)
	}
	w := tabwriter.NewWriter(m.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "path\treplica\turl")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\n", r.Path, r.Replica, r.URL)
	}
	return w.Flush()
}

// replicaType is the replica client type Litestream names: the URL's
// scheme, else the type key, else file.
func replicaType(rc *ReplicaConfig, url string) string {
	if s := schemeOf(url); s != "" {
		if s == "webdavs" {
			return "webdav"
		}
		return s
	}
	if rc.Type != "" {
		return rc.Type
	}
	return "file"
}

func (m *Main) databasesUsage() {
	fmt.Fprintf(m.Stdout, `The databases command lists all databases in the configuration file.

Usage:

	litestream databases [arguments]

Arguments:

`+argConfig+"\n"+argJSON+"\n"+argNoExpandEnv+`
Examples:

	$ litestream databases
	$ litestream databases -config /path/to/litestream.yml
	$ litestream databases -no-expand-env -config /path/to/litestream.yml

`, m.defaultConfigPath())
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
