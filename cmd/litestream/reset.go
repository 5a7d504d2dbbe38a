package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// localStateFiles lists the local replication state in a database's
// staging directory (Litestream's meta path): Litestream's ltx/ tree, and
// this writer's staged files and empty-WAL snapshot record.
func localStateFiles(metaPath string) (ltxDir []string, ours []string, err error) {
	root := filepath.Join(metaPath, "ltx")
	if _, err := os.Stat(root); err == nil {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				ltxDir = append(ltxDir, p)
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	entries, err := os.ReadDir(metaPath)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		if !e.IsDir() && (strings.HasSuffix(e.Name(), ".ltx.tmp") || e.Name() == "empty-wal-snapshot.json") {
			ours = append(ours, filepath.Join(metaPath, e.Name()))
		}
	}
	sort.Strings(ours)
	return ltxDir, ours, nil
}

// defaultMetaPath is the staging directory of the database at path when
// none is configured: "<dir>/.<name>-litestream", Litestream's meta path.
func defaultMetaPath(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"-litestream")
}

func (m *Main) runReset(ctx context.Context, args []string) error {
	fs, cf := m.newConfigFlagSet("reset", m.resetUsage)
	dryRun := fs.Bool("dry-run", false, "print local state that would be removed without deleting")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkOneArg(fs, "database path", "litestream reset /path/to/db"); err != nil {
		return err
	}
	dbPath, err := expandPath(fs.Arg(0))
	if err != nil {
		return err
	}
	metaPath := defaultMetaPath(dbPath)
	// As in Litestream, the config is read only when -config is given.
	if cf.path != "" {
		cfg, err := m.loadConfig(cf)
		if err != nil {
			return fmt.Errorf("cannot read config: %w", err)
		}
		if db := cfg.DBConfig(dbPath); db != nil && db.MetaPath != nil {
			metaPath = *db.MetaPath
		}
	}
	if _, err := os.Stat(dbPath); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("database does not exist: %s", dbPath)
	} else if err != nil {
		return fmt.Errorf("cannot access database: %w", err)
	}
	if _, err := os.Stat(metaPath); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(m.Stdout, "No local state to reset for %s\n", dbPath)
		fmt.Fprintf(m.Stdout, "Meta directory does not exist: %s\n", metaPath)
		return nil
	}
	ltxDir := filepath.Join(metaPath, "ltx")
	theirs, ours, err := localStateFiles(metaPath)
	if err != nil {
		if *dryRun {
			return fmt.Errorf("dry run failed: %w", err)
		}
		return fmt.Errorf("reset failed: %w", err)
	}
	if *dryRun {
		fmt.Fprintf(m.Stdout, "Dry run: local Litestream state would be reset for: %s\n", dbPath)
		fmt.Fprintf(m.Stdout, "Would remove: %s\n", ltxDir)
		files := append(theirs, ours...)
		if len(files) == 0 {
			fmt.Fprintln(m.Stdout, "No local LTX files would be removed.")
			return nil
		}
		fmt.Fprintln(m.Stdout, "Files that would be removed:")
		for _, f := range files {
			fmt.Fprintf(m.Stdout, "  %s\n", f)
		}
		fmt.Fprintln(m.Stdout, "No files were removed.")
		return nil
	}
	fmt.Fprintf(m.Stdout, "Resetting local Litestream state for: %s\n", dbPath)
	fmt.Fprintf(m.Stdout, "Removing: %s\n", ltxDir)
	if err := os.RemoveAll(ltxDir); err != nil {
		return fmt.Errorf("reset failed: %w", err)
	}
	for _, f := range ours {
		fmt.Fprintf(m.Stdout, "Removing: %s\n", f)
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("reset failed: %w", err)
		}
	}
	// Litestream's next sync snapshots because its local state is gone.
	// This writer keeps none beyond the file awaiting upload and the
	// empty-WAL snapshot record: it continues from the replica when the
	// WAL still matches the replica's last file, and snapshots otherwise.
	if len(theirs) > 0 || len(ours) == 0 {
		fmt.Fprintln(m.Stdout, "Reset complete. Next replication sync will create a fresh snapshot.")
	} else {
		fmt.Fprintln(m.Stdout, "Reset complete. Next replication sync continues from the replica if the WAL still matches its last file, and snapshots otherwise.")
	}
	return nil
}

func (m *Main) resetUsage() {
	fmt.Fprintf(m.Stdout, `The reset command clears local Litestream state for a database.

This is useful for recovering from corrupted or missing LTX files. The reset
removes local LTX files from the metadata directory, forcing Litestream to
create a fresh snapshot on the next sync. The database file itself is not
modified.

Usage:

	litestream reset [arguments] <path>

Arguments:

`+argConfig+"\n"+argNoExpandEnv+`
	-dry-run
	    Print the local LTX files that would be removed without deleting them.

Examples:

	# Reset local state for a specific database
	litestream reset /path/to/database.db

	# Preview local files that would be removed
	litestream reset -dry-run /path/to/database.db

	# Reset using a specific configuration file
	litestream reset -config /etc/litestream.yml /path/to/database.db

`, m.defaultConfigPath())
}
