package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/remote"
)

const ltxSynopsis = `	litestream ltx [arguments] REPLICA_URL
	litestream ltx [arguments] DB_PATH   (replica found through the config file)`

func (m *Main) runLTX(ctx context.Context, args []string) error {
	fs := m.newFlagSet("ltx", ltxSynopsis)
	var cf configFlags
	cf.register(fs)
	levelStr := fs.String("level", "all", "level to list: 0-9 or all")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() == 0:
		return fmt.Errorf("%w: a database path or replica URL is required", errUsage)
	case fs.NArg() > 1:
		return fmt.Errorf("%w: too many arguments", errUsage)
	}
	level := -1
	if *levelStr != "all" {
		n, err := strconv.Atoi(*levelStr)
		if err != nil || n < 0 || n > remote.MaxLevel {
			return fmt.Errorf("%w: -level must be 0-%d or all, not %q", errUsage, remote.MaxLevel, *levelStr)
		}
		level = n
	}
	tgt, err := m.resolveTarget(fs.Arg(0), &cf)
	if err != nil {
		return err
	}
	client, err := openReplica(ctx, tgt.replicaRef, newLogger(m.Stderr, m.Getenv("LOG_LEVEL"), "text"))
	if err != nil {
		return err
	}
	var files []*ltx.FileInfo
	if level < 0 {
		files, err = index.ListAll(ctx, client)
	} else {
		files, err = client.LTXFiles(ctx, level, 0)
	}
	if err != nil {
		return tgt.redactErr(fmt.Errorf("list replica %s: %w", tgt.URL, err))
	}

	if *asJSON {
		type row struct {
			Level     int       `json:"level"`
			MinTXID   string    `json:"min_txid"`
			MaxTXID   string    `json:"max_txid"`
			Size      int64     `json:"size"`
			CreatedAt time.Time `json:"created"`
		}
		rows := make([]row, 0, len(files))
		for _, f := range files {
			rows = append(rows, row{f.Level, f.MinTXID.String(), f.MaxTXID.String(), f.Size, f.CreatedAt.UTC()})
		}
		enc := json.NewEncoder(m.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	w := tabwriter.NewWriter(m.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "level\tmin_txid\tmax_txid\tsize\tcreated")
	for _, f := range files {
		fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%s\n", f.Level, f.MinTXID, f.MaxTXID, f.Size, f.CreatedAt.UTC().Format(time.RFC3339))
	}
	return w.Flush()
}
