package index

// Which files continue a state. This is the one place that decides it:
// restore's plan (PlanFromFiles), the VFS poller and restore -f (Continue,
// GapAfter), the page index (Version.Apply), the gap reports (GapAfter) and
// the writer's compaction runs (writer/compact.go pendingInputs) all use
// Follows, so that no reader can take a file another would refuse and the
// writer never merges across a hole a reader would see. Code outside this
// package does not compare TXID ranges to decide continuity
// (docs/ARCHITECTURE.md invariant 8).

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
)

// ErrGap is returned (wrapped, as a *GapError) when the replica holds files
// beyond the newest state it can rebuild: some TXIDs in between are in no
// file (a level-0 file was lost and no compaction covers it). Readers must
// not silently serve the state before the gap as the latest.
var ErrGap = errors.New("replica history has a gap")

// Follows reports whether f can be applied to the state at TXID s (0: no
// state yet): f is well formed, starts at or before s+1 and ends after s.
//
// A file that overlaps the state (starts at or before s) is sound to apply:
// it holds, at its MaxTXID, every page changed in its range, and the pages
// it does not hold did not change in that range, so the state at s already
// has them right. Overlaps arise when levels are cut at different TXIDs (a
// snapshot taken in the middle of a compaction's range) and retention then
// removes the smaller files that met exactly. A file starting at TXID 1 (a
// snapshot) holds every page and so follows any state before its end.
func Follows(f *ltx.FileInfo, s ltx.TXID) bool {
	return wellFormed(f) && f.MinTXID <= s+1 && f.MaxTXID > s
}

// wellFormed reports whether a listing entry can belong to a chain at all:
// TXIDs in order and, at the snapshot level, starting at TXID 1.
func wellFormed(f *ltx.FileInfo) bool {
	return f != nil && f.MinTXID >= 1 && f.MinTXID <= f.MaxTXID &&
		(f.Level != remote.SnapshotLevel || f.MinTXID == 1)
}

// CheckHeader verifies that hdr, read from the file listed as info, is a
// valid header that matches the file's name: the same TXIDs, and a level-9
// file starts at TXID 1. A mismatch means the bytes stored under that name
// are another file's (swapped, stale or foreign).
//
// The error does not repeat the file's name: callers wrap it with it.
func CheckHeader(info *ltx.FileInfo, hdr ltx.Header) error {
	if err := hdr.Validate(); err != nil {
		return fmt.Errorf("invalid header: %w", err)
	}
	if hdr.MinTXID != info.MinTXID || hdr.MaxTXID != info.MaxTXID {
		return fmt.Errorf("header says TXIDs %s-%s, file name says %s-%s: the file holds another file's content",
			hdr.MinTXID, hdr.MaxTXID, info.MinTXID, info.MaxTXID)
	}
	if info.Level == remote.SnapshotLevel && hdr.MinTXID != 1 {
		return fmt.Errorf("a level-%d snapshot must start at TXID 1", remote.SnapshotLevel)
	}
	return nil
}

// Continue chooses the files that take the state at cur to the highest
// TXID that files can reach from it, with the fewest bytes to read (plus a
// per-file cost, so that of two chains with about the same bytes the one
// with fewer requests wins). It returns nil when no file continues cur (see
// GapAfter for telling "nothing new" from "a gap").
func Continue(cur ltx.TXID, files []*ltx.FileInfo) []*ltx.FileInfo {
	const perFileCost = 4096
	cands := make([]*ltx.FileInfo, 0, len(files))
	for _, f := range files {
		if wellFormed(f) && f.MaxTXID > cur {
			cands = append(cands, f)
		}
	}
	// Every file that yields a state p ends at p, so in order of MaxTXID each
	// state's best cost is final before any file that starts from it.
	slices.SortFunc(cands, func(a, b *ltx.FileInfo) int {
		return cmp.Or(cmp.Compare(a.MaxTXID, b.MaxTXID), cmp.Compare(b.MinTXID, a.MinTXID), cmp.Compare(a.Level, b.Level))
	})
	type state struct {
		txid ltx.TXID
		cost int64
		prev int // index into states of the state this one was reached from
		file *ltx.FileInfo
	}
	states := []state{{txid: cur, prev: -1}} // ascending txid
	for _, f := range cands {
		best := -1
		for i := range states {
			if !Follows(f, states[i].txid) {
				continue
			}
			if best < 0 || states[i].cost < states[best].cost {
				best = i
			}
		}
		if best < 0 {
			continue
		}
		cost := states[best].cost + f.Size + perFileCost
		last := &states[len(states)-1]
		switch {
		case last.txid == f.MaxTXID:
			if cost < last.cost {
				last.cost, last.prev, last.file = cost, best, f
			}
		default: // f.MaxTXID > last.txid by the sort order
			states = append(states, state{txid: f.MaxTXID, cost: cost, prev: best, file: f})
		}
	}
	if len(states) == 1 {
		return nil
	}
	var chain []*ltx.FileInfo
	for i := len(states) - 1; i > 0; i = states[i].prev {
		chain = append(chain, states[i].file)
	}
	slices.Reverse(chain)
	return chain
}

// GapError describes missing history: the replica has files beyond TXID,
// but none continues it, so TXIDs First..Last are in no file.
type GapError struct {
	// TXID is the newest state that can be rebuilt before the gap.
	TXID ltx.TXID
	// First and Last bound the missing TXIDs.
	First, Last ltx.TXID
	// Next is the lowest-starting file after the gap.
	Next *ltx.FileInfo
	// Plan, when set by PlanFromFiles, rebuilds the state at TXID: what a
	// caller that accepts the older state uses.
	Plan *Plan
}

func (e *GapError) Error() string {
	return fmt.Sprintf("%s: TXIDs %s-%s are in no file (a level-0 file is missing and no compaction covers it), yet later files exist from %s on; the newest complete state before the gap is TXID %s",
		ErrGap, e.First, e.Last, remote.FileDesc(e.Next.Level, e.Next.MinTXID, e.Next.MaxTXID), e.TXID)
}

// Is makes errors.Is(err, ErrGap) hold.
func (e *GapError) Is(target error) bool { return target == ErrGap }

// GapAfter returns the gap after the state at TXID s, or nil when a file
// continues s or no file goes beyond it (s is the newest state).
func GapAfter(s ltx.TXID, files []*ltx.FileInfo) *GapError {
	var next *ltx.FileInfo
	for _, f := range files {
		if !wellFormed(f) || f.MaxTXID <= s {
			continue
		}
		if Follows(f, s) {
			return nil
		}
		if next == nil || f.MinTXID < next.MinTXID || (f.MinTXID == next.MinTXID && f.MaxTXID > next.MaxTXID) {
			next = f
		}
	}
	if next == nil {
		return nil
	}
	return &GapError{TXID: s, First: s + 1, Last: next.MinTXID - 1, Next: next}
}
