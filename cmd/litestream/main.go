// Command litestream replicates SQLite databases to a remote as LTX files
// (compatible with Litestream v0.5 replicas) and restores them. Its
// commands, flags, configuration, control socket, metrics and output are
// Litestream v0.5.18's, so that it can replace that binary as is.
//
// Usage:
//
//	litestream <command> [arguments]
//
// Run "litestream help" for the list of commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Version is the binary's version, set at build time with
// -ldflags "-X main.Version=v1.2.3".
var Version = "development"

// Main holds what a run of the program talks to, so that tests can run the
// whole command line in-process.
type Main struct {
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string

	// Signals delivers SIGINT/SIGTERM. replicate shuts down gracefully on the
	// first and calls Exit on the second. Nil means no signals arrive.
	Signals <-chan os.Signal
	// Exit ends the process at once (the second signal); os.Exit in main.
	Exit func(code int)

	// StderrIsTerminal enables restore's progress display.
	StderrIsTerminal bool

	// minHeartbeat is the shortest heartbeat-interval accepted; 0 means
	// Litestream's one minute. Tests lower it.
	minHeartbeat time.Duration
}

func main() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	m := &Main{
		Stdout:           os.Stdout,
		Stderr:           os.Stderr,
		Getenv:           os.Getenv,
		Signals:          sigs,
		Exit:             os.Exit,
		StderrIsTerminal: isTerminal(os.Stderr),
	}
	os.Exit(m.Main(context.Background(), os.Args[1:]))
}

// isTerminal reports whether f is a character device (a terminal), without
// depending on a terminal library.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Main runs the command line and returns the process exit status, as
// Litestream does: 0 on success and for an explicit -h, 1 for any error
// (printed to Stderr as "Error: ..."), except that replicate -exec exits
// with the status of the application it ran.
func (m *Main) Main(ctx context.Context, args []string) int {
	err := m.Run(ctx, args)
	var ee *exitError
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		for _, a := range args {
			if a == "-h" || a == "-help" || a == "--help" {
				return 0
			}
		}
		return 1
	case errors.As(err, &ee):
		fmt.Fprintf(m.Stderr, "Error: %v\n", err)
		return ee.code
	default:
		fmt.Fprintf(m.Stderr, "Error: %v\n", err)
		if errors.As(err, &ue) && ue.hint != "" {
			fmt.Fprintf(m.Stderr, "Try: %s\n", ue.hint)
		}
		return 1
	}
}

// Run executes the command named by args[0].
func (m *Main) Run(ctx context.Context, args []string) error {
	if m.Getenv == nil {
		m.Getenv = os.Getenv
	}
	if m.Stdout == nil {
		m.Stdout = io.Discard
	}
	if m.Stderr == nil {
		m.Stderr = io.Discard
	}
	var cmd string
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	if cmd != "replicate" && m.Signals != nil {
		// replicate handles signals itself (a final sync, then exit).
		var stop func()
		ctx, stop = m.cancelOnSignal(ctx)
		defer stop()
	}
	return m.dispatch(ctx, cmd, args)
}

// cancelOnSignal returns a context cancelled at the first signal on
// m.Signals (a command then stops its work; a restore removes its partial
// output), and exits with status 130 at the second. stop ends the watch.
func (m *Main) cancelOnSignal(ctx context.Context) (_ context.Context, stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		select {
		case <-m.Signals:
			cancel()
		case <-done:
			return
		}
		select {
		case <-m.Signals:
			if m.Exit != nil {
				m.Exit(130)
			}
		case <-done:
		}
	}()
	return ctx, func() { close(done); cancel() }
}

// dispatch runs the command cmd with its arguments.
func (m *Main) dispatch(ctx context.Context, cmd string, args []string) error {
	switch cmd {
	case "databases":
		return m.runDatabases(ctx, args)
	case "replicate":
		return m.runReplicate(ctx, args)
	case "start":
		return m.runStart(ctx, args)
	case "stop":
		return m.runStop(ctx, args)
	case "register":
		return m.runRegister(ctx, args)
	case "unregister":
		return m.runUnregister(ctx, args)
	case "reset":
		return m.runReset(ctx, args)
	case "restore":
		return m.runRestore(ctx, args)
	case "status":
		return m.runStatus(ctx, args)
	case "sync":
		return m.runSync(ctx, args)
	case "list":
		return m.runList(ctx, args)
	case "info":
		return m.runInfo(ctx, args)
	case "version":
		return m.runVersion(ctx, args)
	case "ltx":
		return m.runLTX(ctx, args)
	case "wal":
		fmt.Fprintln(m.Stderr, "Warning: 'wal' command is deprecated, please use 'ltx' instead")
		return m.runLTX(ctx, args)
	case "help", "-h", "-help", "--help":
		m.usage()
		return nil
	default:
		if cmd == "" || cmd[0] == '-' {
			m.usage()
			return flag.ErrHelp
		}
		return fmt.Errorf("litestream %s: unknown command", cmd)
	}
}

// usage prints the list of commands (Litestream's text) to Stdout.
func (m *Main) usage() {
	fmt.Fprint(m.Stdout, `litestream is a tool for replicating SQLite databases.

Usage:

	litestream <command> [arguments]

The commands are:

	databases    list databases specified in config file
	info         show daemon information
	list         list all managed databases
	ltx          list available LTX files for a database
	register     register a database for replication
	replicate    runs a server to replicate databases
	reset        reset local state for a database
	restore      recovers database backup from a replica
	start        start replication for a database
	status       display replication status for databases
	stop         stop replication for a database
	sync         force an immediate sync for a database
	unregister   unregister a database from replication
	version      prints the binary version

`)
}
