package restore

// Follow keeps a restored database file up to date in place.
//
// Crash safety is a redo log. The output's TXID is recorded beside it in
// OutputPath+"-txid" (written to a temporary file, fsynced, renamed). Each
// new LTX file is first downloaded whole to OutputPath+"-follow.ltx" (fsynced,
// renamed into place: the journal), verified end to end by the decoder, and
// only then applied: its pages are written over the output, the output is
// truncated to the file's commit and fsynced, the new TXID is recorded, and
// the journal is removed. Applying an LTX file is idempotent on top of the
// state it follows (it holds the newest version of every page changed in its
// range; other pages are untouched), so after a crash at any point the next
// Follow re-applies a journal that is newer than the recorded TXID and goes
// on from there.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/index"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/retry"
)

// FollowOptions configure Follow.
type FollowOptions struct {
	// OutputPath is the database file kept up to date.
	OutputPath string
	// Interval is how often the replica is polled for new files (default 1s).
	Interval time.Duration
	// Logger receives progress (default slog.Default()).
	Logger *slog.Logger
	// Applied, if set, is called after each TXID is durably applied.
	Applied func(txid ltx.TXID)
}

// ErrFollowGap is returned (wrapped) when the replica's history no longer
// continues the output's TXID (retention deleted files the follower had not
// applied yet); restore afresh.
var ErrFollowGap = errors.New("the replica no longer continues the followed database")

// Follow restores the latest state to opts.OutputPath if it does not exist
// (or resumes from its recorded TXID if it does), then applies each new file
// of the replica to it in place until ctx is done. It returns nil when ctx
// is canceled, or the first error that waiting cannot fix: a gap in the
// replica's history (ErrFollowGap), a file that is not what its name says
// or fails verification, an output that was not restored with Follow.
// Anything else (a full disk, an unreachable replica) is logged and tried
// again every Interval from the last durably applied TXID, so that the
// follower carries on once space or the replica returns.
func Follow(ctx context.Context, c remote.Client, opts FollowOptions) error {
	f := &follower{c: c, out: opts.OutputPath, opts: opts, log: opts.Logger}
	if f.log == nil {
		f.log = slog.Default()
	}
	if f.opts.Interval <= 0 {
		f.opts.Interval = time.Second
	}
	if f.out == "" {
		return errors.New("follow: no output path")
	}
	// After consecutive failures the wait doubles, up to maxFollowBackoff,
	// so that a long outage or a full disk is not hammered with whole-file
	// downloads every interval.
	fails := 0
	wait := func() bool {
		d := f.opts.Interval
		for i := 0; i < fails && d < maxFollowBackoff; i++ {
			d *= 2
		}
		t := time.NewTimer(min(d, max(f.opts.Interval, maxFollowBackoff)))
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	// failed reports whether Follow must stop on err; otherwise it is
	// logged and the step is tried again after an interval.
	failed := func(step string, err error) bool {
		if ctx.Err() != nil || isFinal(err) {
			return true
		}
		fails++
		f.log.Warn("follow: "+step+" failed; trying again", "output", f.out, "failures", fails, "error", err)
		return false
	}
	var txid ltx.TXID
	for {
		var err error
		if txid, err = f.start(ctx); err == nil {
			break
		}
		if failed("start", err) {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if !wait() {
			return nil
		}
	}
	f.log.Info("following", "output", f.out, "txid", txid)
	for {
		// On failure txid is still the last TXID durably applied.
		next, err := f.catchUp(ctx, txid)
		txid = next
		if err == nil {
			fails = 0
		} else if failed("catching up", err) {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if !wait() {
			return nil
		}
	}
}

// maxFollowBackoff bounds the wait between attempts after failures.
const maxFollowBackoff = 30 * time.Second

// finalError marks a follow error that waiting cannot fix.
type finalError struct{ err error }

func (e *finalError) Error() string { return e.err.Error() }
func (e *finalError) Unwrap() error { return e.err }

// final marks err as one Follow stops on.
func final(err error) error {
	if err == nil {
		return nil
	}
	return &finalError{err: err}
}

func isFinal(err error) bool {
	var fe *finalError
	return errors.As(err, &fe) || errors.Is(err, ErrFollowGap)
}

// waitable reports whether an error of the initial restore may go away by
// waiting: a full disk or quota, or a replica that could not be reached.
// Anything else (no snapshot, a gap, a damaged file) stops Follow. (A
// request that stalled says Timeout(), which retry.Transient accepts.)
func waitable(err error) bool {
	var ex *retry.ExhaustedError
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
		retry.Transient(err) || errors.As(err, &ex)
}

type follower struct {
	c    remote.Client
	out  string
	opts FollowOptions
	log  *slog.Logger
}

func (f *follower) txidPath() string    { return f.out + "-txid" }
func (f *follower) journalPath() string { return f.out + "-follow.ltx" }
func (f *follower) initPath() string    { return f.out + ".follow-init" }

// start returns the output's TXID, restoring the output first if it does
// not exist and finishing an interrupted apply if a journal is left.
func (f *follower) start(ctx context.Context) (ltx.TXID, error) {
	_, outErr := os.Stat(f.out)
	txid, txErr := f.readTXID()
	switch {
	case outErr == nil && txErr != nil:
		return 0, final(fmt.Errorf("follow: %s exists but its TXID is not recorded in %s (%v): it was not restored with -f; remove it or choose another output", f.out, f.txidPath(), txErr))
	case outErr != nil && !errors.Is(outErr, os.ErrNotExist):
		return 0, final(fmt.Errorf("follow: %w", outErr))
	case outErr != nil:
		// No output. A crash after the initial restore recorded its TXID
		// but before the rename leaves the complete database at initPath.
		if _, err := os.Stat(f.initPath()); err == nil && txErr == nil {
			if err := f.publishInit(); err != nil {
				return 0, err
			}
			return f.resume(ctx, txid)
		}
		return f.initial(ctx)
	}
	return f.resume(ctx, txid)
}

// initial restores the latest state to initPath, records its TXID, then
// renames it to the output.
func (f *follower) initial(ctx context.Context) (ltx.TXID, error) {
	for _, p := range []string{f.journalPath(), f.txidPath(), f.initPath()} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("follow: remove stale %s: %w", p, err)
		}
	}
	res, err := RunReplanning(ctx, f.c, Options{OutputPath: f.initPath(), Force: true, Logger: f.log})
	if err != nil {
		err = fmt.Errorf("follow: initial restore: %w", err)
		if !waitable(err) {
			err = final(err)
		}
		return 0, err
	}
	if err := f.writeTXID(res.TXID); err != nil {
		return 0, err
	}
	if err := f.publishInit(); err != nil {
		return 0, err
	}
	f.applied(res.TXID)
	return res.TXID, nil
}

func (f *follower) publishInit() error {
	if err := os.Rename(f.initPath(), f.out); err != nil {
		return fmt.Errorf("follow: rename %s to %s: %w", f.initPath(), f.out, err)
	}
	return syncDir(filepath.Dir(f.out))
}

// resume finishes an apply a crash interrupted.
func (f *follower) resume(ctx context.Context, txid ltx.TXID) (ltx.TXID, error) {
	hdr, err := verifyJournal(f.journalPath())
	switch {
	case errors.Is(err, os.ErrNotExist):
		return txid, nil
	case err != nil:
		// Only complete journals are renamed into place; an unreadable one
		// was damaged afterwards. Nothing of it is trusted: drop it.
		f.log.Warn("dropping an unreadable follow journal", "path", f.journalPath(), "err", err)
		return txid, removeFile(f.journalPath())
	case hdr.MaxTXID <= txid:
		return txid, removeFile(f.journalPath()) // applied and recorded already
	case !index.Follows(&ltx.FileInfo{MinTXID: hdr.MinTXID, MaxTXID: hdr.MaxTXID}, txid):
		return 0, final(fmt.Errorf("follow: journal %s holds TXIDs %s-%s, which do not follow the output's TXID %s", f.journalPath(), hdr.MinTXID, hdr.MaxTXID, txid))
	}
	f.log.Info("re-applying an interrupted file", "journal", f.journalPath(), "txid", hdr.MaxTXID)
	if err := f.applyJournal(ctx, nil, txid); err != nil {
		return 0, err
	}
	return hdr.MaxTXID, nil
}

// catchUp applies the files that take the output from txid to the newest
// state the replica reaches from it.
func (f *follower) catchUp(ctx context.Context, txid ltx.TXID) (ltx.TXID, error) {
	files, err := remote.ListAll(ctx, f.c)
	if err != nil {
		return txid, fmt.Errorf("follow: %w", err)
	}
	chain := index.Continue(txid, files)
	if chain == nil {
		if gap := index.GapAfter(txid, files); gap != nil {
			return txid, fmt.Errorf("follow: %w: the output %s is at TXID %s: %w; restore afresh once the replica has a snapshot past the gap", ErrFollowGap, f.out, txid, gap)
		}
		return txid, nil
	}
	for _, info := range chain {
		if err := f.fetch(ctx, info); err != nil {
			if errors.Is(err, remote.ErrNotExist) {
				return txid, nil // deleted since the listing: the next poll plans again
			}
			return txid, err
		}
		if err := f.applyJournal(ctx, info, txid); err != nil {
			return txid, err
		}
		txid = info.MaxTXID
	}
	return txid, nil
}

// fetch downloads a file whole to the journal path (through a temporary
// file, fsynced and renamed, so a journal is always complete).
func (f *follower) fetch(ctx context.Context, info *ltx.FileInfo) error {
	desc := remote.FileDesc(info.Level, info.MinTXID, info.MaxTXID)
	rc, err := f.c.OpenLTXFile(ctx, info.Level, info.MinTXID, info.MaxTXID, 0, 0)
	if err != nil {
		return fmt.Errorf("follow: open %s: %w", desc, err)
	}
	defer rc.Close()
	tmp := f.journalPath() + ".tmp"
	w, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("follow: %w", err)
	}
	_, err = io.Copy(w, rc)
	if err == nil {
		err = w.Sync()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// Only a file that is what its name says becomes the journal,
		// which a restart re-applies trusting its header.
		if herr := checkJournalHeader(tmp, info); herr != nil {
			os.Remove(tmp)
			return final(fmt.Errorf("follow: %s: %w", desc, herr))
		}
	}
	if err == nil {
		err = os.Rename(tmp, f.journalPath())
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("follow: download %s: %w", desc, err)
	}
	return syncDir(filepath.Dir(f.out))
}

// checkJournalHeader checks the header of a downloaded file against the
// name it was listed under.
func checkJournalHeader(path string, info *ltx.FileInfo) error {
	j, err := os.Open(path)
	if err != nil {
		return err
	}
	defer j.Close()
	hdr, _, err := ltx.DecodeHeader(j)
	if err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	return index.CheckHeader(info, hdr)
}

// verifyJournal decodes the whole journal, checking its checksum, and
// returns its header. It does not know which file the journal was
// downloaded as: applyJournal checks the header against that.
func verifyJournal(path string) (ltx.Header, error) {
	j, err := os.Open(path)
	if err != nil {
		return ltx.Header{}, err
	}
	defer j.Close()
	dec := ltx.NewDecoder(bufio.NewReader(j))
	if err := dec.DecodeHeader(); err != nil {
		return ltx.Header{}, fmt.Errorf("decode %s: %w", path, err)
	}
	buf := make([]byte, dec.Header().PageSize)
	for {
		var ph ltx.PageHeader
		if err := dec.DecodePage(&ph, buf); err == io.EOF {
			break
		} else if err != nil {
			return ltx.Header{}, fmt.Errorf("decode %s: %w", path, err)
		}
	}
	if err := dec.Close(); err != nil {
		return ltx.Header{}, fmt.Errorf("verify %s: %w", path, err)
	}
	return dec.Header(), nil
}

// applyJournal verifies the journal (downloaded as info, or nil when a crash
// left it and only its own header says what it is), checks that it continues
// the output's TXID, writes its pages over the output, truncates the output
// to its commit, fsyncs, records its TXID and removes the journal.
func (f *follower) applyJournal(ctx context.Context, info *ltx.FileInfo, txid ltx.TXID) error {
	hdr, err := verifyJournal(f.journalPath())
	if err != nil {
		// A complete download that fails verification: the file in the
		// replica is damaged. Drop it; a fixed replica is read again. The
		// error names the replica's file, not only the local journal.
		removeFile(f.journalPath())
		if info != nil {
			return final(fmt.Errorf("follow: %s: %w", remote.FileDesc(info.Level, info.MinTXID, info.MaxTXID), err))
		}
		return final(fmt.Errorf("follow: %w", err))
	}
	if info == nil {
		info = &ltx.FileInfo{MinTXID: hdr.MinTXID, MaxTXID: hdr.MaxTXID}
	}
	desc := remote.FileDesc(info.Level, info.MinTXID, info.MaxTXID)
	if err := index.CheckHeader(info, hdr); err != nil {
		return final(fmt.Errorf("follow: %s: %w", desc, err))
	}
	if !index.Follows(info, txid) {
		return final(fmt.Errorf("follow: %s does not continue the output's TXID %s", desc, txid))
	}
	j, err := os.Open(f.journalPath())
	if err != nil {
		return fmt.Errorf("follow: %w", err)
	}
	defer j.Close()
	out, err := os.OpenFile(f.out, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("follow: %w", err)
	}
	defer out.Close()
	dec := ltx.NewDecoder(bufio.NewReader(j))
	if err := dec.DecodeHeader(); err != nil {
		return fmt.Errorf("follow: decode %s: %w", f.journalPath(), err)
	}
	ps := int64(hdr.PageSize)
	buf := make([]byte, ps)
	for n := 0; ; n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err() // the journal stays; the next Follow re-applies it
		}
		var ph ltx.PageHeader
		if err := dec.DecodePage(&ph, buf); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("follow: decode %s: %w", f.journalPath(), err)
		}
		if _, err := out.WriteAt(buf, int64(ph.Pgno-1)*ps); err != nil {
			return fmt.Errorf("follow: write page %d of %s: %w", ph.Pgno, f.out, err)
		}
	}
	if err := out.Truncate(int64(hdr.Commit) * ps); err != nil {
		return fmt.Errorf("follow: truncate %s: %w", f.out, err)
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("follow: fsync %s: %w", f.out, err)
	}
	if err := f.writeTXID(hdr.MaxTXID); err != nil {
		return err
	}
	if err := removeFile(f.journalPath()); err != nil {
		return err
	}
	f.applied(hdr.MaxTXID)
	return nil
}

func (f *follower) applied(txid ltx.TXID) {
	f.log.Debug("applied", "output", f.out, "txid", txid)
	if f.opts.Applied != nil {
		f.opts.Applied(txid)
	}
}

func (f *follower) readTXID() (ltx.TXID, error) {
	b, err := os.ReadFile(f.txidPath())
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 16, 64)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("invalid TXID %q in %s", strings.TrimSpace(string(b)), f.txidPath())
	}
	return ltx.TXID(v), nil
}

// writeTXID records txid atomically and durably.
func (f *follower) writeTXID(txid ltx.TXID) error {
	tmp := f.txidPath() + ".tmp"
	w, err := os.Create(tmp)
	if err == nil {
		_, err = w.WriteString(txid.String() + "\n")
		if err == nil {
			err = w.Sync()
		}
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = os.Rename(tmp, f.txidPath())
	}
	if err == nil {
		err = syncDir(filepath.Dir(f.out))
	}
	if err != nil {
		return fmt.Errorf("follow: record TXID %s in %s: %w", txid, f.txidPath(), err)
	}
	return nil
}

func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("follow: remove %s: %w", path, err)
	}
	return nil
}
