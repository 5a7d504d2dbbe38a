package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ErrConfigNotFound is returned (wrapped) when the configuration file does not exist.
var ErrConfigNotFound = errors.New("config file not found")

// ReadConfigFile reads and parses the configuration file at path. With
// expandEnv, $VAR and ${VAR} are replaced by getenv's values first.
func ReadConfigFile(path string, expandEnv bool, getenv func(string) string) (*Config, error) {
	buf, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrConfigNotFound, path)
	} else if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	cfg, err := ParseConfig(buf, expandEnv, getenv)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	cfg.Path = path
	return cfg, nil
}

// ParseConfig parses a configuration. Unknown keys are an error naming the
// key and its line; database paths are made absolute (with ~ expanded); the
// global replica settings are copied into each replica that does not set
// them. The result is validated: a key this build cannot honour is an
// error saying so, never silently ignored.
func ParseConfig(buf []byte, expandEnv bool, getenv func(string) string) (*Config, error) {
	if expandEnv {
		buf = []byte(os.Expand(string(buf), func(key string) string {
			if key == "PID" {
				return strconv.Itoa(os.Getpid())
			}
			return getenv(key)
		}))
	}

	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(buf))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	cfg := &Config{lines: map[string]int{}}
	if root.Kind == 0 {
		return cfg, nil // empty file (Litestream's shipped sample is all comments)
	}
	if err := checkKeys(&root, reflect.TypeOf(cfg).Elem(), "", cfg.lines); err != nil {
		return nil, err
	}
	if err := root.Decode(cfg); err != nil {
		return nil, err
	}

	for i, db := range cfg.DBs {
		if db == nil {
			return nil, fmt.Errorf("dbs[%d]: empty entry", i)
		}
		for _, p := range []*string{&db.Path, &db.Dir, db.MetaPath, db.MetaDir} {
			if p == nil || *p == "" {
				continue
			}
			v, err := expandPath(stripSQLitePrefix(*p))
			if err != nil {
				return nil, fmt.Errorf("dbs[%d]: %w", i, err)
			}
			*p = v
		}
		for _, rc := range db.replicaConfigs() {
			rc.SetDefaults(&cfg.ReplicaSettings)
			rc.global = &cfg.ReplicaSettings
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// stripSQLitePrefix removes a sqlite:// or sqlite3:// connection-string
// prefix from a database path, as Litestream does.
func stripSQLitePrefix(s string) string {
	for _, p := range []string{"sqlite3://", "sqlite://"} {
		if strings.HasPrefix(s, p) {
			return strings.TrimPrefix(s, p)
		}
	}
	return s
}

// checkKeys walks the YAML tree alongside the Go type it will be decoded
// into and rejects any mapping key that has no field, so a misspelt key is an
// error that names the key and its line instead of a silently ignored setting.
func checkKeys(n *yaml.Node, t reflect.Type, where string, lines map[string]int) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := checkKeys(c, t, where, lines); err != nil {
				return err
			}
		}
		return nil
	case yaml.AliasNode:
		if n.Alias != nil {
			return checkKeys(n.Alias, t, where, lines)
		}
		return nil
	}

	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode || t == reflect.TypeOf(time.Time{}) {
			return nil // a type mismatch; Decode reports it with its line
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" { // merge key: its mapping belongs to this struct
				if err := checkKeys(v, t, where, lines); err != nil {
					return err
				}
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				if where == "" {
					return fmt.Errorf("line %d: unknown key %q", k.Line, k.Value)
				}
				return fmt.Errorf("line %d: unknown key %q in %s", k.Line, k.Value, where)
			}
			lines[joinKey(where, k.Value)] = k.Line
			if err := checkKeys(v, ft, joinKey(where, k.Value), lines); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, c := range n.Content {
			if err := checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", where, i), lines); err != nil {
				return err
			}
		}
	}
	return nil
}

func joinKey(where, key string) string {
	if where == "" {
		return key
	}
	return where + "." + key
}

// yamlFields maps each YAML key of struct type t (inline structs flattened)
// to the field's type.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := make(map[string]reflect.Type)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				m[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f.Type
	}
	return m
}

// SetDefaults copies into rs every setting that rs leaves unset and src sets.
func (rs *ReplicaSettings) SetDefaults(src *ReplicaSettings) {
	dst := reflect.ValueOf(rs).Elem()
	from := reflect.ValueOf(src).Elem()
	for i := 0; i < dst.NumField(); i++ {
		if dst.Field(i).IsZero() && !from.Field(i).IsZero() {
			dst.Field(i).Set(from.Field(i))
		}
	}
}

// replicaConfigs returns the database's replica configs, new form first.
func (db *DBConfig) replicaConfigs() []*ReplicaConfig {
	var out []*ReplicaConfig
	if db.Replica != nil {
		out = append(out, db.Replica)
	}
	for _, rc := range db.Replicas {
		if rc != nil {
			out = append(out, rc)
		}
	}
	return out
}

// ReplicaConfig returns the database's single replica: `replica:` or the one
// entry of the legacy `replicas:` list.
func (db *DBConfig) ReplicaConfig() (*ReplicaConfig, error) {
	switch rcs := db.replicaConfigs(); {
	case db.Replica != nil && len(db.Replicas) > 0:
		return nil, fmt.Errorf("database %s: cannot specify both 'replica' and 'replicas'", db.Path)
	case len(rcs) == 0:
		return nil, fmt.Errorf("database %s: no replica configured (add 'replica: {url: ...}')", db.Path)
	case len(rcs) > 1:
		return nil, fmt.Errorf("database %s: multiple replicas per database are not supported (Litestream v0.5 dropped them too)", db.Path)
	default:
		return rcs[0], nil
	}
}

// DBConfig returns the configuration of the database at path (made absolute
// first), or nil.
func (c *Config) DBConfig(path string) *DBConfig {
	p, err := expandPath(path)
	if err != nil {
		return nil
	}
	for _, db := range c.DBs {
		if db.Path == p {
			return db
		}
	}
	return nil
}

// clearInherited zeroes the settings that equal the global ones, leaving
// what the replica set itself.
func (rs *ReplicaSettings) clearInherited(global *ReplicaSettings) {
	dst := reflect.ValueOf(rs).Elem()
	g := reflect.ValueOf(global).Elem()
	for i := 0; i < dst.NumField(); i++ {
		if reflect.DeepEqual(dst.Field(i).Interface(), g.Field(i).Interface()) {
			dst.Field(i).SetZero()
		}
	}
}

// expandPath makes p absolute, expanding a leading ~ to the home directory.
func expandPath(p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("expand %s: %w", p, err)
		}
		p = filepath.Join(home, strings.TrimPrefix(p, "~"))
	}
	return filepath.Abs(p)
}
