package main

// Directory replication (a dbs entry with dir and pattern): every SQLite
// database under the directory whose file name matches the pattern
// replicates to the entry's replica plus its path relative to the
// directory. With watch, the directory is scanned again every
// dirScanInterval: new databases are added and opened, removed ones are
// closed and dropped. Polling rather than inotify: it needs no watch per
// subdirectory and sees databases created by any means.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// dirScanInterval is how often a watched directory is scanned again.
const dirScanInterval = time.Second

// dirWatcher owns the databases found under one dir: entry.
type dirWatcher struct {
	d   *daemon
	cfg *DBConfig

	mu    sync.Mutex
	known map[string]*dbEntry
}

func (d *daemon) newDirWatcher(dbc *DBConfig) (*dirWatcher, error) {
	fi, err := os.Stat(dbc.Dir)
	if err != nil {
		return nil, fmt.Errorf("directory %s: %w", dbc.Dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("directory %s: not a directory", dbc.Dir)
	}
	return &dirWatcher{d: d, cfg: dbc, known: map[string]*dbEntry{}}, nil
}

// scan returns the SQLite databases under the directory that match the
// pattern.
func (w *dirWatcher) scan() ([]string, error) {
	return findSQLiteDatabases(w.cfg.Dir, w.cfg.Pattern, w.cfg.Recursive)
}

// findSQLiteDatabases lists the files under dir (its subdirectories too
// with recursive) whose name matches pattern and that start with SQLite's
// header.
func findSQLiteDatabases(dir, pattern string, recursive bool) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if p != dir && errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		if de.IsDir() {
			if p != dir && (!recursive || strings.HasSuffix(de.Name(), "-litestream")) {
				return filepath.SkipDir
			}
			return nil
		}
		if ok, _ := filepath.Match(pattern, de.Name()); ok && isSQLiteDatabase(p) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan directory %s: %w", dir, err)
	}
	return out, nil
}

// isSQLiteDatabase reports whether the file at p starts with SQLite's
// header ("SQLite format 3\0"); an empty or new file does not yet.
func isSQLiteDatabase(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	hdr := make([]byte, 16)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return false
	}
	return string(hdr) == "SQLite format 3\x00"
}

// entryConfig returns the configuration of the database at p found under
// the directory: the entry's, with the replica's path extended by p's
// relative path and a staging directory of its own.
func (w *dirWatcher) entryConfig(p string) (*DBConfig, error) {
	rel, err := filepath.Rel(w.cfg.Dir, p)
	if err != nil {
		return nil, err
	}
	c := *w.cfg
	c.Path, c.Dir, c.Pattern, c.Recursive, c.Watch = p, "", "", false, false
	c.dirRel = rel
	switch {
	case w.cfg.MetaDir != nil:
		mp := filepath.Join(*w.cfg.MetaDir, rel+"-litestream")
		c.MetaPath, c.MetaDir = &mp, nil
	case w.cfg.MetaPath != nil:
		relDir, relFile := filepath.Split(rel)
		mp := filepath.Join(*w.cfg.MetaPath, relDir, "."+relFile+"-litestream")
		c.MetaPath = &mp
	}
	rc, err := w.cfg.ReplicaConfig()
	if err != nil {
		return nil, err
	}
	clone := *rc
	if err := clone.appendPath(filepath.ToSlash(rel)); err != nil {
		return nil, fmt.Errorf("database %s: %w", p, err)
	}
	c.Replica, c.Replicas = &clone, nil
	return &c, nil
}

// appendPath extends the replica's location by rel (slash-separated), in
// its URL or its path key, as Litestream does for directory replication.
func (rc *ReplicaConfig) appendPath(rel string) error {
	if rel == "" || rel == "." {
		return nil
	}
	if rc.URL != "" {
		u, err := url.Parse(rc.URL)
		if err != nil {
			return fmt.Errorf("parse replica url: %w", err)
		}
		u.Path = "/" + strings.TrimPrefix(path.Join(u.Path, rel), "/")
		u.RawPath = ""
		rc.URL = u.String()
		return nil
	}
	if rc.Type == "" || rc.Type == "file" {
		rc.Path = filepath.Join(rc.Path, filepath.FromSlash(rel))
		return nil
	}
	rc.Path = path.Join(filepath.ToSlash(rc.Path), rel)
	return nil
}

// addDB adds the database at p; with open, it is opened too (retrying in
// the background if need be). Its staging directory must not be another's.
func (w *dirWatcher) addDB(ctx context.Context, p string, open bool) error {
	dbc, err := w.entryConfig(p)
	if err != nil {
		return err
	}
	e, err := w.d.newEntry(ctx, dbc)
	if err != nil {
		return err
	}
	if !w.d.add(e) {
		return nil // listed on its own too, or found twice
	}
	w.mu.Lock()
	w.known[p] = e
	w.mu.Unlock()
	if open {
		w.d.log.Info("database discovered", "dir", w.cfg.Dir, "db", p, "replica", e.red)
		e.openRetrying(ctx)
	}
	return nil
}

// start scans the directory every dirScanInterval until the daemon stops.
func (w *dirWatcher) start() {
	w.d.goBackground(func() {
		t := time.NewTicker(dirScanInterval)
		defer t.Stop()
		for {
			select {
			case <-w.d.runCtx.Done():
				return
			case <-t.C:
				w.rescan(w.d.runCtx)
			}
		}
	})
}

// rescan adds the databases that appeared and drops those that are gone.
func (w *dirWatcher) rescan(ctx context.Context) {
	found, err := w.scan()
	if err != nil {
		w.d.log.Warn("directory scan failed", "dir", w.cfg.Dir, "error", err)
		return
	}
	seen := make(map[string]bool, len(found))
	for _, p := range found {
		seen[p] = true
		w.mu.Lock()
		_, ok := w.known[p]
		w.mu.Unlock()
		if ok || w.d.find(p) != nil {
			continue
		}
		if err := w.addDB(ctx, p, true); err != nil {
			w.d.log.Error("cannot add discovered database", "dir", w.cfg.Dir, "db", p, "error", err)
		}
	}
	w.mu.Lock()
	var gone []*dbEntry
	for p, e := range w.known {
		if !seen[p] {
			if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
				gone = append(gone, e)
				delete(w.known, p)
			}
		}
	}
	w.mu.Unlock()
	for _, e := range gone {
		w.d.remove(e)
		if _, err := e.close(ctx); err != nil {
			w.d.log.Warn("database removed; its final sync failed", "db", e.path, "error", err)
		} else {
			w.d.log.Info("database removed from directory; replication stopped", "db", e.path)
		}
	}
}
