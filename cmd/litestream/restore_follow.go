package main

import (
	"context"
	"fmt"
	"time"

	"github.com/litestream-go/litestream/restore"
)

// restoreFollow runs `restore -f`: restore the latest state to p.output if
// it does not exist (or resume from the TXID recorded beside it), then apply
// each new file of the replica to it in place until interrupted. See
// restore.Follow for the crash-safety protocol.
func (m *Main) restoreFollow(ctx context.Context, ref replicaRef, p restoreParams, interval time.Duration) error {
	logger := m.cmdLogger()
	client, err := openReplica(ctx, ref, logger)
	if err == nil {
		err = restore.Follow(ctx, client, restore.FollowOptions{OutputPath: p.output, Interval: interval, Logger: logger})
	}
	if ctx.Err() != nil {
		return nil // interrupted: the normal way to stop following
	}
	if err != nil {
		return ref.redactErr(fmt.Errorf("follow %s: %w", ref.URL, err))
	}
	return nil
}
