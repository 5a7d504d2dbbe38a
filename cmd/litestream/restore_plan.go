package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/index"
)

// restorePlan is the -dry-run document (Litestream's stable fields, then
// this program's).
type restorePlan struct {
	Source     string            `json:"source"`
	TargetPath string            `json:"target_path"`
	Replica    string            `json:"replica"` // the replica client type
	MinTXID    string            `json:"min_txid"`
	MaxTXID    string            `json:"max_txid"`
	Files      []restorePlanFile `json:"files"`

	TXID      string `json:"txid"`      // the TXID the restore reaches
	Timestamp string `json:"timestamp"` // its creation time, RFC 3339
	Size      int64  `json:"size"`      // bytes of LTX files the restore reads
}

// restorePlanFile is one file of a restore plan.
type restorePlanFile struct {
	Level     int    `json:"level"`
	Name      string `json:"name"`
	MinTXID   string `json:"min_txid"`
	MaxTXID   string `json:"max_txid"`
	Size      int64  `json:"size"`
	Timestamp string `json:"timestamp"` // RFC 3339
}

// restoreDryRun prints the plan a restore to p's target would follow: the
// newest snapshot at or before the target and the fewest files that reach it
// exactly, across all levels (package index, shared with the VFS).
func (m *Main) restoreDryRun(ctx context.Context, source string, tgt *target, p restoreParams, asJSON bool) error {
	client, err := openReplica(ctx, tgt.replicaRef, m.cmdLogger())
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
		err = fmt.Errorf("no matching backup files available: %w: %w", errEmptyReplica, err)
	}
	if err != nil {
		return tgt.redactErr(fmt.Errorf("plan restore from %s: %w", tgt.URL, err))
	}
	out := restorePlan{
		Source: redactURL(source), TargetPath: p.output, Replica: client.Type(),
		Files: []restorePlanFile{}, TXID: plan.TXID.String(), Timestamp: plan.Timestamp.UTC().Format(time.RFC3339Nano),
	}
	for i, f := range plan.Files {
		if i == 0 {
			out.MinTXID = f.MinTXID.String()
		}
		out.MaxTXID = f.MaxTXID.String()
		out.Files = append(out.Files, restorePlanFile{f.Level, ltx.FormatFilename(f.MinTXID, f.MaxTXID),
			f.MinTXID.String(), f.MaxTXID.String(), f.Size, f.CreatedAt.UTC().Format(time.RFC3339)})
		out.Size += f.Size
	}
	if asJSON {
		return printJSON(m, out)
	}
	fmt.Fprintln(m.Stdout, "Restore plan:")
	fmt.Fprintf(m.Stdout, "  source: %s\n", out.Source)
	fmt.Fprintf(m.Stdout, "  target: %s\n", out.TargetPath)
	fmt.Fprintf(m.Stdout, "  replica: %s\n", out.Replica)
	fmt.Fprintf(m.Stdout, "  txid range: %s - %s\n", out.MinTXID, out.MaxTXID)
	fmt.Fprintln(m.Stdout)
	fmt.Fprintln(m.Stdout, "Files to fetch:")
	w := tabwriter.NewWriter(m.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "level\tfile\tmin_txid\tmax_txid\tsize\ttimestamp")
	for _, f := range out.Files {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%s\n", f.Level, f.Name, f.MinTXID, f.MaxTXID, f.Size, f.Timestamp)
	}
	return w.Flush()
}
