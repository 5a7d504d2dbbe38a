package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// configFlags are the flags every command that reads the config file has.
type configFlags struct {
	path        string
	noExpandEnv bool
}

func (cf *configFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&cf.path, "config", "", "config file (default $LITESTREAM_CONFIG or "+DefaultConfigPath+")")
	fs.BoolVar(&cf.noExpandEnv, "no-expand-env", false, "do not expand $VAR and ${VAR} in the config file")
}

// configPath returns the config file to read: -config, else
// $LITESTREAM_CONFIG, else the default.
func (m *Main) configPath(cf *configFlags) string {
	if cf.path != "" {
		return cf.path
	}
	if v := m.Getenv("LITESTREAM_CONFIG"); v != "" {
		return v
	}
	return DefaultConfigPath
}

func (m *Main) loadConfig(cf *configFlags) (*Config, error) {
	return ReadConfigFile(m.configPath(cf), !cf.noExpandEnv, m.Getenv)
}

// newFlagSet returns a flag set that reports errors instead of exiting and
// prints its usage to Stderr.
func (m *Main) newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("litestream "+name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(m.Stderr, "Usage:\n\n%s\n\nArguments:\n\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and turns a flag error into a usage error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	for _, a := range fs.Args() {
		if strings.HasPrefix(a, "-") {
			return fmt.Errorf("%w: flag %q must come before the positional arguments", errUsage, a)
		}
	}
	return nil
}

// target is what a DB_PATH-or-REPLICA_URL argument resolved to.
type target struct {
	replicaRef           // the replica (may hold credentials: print redacted())
	DBPath     string    // database path when found through the config file
	DB         *DBConfig // its configuration, if any
}

// resolveTarget resolves a restore/ltx argument. A URL is the replica
// itself. A path is looked up in the config file; failing that, a directory
// that holds a file replica (an "ltx" subdirectory) is accepted as one.
func (m *Main) resolveTarget(arg string, cf *configFlags) (*target, error) {
	if isURL(arg) {
		if cf.path != "" {
			return nil, fmt.Errorf("%w: cannot use a replica URL and -config together", errUsage)
		}
		// Credentials come from the URL and the environment.
		return &target{replicaRef: replicaRef{URL: arg}}, nil
	}
	p, err := expandPath(arg)
	if err != nil {
		return nil, err
	}
	cfg, cfgErr := m.loadConfig(cf)
	if cfgErr == nil {
		if db := cfg.DBConfig(p); db != nil {
			rc, err := db.ReplicaConfig()
			if err != nil {
				return nil, err
			}
			ref, err := rc.Replica()
			if err != nil {
				return nil, fmt.Errorf("database %s: %w", p, err)
			}
			return &target{replicaRef: ref, DBPath: p, DB: db}, nil
		}
	}
	if fi, err := os.Stat(filepath.Join(p, "ltx")); err == nil && fi.IsDir() {
		return &target{replicaRef: replicaRef{URL: fileURL(p)}}, nil
	}
	if cfgErr != nil {
		if errors.Is(cfgErr, ErrConfigNotFound) {
			return nil, fmt.Errorf("%s is not a replica URL, and %w (give a replica URL such as file:///backups/app, or -config)", arg, cfgErr)
		}
		return nil, cfgErr
	}
	return nil, fmt.Errorf("database %s not found in config %s", p, cfg.Path)
}

// redactErr rewrites err's message so that rawURL (and its password) appear
// only in redacted form, and the extra secrets (configured credentials) not
// at all; errors.Is/As still see the original chain.
func redactErr(err error, rawURL string, extra ...string) error {
	if err == nil {
		return nil
	}
	return &redactedError{err: err, raw: rawURL, extra: extra}
}

type redactedError struct {
	err   error
	raw   string
	extra []string
}

func (e *redactedError) Error() string {
	msg := e.err.Error()
	if e.raw != "" {
		msg = strings.ReplaceAll(msg, e.raw, redactURL(e.raw))
	}
	for _, s := range append(urlSecrets(e.raw), e.extra...) {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, redacted)
		}
	}
	return msg
}

func (e *redactedError) Unwrap() error { return e.err }
