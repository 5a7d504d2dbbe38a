package restore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/litestream-go/litestream/remote"
)

// ErrPlanDeleted is returned (wrapped) when files of a restore's plan were
// deleted while it read them, again after the plan was made afresh.
var ErrPlanDeleted = errors.New("files of the restore plan were deleted while restoring")

// RunReplanning is Run for a replica whose writer runs retention:
// if a file of the plan disappears while the restore reads it (retention
// removed history that a compaction or a newer snapshot now covers), the plan
// is made once more from a fresh listing and the restore runs again. A
// second disappearance fails with ErrPlanDeleted; a target the fresh listing
// no longer covers fails with index.ErrNotAvailable, whose message names the
// range that is available. No partial output is left either way.
func RunReplanning(ctx context.Context, c remote.Client, opts Options) (*Result, error) {
	res, err := Run(ctx, c, opts)
	if err == nil || !errors.Is(err, remote.ErrNotExist) || ctx.Err() != nil {
		return res, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log.Warn("a file of the restore plan was deleted while restoring (retention?); planning again", "err", err)
	res, err = Run(ctx, c, opts)
	if err != nil && errors.Is(err, remote.ErrNotExist) {
		return nil, fmt.Errorf("%w, twice: the replica's retention is deleting the target's history as it is read; restore a newer target: %w", ErrPlanDeleted, err)
	}
	return res, err
}
