package remote

import (
	"context"
	"errors"
	"fmt"

	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"
)

// AllLister is implemented by clients that can list every level of the
// replica with one (paginated) prefix listing instead of one listing per
// level: s3, gs, abs and nats. Wrappers of a Client implement it by calling
// ListAllWith on what they wrap, so that the saving reaches the caller
// through any number of wrappers.
type AllLister interface {
	// LTXFilesAll returns the files of every level 0..MaxLevel, ordered by
	// level, then as LTXFiles orders a level. With exactTimes, CreatedAt
	// is what LTXFiles reports; without, it may be the object's upload
	// time where the stored timestamp costs more requests (s3: one HEAD
	// per file the client has not seen). errors.ErrUnsupported means the
	// client cannot do it for this replica: the caller lists level by
	// level.
	LTXFilesAll(ctx context.Context, exactTimes bool) ([]*ltx.FileInfo, error)
}

// ListAll returns the files of every level 0..MaxLevel, ordered by level,
// then as LTXFiles orders a level, with their stored creation times: one
// prefix listing where the client is an AllLister, else the levels listed
// in parallel (one round trip in all).
func ListAll(ctx context.Context, c Client) ([]*ltx.FileInfo, error) {
	return listAll(ctx, c, true)
}

// ListAllUntimed is ListAll for callers that do not use CreatedAt (the
// latest state, a TXID): a file's CreatedAt may be its upload time, which
// spares s3 a HEAD per file. Point-in-time decisions need ListAll.
func ListAllUntimed(ctx context.Context, c Client) ([]*ltx.FileInfo, error) {
	return listAll(ctx, c, false)
}

// ListAllWith is ListAll (exactTimes) or ListAllUntimed: for wrappers'
// LTXFilesAll, which pass the caller's choice on.
func ListAllWith(ctx context.Context, c Client, exactTimes bool) ([]*ltx.FileInfo, error) {
	return listAll(ctx, c, exactTimes)
}

func listAll(ctx context.Context, c Client, exactTimes bool) ([]*ltx.FileInfo, error) {
	if al, ok := c.(AllLister); ok {
		files, err := al.LTXFilesAll(ctx, exactTimes)
		if !errors.Is(err, errors.ErrUnsupported) {
			if err != nil {
				return nil, fmt.Errorf("list every level of %s replica: %w", c.Type(), err)
			}
			return files, nil
		}
	}
	perLevel := make([][]*ltx.FileInfo, MaxLevel+1)
	g, gctx := errgroup.WithContext(ctx)
	for level := 0; level <= MaxLevel; level++ {
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
