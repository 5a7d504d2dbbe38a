package vfstest

import (
	"context"
	"fmt"

	"github.com/litestream-go/litestream/remote"
)

// CopyReplica writes every LTX file of src, level by level, to dst under
// the same level and TXIDs: e.g. an age-encrypted copy of a plain replica
// when dst is a remote/crypt client.
func CopyReplica(ctx context.Context, dst, src remote.Client) error {
	for level := 0; level <= remote.MaxLevel; level++ {
		infos, err := src.LTXFiles(ctx, level, 0)
		if err != nil {
			return fmt.Errorf("list level %d: %w", level, err)
		}
		for _, f := range infos {
			rc, err := src.OpenLTXFile(ctx, level, f.MinTXID, f.MaxTXID, 0, 0)
			if err != nil {
				return fmt.Errorf("open level %d file %s-%s: %w", level, f.MinTXID, f.MaxTXID, err)
			}
			_, err = dst.WriteLTXFile(ctx, level, f.MinTXID, f.MaxTXID, rc)
			rc.Close()
			if err != nil {
				return fmt.Errorf("copy level %d file %s-%s: %w", level, f.MinTXID, f.MaxTXID, err)
			}
		}
	}
	return nil
}
