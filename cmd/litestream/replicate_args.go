package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
)

// replicateArgs is a parsed `replicate` command line.
type replicateArgs struct {
	cfg              *Config
	once             bool
	forceSnapshot    bool
	enforceRetention bool
	logLevel         string // "" unless -log-level was given
}

// parseReplicateArgs parses replicate's flags and loads its configuration:
// the config file, or one database and its replica from DB_PATH
// REPLICA_URL. The rules are Litestream's: -exec overrides the config's
// exec, -once excludes -exec, -force-snapshot and -enforce-retention need
// -once.
func (m *Main) parseReplicateArgs(_ context.Context, args []string) (*replicateArgs, error) {
	fs, cf := m.newConfigFlagSet("replicate", m.replicateUsage)
	execFlag := fs.String("exec", "", "execute subcommand")
	logLevel := fs.String("log-level", "", "log level (trace, debug, info, warn, error)")
	restoreIfNotExists := fs.Bool("restore-if-db-not-exists", false, "restore from replica if database doesn't exist")
	once := fs.Bool("once", false, "replicate once and exit")
	forceSnapshot := fs.Bool("force-snapshot", false, "force snapshot when replicating once")
	enforceRetention := fs.Bool("enforce-retention", false, "enforce retention of old snapshots when replicating once")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}

	cfg, err := m.replicateConfig(fs, cf)
	if err != nil {
		return nil, err
	}
	if *execFlag != "" {
		cfg.Exec = *execFlag
	}
	if *restoreIfNotExists {
		for _, db := range cfg.DBs {
			db.RestoreIfDBNotExists = true
		}
	}
	switch {
	case *once && cfg.Exec != "":
		return nil, fmt.Errorf("cannot specify -once flag with -exec")
	case *forceSnapshot && !*once:
		return nil, fmt.Errorf("cannot specify -force-snapshot flag without -once")
	case *enforceRetention && !*once:
		return nil, fmt.Errorf("cannot specify -enforce-retention flag without -once")
	}
	if cfg.Exec != "" {
		if a, err := splitCommand(cfg.Exec); err != nil || len(a) == 0 {
			return nil, fmt.Errorf("cannot parse exec command %q: %v", cfg.Exec, err)
		}
	}
	if *logLevel != "" {
		if _, err := parseLogLevel(*logLevel); err != nil {
			return nil, fmt.Errorf("-log-level: %w", err)
		}
	}
	return &replicateArgs{cfg: cfg, once: *once, forceSnapshot: *forceSnapshot,
		enforceRetention: *enforceRetention, logLevel: *logLevel}, nil
}

// replicateConfig is the configuration replicate runs: the config file
// without arguments, else one database (DB_PATH) and its replica
// (REPLICA_URL), as Litestream takes them.
func (m *Main) replicateConfig(fs *flag.FlagSet, cf *configFlags) (*Config, error) {
	switch fs.NArg() {
	case 0:
		return m.loadConfig(cf)
	case 1:
		return nil, fmt.Errorf("must specify at least one replica URL for %s", fs.Arg(0))
	}
	if cf.path != "" {
		return nil, fmt.Errorf("cannot specify a replica URL and the -config flag")
	}
	for _, a := range fs.Args()[1:] {
		if strings.HasPrefix(a, "-") {
			return nil, fmt.Errorf("flag %q must be positioned before DB_PATH and REPLICA_URL arguments", a)
		}
	}
	if fs.NArg() > 2 {
		return nil, fmt.Errorf("multiple replicas on a single database are no longer supported")
	}
	path, err := expandPath(stripSQLitePrefix(fs.Arg(0)))
	if err != nil {
		return nil, err
	}
	u, err := replicaArg(fs.Arg(1))
	if err != nil {
		return nil, err
	}
	cfg := &Config{DBs: []*DBConfig{{Path: path, Replica: &ReplicaConfig{URL: u}}}}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (m *Main) replicateUsage() {
	fmt.Fprintf(m.Stdout, `The replicate command starts a server to monitor & replicate databases.
You can specify your database & replicas in a configuration file or you can
replicate a single database file by specifying its path and its replicas in the
command line arguments.

Usage:

	litestream replicate [arguments]

	litestream replicate [arguments] DB_PATH REPLICA_URL

Arguments:

`+argConfig+`
	-exec CMD
	    Executes a subcommand. Litestream will exit when the child
	    process exits. Useful for simple process management.

	-once
	    Replicate once and exit. This performs a single sync of all
	    databases and their replicas, then exits. Cannot be used with -exec.

	-force-snapshot
	    Force a snapshot to be taken for all databases. Requires -once.
	    This is useful for creating a complete backup before maintenance
	    or when migrating databases between hosts.

	-enforce-retention
	    Enforce retention policies for old snapshots. Requires -once.
	    This removes snapshots that are older than the configured
	    snapshot retention period.

	-log-level LEVEL
	    Sets the log level. Overrides the config file setting.
	    Valid values: trace, debug, info, warn, error

`+argNoExpandEnv+`
	-restore-if-db-not-exists
	    Restores the database from the replica if it doesn't exist.
	    On first start with no backup, proceeds normally.

Runtime control commands require the daemon control socket. This includes
start, stop, sync, register, unregister, info, and list. Enable it in the config:

	socket:
	  enabled: true
	  path: /tmp/litestream.sock

`, m.defaultConfigPath())
}
