// Command extension is the loadable SQLite extension litestream_vfs.so: it
// registers the read-replica VFS "litestream" (package vfs) inside a host
// process's SQLite, plus the SQL functions litestream_txid(),
// litestream_time(), litestream_lag(), litestream_error(), litestream_stats()
// and litestream_set_time(target). Build it with
//
//	go build -tags SQLITE3VFS_LOADABLE_EXT -buildmode=c-shared -o litestream_vfs.so ./extension
//
// The tag makes psanford/sqlite3vfs call SQLite through the pointer the host
// hands to the entry point, so the library carries no SQLite of its own.
// Nothing here may import a SQLite driver.
//
// Configuration comes from the environment (read once, at load):
//
//	LITESTREAM_REPLICA_URL     replica of databases opened without ?replica=
//	LITESTREAM_CACHE_SIZE      page cache per replica, e.g. 64MiB (default; sizes as in
//	                           the YAML configuration: 64MB is 64,000,000 bytes)
//	LITESTREAM_POLL_INTERVAL   how often to look for new files, e.g. 1s (default)
//	LITESTREAM_LIST_INTERVAL   how often an idle reader lists the replica, e.g. 1m (default)
//	LITESTREAM_LOG_LEVEL       debug, info, warn (default) or error; logs go to stderr
//	LITESTREAM_AGE_IDENTITY_FILE  age identity file of encrypted replicas (remote/crypt)
//
// and per database from the file URI: replica, cache_size, poll_interval, list_interval
// (file:app.db?vfs=litestream&replica=s3://bucket/app&poll_interval=500ms).
package main

/*
#include <stdlib.h>
*/
import "C"

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/litestream-go/litestream/internal/userinput"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/backends"
	"github.com/litestream-go/litestream/remote/crypt"
	"github.com/litestream-go/litestream/vfs"
)

func main() {}

// The extension's registry: SQLite keeps a VFS for the life of the
// process, so the one VFS (and with it every replica) is process-wide.
var (
	initOnce sync.Once
	initErr  error
)

// litestreamExtInit registers the VFS on the first load and returns NULL,
// or a malloc'ed error message for the entry point to report.
//
//export litestreamExtInit
func litestreamExtInit() (msg *C.char) {
	defer func() {
		if p := recover(); p != nil {
			msg = C.CString(fmt.Sprintf("panic during initialization: %v\n%s", p, debug.Stack()))
		}
	}()
	initOnce.Do(func() { initErr = register(os.Getenv) })
	if initErr != nil {
		return C.CString(initErr.Error())
	}
	return nil
}

func register(getenv func(string) string) error {
	if !loadableBuild {
		return fmt.Errorf("this library was built without -tags SQLITE3VFS_LOADABLE_EXT and would register its VFS in the wrong SQLite; rebuild it with the tag")
	}
	opts, err := configFromEnv(getenv)
	if err != nil {
		return err
	}
	if _, err := vfs.Register(vfs.DefaultName, opts); err != nil {
		return err
	}
	return nil
}

// configFromEnv builds the VFS options from LITESTREAM_* variables.
func configFromEnv(getenv func(string) string) (vfs.Options, error) {
	var level slog.Level = slog.LevelWarn
	if s := getenv("LITESTREAM_LOG_LEVEL"); s != "" {
		if err := level.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
			return vfs.Options{}, fmt.Errorf("LITESTREAM_LOG_LEVEL %q: want debug, info, warn or error", s)
		}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("component", "litestream_vfs")

	opts := vfs.Options{
		ReplicaURL: getenv("LITESTREAM_REPLICA_URL"),
		OpenClient: func(ctx context.Context, url string) (remote.Client, error) { return backends.Open(ctx, url) },
		Logger:     logger,
	}
	if p := getenv("LITESTREAM_AGE_IDENTITY_FILE"); p != "" {
		// Every replica this process opens is read through the
		// identities: a plaintext one is refused (crypt.ErrNotEncrypted),
		// as anyone with write access to the storage could forge it.
		ids, err := crypt.ReadIdentityFile(p)
		if err != nil {
			return vfs.Options{}, fmt.Errorf("LITESTREAM_AGE_IDENTITY_FILE: %w", err)
		}
		if len(ids) == 0 {
			return vfs.Options{}, fmt.Errorf("LITESTREAM_AGE_IDENTITY_FILE: %s holds no age identity", p)
		}
		opts.OpenClient = func(ctx context.Context, url string) (remote.Client, error) {
			c, err := backends.Open(ctx, url)
			if err != nil {
				return nil, err
			}
			return crypt.New(c, crypt.Options{Identities: ids})
		}
	}
	if s := getenv("LITESTREAM_CACHE_SIZE"); s != "" {
		n, err := userinput.ParseSize(s)
		if err != nil {
			return vfs.Options{}, fmt.Errorf("LITESTREAM_CACHE_SIZE: %w", err)
		}
		opts.Replica.CacheSize = n
	}
	if s := getenv("LITESTREAM_POLL_INTERVAL"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return vfs.Options{}, fmt.Errorf("LITESTREAM_POLL_INTERVAL %q: want a positive duration such as 1s or 250ms", s)
		}
		opts.Replica.PollInterval = d
	}
	if s := getenv("LITESTREAM_LIST_INTERVAL"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return vfs.Options{}, fmt.Errorf("LITESTREAM_LIST_INTERVAL %q: want a positive duration such as 1m or 30s", s)
		}
		opts.Replica.ListInterval = d
	}
	return opts, nil
}
