// Package index decides which LTX files make up a database at a TXID or a
// point in time (the plan), and maps every page of that database to the frame
// that holds it (the page index, as immutable versions that newer files
// extend).
package index

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/superfly/ltx"

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
	// Files starts with a snapshot (MinTXID 1) and chains without gaps:
	// Files[i+1].MinTXID <= Files[i].MaxTXID+1 < Files[i+1].MaxTXID+1 (a
	// compaction may overlap the state before it; see Follows), and the
	// last MaxTXID is TXID.
	Files []*ltx.FileInfo
}

// PlanAt lists every level of the replica and returns the plan for the
// target. A txid of 0 and a zero ts select the latest state; a non-zero txid
// selects exactly that TXID; a non-zero ts selects the newest state that can
// be built only from files created at or before ts. Setting both is an error.
// See PlanFromFiles for the selection rules.
func PlanAt(ctx context.Context, c remote.Client, txid ltx.TXID, ts time.Time) (*Plan, error) {
	files, err := remote.ListAll(ctx, c)
	if err != nil {
		return nil, err
	}
	return PlanFromFiles(files, txid, ts)
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
//   - Without a txid, if files the target could use (those the ts allows)
//     lie beyond the newest state any chain of files reaches, history is
//     missing before them: the result is a *GapError (see ErrGap) naming
//     the missing TXIDs, whose Plan is the one to the target, for callers
//     that accept the older state. A txid, or a time, at or before a gap is
//     planned as usual.
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
		if !wellFormed(f) {
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
		return cmp.Or(cmp.Compare(a.MinTXID, b.MinTXID), cmp.Compare(a.MaxTXID, b.MaxTXID), cmp.Compare(a.Level, b.Level))
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
	plan := &Plan{TXID: target, Timestamp: chain[len(chain)-1].CreatedAt, Files: chain}
	if txid == 0 {
		// "Latest" (or the newest state at ts) must not silently stop
		// before missing history. The frontier is the newest state any
		// files build; files beyond it hold TXIDs no chain reaches, so
		// some before them are in no file. That is the caller's problem
		// only if it could use such a file: at ts, history may merely be
		// out of reach because retention replaced level-0 files by
		// compactions created later, which is no gap.
		frontier := target
		if !ts.IsZero() {
			for s := range reachable(valid) {
				frontier = max(frontier, s)
			}
		}
		if slices.ContainsFunc(usable, func(f *ltx.FileInfo) bool { return f.MaxTXID > frontier }) {
			gap := GapAfter(frontier, valid)
			gap.Plan = plan
			return nil, gap
		}
	}
	return plan, nil
}

// reachable returns every TXID whose state some chain of files builds, with
// the earliest CreatedAt among the files that end a chain there.
func reachable(files []*ltx.FileInfo) map[ltx.TXID]time.Time {
	// In order of MaxTXID, every state a file can follow (below its
	// MaxTXID) is final before the file is considered; the highest such
	// state is the one most likely to be at or after its MinTXID-1.
	byMax := slices.Clone(files)
	slices.SortStableFunc(byMax, func(a, b *ltx.FileInfo) int { return cmp.Compare(a.MaxTXID, b.MaxTXID) })
	states := make(map[ltx.TXID]time.Time)
	reached := []ltx.TXID{0} // ascending
	for _, f := range byMax {
		i := len(reached) - 1
		if reached[i] == f.MaxTXID {
			i--
		}
		if i < 0 || !Follows(f, reached[i]) {
			continue
		}
		if t, ok := states[f.MaxTXID]; !ok || f.CreatedAt.Before(t) {
			states[f.MaxTXID] = f.CreatedAt
		}
		if reached[len(reached)-1] != f.MaxTXID {
			reached = append(reached, f.MaxTXID)
		}
	}
	return states
}

// shortestChain returns the fewest-files chain from no state to target with
// the tie-breaks PlanFromFiles documents. target must be reachable.
//
// States are visited in descending TXID order. A file is applicable from
// the states in [MinTXID-1, MaxTXID-1]; it enters a heap once the walk drops
// below its MaxTXID (its end state's distance is then final) and leaves it
// for good once the walk drops below MinTXID-1. The heap's top is the best
// applicable file: fewest files to target, then the tie-breaks. That is
// O(files log files), for replicas with tens of thousands of files.
func shortestChain(files []*ltx.FileInfo, target ltx.TXID) []*ltx.FileInfo {
	usable := make([]*ltx.FileInfo, 0, len(files))
	for _, f := range files {
		if f.MaxTXID <= target {
			usable = append(usable, f)
		}
	}
	slices.SortFunc(usable, func(a, b *ltx.FileInfo) int { return cmp.Compare(b.MaxTXID, a.MaxTXID) })
	states := []ltx.TXID{0}
	for _, f := range usable {
		states = append(states, f.MaxTXID)
	}
	slices.Sort(states)
	states = slices.Compact(states)

	dist := map[ltx.TXID]int{target: 0}
	best := make(map[ltx.TXID]*ltx.FileInfo)
	h := &fileHeap{dist: dist}
	next := 0 // usable[next:] have not entered the heap
	for i := len(states) - 1; i >= 0; i-- {
		s := states[i]
		if s >= target {
			continue
		}
		for ; next < len(usable) && usable[next].MaxTXID > s; next++ {
			if _, ok := dist[usable[next].MaxTXID]; ok {
				heap.Push(h, usable[next])
			}
		}
		for h.Len() > 0 && h.files[0].MinTXID > s+1 {
			heap.Pop(h)
		}
		if h.Len() > 0 {
			top := h.files[0]
			dist[s] = dist[top.MaxTXID] + 1
			best[s] = top
		}
	}
	var chain []*ltx.FileInfo
	for s := ltx.TXID(0); s != target; {
		f := best[s]
		chain = append(chain, f)
		s = f.MaxTXID
	}
	return chain
}

// fileHeap orders applicable files: fewest files from their end state to
// the target first, then preferred.
type fileHeap struct {
	files []*ltx.FileInfo
	dist  map[ltx.TXID]int
}

func (h *fileHeap) Len() int { return len(h.files) }
func (h *fileHeap) Less(i, j int) bool {
	a, b := h.files[i], h.files[j]
	if da, db := h.dist[a.MaxTXID], h.dist[b.MaxTXID]; da != db {
		return da < db
	}
	return preferred(a, b)
}
func (h *fileHeap) Swap(i, j int) { h.files[i], h.files[j] = h.files[j], h.files[i] }
func (h *fileHeap) Push(x any)    { h.files = append(h.files, x.(*ltx.FileInfo)) }
func (h *fileHeap) Pop() any {
	f := h.files[len(h.files)-1]
	h.files = h.files[:len(h.files)-1]
	return f
}

// preferred reports whether a should be taken instead of b when both lead to
// chains of equal length: the longer step first, then the higher level, then
// the one overlapping least.
func preferred(a, b *ltx.FileInfo) bool {
	if a.MaxTXID != b.MaxTXID {
		return a.MaxTXID > b.MaxTXID
	}
	if a.Level != b.Level {
		return a.Level > b.Level
	}
	return a.MinTXID > b.MinTXID
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
	if gap := GapAfter(hi, files); gap != nil && txid > hi {
		avail += fmt.Sprintf("; TXIDs %s-%s are in no file (a gap before %s)", gap.First, gap.Last, remote.FileDesc(gap.Next.Level, gap.Next.MinTXID, gap.Next.MaxTXID))
	}
	switch {
	case !ts.IsZero():
		return fmt.Errorf("%w: no state was created at or before %s; %s", ErrNotAvailable, ts.UTC().Format(time.RFC3339Nano), avail)
	case txid != 0:
		return fmt.Errorf("%w: TXID %s cannot be rebuilt; %s", ErrNotAvailable, txid, avail)
	default:
		return fmt.Errorf("%w: %s", ErrNotAvailable, avail)
	}
}
