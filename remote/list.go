package remote

import (
	"context"
	"fmt"

	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"
)

// ListAll returns the files of every level 0..MaxLevel, level by level,
// each level ordered as LTXFiles orders it. The levels are listed in
// parallel (one round trip in all).
func ListAll(ctx context.Context, c Client) ([]*ltx.FileInfo, error) {
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
