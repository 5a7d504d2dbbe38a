package writer

import (
	"cmp"
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
)

// knownClient answers the writer's listings from what it knows the replica
// holds, so that an idle daemon sends no request (issue 11): the files of
// one listing of every level, plus every file the writer has written since,
// minus every file it has deleted. Compaction, snapshots and retention list
// on every tick; without this each tick is a LIST (on S3, 12.5 times the
// price of a GET).
//
// The knowledge is dropped, and the next listing goes to the remote, when
//   - it is older than every (the consistency check: a file someone else
//     added or removed is noticed within that time), or
//   - any request through this client fails (a failed upload may have
//     landed, a missing file was removed by someone else, a failed delete
//     may have happened in part). Cancellation is not a failure.
//
// A listing in flight while files are written or deleted applies those
// changes to its result, so a file written during a listing is never lost
// from the knowledge (nor a deleted one resurrected).
//
// every <= 0 turns the knowledge off: every listing goes to the remote.
type knownClient struct {
	remote.Client
	every time.Duration

	mu       sync.Mutex
	files    map[remote.FileID]*ltx.FileInfo // nil: nothing known, list
	listedAt time.Time
	listers  int      // listings in flight
	changes  []change // writes and deletes while listers > 0
	gen      uint64   // bumped when the knowledge is dropped
}

// change is one write (info) or delete (deleted) seen while a listing was
// in flight.
type change struct {
	info    *ltx.FileInfo
	deleted bool
}

func newKnownClient(c remote.Client, every time.Duration) *knownClient {
	return &knownClient{Client: c, every: every}
}

// forget drops the knowledge: the next listing lists the remote.
func (c *knownClient) forget() {
	c.mu.Lock()
	c.forgetLocked()
	c.mu.Unlock()
}

// forgetLocked is forget with c.mu held.
func (c *knownClient) forgetLocked() {
	c.files = nil
	c.gen++
}

// failed drops the knowledge after a failed request.
func (c *knownClient) failed(err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		c.forget()
	}
}

// all returns every file of the replica, from the knowledge while it is
// fresh, else from one listing of every level.
func (c *knownClient) all(ctx context.Context, exactTimes bool) ([]*ltx.FileInfo, error) {
	if c.every <= 0 {
		return remote.ListAllWith(ctx, c.Client, exactTimes)
	}
	c.mu.Lock()
	if c.files != nil && time.Since(c.listedAt) < c.every {
		out := make([]*ltx.FileInfo, 0, len(c.files))
		for _, f := range c.files {
			cp := *f
			out = append(out, &cp)
		}
		c.mu.Unlock()
		sortAll(out)
		return out, nil
	}
	start, gen := len(c.changes), c.gen
	c.listers++
	c.mu.Unlock()

	// Always exact: retention decides by CreatedAt, and the backends
	// remember the timestamps of files this client wrote or listed.
	files, err := remote.ListAll(ctx, c.Client)

	c.mu.Lock()
	defer c.mu.Unlock()
	changes := c.changes[start:]
	c.listers--
	if c.listers == 0 {
		c.changes = nil
	}
	if err != nil {
		// As failed does, with c.mu already held.
		if !errors.Is(err, context.Canceled) {
			c.forgetLocked()
		}
		return nil, err
	}
	known := make(map[remote.FileID]*ltx.FileInfo, len(files))
	for _, f := range files {
		known[remote.IDOf(f)] = f
	}
	for _, ch := range changes {
		if ch.deleted {
			delete(known, remote.IDOf(ch.info))
		} else {
			known[remote.IDOf(ch.info)] = ch.info
		}
	}
	if gen == c.gen {
		// Nothing failed while listing: this is the knowledge now.
		c.files, c.listedAt = known, time.Now()
	}
	out := make([]*ltx.FileInfo, 0, len(known))
	for _, f := range known {
		cp := *f
		out = append(out, &cp)
	}
	sortAll(out)
	return out, nil
}

// sortAll orders files by level, then MinTXID, then MaxTXID: how
// remote.AllLister returns them and, within a level, how LTXFiles does.
func sortAll(files []*ltx.FileInfo) {
	slices.SortFunc(files, func(a, b *ltx.FileInfo) int {
		return cmp.Or(cmp.Compare(a.Level, b.Level), cmp.Compare(a.MinTXID, b.MinTXID), cmp.Compare(a.MaxTXID, b.MaxTXID))
	})
}

// record applies a successful write or delete to the knowledge.
func (c *knownClient) record(info *ltx.FileInfo, deleted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.files != nil {
		if deleted {
			delete(c.files, remote.IDOf(info))
		} else {
			c.files[remote.IDOf(info)] = info
		}
	}
	if c.listers > 0 {
		c.changes = append(c.changes, change{info: info, deleted: deleted})
	}
}

// LTXFiles implements remote.Client from the knowledge.
func (c *knownClient) LTXFiles(ctx context.Context, level int, seek ltx.TXID) ([]*ltx.FileInfo, error) {
	if c.every <= 0 {
		return c.Client.LTXFiles(ctx, level, seek)
	}
	files, err := c.all(ctx, true)
	if err != nil {
		return nil, err
	}
	var out []*ltx.FileInfo
	for _, f := range files {
		if f.Level == level && f.MinTXID >= seek {
			out = append(out, f)
		}
	}
	return out, nil
}

// LTXFilesAll implements remote.AllLister from the knowledge.
func (c *knownClient) LTXFilesAll(ctx context.Context, exactTimes bool) ([]*ltx.FileInfo, error) {
	return c.all(ctx, exactTimes)
}

// RequestCounts passes the backend's counts on.
func (c *knownClient) RequestCounts() remote.RequestCounts {
	n, _ := remote.CountsOf(c.Client)
	return n
}

func (c *knownClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	rc, err := c.Client.OpenLTXFile(ctx, level, minTXID, maxTXID, offset, size)
	c.failed(err)
	return rc, err
}

func (c *knownClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	info, err := c.Client.WriteLTXFile(ctx, level, minTXID, maxTXID, r)
	if err != nil {
		c.failed(err)
		if errors.Is(err, context.Canceled) {
			// The upload may have landed before it was cancelled.
			c.forget()
		}
		return info, err
	}
	if info == nil || info.Level != level || info.MinTXID != minTXID || info.MaxTXID != maxTXID || info.CreatedAt.IsZero() {
		// Not what a backend returns; know less rather than wrong.
		c.forget()
		return info, nil
	}
	cp := *info
	c.record(&cp, false)
	return info, nil
}

func (c *knownClient) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	err := c.Client.DeleteLTXFiles(ctx, files)
	if err != nil {
		c.forget() // some may be gone
		return err
	}
	for _, f := range files {
		c.record(f, true)
	}
	return nil
}

func (c *knownClient) DeleteAll(ctx context.Context) error {
	err := c.Client.DeleteAll(ctx)
	c.forget()
	return err
}
