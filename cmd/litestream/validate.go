package main

// Replica validation (validation.interval, or a replica's own
// validation-interval) and the post-compaction check (verify-compaction),
// as in Litestream: the files of each level must be sorted and contiguous
// (each file's MinTXID one past the previous file's MaxTXID). Level 9 is
// left out: snapshots overlap by design.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
)

// levelProblem is one gap, overlap or misordering in a level.
type levelProblem struct {
	Level   int
	Type    string // "gap", "overlap" or "unsorted"
	Message string
}

// checkLevel lists one level and reports its problems.
func checkLevel(ctx context.Context, c remote.Client, level int) ([]levelProblem, error) {
	files, err := c.LTXFiles(ctx, level, 0)
	if err != nil {
		return nil, fmt.Errorf("fetch ltx files: %w", err)
	}
	var out []levelProblem
	for i := 1; i < len(files); i++ {
		prev, cur := files[i-1], files[i]
		switch {
		case cur.MinTXID < prev.MinTXID:
			out = append(out, levelProblem{level, "unsorted", fmt.Sprintf("files out of order: curr.MinTXID=%s < prev.MinTXID=%s", cur.MinTXID, prev.MinTXID)})
		case cur.MinTXID > prev.MaxTXID+1:
			out = append(out, levelProblem{level, "gap", fmt.Sprintf("TXID gap: prev.MaxTXID=%s, curr.MinTXID=%s (expected %s)", prev.MaxTXID, cur.MinTXID, prev.MaxTXID+1)})
		case cur.MinTXID < prev.MaxTXID+1:
			out = append(out, levelProblem{level, "overlap", fmt.Sprintf("TXID overlap: prev.MaxTXID=%s, curr.MinTXID=%s", prev.MaxTXID, cur.MinTXID)})
		}
	}
	return out, nil
}

// validationLevels are the levels validated: 0 and each compaction level.
func (d *daemon) validationLevels() []int {
	n := len(d.cfg.Levels)
	if d.cfg.Levels == nil {
		n = 3 // Litestream's default levels 1..3
	}
	out := []int{0}
	for l := 1; l <= n && l < remote.SnapshotLevel; l++ {
		out = append(out, l)
	}
	return out
}

// validationInterval is the database's validation interval: its replica's
// validation-interval, else the top-level validation.interval; 0 is off.
func (d *daemon) validationInterval(e *dbEntry) time.Duration {
	if e.cfg != nil {
		if rc, err := e.cfg.ReplicaConfig(); err == nil && rc.ValidationInterval != nil {
			return *rc.ValidationInterval
		}
	}
	if d.cfg.Validation.Interval != nil {
		return *d.cfg.Validation.Interval
	}
	return 0
}

// startValidation runs each database's validation on its interval.
func (d *daemon) startValidation() {
	any := d.cfg.Validation.Interval != nil
	for _, e := range d.entries() {
		any = any || d.validationInterval(e) > 0
	}
	if !any {
		return
	}
	d.log.Info("starting validation monitor")
	d.goBackground(func() {
		next := map[string]time.Time{}
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-d.runCtx.Done():
				return
			case now := <-t.C:
				for _, e := range d.entries() {
					iv := d.validationInterval(e)
					if iv <= 0 {
						continue
					}
					if n, ok := next[e.path]; !ok {
						next[e.path] = now.Add(iv)
						continue
					} else if now.Before(n) {
						continue
					}
					next[e.path] = now.Add(iv)
					d.validate(d.runCtx, e)
				}
			}
		}
	})
}

// validate checks every level of one database's replica, logs what it
// finds and counts it in the metrics.
func (d *daemon) validate(ctx context.Context, e *dbEntry) {
	for _, level := range d.validationLevels() {
		probs, err := checkLevel(ctx, e.client, level)
		result := "success"
		switch {
		case err != nil:
			result = "error"
			if ctx.Err() == nil {
				d.log.Error("validation check failed", "db", e.path, "level", level, "error", e.redact(err))
			}
		case len(probs) > 0:
			result = "invalid"
			for _, p := range probs {
				d.log.Warn("validation error detected", "db", e.path, "level", p.Level, "type", p.Type, "message", p.Message)
			}
		}
		if d.mtr != nil {
			d.mtr.Validation(e.path, level, result)
		}
		if err != nil {
			return
		}
	}
}

// verifyClient checks a level after each compaction written to it
// (verify-compaction) and reports problems: a warning and onError.
type verifyClient struct {
	remote.Client
	db      string
	log     *slog.Logger
	onError func()
}

// LTXFilesAll and RequestCounts pass the wrapped client's optional
// methods on (one listing of every level; storage request counts).
func (c *verifyClient) LTXFilesAll(ctx context.Context, exactTimes bool) ([]*ltx.FileInfo, error) {
	return remote.ListAllWith(ctx, c.Client, exactTimes)
}

func (c *verifyClient) RequestCounts() remote.RequestCounts {
	n, _ := remote.CountsOf(c.Client)
	return n
}

func (c *verifyClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	info, err := c.Client.WriteLTXFile(ctx, level, minTXID, maxTXID, r)
	if err != nil || level <= remote.L0 || level >= remote.SnapshotLevel {
		return info, err
	}
	probs, verr := checkLevel(ctx, c.Client, level)
	if verr == nil && len(probs) > 0 {
		verr = fmt.Errorf("%s", probs[0].Message)
	}
	if verr != nil {
		c.log.Warn("post-compaction verification failed", "db", c.db, "level", level, "error", verr)
		c.onError()
	}
	return info, nil
}
