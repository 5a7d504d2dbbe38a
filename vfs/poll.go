package vfs

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/remote"
)

// maxL0Run is how many new level-0 files a poll applies one by one before
// it looks at the higher levels for a shorter way (a reader that fell far
// behind catches up through compactions instead of thousands of L0 files).
const maxL0Run = 64

// perFileCost is added to each file's size when choosing a chain, so that of
// two chains with about the same bytes the one with fewer files (requests)
// wins.
const perFileCost = 4096

// poll brings r.cur forward. The normal case costs one listing of level 0
// from the next TXID and one page-index read per new file. It lists every
// level only when level 0 cannot continue the current state (a gap: the
// primary compacted and deleted level-0 files this reader had not seen),
// when the reader is far behind, or every fullCheckEvery idle polls. When
// no file can continue the state, the next poll starts over from a fresh
// plan, so the poller never wedges; a failed request is simply retried by
// the next poll.
//
// Must be called with r.pollMu held.
func (r *Replica) poll(ctx context.Context) error {
	if r.needRebuild {
		v, err := r.build(ctx, 0, time.Time{})
		if err != nil {
			return fmt.Errorf("rebuild from a fresh plan: %w", err)
		}
		r.needRebuild = false
		r.log.Info("rebuilt the index from a fresh plan", "txid", v.TXID())
		r.cur.Store(v)
		return nil
	}

	cur := r.cur.Load()
	l0, err := r.client.LTXFiles(ctx, remote.L0, cur.TXID()+1)
	if err != nil {
		return fmt.Errorf("replica %s: poll level 0: %w", r.name, err)
	}
	var run []*ltx.FileInfo
	next := cur.TXID() + 1
	for _, f := range l0 {
		if f.MinTXID != next || f.MaxTXID < f.MinTXID {
			break
		}
		run = append(run, f)
		next = f.MaxTXID + 1
	}
	gap := len(run) < len(l0)

	full := gap || len(run) > maxL0Run
	if len(l0) == 0 {
		r.idlePolls++
		full = full || r.idlePolls >= fullCheckEvery
	} else {
		r.idlePolls = 0
	}
	cands := run
	if full {
		r.idlePolls = 0
		cands, err = index.ListAll(ctx, r.client)
		if err != nil {
			return fmt.Errorf("replica %s: poll: %w", r.name, err)
		}
	}

	chain := bridge(cur.TXID(), cands)
	if len(chain) == 0 {
		if gap {
			r.needRebuild = true
			return fmt.Errorf("replica %s: no file continues TXID %s (level 0 resumes at %s); rebuilding from a fresh plan on the next poll",
				r.name, cur.TXID(), l0[0].MinTXID)
		}
		return nil
	}
	v, err := r.extend(ctx, cur, chain)
	if err != nil {
		// A failed read is retried by the next poll from the same state; a
		// file deleted since the listing is not listed again, and a gap it
		// leaves is bridged or, failing that, rebuilt from a fresh plan.
		return err
	}
	r.cur.Store(v)
	r.log.Debug("applied new files", "files", len(chain), "from", cur.TXID(), "txid", v.TXID())
	return nil
}

// extend applies chain (from bridge) to v. Page indexes are read in
// parallel; applying costs O(pages in the new files).
func (r *Replica) extend(ctx context.Context, v *index.Version, chain []*ltx.FileInfo) (*index.Version, error) {
	// Page 1 changes with most transactions and SQLite reads it first in
	// each one: take it along with the headers here too.
	fis, err := index.ReadFileIndexes(ctx, newSeedingClient(r.client, chain, &r.seeds), chain, 0)
	if err != nil {
		return nil, fmt.Errorf("replica %s: poll: %w", r.name, err)
	}
	for _, fi := range fis {
		if fi.Header.MinTXID != 1 && fi.Header.MinTXID <= v.TXID() {
			fi = overlapping(fi, v.TXID())
		}
		if v, err = v.Apply(fi); err != nil {
			return nil, fmt.Errorf("replica %s: poll: %w", r.name, err)
		}
	}
	return v, nil
}

// overlapping returns a view of fi that index.Version.Apply accepts on top
// of a state at txid, for a compaction that starts at or before txid and
// ends after it. That is sound: the file holds, at its MaxTXID, every page
// changed in its range; pages it does not hold did not change in the range,
// so the state at txid already has them right.
func overlapping(fi *index.FileIndex, txid ltx.TXID) *index.FileIndex {
	cp := *fi
	cp.Header.MinTXID = txid + 1
	return &cp
}

// bridge chooses the files that take the state at cur to the highest TXID
// that files can reach from it, with the fewest bytes to read (plus a
// per-file cost). A file can follow state p when it starts at or before p+1
// and ends after p (a snapshot, starting at 1, follows anything). It
// returns nil when no file continues cur.
func bridge(cur ltx.TXID, files []*ltx.FileInfo) []*ltx.FileInfo {
	cands := make([]*ltx.FileInfo, 0, len(files))
	for _, f := range files {
		if f != nil && f.MinTXID >= 1 && f.MinTXID <= f.MaxTXID && f.MaxTXID > cur {
			cands = append(cands, f)
		}
	}
	// Every file that yields a state p ends at p, so in order of MaxTXID each
	// state's best cost is final before any file that starts from it.
	slices.SortFunc(cands, func(a, b *ltx.FileInfo) int {
		if c := cmp.Compare(a.MaxTXID, b.MaxTXID); c != 0 {
			return c
		}
		if c := cmp.Compare(b.MinTXID, a.MinTXID); c != 0 {
			return c
		}
		return cmp.Compare(a.Level, b.Level)
	})
	type state struct {
		txid ltx.TXID
		cost int64
		prev int // index into states of the state this one was reached from
		file *ltx.FileInfo
	}
	states := []state{{txid: cur, prev: -1}} // ascending txid
	for _, f := range cands {
		lo := f.MinTXID - 1
		if f.MinTXID == 1 {
			lo = 0
		}
		best := -1
		for i := range states {
			s := &states[i]
			if s.txid < lo || s.txid >= f.MaxTXID {
				continue
			}
			if best < 0 || s.cost < states[best].cost {
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
