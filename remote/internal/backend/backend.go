// Package backend holds what the cloud remote backends share: argument
// checks, the start of every write (checks, the LTX header of the upload,
// spooling it to memory or disk), the stored timestamp format, exact-length
// range readers, deleting many keys, and hiding credentials in errors.
// Retries are package remote/retry's.
//
// It is internal to remote/ so that the backends agree on these details
// without widening the remote.Client contract.
package backend

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/retry"
)

// Logger returns the logger of a backend: l (nil: slog.Default()) with
// attrs naming the backend and its store. It becomes the retry policy's
// logger too, unless the policy has its own.
func Logger(l *slog.Logger, p *retry.Policy, attrs ...any) *slog.Logger {
	if l == nil {
		l = slog.Default()
	}
	l = l.With(attrs...)
	if p.Logger == nil {
		p.Logger = l
	}
	return l
}

// TransientStatus is the retry classifier of a backend whose SDK reports
// an HTTP status in errors of type E: never what retry.Retryable refuses;
// for an E, whether its status (status(e)) is transient; otherwise what
// retry.Transient or one of more accepts, or a body cut short (io.EOF).
func TransientStatus[E error](err error, status func(E) int, more ...func(error) bool) bool {
	if !retry.Retryable(err) {
		return false
	}
	if e, ok := errors.AsType[E](err); ok {
		return retry.IsTransientStatus(status(e))
	}
	if retry.Transient(err) || errors.Is(err, io.EOF) {
		return true
	}
	for _, f := range more {
		if f(err) {
			return true
		}
	}
	return false
}

// CheckLevel rejects a level outside 0..remote.MaxLevel.
func CheckLevel(level int) error {
	if level < 0 || level > remote.MaxLevel {
		return fmt.Errorf("invalid level %d (levels are 0..%d)", level, remote.MaxLevel)
	}
	return nil
}

// CheckWrite rejects a write whose level or TXID range is invalid.
func CheckWrite(level int, minTXID, maxTXID ltx.TXID) error {
	if err := CheckLevel(level); err != nil {
		return err
	}
	if minTXID == 0 || minTXID > maxTXID {
		return fmt.Errorf("invalid TXID range %s-%s", minTXID, maxTXID)
	}
	return nil
}

// CheckRange rejects a negative offset or size.
func CheckRange(offset, size int64) error {
	if offset < 0 || size < 0 {
		return fmt.Errorf("invalid range offset=%d size=%d", offset, size)
	}
	return nil
}

// ReadHeader reads the LTX header at the start of r, checks that it is valid
// and that its TXIDs are the ones the file is named after, and returns the
// header timestamp (UTC, millisecond precision) and a reader that yields all
// of r, header included. For an opaque write (remote.WithOpaqueWrite: an
// encrypted file, whose header cannot be read) it returns the creation time
// the context carries and r as it is.
func ReadHeader(ctx context.Context, r io.Reader, minTXID, maxTXID ltx.TXID) (time.Time, io.Reader, error) {
	if t, ok := remote.OpaqueWrite(ctx); ok {
		return t.UTC(), r, nil
	}
	hdr, r, err := ltx.PeekHeader(r)
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("read LTX header: %w", err)
	}
	if err := hdr.Validate(); err != nil {
		return time.Time{}, nil, fmt.Errorf("invalid LTX header: %w", err)
	}
	if hdr.MinTXID != minTXID || hdr.MaxTXID != maxTXID {
		return time.Time{}, nil, fmt.Errorf("LTX header has TXIDs %s-%s", hdr.MinTXID, hdr.MaxTXID)
	}
	return time.UnixMilli(hdr.Timestamp).UTC(), r, nil
}

// FormatTimestamp formats a file's creation time the way Litestream v0.5
// stores it in object metadata: RFC 3339 with nanoseconds, in UTC.
func FormatTimestamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// ParseTimestamp parses a stored creation time. It accepts any RFC 3339
// form (Litestream writes RFC3339Nano) and returns it in UTC.
func ParseTimestamp(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}

// SortInfos orders files by MinTXID, then MaxTXID, as LTXFiles returns them.
func SortInfos(infos []*ltx.FileInfo) {
	slices.SortFunc(infos, func(a, b *ltx.FileInfo) int {
		return cmp.Or(cmp.Compare(a.MinTXID, b.MinTXID), cmp.Compare(a.MaxTXID, b.MaxTXID))
	})
}

// SortAll orders the files of several levels by level, then as SortInfos
// does, as remote.AllLister returns them.
func SortAll(infos []*ltx.FileInfo) {
	slices.SortFunc(infos, func(a, b *ltx.FileInfo) int {
		return cmp.Or(cmp.Compare(a.Level, b.Level), cmp.Compare(a.MinTXID, b.MinTXID), cmp.Compare(a.MaxTXID, b.MaxTXID))
	})
}

// ExactReader returns a ReadCloser that yields exactly n bytes of rc: a body
// that ends early fails with io.ErrUnexpectedEOF, and one that has more
// (a server that ignored the Range header) fails too, rather than handing
// the caller bytes from the wrong offset. desc names the object in errors.
func ExactReader(rc io.ReadCloser, n int64, desc string) io.ReadCloser {
	return &exactReader{rc: rc, left: n, desc: desc}
}

type exactReader struct {
	rc   io.ReadCloser
	left int64
	desc string
	done bool
}

func (r *exactReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		if !r.done {
			r.done = true
			// One more read tells a body of the right length (EOF) from
			// a longer one.
			var b [1]byte
			n, err := io.ReadFull(r.rc, b[:])
			if n > 0 {
				return 0, fmt.Errorf("read %s: the server returned more bytes than the requested range", r.desc)
			}
			if err != nil && err != io.EOF {
				// E.g. a checksum the stream verifies at its end.
				return 0, fmt.Errorf("read %s: %w", r.desc, err)
			}
		}
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.rc.Read(p)
	r.left -= int64(n)
	switch {
	case err == io.EOF && r.left > 0:
		return n, fmt.Errorf("read %s: %w (%d bytes short)", r.desc, io.ErrUnexpectedEOF, r.left)
	case err == io.EOF:
		r.done = true
		return n, io.EOF
	case err != nil:
		return n, fmt.Errorf("read %s: %w", r.desc, err)
	}
	return n, nil
}

func (r *exactReader) Close() error { return r.rc.Close() }

// RangeEnd returns the exclusive end of the range [offset, offset+size) of
// a file of fileSize bytes, where size 0 means "to the end", or an error if
// the range does not lie inside the file.
func RangeEnd(offset, size, fileSize int64) (int64, error) {
	end := offset + size
	if size == 0 {
		end = fileSize
	}
	if offset >= fileSize || end > fileSize {
		return 0, fmt.Errorf("range offset=%d size=%d is outside the file (%d bytes)", offset, size, fileSize)
	}
	return end, nil
}

// CheckContentRange checks the Content-Range of a partial answer ("bytes
// START-END/TOTAL") against a request for [offset, offset+size) (size 0:
// to the end) and returns how many bytes the body must carry. Its errors
// are retry.Permanent: a server that answers another range will not
// answer the right one on a retry.
func CheckContentRange(header string, offset, size int64) (int64, error) {
	var start, end, total int64
	n, err := fmt.Sscanf(header, "bytes %d-%d/%d", &start, &end, &total)
	if err != nil || n != 3 || start != offset {
		return 0, retry.Permanent(fmt.Errorf("bad Content-Range %q for offset %d", header, offset))
	}
	want, err := RangeEnd(offset, size, total)
	if err != nil {
		return 0, retry.Permanent(err)
	}
	if end+1 != want {
		return 0, retry.Permanent(fmt.Errorf("server returned bytes %d-%d, want %d-%d", start, end, offset, want-1))
	}
	return want - offset, nil
}

// Redact returns err with every non-empty secret replaced by "xxxxx" in its
// message; errors.Is and errors.As still see the original chain. Backends
// pass every error through it at their boundary, so a credential that an
// SDK puts into a message (a SAS token in a URL, say) never reaches logs.
func Redact(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	var keep []string
	for _, s := range secrets {
		if len(s) >= 3 { // shorter strings would mangle ordinary words
			keep = append(keep, s)
		}
	}
	if len(keep) == 0 {
		return err
	}
	msg := err.Error()
	changed := false
	for _, s := range keep {
		if strings.Contains(msg, s) {
			changed = true
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	if !changed {
		return err
	}
	return &redacted{err: err, msg: msg}
}

type redacted struct {
	err error
	msg string
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }

// PrefixLister lists the LTX files under a key prefix that want accepts,
// with their sizes and creation times, in any order: what a backend whose
// one listing of a prefix tells all of that needs to give ListLevel and
// ListEvery.
type PrefixLister func(ctx context.Context, prefix string, want func(remote.FileID) bool) ([]*ltx.FileInfo, error)

// ListLevel is LTXFiles (level's files with MinTXID >= seek, by MinTXID)
// through one listing of the level's prefix. An invalid level is
// fail("list", prefix, ...); list's errors are returned as they are.
func ListLevel(ctx context.Context, fail Fail, keys remote.Keys, list PrefixLister, level int, seek ltx.TXID) ([]*ltx.FileInfo, error) {
	prefix := keys.LevelPrefix(level)
	if err := CheckLevel(level); err != nil {
		return nil, fail("list", prefix, err)
	}
	infos, err := list(ctx, prefix, func(id remote.FileID) bool { return id.Level == level && id.MinTXID >= seek })
	if err != nil {
		return nil, err
	}
	SortInfos(infos)
	return infos, nil
}

// ListEvery is LTXFilesAll (every level's files, by level and TXIDs)
// through one listing of the prefix of all levels.
func ListEvery(ctx context.Context, keys remote.Keys, list PrefixLister) ([]*ltx.FileInfo, error) {
	infos, err := list(ctx, keys.AllPrefix(), func(remote.FileID) bool { return true })
	if err != nil {
		return nil, err
	}
	SortAll(infos)
	return infos, nil
}

// DeleteFiles is DeleteLTXFiles: it deletes the keys of files (see
// DeleteKeys) with deleteKeys, which skips missing ones, and returns every
// failure.
func DeleteFiles(ctx context.Context, files []*ltx.FileInfo, key func(level int, minTXID, maxTXID ltx.TXID) string, fail Fail, deleteKeys func(ctx context.Context, keys []string) error) error {
	keys, errs := DeleteKeys(files, key, fail)
	if len(keys) > 0 {
		errs = append(errs, deleteKeys(ctx, keys))
	}
	return errors.Join(errs...)
}

// DeleteKeys maps the files of a DeleteLTXFiles call to their keys, skipping
// nil entries. A file whose level is out of range is not deleted: its error,
// made by fail with the operation "delete" and the key, is returned instead.
func DeleteKeys(files []*ltx.FileInfo, key func(level int, minTXID, maxTXID ltx.TXID) string, fail Fail) (keys []string, errs []error) {
	for _, info := range files {
		if info == nil {
			continue
		}
		k := key(info.Level, info.MinTXID, info.MaxTXID)
		if err := CheckLevel(info.Level); err != nil {
			errs = append(errs, fail("delete", k, err))
			continue
		}
		keys = append(keys, k)
	}
	return keys, errs
}

// TempPath returns a temporary path beside the "/"-separated path p, for
// an upload that is moved into place when complete: ".<name>.tmp-<random>",
// which no listing takes for an LTX file.
func TempPath(p string) string {
	return path.Join(path.Dir(p), "."+path.Base(p)+".tmp-"+tempSuffix())
}

// tempSuffix returns a random suffix for a temporary file name, so that
// concurrent uploads of one file never share a temporary path.
func tempSuffix() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Fail is a backend's error maker: it wraps err (with %w) naming the
// backend's store (bucket, container, server), the operation and the key
// (object key, blob name or path), and hides the backend's secrets.
type Fail func(op, key string, err error) error

// CheckOpen checks the arguments of an OpenLTXFile call for the file at
// key; its errors are fail("open", key, ...).
func CheckOpen(fail Fail, key string, level int, offset, size int64) error {
	if err := CheckLevel(level); err != nil {
		return fail("open", key, err)
	}
	if err := CheckRange(offset, size); err != nil {
		return fail("open", key, err)
	}
	return nil
}

// StartWrite is how every WriteLTXFile of a backend begins: it checks the
// level and TXID range, then the context, then reads the LTX header
// (ReadHeader). It returns the file's creation time and a reader of the
// whole file, header included; its errors are fail("write", key, ...).
func StartWrite(ctx context.Context, fail Fail, key string, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (time.Time, io.Reader, error) {
	if err := CheckWrite(level, minTXID, maxTXID); err != nil {
		return time.Time{}, nil, fail("write", key, err)
	}
	if err := ctx.Err(); err != nil {
		return time.Time{}, nil, fail("write", key, err)
	}
	createdAt, r, err := ReadHeader(ctx, r, minTXID, maxTXID)
	if err != nil {
		return time.Time{}, nil, fail("write", key, err)
	}
	return createdAt, r, nil
}

// WriteSpooled is WriteLTXFile for a backend that sends an upload with a
// known length and sends it again on a retry: StartWrite, then the whole
// file is spooled (NewSpool with memLimit, in the system's temporary
// directory), then send sends it. send's error becomes fail("write", key,
// ...). The info returned has the spooled size and the header's time.
func WriteSpooled(ctx context.Context, fail Fail, key string, level int, minTXID, maxTXID ltx.TXID, r io.Reader, memLimit int64,
	send func(ctx context.Context, spool *Spool, createdAt time.Time) error) (*ltx.FileInfo, error) {
	createdAt, r, err := StartWrite(ctx, fail, key, level, minTXID, maxTXID, r)
	if err != nil {
		return nil, err
	}
	spool, err := NewSpool(ctx, r, memLimit, "")
	if err != nil {
		return nil, fail("write", key, err)
	}
	defer spool.Close()
	if err := send(ctx, spool, createdAt); err != nil {
		return nil, fail("write", key, err)
	}
	return &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: spool.Size(), CreatedAt: createdAt}, nil
}

// UploadTimeout is the time one try of an upload of size bytes may take:
// base plus a second per MiB, so that a large snapshot on a slow link is
// not cut off as a stall.
func UploadTimeout(base time.Duration, size int64) time.Duration {
	return base + time.Duration(size>>20)*time.Second
}

// DeleteParallel calls del for every key, up to limit at once, and returns
// the errors of all of them joined: one failure does not stop the others.
// del decides what is not a failure (a key already gone) and wraps its
// errors naming the key.
func DeleteParallel(ctx context.Context, keys []string, limit int, del func(ctx context.Context, key string) error) error {
	var mu sync.Mutex
	var errs []error
	var g errgroup.Group
	g.SetLimit(limit)
	for _, key := range keys {
		g.Go(func() error {
			if err := del(ctx, key); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	return errors.Join(errs...)
}

// DeleteEach calls del for every key in turn, stopping when ctx is done
// (its error joins those already met, made by fail("delete", key, ...)),
// and returns the errors of all of them joined. del decides what is not a
// failure (a key already gone) and wraps its errors naming the key.
func DeleteEach(ctx context.Context, fail Fail, keys []string, del func(ctx context.Context, key string) error) error {
	var errs []error
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, fail("delete", key, err))...)
		}
		if err := del(ctx, key); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
