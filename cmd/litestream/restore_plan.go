package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/litestream-go/litestream/index"
)

// planFile is one file of a printed restore plan.
type planFile struct {
	Level     int       `json:"level"`
	MinTXID   string    `json:"min_txid"`
	MaxTXID   string    `json:"max_txid"`
	Size      int64     `json:"size"`
	CreatedAt time.Time `json:"created"`
}

// planOutput is the -dry-run -json document.
type planOutput struct {
	TXID      string     `json:"txid"`
	Timestamp time.Time  `json:"timestamp"`
	Size      int64      `json:"size"` // bytes of LTX files the restore reads
	Files     []planFile `json:"files"`
}

// restoreDryRun prints the plan a restore to p's target would follow: the
// newest snapshot at or before the target and the fewest files that reach it
// exactly, across all levels (package index, shared with the VFS).
func (m *Main) restoreDryRun(ctx context.Context, ref replicaRef, p restoreParams, asJSON bool) error {
	client, err := openReplica(ctx, ref, newLogger(m.Stderr, m.Getenv("LOG_LEVEL"), "text"))
	if err != nil {
		return err
	}
	plan, err := index.PlanAt(ctx, client, p.txid, p.timestamp)
	var gap *index.GapError
	switch {
	case errors.As(err, &gap) && p.allowGap:
		fmt.Fprintf(m.Stderr, "warning: %v\n", err)
		plan, err = gap.Plan, nil
	case errors.Is(err, index.ErrGap):
		err = fmt.Errorf("%w (restore -txid at or before the gap, or pass -allow-gap to accept the state before it)", err)
	case errors.Is(err, index.ErrNoSnapshot):
		err = fmt.Errorf("%w: %w", errEmptyReplica, err)
	}
	if err != nil {
		return ref.redactErr(fmt.Errorf("plan restore from %s: %w", ref.URL, err))
	}
	out := planOutput{TXID: plan.TXID.String(), Timestamp: plan.Timestamp.UTC(), Files: []planFile{}}
	for _, f := range plan.Files {
		out.Files = append(out.Files, planFile{f.Level, f.MinTXID.String(), f.MaxTXID.String(), f.Size, f.CreatedAt.UTC()})
		out.Size += f.Size
	}
	if asJSON {
		enc := json.NewEncoder(m.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(m.Stdout, "restore to TXID %s (created %s) from %d files, %d bytes:\n",
		out.TXID, out.Timestamp.Format(time.RFC3339Nano), len(out.Files), out.Size)
	w := tabwriter.NewWriter(m.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "level\tmin_txid\tmax_txid\tsize\tcreated")
	for _, f := range out.Files {
		fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%s\n", f.Level, f.MinTXID, f.MaxTXID, f.Size, f.CreatedAt.Format(time.RFC3339Nano))
	}
	return w.Flush()
}
