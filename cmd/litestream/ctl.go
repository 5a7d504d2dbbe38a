package main

// The commands that talk to a running daemon over its control socket:
// info, list, register, unregister, start, stop and sync. Flags, defaults,
// output and errors are Litestream v0.5.18's, and the socket speaks its API,
// so these work against either daemon.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/litestream-go/litestream/control"
)

// socketFlags are -socket and -timeout (seconds).
type socketFlags struct {
	socket  string
	timeout int
}

func (sf *socketFlags) register(fs *flag.FlagSet, defTimeout int) {
	fs.StringVar(&sf.socket, "socket", control.DefaultPath, "control socket path")
	fs.IntVar(&sf.timeout, "timeout", defTimeout, "timeout in seconds")
}

func (sf *socketFlags) client() *control.Client {
	return control.NewClient(sf.socket, time.Duration(sf.timeout)*time.Second)
}

func checkTimeout(t int) error {
	if t <= 0 {
		return errors.New("timeout must be greater than 0")
	}
	return nil
}

func (m *Main) runInfo(ctx context.Context, args []string) error {
	fs := m.newFlagSet("info", m.infoUsage)
	var sf socketFlags
	sf.register(fs, 10)
	asJSON := fs.Bool("json", false, "output raw JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errors.New("too many arguments")
	}
	if err := checkTimeout(sf.timeout); err != nil {
		return err
	}
	r, err := sf.client().Info(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(m, r)
	}
	fmt.Fprintf(m.Stdout, "Litestream %s\n", r.Version)
	fmt.Fprintf(m.Stdout, "  PID:        %d\n", r.PID)
	fmt.Fprintf(m.Stdout, "  Uptime:     %s\n", time.Duration(r.UptimeSeconds)*time.Second)
	fmt.Fprintf(m.Stdout, "  Started at: %s\n", r.StartedAt.Format(time.RFC3339))
	fmt.Fprintf(m.Stdout, "  Databases:  %d\n", r.DatabaseCount)
	return nil
}

func (m *Main) runList(ctx context.Context, args []string) error {
	fs := m.newFlagSet("list", m.listUsage)
	var sf socketFlags
	sf.register(fs, 10)
	asJSON := fs.Bool("json", false, "output raw JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errors.New("too many arguments")
	}
	if err := checkTimeout(sf.timeout); err != nil {
		return err
	}
	r, err := sf.client().List(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(m, r)
	}
	if len(r.Databases) == 0 {
		fmt.Fprintln(m.Stdout, "No databases configured")
		return nil
	}
	for _, db := range r.Databases {
		last := "never"
		if db.LastSyncAt != nil {
			last = db.LastSyncAt.Format(time.RFC3339)
		}
		fmt.Fprintf(m.Stdout, "%s [%s] (last sync: %s)\n", db.Path, db.Status, last)
	}
	return nil
}

// registerResult is register's confirmation.
type registerResult struct {
	Status  string `json:"status"`
	DBPath  string `json:"db_path"`
	Replica string `json:"replica"`
	Socket  string `json:"socket"`
}

func (m *Main) runRegister(ctx context.Context, args []string) error {
	fs := m.newFlagSet("register", m.registerUsage)
	timeout := fs.Int("timeout", 30, "timeout in seconds")
	socket := fs.String("socket", control.DefaultPath, "control socket path")
	replica := fs.String("replica", "", "replica URL (e.g., s3://bucket/prefix, file:///backup/path)")
	asJSON := fs.Bool("json", false, "output raw JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	const hint = "litestream register -replica s3://bucket/prefix /path/to/db"
	switch {
	case fs.NArg() == 0:
		return usageErrorf(hint, "database path required")
	case fs.NArg() > 1:
		return errors.New("too many arguments")
	case *replica == "":
		return usageErrorf(hint, "-replica is required")
	}
	if err := checkTimeout(*timeout); err != nil {
		return err
	}
	sf := socketFlags{socket: *socket, timeout: *timeout}
	r, err := sf.client().Register(ctx, control.RegisterDatabaseRequest{Path: fs.Arg(0), ReplicaURL: *replica})
	if err != nil {
		return redactErr(err, *replica)
	}
	res := registerResult{Status: r.Status, DBPath: r.Path, Replica: redactURL(*replica), Socket: *socket}
	if *asJSON {
		return printJSON(m, res)
	}
	status := res.Status
	if status == "already_registered" {
		status = "already registered"
	}
	fmt.Fprintf(m.Stdout, "status: %s\n", status)
	fmt.Fprintf(m.Stdout, "db_path: %s\n", res.DBPath)
	fmt.Fprintf(m.Stdout, "replica: %s\n", res.Replica)
	fmt.Fprintf(m.Stdout, "socket: %s\n", res.Socket)
	return nil
}

// unregisterResult is unregister's confirmation.
type unregisterResult struct {
	Status    string `json:"status"`
	DBPath    string `json:"db_path"`
	FinalTXID uint64 `json:"final_txid"`
	Socket    string `json:"socket"`
}

func (m *Main) runUnregister(ctx context.Context, args []string) error {
	fs := m.newFlagSet("unregister", m.unregisterUsage)
	var sf socketFlags
	sf.register(fs, 30)
	dryRun := fs.Bool("dry-run", false, "print what would be unregistered without changing the daemon")
	asJSON := fs.Bool("json", false, "output raw JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkOneArg(fs, "database path", "litestream unregister /path/to/db"); err != nil {
		return err
	}
	if err := checkTimeout(sf.timeout); err != nil {
		return err
	}
	if *dryRun {
		fmt.Fprintln(m.Stdout, "Dry run: unregister request preview")
		fmt.Fprintf(m.Stdout, "  database: %s\n", fs.Arg(0))
		fmt.Fprintf(m.Stdout, "  socket: %s\n", sf.socket)
		fmt.Fprintf(m.Stdout, "  replicas: daemon-managed replica for this database\n")
		fmt.Fprintf(m.Stdout, "  final sync: daemon close will sync the database and replica before the command completes\n")
		fmt.Fprintf(m.Stdout, "  timeout: %ds\n", sf.timeout)
		fmt.Fprintln(m.Stdout, "No unregister request was sent.")
		return nil
	}
	r, err := sf.client().Unregister(ctx, control.UnregisterDatabaseRequest{Path: fs.Arg(0), Timeout: sf.timeout})
	if err != nil {
		return err
	}
	res := unregisterResult{Status: r.Status, DBPath: r.Path, FinalTXID: r.TXID, Socket: sf.socket}
	if *asJSON {
		return printJSON(m, res)
	}
	fmt.Fprintf(m.Stdout, "status: %s\n", res.Status)
	fmt.Fprintf(m.Stdout, "db_path: %s\n", res.DBPath)
	fmt.Fprintf(m.Stdout, "final_txid: %d\n", res.FinalTXID)
	fmt.Fprintf(m.Stdout, "socket: %s\n", res.Socket)
	return nil
}

// startStopResult is start's and stop's confirmation.
type startStopResult struct {
	Status string `json:"status"`
	DBPath string `json:"db_path"`
	State  string `json:"state"`
	TXID   uint64 `json:"txid"`
	Socket string `json:"socket"`
}

func (m *Main) printStartStop(res startStopResult, asJSON bool) error {
	if asJSON {
		return printJSON(m, res)
	}
	fmt.Fprintf(m.Stdout, "status: %s\n", res.Status)
	fmt.Fprintf(m.Stdout, "db_path: %s\n", res.DBPath)
	fmt.Fprintf(m.Stdout, "state: %s\n", res.State)
	fmt.Fprintf(m.Stdout, "txid: %d\n", res.TXID)
	fmt.Fprintf(m.Stdout, "socket: %s\n", res.Socket)
	return nil
}

func (m *Main) runStart(ctx context.Context, args []string) error {
	fs := m.newFlagSet("start", m.startUsage)
	var sf socketFlags
	sf.register(fs, 30)
	asJSON := fs.Bool("json", false, "output raw JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkOneArg(fs, "database path", "litestream start /path/to/db"); err != nil {
		return err
	}
	r, err := sf.client().Start(ctx, control.StartRequest{Path: fs.Arg(0), Timeout: sf.timeout})
	if err != nil {
		return err
	}
	return m.printStartStop(startStopResult{Status: r.Status, DBPath: r.Path, State: "running", TXID: r.TXID, Socket: sf.socket}, *asJSON)
}

func (m *Main) runStop(ctx context.Context, args []string) error {
	fs := m.newFlagSet("stop", m.stopUsage)
	var sf socketFlags
	sf.register(fs, 30)
	asJSON := fs.Bool("json", false, "output raw JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkOneArg(fs, "database path", "litestream stop /path/to/db"); err != nil {
		return err
	}
	r, err := sf.client().Stop(ctx, control.StopRequest{Path: fs.Arg(0), Timeout: sf.timeout})
	if err != nil {
		return err
	}
	return m.printStartStop(startStopResult{Status: r.Status, DBPath: r.Path, State: "stopped", TXID: r.TXID, Socket: sf.socket}, *asJSON)
}

// syncResult is sync's confirmation; ReplicaTXID only with -wait.
type syncResult struct {
	DBPath      string  `json:"db_path"`
	TXID        uint64  `json:"txid"`
	ReplicaTXID *uint64 `json:"replica_txid,omitempty"`
	DurationMS  int64   `json:"duration_ms"`
}

func (m *Main) runSync(ctx context.Context, args []string) error {
	fs := m.newFlagSet("sync", m.syncUsage)
	var sf socketFlags
	sf.register(fs, 30)
	wait := fs.Bool("wait", false, "block until sync completes")
	asJSON := fs.Bool("json", false, "output raw JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkOneArg(fs, "database path", "litestream sync /path/to/db"); err != nil {
		return err
	}
	if err := checkTimeout(sf.timeout); err != nil {
		return err
	}
	start := time.Now()
	r, err := sf.client().Sync(ctx, control.SyncRequest{Path: fs.Arg(0), Wait: *wait, Timeout: sf.timeout})
	if err != nil {
		return err
	}
	res := syncResult{DBPath: r.Path, TXID: r.TXID, DurationMS: time.Since(start).Milliseconds()}
	if *wait {
		res.ReplicaTXID = &r.ReplicatedTXID
	}
	if *asJSON {
		return printJSON(m, res)
	}
	fmt.Fprintf(m.Stdout, "db_path: %s\n", res.DBPath)
	fmt.Fprintf(m.Stdout, "txid: %d\n", res.TXID)
	if res.ReplicaTXID != nil {
		fmt.Fprintf(m.Stdout, "replica_txid: %d\n", *res.ReplicaTXID)
	}
	fmt.Fprintf(m.Stdout, "duration_ms: %d\n", res.DurationMS)
	return nil
}

func (m *Main) infoUsage() {
	fmt.Fprint(m.Stdout, `usage: litestream info [OPTIONS]

Show daemon information from a running Litestream instance.

Options:
  -json
      Output raw JSON instead of human-readable text.

  -socket PATH
      Path to control socket (default: /var/run/litestream.sock).

  -timeout SECONDS
      Maximum time to wait in seconds (default: 10).

Examples:
  $ litestream info
  $ litestream info -json
  $ litestream info -socket /tmp/litestream.sock

`)
}

func (m *Main) listUsage() {
	fmt.Fprint(m.Stdout, `usage: litestream list [OPTIONS]

List all managed databases from a running daemon.

Options:
  -json
      Output raw JSON instead of human-readable text.

  -socket PATH
      Path to control socket (default: /var/run/litestream.sock).

  -timeout SECONDS
      Maximum time to wait in seconds (default: 10).

Examples:
  $ litestream list
  $ litestream list -json
  $ litestream list -socket /tmp/litestream.sock

`)
}

func (m *Main) registerUsage() {
	fmt.Fprint(m.Stdout, `usage: litestream register [OPTIONS] DB_PATH

Register a database for replication.

Arguments:
  DB_PATH      Path to the SQLite database file.

Options:
  -replica URL
      Replica destination URL (e.g., s3://bucket/prefix, file:///backup/path).
      Required.

  -timeout SECONDS
      Maximum time to wait in seconds (default: 30).

  -socket PATH
      Path to control socket (default: /var/run/litestream.sock).

  -json
      Output raw JSON instead of human-readable text.

Examples:
  # Register a database with an S3 replica.
  $ litestream register -replica s3://mybucket/db /path/to/db

  # Register a database with a file replica.
  $ litestream register -replica file:///backup/path /path/to/db

  # Register using a non-default control socket.
  $ litestream register -socket /tmp/litestream.sock -replica s3://mybucket/db /path/to/db

  # Register and emit a JSON confirmation.
  $ litestream register -json -replica s3://mybucket/db /path/to/db

`)
}

func (m *Main) unregisterUsage() {
	fmt.Fprint(m.Stdout, `usage: litestream unregister [OPTIONS] DB_PATH

Unregister a database from replication.

Arguments:
  DB_PATH      Path to the SQLite database file.

Options:
  -timeout SECONDS
      Maximum time to wait in seconds (default: 30).

  -socket PATH
      Path to control socket (default: /var/run/litestream.sock).

  -dry-run
      Preview what would be unregistered without changing the daemon.

  -json
      Output raw JSON instead of human-readable text.

Examples:
  # Unregister a database from the running daemon.
  $ litestream unregister /path/to/db

  # Unregister a database and emit a JSON confirmation.
  $ litestream unregister -json /path/to/db

  # Preview an unregister request without changing the daemon.
  $ litestream unregister -dry-run /path/to/db

  # Unregister a database using a non-default control socket.
  $ litestream unregister -socket /tmp/litestream.sock /path/to/db

  # Unregister a database and wait up to 10 seconds for shutdown.
  $ litestream unregister -timeout 10 /path/to/db

`)
}

func (m *Main) startUsage() {
	fmt.Fprint(m.Stdout, `usage: litestream start [OPTIONS] DB_PATH

Start replication for a database.

Options:
  -timeout SECONDS
      Maximum time to wait in seconds (default: 30).

  -socket PATH
      Path to control socket (default: /var/run/litestream.sock).

  -json
      Output raw JSON instead of human-readable text.

Examples:
  # Start replication for a database on the running daemon.
  $ litestream start /path/to/db

  # Start replication and emit a JSON confirmation.
  $ litestream start -json /path/to/db

  # Start replication using a non-default control socket.
  $ litestream start -socket /tmp/litestream.sock /path/to/db

  # Start replication and wait up to 10 seconds for the daemon response.
  $ litestream start -timeout 10 /path/to/db

`)
}

func (m *Main) stopUsage() {
	fmt.Fprint(m.Stdout, `usage: litestream stop [OPTIONS] DB_PATH

Stop replication for a database.
Stop always waits for shutdown and final sync.

Options:
  -timeout SECONDS
      Maximum time to wait in seconds (default: 30).

  -socket PATH
      Path to control socket (default: /var/run/litestream.sock).

  -json
      Output raw JSON instead of human-readable text.

Examples:
  # Stop replication for a database.
  $ litestream stop /path/to/db

  # Stop replication and emit a JSON confirmation.
  $ litestream stop -json /path/to/db

  # Stop replication using a non-default control socket.
  $ litestream stop -socket /tmp/litestream.sock /path/to/db

  # Stop replication and wait up to 10 seconds for final sync and shutdown.
  $ litestream stop -timeout 10 /path/to/db

`)
}

func (m *Main) syncUsage() {
	fmt.Fprint(m.Stdout, `usage: litestream sync [OPTIONS] DB_PATH

Force an immediate sync for a database.

Options:
  -wait
      Block until sync completes including remote replication (default: false).

  -timeout SECONDS
      Maximum time to wait in seconds, best-effort (default: 30).

  -socket PATH
      Path to control socket (default: /var/run/litestream.sock).

  -json
      Output raw JSON instead of human-readable text.

Examples:
  $ litestream sync /path/to/db
  $ litestream sync -json /path/to/db
  $ litestream sync -wait /path/to/db
  $ litestream sync -wait -timeout 120 /path/to/db

`)
}
