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
	"strings"
	"time"

	"github.com/litestream-go/litestream/control"
)

func checkTimeout(t int) error {
	if t <= 0 {
		return errors.New("timeout must be greater than 0")
	}
	return nil
}

// ctlFlags are the flags every control command has: -socket, -timeout
// (seconds) and -json.
type ctlFlags struct {
	socket  string
	timeout int
	asJSON  bool
}

// newCtlFlagSet returns the flag set of the control command name, with the
// control flags registered (-timeout defaulting to defTimeout seconds); the
// caller adds its own before parsing.
func (m *Main) newCtlFlagSet(name string, usage func(), defTimeout int) (*flag.FlagSet, *ctlFlags) {
	fs := m.newFlagSet(name, usage)
	cf := &ctlFlags{}
	fs.StringVar(&cf.socket, "socket", control.DefaultPath, "control socket path")
	fs.IntVar(&cf.timeout, "timeout", defTimeout, "timeout in seconds")
	fs.BoolVar(&cf.asJSON, "json", false, "output raw JSON")
	return fs, cf
}

func (cf *ctlFlags) client() *control.Client {
	return control.NewClient(cf.socket, time.Duration(cf.timeout)*time.Second)
}

// parse parses a control command's arguments: none when hint is "",
// else one database path (hint is the "Try:" line of its error). With
// checkTO, a timeout of 0 or less is refused (start and stop, as in
// Litestream, pass it to the daemon as given).
func (cf *ctlFlags) parse(fs *flag.FlagSet, args []string, hint string, checkTO bool) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var err error
	if hint == "" && fs.NArg() > 0 {
		err = errors.New("too many arguments")
	} else if hint != "" {
		err = checkOneArg(fs, "database path", hint)
	}
	if err != nil || !checkTO {
		return err
	}
	return checkTimeout(cf.timeout)
}

// printConfirmation prints a control command's result: as JSON, or as
// "key: value" lines (kv alternates keys and values).
func (m *Main) printConfirmation(asJSON bool, res any, kv ...any) error {
	if asJSON {
		return printJSON(m, res)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(m.Stdout, "%s: %v\n", kv[i], kv[i+1])
	}
	return nil
}

func (m *Main) runInfo(ctx context.Context, args []string) error {
	return runQuery(ctx, m, args, "info", m.infoUsage, (*control.Client).Info, func(r *control.InfoResponse) {
		fmt.Fprintf(m.Stdout, "Litestream %s\n", r.Version)
		fmt.Fprintf(m.Stdout, "  PID:        %d\n", r.PID)
		fmt.Fprintf(m.Stdout, "  Uptime:     %s\n", time.Duration(r.UptimeSeconds)*time.Second)
		fmt.Fprintf(m.Stdout, "  Started at: %s\n", r.StartedAt.Format(time.RFC3339))
		fmt.Fprintf(m.Stdout, "  Databases:  %d\n", r.DatabaseCount)
	})
}

func (m *Main) runList(ctx context.Context, args []string) error {
	return runQuery(ctx, m, args, "list", m.listUsage, (*control.Client).List, func(r *control.ListResponse) {
		if len(r.Databases) == 0 {
			fmt.Fprintln(m.Stdout, "No databases configured")
			return
		}
		for _, db := range r.Databases {
			last := "never"
			if db.LastSyncAt != nil {
				last = db.LastSyncAt.Format(time.RFC3339)
			}
			fmt.Fprintf(m.Stdout, "%s [%s] (last sync: %s)\n", db.Path, db.Status, last)
		}
	})
}

// runQuery runs a control command that takes no argument (info, list):
// get asks the daemon; its answer is printed as JSON with -json, else by
// print.
func runQuery[T any](ctx context.Context, m *Main, args []string, name string, usage func(),
	get func(*control.Client, context.Context) (*T, error), print func(*T)) error {
	fs, cf := m.newCtlFlagSet(name, usage, 10)
	if err := cf.parse(fs, args, "", true); err != nil {
		return err
	}
	r, err := get(cf.client(), ctx)
	if err != nil {
		return err
	}
	if cf.asJSON {
		return printJSON(m, r)
	}
	print(r)
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
	fs, cf := m.newCtlFlagSet("register", m.registerUsage, 30)
	replica := fs.String("replica", "", "replica URL (e.g., s3://bucket/prefix, file:///backup/path)")
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
	if err := checkTimeout(cf.timeout); err != nil {
		return err
	}
	r, err := cf.client().Register(ctx, control.RegisterDatabaseRequest{Path: fs.Arg(0), ReplicaURL: *replica})
	if err != nil {
		return redactErr(err, *replica)
	}
	res := registerResult{Status: r.Status, DBPath: r.Path, Replica: redactURL(*replica), Socket: cf.socket}
	status := res.Status
	if status == "already_registered" {
		status = "already registered"
	}
	return m.printConfirmation(cf.asJSON, res, "status", status, "db_path", res.DBPath, "replica", res.Replica, "socket", res.Socket)
}

// unregisterResult is unregister's confirmation.
type unregisterResult struct {
	Status    string `json:"status"`
	DBPath    string `json:"db_path"`
	FinalTXID uint64 `json:"final_txid"`
	Socket    string `json:"socket"`
}

func (m *Main) runUnregister(ctx context.Context, args []string) error {
	fs, cf := m.newCtlFlagSet("unregister", m.unregisterUsage, 30)
	dryRun := fs.Bool("dry-run", false, "print what would be unregistered without changing the daemon")
	if err := cf.parse(fs, args, "litestream unregister /path/to/db", true); err != nil {
		return err
	}
	if *dryRun {
		fmt.Fprintln(m.Stdout, "Dry run: unregister request preview")
		fmt.Fprintf(m.Stdout, "  database: %s\n", fs.Arg(0))
		fmt.Fprintf(m.Stdout, "  socket: %s\n", cf.socket)
		fmt.Fprintf(m.Stdout, "  replicas: daemon-managed replica for this database\n")
		fmt.Fprintf(m.Stdout, "  final sync: daemon close will sync the database and replica before the command completes\n")
		fmt.Fprintf(m.Stdout, "  timeout: %ds\n", cf.timeout)
		fmt.Fprintln(m.Stdout, "No unregister request was sent.")
		return nil
	}
	r, err := cf.client().Unregister(ctx, control.UnregisterDatabaseRequest{Path: fs.Arg(0), Timeout: cf.timeout})
	if err != nil {
		return err
	}
	res := unregisterResult{Status: r.Status, DBPath: r.Path, FinalTXID: r.TXID, Socket: cf.socket}
	return m.printConfirmation(cf.asJSON, res, "status", res.Status, "db_path", res.DBPath, "final_txid", res.FinalTXID, "socket", res.Socket)
}

// startStopResult is start's and stop's confirmation.
type startStopResult struct {
	Status string `json:"status"`
	DBPath string `json:"db_path"`
	State  string `json:"state"`
	TXID   uint64 `json:"txid"`
	Socket string `json:"socket"`
}

func (m *Main) runStart(ctx context.Context, args []string) error {
	return m.runStartStop(ctx, args, "start", m.startUsage, "running", func(c *control.Client, path string, timeout int) (*control.StartResponse, error) {
		return c.Start(ctx, control.StartRequest{Path: path, Timeout: timeout})
	})
}

func (m *Main) runStop(ctx context.Context, args []string) error {
	return m.runStartStop(ctx, args, "stop", m.stopUsage, "stopped", func(c *control.Client, path string, timeout int) (*control.StartResponse, error) {
		r, err := c.Stop(ctx, control.StopRequest{Path: path, Timeout: timeout})
		return (*control.StartResponse)(r), err
	})
}

// runStartStop runs start or stop (name): call sends the request; state is
// the database's state afterwards.
func (m *Main) runStartStop(ctx context.Context, args []string, name string, usage func(), state string,
	call func(c *control.Client, path string, timeout int) (*control.StartResponse, error)) error {
	fs, cf := m.newCtlFlagSet(name, usage, 30)
	if err := cf.parse(fs, args, "litestream "+name+" /path/to/db", false); err != nil {
		return err
	}
	r, err := call(cf.client(), fs.Arg(0), cf.timeout)
	if err != nil {
		return err
	}
	res := startStopResult{Status: r.Status, DBPath: r.Path, State: state, TXID: r.TXID, Socket: cf.socket}
	return m.printConfirmation(cf.asJSON, res, "status", res.Status, "db_path", res.DBPath, "state", res.State, "txid", res.TXID, "socket", res.Socket)
}

// syncResult is sync's confirmation; ReplicaTXID only with -wait.
type syncResult struct {
	DBPath      string  `json:"db_path"`
	TXID        uint64  `json:"txid"`
	ReplicaTXID *uint64 `json:"replica_txid,omitempty"`
	DurationMS  int64   `json:"duration_ms"`
}

func (m *Main) runSync(ctx context.Context, args []string) error {
	fs, cf := m.newCtlFlagSet("sync", m.syncUsage, 30)
	wait := fs.Bool("wait", false, "block until sync completes")
	if err := cf.parse(fs, args, "litestream sync /path/to/db", true); err != nil {
		return err
	}
	start := time.Now()
	r, err := cf.client().Sync(ctx, control.SyncRequest{Path: fs.Arg(0), Wait: *wait, Timeout: cf.timeout})
	if err != nil {
		return err
	}
	res := syncResult{DBPath: r.Path, TXID: r.TXID, DurationMS: time.Since(start).Milliseconds()}
	kv := []any{"db_path", res.DBPath, "txid", res.TXID}
	if *wait {
		res.ReplicaTXID = &r.ReplicatedTXID
		kv = append(kv, "replica_txid", r.ReplicatedTXID)
	}
	kv = append(kv, "duration_ms", res.DurationMS)
	return m.printConfirmation(cf.asJSON, res, kv...)
}

// The options of the control commands' -h texts (Litestream's wording).
const (
	optJSON = `  -json
      Output raw JSON instead of human-readable text.
`
	optSocket = `  -socket PATH
      Path to control socket (default: /var/run/litestream.sock).
`
	optTimeout30 = `  -timeout SECONDS
      Maximum time to wait in seconds (default: 30).
`
)

// dbPathArgument describes the DB_PATH argument of register and unregister.
const dbPathArgument = "\n\nArguments:\n  DB_PATH      Path to the SQLite database file."

// printCtlUsage prints a control command's -h text: "usage: litestream
// synopsis", about, the options separated by blank lines, then the
// examples.
func (m *Main) printCtlUsage(synopsis, about string, opts []string, examples string) {
	fmt.Fprint(m.Stdout, "usage: litestream "+synopsis+"\n\n"+about+"\n\nOptions:\n"+
		strings.Join(opts, "\n")+"\nExamples:\n"+examples+"\n")
}

// printListingUsage prints info's or list's -h text.
func (m *Main) printListingUsage(name, about string) {
	m.printCtlUsage(name+" [OPTIONS]", about,
		[]string{optJSON, optSocket, "  -timeout SECONDS\n      Maximum time to wait in seconds (default: 10).\n"},
		"  $ litestream "+name+"\n  $ litestream "+name+" -json\n  $ litestream "+name+" -socket /tmp/litestream.sock\n")
}

func (m *Main) infoUsage() {
	m.printListingUsage("info", "Show daemon information from a running Litestream instance.")
}

func (m *Main) listUsage() {
	m.printListingUsage("list", "List all managed databases from a running daemon.")
}

func (m *Main) registerUsage() {
	m.printCtlUsage("register [OPTIONS] DB_PATH", "Register a database for replication."+dbPathArgument, []string{`  -replica URL
      Replica destination URL (e.g., s3://bucket/prefix, file:///backup/path).
      Required.
`, optTimeout30, optSocket, optJSON}, `  # Register a database with an S3 replica.
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
	m.printCtlUsage("unregister [OPTIONS] DB_PATH", "Unregister a database from replication."+dbPathArgument, []string{optTimeout30, optSocket, `  -dry-run
      Preview what would be unregistered without changing the daemon.
`, optJSON}, `  # Unregister a database from the running daemon.
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

// printStartStopUsage prints start's or stop's -h text: about is its
// description, firstExample and lastExample the comments of its first and
// last (-timeout) examples.
func (m *Main) printStartStopUsage(name, about, firstExample, lastExample string) {
	verb := strings.ToUpper(name[:1]) + name[1:]
	m.printCtlUsage(name+" [OPTIONS] DB_PATH", about,
		[]string{optTimeout30, optSocket, optJSON},
		"  # "+firstExample+"\n  $ litestream "+name+" /path/to/db\n\n"+
			"  # "+verb+" replication and emit a JSON confirmation.\n  $ litestream "+name+" -json /path/to/db\n\n"+
			"  # "+verb+" replication using a non-default control socket.\n  $ litestream "+name+" -socket /tmp/litestream.sock /path/to/db\n\n"+
			"  # "+lastExample+"\n  $ litestream "+name+" -timeout 10 /path/to/db\n")
}

func (m *Main) startUsage() {
	m.printStartStopUsage("start", "Start replication for a database.",
		"Start replication for a database on the running daemon.",
		"Start replication and wait up to 10 seconds for the daemon response.")
}

func (m *Main) stopUsage() {
	m.printStartStopUsage("stop", "Stop replication for a database.\nStop always waits for shutdown and final sync.",
		"Stop replication for a database.",
		"Stop replication and wait up to 10 seconds for final sync and shutdown.")
}

func (m *Main) syncUsage() {
	m.printCtlUsage("sync [OPTIONS] DB_PATH", "Force an immediate sync for a database.", []string{`  -wait
      Block until sync completes including remote replication (default: false).
`, `  -timeout SECONDS
      Maximum time to wait in seconds, best-effort (default: 30).
`, optSocket, optJSON}, `  $ litestream sync /path/to/db
  $ litestream sync -json /path/to/db
  $ litestream sync -wait /path/to/db
  $ litestream sync -wait -timeout 120 /path/to/db
`)
}
