package vfs

import (
	"context"
	"errors"
	"fmt"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/remote"
)

// maxL0Run is how many new level-0 files a poll applies one by one before
// it looks at the higher levels for a shorter way (a reader that fell far
// behind catches up through compactions instead of thousands of L0 files).
const maxL0Run = 64

// poll brings r.cur forward. The normal case costs one listing of level 0
// from the next TXID and one page-index read per new file. It lists every
// level only when level 0 cannot continue the current state (a gap: the
// primary compacted and deleted level-0 files this reader had not seen),
// when the reader is far behind, or every fullCheckEvery idle polls. Which
// files continue the state is index.Continue's decision (the same rule
// restore plans with). When files exist beyond the state but none continues
// it (history is missing), the poll fails with the *index.GapError naming
// the missing TXIDs and the reader keeps serving its consistent state: it
// never skips the gap, and never moves back. A failed request is simply
// retried by the next poll.
//
// Must be called with r.pollMu held.
func (r *Replica) poll(ctx context.Context) error {
	cur := r.cur.Load()
	l0, err := r.client.LTXFiles(ctx, remote.L0, cur.TXID()+1)
	if err != nil {
		return fmt.Errorf("replica %s: poll level 0: %w", r.name, err)
	}
	// The level-0 files that continue the state, and whether level 0 has
	// files beyond them that do not (then only other levels can bridge).
	run := index.Continue(cur.TXID(), l0)
	end := cur.TXID()
	if len(run) > 0 {
		end = run[len(run)-1].MaxTXID
	}
	gap := index.GapAfter(end, l0) != nil

	full := gap || len(run) > maxL0Run || r.gapped
	if len(l0) == 0 {
		r.idlePolls++
		full = full || r.idlePolls >= fullCheckEvery
	} else {
		r.idlePolls = 0
	}
	cands := run
	if full {
		r.idlePolls = 0
		cands, err = remote.ListAll(ctx, r.client)
		if err != nil {
			return fmt.Errorf("replica %s: poll: %w", r.name, err)
		}
	}

	// A file that turns out damaged is planned around (another level may
	// cover its TXIDs), at most maxDamaged of them per poll; the poll
	// still fails naming it, so litestream_error() says why.
	var damaged []error
	for {
		chain := index.Continue(cur.TXID(), cands)
		if len(chain) == 0 {
			if g := index.GapAfter(cur.TXID(), cands); g != nil {
				r.gapped = true
				return fmt.Errorf("replica %s: serving TXID %s: %w", r.name, cur.TXID(), errors.Join(append(damaged, g)...))
			}
			r.gapped = false
			if len(damaged) > 0 {
				return errors.Join(damaged...)
			}
			return nil
		}
		v, err := r.extend(ctx, cur, chain)
		if bad := damagedFile(err); bad != nil && len(damaged) < maxDamaged {
			damaged = append(damaged, err)
			r.log.Warn("a file is damaged; planning around it", "error", err)
			if !full {
				full = true
				if cands, err = remote.ListAll(ctx, r.client); err != nil {
					return fmt.Errorf("replica %s: poll: %w", r.name, err)
				}
			}
			cands = without(cands, bad)
			continue
		}
		if err != nil {
			// A failed read is retried by the next poll from the same
			// state; a file deleted since the listing is not listed
			// again, and a gap it leaves is reported by the next poll.
			return errors.Join(append(damaged, err)...)
		}
		r.cur.Store(v)
		r.gapped = false
		r.log.Debug("applied new files", "files", len(chain), "from", cur.TXID(), "txid", v.TXID())
		if len(damaged) > 0 {
			return fmt.Errorf("reached TXID %s by reading around damaged files: %w", v.TXID(), errors.Join(damaged...))
		}
		return nil
	}
}

// maxDamaged bounds the damaged files one build or poll plans around.
const maxDamaged = 8

// damagedFile returns the file err says is damaged (index.ErrDamaged on an
// *index.FileError), or nil.
func damagedFile(err error) *ltx.FileInfo {
	var fe *index.FileError
	if err != nil && errors.Is(err, index.ErrDamaged) && errors.As(err, &fe) {
		return fe.Info
	}
	return nil
}

// without returns files except the one named like bad.
func without(files []*ltx.FileInfo, bad *ltx.FileInfo) []*ltx.FileInfo {
	out := make([]*ltx.FileInfo, 0, len(files))
	for _, f := range files {
		if !remote.SameFile(f, bad) {
			out = append(out, f)
		}
	}
	return out
}

// extend applies chain (from index.Continue) to v. Page indexes are read in
// parallel; applying costs O(pages in the new files).
func (r *Replica) extend(ctx context.Context, v *index.Version, chain []*ltx.FileInfo) (*index.Version, error) {
	// Page 1 changes with most transactions and SQLite reads it first in
	// each one: take it along with the headers here too.
	fis, err := index.ReadFileIndexes(ctx, newSeedingClient(r.client, &r.seeds), chain, 0)
	if err != nil {
		return nil, fmt.Errorf("replica %s: poll: %w", r.name, err)
	}
	for _, fi := range fis {
		if v, err = v.Apply(fi); err != nil {
			return nil, fmt.Errorf("replica %s: poll: %w", r.name, err)
		}
	}
	return v, nil
}
