package vfs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/litestream-go/litestream/internal/userinput"
	"github.com/psanford/sqlite3vfs"
	"github.com/superfly/ltx"
)

// Connection-level controls, reachable two ways:
//
//   - as PRAGMAs on a database opened through the VFS (any host, including a
//     Go program using mattn/go-sqlite3):
//     PRAGMA litestream_txid; PRAGMA litestream_time; PRAGMA litestream_lag;
//     PRAGMA litestream_error; PRAGMA litestream_stats;
//     PRAGMA litestream_set_time = '<target>'
//     (PRAGMA litestream_time = '<target>' does the same);
//   - as the SQL functions litestream_txid(), litestream_time(),
//     litestream_lag(), litestream_error(), litestream_stats() and
//     litestream_set_time(target)
//     that the loadable extension registers. They reach the connection's
//     file through sqlite3_file_control(SQLITE_FCNTL_PRAGMA) with the
//     pragma name "litestream:<function>" (not a valid PRAGMA identifier, so
//     no PRAGMA statement can collide), and get a typed answer: the first
//     byte says i(nteger), r(eal), t(ext), n(ull) or e(rror), the rest is
//     the value or the error message.
//
// A target is 'latest' (follow the replica again), a TXID or a time (RFC
// 3339, or 'YYYY-MM-DD HH:MM:SS[.fff]' in UTC as SQLite's datetime() prints
// it). A TXID given as text follows the project's one TXID rule
// (userinput.ParseTXID): hex as LTX file names and `restore -txid` write it,
// leading zeros and 0x optional, so '10' is TXID 16 here as in -txid. The
// extension passes an SQL integer argument as 16 hex digits, so
// litestream_set_time(16) is TXID 16 and litestream_set_time(litestream_txid())
// round-trips. Set inside a read transaction, it applies from the next one.
const fnPrefix = "litestream:"

// FileControl implements sqlite3vfs.FileController.
func (f *file) FileControl(op int, name string, value *string) (result *string, err error) {
	defer f.vfs.recover("xFileControl", &err, sqlite3vfs.IOError)
	if fn, ok := strings.CutPrefix(name, fnPrefix); ok {
		v, err := f.control(fn, value)
		var s string
		switch v := v.(type) {
		case nil:
			s = "n"
		case int64:
			s = "i" + strconv.FormatInt(v, 10)
		case float64:
			s = "r" + strconv.FormatFloat(v, 'g', -1, 64)
		case string:
			s = "t" + v
		}
		if err != nil {
			s = "e" + err.Error()
		}
		return &s, nil
	}

	name = strings.ToLower(name)
	switch name {
	case "litestream_txid", "litestream_time", "litestream_lag", "litestream_error", "litestream_stats", "litestream_set_time":
	default:
		return nil, sqlite3vfs.NotFoundError // any other pragma: SQLite's own
	}
	fn := strings.TrimPrefix(name, "litestream_")
	if fn == "time" && value != nil {
		fn = "set_time"
	}
	v, err := f.control(fn, value)
	if err != nil {
		f.r.log.Error("pragma failed", "pragma", name, "error", err)
		return nil, sqlite3vfs.GenericError
	}
	if v == nil {
		return nil, nil
	}
	s := fmt.Sprint(v)
	return &s, nil
}

// control runs one connection-level function.
func (f *file) control(fn string, arg *string) (any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch fn {
	case "txid":
		return int64(f.view().TXID()), nil
	case "time":
		return f.view().Timestamp().UTC().Format(time.RFC3339Nano), nil
	case "lag":
		return f.r.Status().Lag.Seconds(), nil
	case "error":
		if err := f.r.Status().Err; err != nil {
			return err.Error(), nil
		}
		return nil, nil
	case "stats":
		// One compact JSON object, so that one call shows everything and
		// the set of counters can grow without new functions.
		b, err := json.Marshal(f.r.Stats())
		if err != nil {
			return nil, err
		}
		return string(b), nil
	case "set_time":
		if arg == nil {
			return nil, fmt.Errorf("litestream_set_time needs a target: 'latest', a TXID or a time")
		}
		return f.setTime(*arg)
	}
	return nil, fmt.Errorf("unknown litestream function %q", fn)
}

// setTime pins the connection to a past state (or back to the latest) and
// returns the TXID it now reads.
func (f *file) setTime(arg string) (any, error) {
	txid, ts, latest, err := ParseTarget(arg)
	if err != nil {
		return nil, err
	}
	if latest {
		f.travel = nil
		return int64(f.r.Version().TXID()), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	v, err := f.r.VersionAt(ctx, txid, ts)
	if err != nil {
		return nil, err
	}
	f.travel = v
	return int64(v.TXID()), nil
}

// ParseTarget parses a time-travel target (see the package's connection
// controls): exactly one of txid, ts and latest is set on success.
func ParseTarget(s string) (txid ltx.TXID, ts time.Time, latest bool, err error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "latest") {
		return 0, time.Time{}, true, nil
	}
	if id, err := userinput.ParseTXID(s); err == nil {
		return id, time.Time{}, false, nil
	} else if errors.Is(err, userinput.ErrTXIDZero) {
		return 0, time.Time{}, false, err
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return 0, t.UTC(), false, nil
		}
	}
	return 0, time.Time{}, false, fmt.Errorf("time travel target %q: want 'latest', a TXID, or a time such as 2026-11-20T10:00:00Z", s)
}
