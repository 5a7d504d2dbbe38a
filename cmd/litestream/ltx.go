package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
)

// levelAll is -level all.
const levelAll = -1

// levelVar is -level: 0-9 or "all" (Litestream's flag type).
type levelVar int

func (v *levelVar) String() string {
	if *v == levelAll {
		return "all"
	}
	return strconv.Itoa(int(*v))
}

func (v *levelVar) Set(s string) error {
	if s == "all" {
		*v = levelAll
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("invalid level: must be 0-%d or \"all\"", remote.MaxLevel)
	}
	if n < 0 || n > remote.MaxLevel {
		return fmt.Errorf("level must be between 0 and %d", remote.MaxLevel)
	}
	*v = levelVar(n)
	return nil
}

// ltxFileInfo is one row of ltx -json (Litestream's stable fields).
type ltxFileInfo struct {
	Level     int    `json:"level"`
	MinTXID   string `json:"min_txid"`
	MaxTXID   string `json:"max_txid"`
	Size      int64  `json:"size"`
	Timestamp string `json:"timestamp"` // RFC 3339
}

func (m *Main) runLTX(ctx context.Context, args []string) error {
	fs, cf := m.newConfigFlagSet("ltx", m.ltxUsage)
	asJSON := fs.Bool("json", false, "output raw JSON")
	var level levelVar // 0, as in Litestream
	fs.Var(&level, "level", "compaction level (0-9 or \"all\")")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkOneArg(fs, "database path or replica URL", "litestream ltx /path/to/db"); err != nil {
		return err
	}
	tgt, err := m.resolveTarget(fs.Arg(0), cf)
	if err != nil {
		return err
	}
	client, err := openReplica(ctx, tgt.replicaRef, m.cmdLogger())
	if err != nil {
		return err
	}
	levels := []int{int(level)}
	if level == levelAll {
		levels = levels[:0]
		for l := 0; l <= remote.MaxLevel; l++ {
			levels = append(levels, l)
		}
	}
	var files []*ltx.FileInfo
	for _, l := range levels {
		fl, err := client.LTXFiles(ctx, l, 0)
		if err != nil {
			return tgt.redactErr(fmt.Errorf("list replica %s: %w", tgt.URL, err))
		}
		files = append(files, fl...)
	}

	rows := make([]ltxFileInfo, 0, len(files))
	for _, f := range files {
		rows = append(rows, ltxFileInfo{f.Level, f.MinTXID.String(), f.MaxTXID.String(), f.Size, f.CreatedAt.UTC().Format(time.RFC3339)})
	}
	if *asJSON {
		return printJSON(m, rows)
	}
	w := tabwriter.NewWriter(m.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "level\tmin_txid\tmax_txid\tsize\tcreated")
	for _, r := range rows {
		fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%s\n", r.Level, r.MinTXID, r.MaxTXID, r.Size, r.Timestamp)
	}
	return w.Flush()
}

// printJSON prints v as Litestream's commands do (json.MarshalIndent with
// two spaces, then a newline).
func printJSON(m *Main, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("failed to format response: %w", err)
	}
	_, err = fmt.Fprintln(m.Stdout, string(b))
	return err
}

func (m *Main) ltxUsage() {
	fmt.Fprintf(m.Stdout, `The ltx command lists all LTX files available for a database.

Usage:

	litestream ltx [arguments] DB_PATH

	litestream ltx [arguments] REPLICA_URL

Arguments:

`+argConfig+"\n"+argNoExpandEnv+`
	-level LEVEL
	    Compaction level to list (0-9 or "all").
	    Defaults to 0.

`+argJSON+`
Examples:

	# List all LTX files for a database.
	$ litestream ltx /path/to/db

	# List all LTX files for replica URL.
	$ litestream ltx s3://mybkt/db

	# List LTX files at snapshot level (level 9).
	$ litestream ltx -level 9 /path/to/db

	# List LTX files across all compaction levels.
	$ litestream ltx -level all /path/to/db

`, m.defaultConfigPath())
}
