package vfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/remote"
)

// maxL0Run is how many new level-0 files a poll applies one by one before
// it looks at the higher levels for a shorter way (a reader that fell far
// behind catches up through compactions instead of thousands of L0 files).
const maxL0Run = 64

// poll brings r.cur forward. The normal case costs GET-class requests only
// (issue 11): the name of the next level-0 file is predictable (one TXID
// per file, for this writer and Litestream's), so the poll reads the files
// after its TXID by name, whole, until one is missing: an idle poll is one
// GET answered 404, and a file found is one the reader needs next anyway
// (its bytes are verified and kept, so applying it reads nothing more). It
// lists only when the probe cannot decide: a level-0 file too big to read
// whole (then it lists level 0 from the next TXID), a damaged file, a gap
// (the primary compacted and deleted level-0 files this reader had not
// seen), a reader far behind, and while idle at most every ListInterval
// (a replica reset or compacted past the reader answers 404 to every
// probe), or in a thorough poll (Replica.Poll) when the probe found
// nothing. Which files continue the state is index.Continue's decision (the
// same rule restore plans with). When files exist beyond the state but
// none continues it (history is missing), the poll fails with the
// *index.GapError naming the missing TXIDs and the reader keeps serving
// its consistent state: it never skips the gap, and never moves back. A
// failed request is simply retried by the next poll.
//
// Must be called with r.pollMu held.
func (r *Replica) poll(ctx context.Context, thorough bool) error {
	cur := r.cur.Load()
	cands, full, done, err := r.pollCandidates(ctx, cur.TXID(), thorough)
	if err != nil || done {
		return err
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

// pollCandidates finds the files that may continue the state at txid: the
// next level-0 files read by name (GET-class requests) while that decides,
// else one listing of every level, at most every ListInterval unless the
// probe cannot decide (full reports a listing). done reports that the probe
// found nothing new and the poll has nothing more to do.
func (r *Replica) pollCandidates(ctx context.Context, txid ltx.TXID, thorough bool) (cands []*ltx.FileInfo, full, done bool, err error) {
	full = r.gapped || time.Since(r.lastList) >= r.opts.ListInterval
	if !full {
		found, decided, err := r.probe(ctx, txid)
		if err != nil {
			return nil, false, false, fmt.Errorf("replica %s: poll level 0: %w", r.name, err)
		}
		switch {
		case decided && len(found) == 0 && !thorough:
			return nil, false, true, nil // nothing new
		case decided && len(found) == 0:
			full = true
		case decided && len(found) <= maxL0Run:
			cands = found
		case decided:
			full = true // far behind: a higher level may be a shorter way
		default:
			l0, err := r.client.LTXFiles(ctx, remote.L0, txid+1)
			if err != nil {
				return nil, false, false, fmt.Errorf("replica %s: poll level 0: %w", r.name, err)
			}
			// The level-0 files that continue the state, and whether level
			// 0 has files beyond them that do not (then only other levels
			// can bridge).
			run := index.Continue(txid, l0)
			end := txid
			if len(run) > 0 {
				end = run[len(run)-1].MaxTXID
			}
			full = index.GapAfter(end, l0) != nil || len(run) > maxL0Run
			cands = run
		}
	}
	if full {
		cands, err = remote.ListAllUntimed(ctx, r.client)
		if err != nil {
			return nil, false, false, fmt.Errorf("replica %s: poll: %w", r.name, err)
		}
		r.lastList = time.Now()
	}
	return cands, full, false, nil
}

// probe reads the level-0 files after txid by name, whole and verified,
// until one is missing (one GET answered 404) or maxL0Run+1 are found. It
// returns them, in order, and decided false when it cannot tell what comes
// next: reading whole is off (WholeFileSize < 0), a file is larger than
// WholeFileSize, or one is damaged (the listing path plans around it).
func (r *Replica) probe(ctx context.Context, txid ltx.TXID) (found []*ltx.FileInfo, decided bool, err error) {
	vc := r.verify
	if vc == nil {
		return nil, false, nil
	}
	for n := txid + 1; len(found) <= maxL0Run; n++ {
		b, ok, err := r.readWhole(ctx, n, vc.max)
		if errors.Is(err, remote.ErrNotExist) {
			return found, true, nil
		}
		if err != nil || !ok {
			return found, false, err
		}
		var hdr ltx.Header
		if err := hdr.UnmarshalBinary(b); err != nil {
			return found, false, nil
		}
		info := &ltx.FileInfo{Level: remote.L0, MinTXID: n, MaxTXID: n, Size: int64(len(b)), CreatedAt: time.UnixMilli(hdr.Timestamp).UTC()}
		if err := vc.put(info, b); err != nil {
			r.log.Warn("a probed level-0 file is damaged; listing", "error", err)
			return found, false, nil
		}
		found = append(found, info)
	}
	return found, true, nil
}

// readWhole reads level-0 file n whole if it has at most limit bytes (ok
// false if it has more).
func (r *Replica) readWhole(ctx context.Context, n ltx.TXID, limit int64) ([]byte, bool, error) {
	rc, err := r.client.OpenLTXFile(ctx, remote.L0, n, n, 0, 0)
	if err != nil {
		return nil, false, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", remote.FileDesc(remote.L0, n, n), err)
	}
	return b, int64(len(b)) <= limit, nil
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
