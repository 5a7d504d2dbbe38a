// Command litestream replicates SQLite databases to a remote as LTX files
// (compatible with Litestream v0.5 replicas) and restores them.
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
)

// Version is the binary's version, set at build time with
// -ldflags "-X main.Version=v1.2.3".
var Version = "development"

// errUsage marks an error caused by the command line itself (exit status 2).
var errUsage = errors.New("usage")

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

// Main runs the command line and returns the process exit status: 0 on
// success (and for -h), 2 for a usage error, 1 for any other error, which is
// printed to Stderr.
func (m *Main) Main(ctx context.Context, args []string) int {
	err := m.Run(ctx, args)
	var ee *exitError
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		// replicate -exec: the subprocess's own status.
		fmt.Fprintf(m.Stderr, "litestream: %v\n", err)
		return ee.code
	case errors.Is(err, errUsage):
		fmt.Fprintf(m.Stderr, "litestream: %v\n", err)
		return 2
	default:
		fmt.Fprintf(m.Stderr, "litestream: error: %v\n", err)
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
		// Other commands stop at the first signal by cancelling their work
		// (a restore then removes its partial output), and at once on the
		// second.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		done := make(chan struct{})
		defer close(done)
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
	}
	switch cmd {
	case "replicate":
		return m.runReplicate(ctx, args)
	case "restore":
		return m.runRestore(ctx, args)
	case "ltx", "wal":
		return m.runLTX(ctx, args)
	case "status":
		return m.runStatus(ctx, args)
	case "databases":
		return m.runDatabases(ctx, args)
	case "version":
		fmt.Fprintln(m.Stdout, Version)
		return nil
	case "", "help", "-h", "-help", "--help":
		m.usage()
		if cmd == "" {
			return fmt.Errorf("%w: no command given", errUsage)
		}
		return nil
	default:
		m.usage()
		return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
	}
}

func (m *Main) usage() {
	fmt.Fprint(m.Stderr, `litestream replicates SQLite databases to a remote and restores them.

Usage:

	litestream <command> [arguments]

The commands are:

	databases    list the databases in the config file and their replicas
	ltx          list the LTX files of a replica
	replicate    replicate databases continuously until SIGINT/SIGTERM
	restore      restore a database from its replica
	status       show the replication status of the configured databases
	version      print the binary version

Run "litestream <command> -h" for a command's arguments.
`)
}
