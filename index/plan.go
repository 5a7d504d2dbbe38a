// Package index decides which LTX files make up a database at a TXID or a
// point in time (the plan), and maps every page of that database to the frame
// that holds it (the page index, as immutable versions that newer files
// extend).
package index

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/litestream-go/litestream/remote"
)

// ErrNoSnapshot is returned (wrapped) when a replica has no file starting at
// TXID 1, so no database state can be rebuilt from it (this includes an empty
// replica).
var ErrNoSnapshot = errors.New("replica has no snapshot")

// ErrNotAvailable is returned (wrapped) when the requested TXID or time is
// outside the history the replica can rebuild. The message names the range
// that is available.
var ErrNotAvailable = errors.New("target not available in replica")

// Plan is the list of LTX files whose application, in order, yields the
// database at TXID.
type Plan struct {
	// TXID is the transaction the plan restores to.
	TXID ltx.TXID
	// Timestamp is the CreatedAt of the plan's last file: the time the state
	// at TXID was written.
	Timestamp time.Time
	// Files starts with a snapshot (MinTXID 1) and chains contiguously:
	// Files[i+1].MinTXID == Files[i].MaxTXID+1, and the last MaxTXID is TXID.
	Files []*ltx.FileInfo
}

// PlanAt lists every level of the replica and returns the plan for the
// target. A txid of 0 and a zero ts select the latest state; a non-zero txid
// selects exactly that TXID; a non-zero ts selects the newest state that can
// be built only from files created at or before ts. Setting both is an error.
// See PlanFromFiles for the selection rules.
func PlanAt(ctx context.Context, c remote.Client, txid ltx.TXID, ts time.Time) (*Plan, error) {
	files, err := ListAll(ctx, c)
	if err != nil {
		return nil, err
	}
	return PlanFromFiles(files, txid, ts)
}

// ListAll returns the files of every level 0..remote.MaxLevel, listing the
// levels in parallel (one round trip each).
func ListAll(ctx context.Context, c remote.Client) ([]*ltx.FileInfo, error) {
	perLevel := make([][]*ltx.FileInfo, remote.MaxLevel+1)
	g, gctx := errgroup.WithContext(ctx)
	for level := 0; level <= remote.MaxLevel; level++ {
		g.Go(func() error {
			infos, err := c.LTXFiles(gctx, level, 0)
			if err != nil {
				return fmt.Errorf("list level %d of %s replica: %w", level, c.Type(), err)
			}
			perLevel[level] = infos
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var all []*ltx.FileInfo
	for _, infos := range perLevel {
		all = append(all, infos...)
	}
	return all, nil
}

// PlanFromFiles chooses a plan from a listing of the replica's files (all
// levels). The rules, which make the result deterministic:
//
//   - A chain starts with any file whose MinTXID is 1 (a level-9 snapshot, or
//     a level 0..8 file that Litestream wrote or compacted from TXID 1: such a
//     file holds every page, see ltx.Header.IsSnapshot) and continues with
//     files whose MinTXID is exactly the previous MaxTXID+1.
//   - The target TXID is txid if non-zero; else, with a non-zero ts, the
//     highest TXID reachable using only files with CreatedAt <= ts; else the
//     highest TXID reachable at all.
//   - Among chains ending exactly at the target, the plan uses the fewest
//     files. Ties are broken at each position, from TXID 1 forward, by
//     taking the file with the largest MaxTXID (so the newest usable snapshot
//     and the longest compactions win), then the highest level.
//
// Fewest files is computed exactly (a shortest path over TXID positions),
// not by a plain greedy walk, so that a long compaction which leads to a dead
// end cannot make a reachable target look unreachable.
func PlanFromFiles(files []*ltx.FileInfo, txid ltx.TXID, ts time.Time) (*Plan, error) {
	if txid != 0 && !ts.IsZero() {
		return nil, fmt.Errorf("choose a TXID or a timestamp, not both (txid %s, timestamp %s)", txid, ts.Format(time.RFC3339Nano))
	}

	valid := make([]*ltx.FileInfo, 0, len(files))
	hasSnapshot := false
	for _, f := range files {
		if f == nil || f.MinTXID == 0 || f.MinTXID > f.MaxTXID {
			continue // not a file of a well-formed chain; never usable
		}
		valid = append(valid, f)
		if f.MinTXID == 1 {
			hasSnapshot = true
		}
	}
	if len(valid) == 0 {
		return nil, fmt.Errorf("%w: the replica has no LTX files", ErrNoSnapshot)
	}
	if !hasSnapshot {
		return nil, fmt.Errorf("%w: none of its %d LTX files starts at TXID 1", ErrNoSnapshot, len(valid))
	}
	// Ascending MinTXID is what the reachability pass needs; the rest of the
	// order only makes results independent of listing order.
	slices.SortFunc(valid, func(a, b *ltx.FileInfo) int {
		if c := cmp.Compare(a.MinTXID, b.MinTXID); c != 0 {
			return c
		}
		if c := cmp.Compare(a.MaxTXID, b.MaxTXID); c != 0 {
			return c
		}
		return cmp.Compare(a.Level, b.Level)
	})

	usable := valid
	if !ts.IsZero() {
		usable = make([]*ltx.FileInfo, 0, len(valid))
		for _, f := range valid {
			if !f.CreatedAt.After(ts) {
				usable = append(usable, f)
			}
		}
	}

	states := reachable(usable)
	target := txid
	if target == 0 {
		for s := range states {
			target = max(target, s)
		}
	}
	if _, ok := states[target]; !ok || target == 0 {
		return nil, notAvailable(valid, txid, ts)
	}

	chain := shortestChain(usable, target)
	return &Plan{TXID: target, Timestamp: chain[len(chain)-1].CreatedAt, Files: chain}, nil
}

// reachable returns every TXID whose state some chain of files builds, with
// the earliest CreatedAt among the files that end a chain there. files must
// be sorted by MinTXID: a file starting at p can only be reached through
// files starting before p, so one pass in that order sees every position's
// reachability before it is needed.
func reachable(files []*ltx.FileInfo) map[ltx.TXID]time.Time {
	next := map[ltx.TXID]bool{1: true} // positions a chain can continue from
	states := make(map[ltx.TXID]time.Time)
	for _, f := range files {
		if !next[f.MinTXID] {
			continue
		}
		next[f.MaxTXID+1] = true
		if t, ok := states[f.MaxTXID]; !ok || f.CreatedAt.Before(t) {
			states[f.MaxTXID] = f.CreatedAt
		}
	}
	return states
}

// shortestChain returns the fewest-files chain from TXID 1 to target with
// the tie-breaks PlanFromFiles documents. files must be sorted by MinTXID and
// target must be reachable.
func shortestChain(files []*ltx.FileInfo, target ltx.TXID) []*ltx.FileInfo {
	// dist[p] is the fewest files that take the state from p-1 to target;
	// best[p] is the file to take at position p. Walking files by descending
	// MinTXID finalizes dist[f.MaxTXID+1] before f is considered, because
	// every file starting after f.MinTXID has already been seen.
	dist := map[ltx.TXID]int{target + 1: 0}
	best := make(map[ltx.TXID]*ltx.FileInfo)
	for i := len(files) - 1; i >= 0; i-- {
		f := files[i]
		if f.MaxTXID > target {
			continue
		}
		d, ok := dist[f.MaxTXID+1]
		if !ok {
			continue
		}
		d++
		cur, seen := dist[f.MinTXID]
		if !seen || d < cur || (d == cur && preferred(f, best[f.MinTXID])) {
			dist[f.MinTXID] = d
			best[f.MinTXID] = f
		}
	}
	var chain []*ltx.FileInfo
	for pos := ltx.TXID(1); pos <= target; {
		f := best[pos]
		chain = append(chain, f)
		pos = f.MaxTXID + 1
	}
	return chain
}

// preferred reports whether a should be taken instead of b when both lead to
// chains of equal length: the longer step first, then the higher level.
func preferred(a, b *ltx.FileInfo) bool {
	if a.MaxTXID != b.MaxTXID {
		return a.MaxTXID > b.MaxTXID
	}
	return a.Level > b.Level
}

// notAvailable describes what the replica can restore, for a target that is
// outside it. files are all valid files (sorted by MinTXID).
func notAvailable(files []*ltx.FileInfo, txid ltx.TXID, ts time.Time) error {
	states := reachable(files)
	var lo, hi ltx.TXID
	for s := range states {
		if lo == 0 || s < lo {
			lo = s
		}
		hi = max(hi, s)
	}
	avail := fmt.Sprintf("the replica has TXIDs %s (created %s) to %s (created %s)",
		lo, states[lo].UTC().Format(time.RFC3339Nano), hi, states[hi].UTC().Format(time.RFC3339Nano))
	switch {
	case !ts.IsZero():
		return fmt.Errorf("%w: no state was created at or before %s; %s", ErrNotAvailable, ts.UTC().Format(time.RFC3339Nano), avail)
	case txid != 0:
		return fmt.Errorf("%w: TXID %s cannot be rebuilt; %s", ErrNotAvailable, txid, avail)
	default:
		return fmt.Errorf("%w: %s", ErrNotAvailable, avail)
	}
}
