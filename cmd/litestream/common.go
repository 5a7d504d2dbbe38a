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
	fs.StringVar(&cf.path, "config", "", "config path")
	fs.BoolVar(&cf.noExpandEnv, "no-expand-env", false, "do not expand env vars in config")
}

// newConfigFlagSet returns the flag set of a command that reads the config
// file, with the config flags registered.
func (m *Main) newConfigFlagSet(name string, usage func()) (*flag.FlagSet, *configFlags) {
	fs := m.newFlagSet(name, usage)
	cf := &configFlags{}
	cf.register(fs)
	return fs, cf
}

// defaultConfigPath is $LITESTREAM_CONFIG, else DefaultConfigPath.
func (m *Main) defaultConfigPath() string {
	if v := m.Getenv("LITESTREAM_CONFIG"); v != "" {
		return v
	}
	return DefaultConfigPath
}

// configPath returns the config file to read: -config, else
// $LITESTREAM_CONFIG, else the default.
func (m *Main) configPath(cf *configFlags) string {
	if cf.path != "" {
		return cf.path
	}
	return m.defaultConfigPath()
}

func (m *Main) loadConfig(cf *configFlags) (*Config, error) {
	return ReadConfigFile(m.configPath(cf), !cf.noExpandEnv, m.Getenv)
}

// The descriptions of the config flags (and -json) in the -h texts of the
// commands that read the config file, in Litestream's wording. argConfig
// holds a %s: the default config path.
const (
	argConfig = `	-config PATH
	    Specifies the configuration file.
	    Defaults to %s
`
	argNoExpandEnv = `	-no-expand-env
	    Disables environment variable expansion in configuration file.
`
	argJSON = `	-json
	    Output raw JSON instead of human-readable text.
`
)

// newFlagSet returns a flag set that reports errors instead of exiting. As
// in Litestream, a flag error goes to Stderr and the command's usage (the
// -h text) to Stdout.
func (m *Main) newFlagSet(name string, usage func()) *flag.FlagSet {
	fs := flag.NewFlagSet("litestream-"+name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.Usage = usage
	return fs
}

// usageError is a command-line mistake, printed as Litestream prints it:
// "Error: MESSAGE" and, with a hint, "Try: HINT".
type usageError struct {
	msg  string
	hint string
}

func (e *usageError) Error() string { return e.msg }

func usageErrorf(hint, format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...), hint: hint}
}

// checkArgs returns Litestream's errors for a command taking one positional
// argument: none ("what required", with a hint) or more than one.
func checkOneArg(fs *flag.FlagSet, what, hint string) error {
	switch {
	case fs.NArg() == 0 || fs.Arg(0) == "":
		return usageErrorf(hint, "%s required", what)
	case fs.NArg() > 1:
		return errors.New("too many arguments")
	}
	return nil
}

// parseFlags parses args. A flag given after the positional arguments is
// named in the error (Go's flag package would take it as one more
// argument).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, a := range fs.Args() {
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			return fmt.Errorf("flag %q must be positioned before the positional arguments", a)
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
			return nil, fmt.Errorf("cannot specify a replica URL and the -config flag")
		}
		// Credentials come from the URL and the environment, and so does
		// the age identity of an encrypted replica.
		ak, err := ageFromEnv(m.Getenv)
		if err != nil {
			return nil, err
		}
		return &target{replicaRef: replicaRef{URL: arg, Age: ak}}, nil
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
