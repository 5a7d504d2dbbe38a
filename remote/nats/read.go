package nats

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// maxObjectRead bounds one Get of an object. The store's reader waits for
// each chunk until its context's deadline (without one, the library's 5 s
// bound applies to the whole read, which a slow consumer exceeds), so
// every Get gets this deadline; a read that runs longer fails with
// nats.ErrTimeout and resumes (retry.Policy.OpenRange).
const maxObjectRead = 15 * time.Minute

// getObject starts a Get of object name. The Get itself (the object's
// info, then a subscription to its chunks) must answer within opTimeout;
// the chunks then have maxObjectRead, or until ctx ends.
func getObject(ctx context.Context, obs jetstream.ObjectStore, name string, opTimeout time.Duration) (*objectResult, error) {
	rctx, cancel := context.WithTimeout(ctx, maxObjectRead)
	var timedOut atomic.Bool
	timer := time.AfterFunc(opTimeout, func() {
		timedOut.Store(true)
		cancel()
	})
	res, err := obs.Get(rctx, name)
	if !timer.Stop() && err == nil {
		// The timer fired as the answer came: the chunks' context is
		// already cancelled.
		_ = res.Close()
		err = rctx.Err()
	}
	if err != nil {
		cancel()
		if timedOut.Load() {
			err = fmt.Errorf("no answer within %v: %w (%w)", opTimeout, nats.ErrTimeout, err)
		}
		return nil, err
	}
	return &objectResult{ObjectResult: res, cancel: cancel}, nil
}

// objectResult is a Get in progress and the cancel of its context.
type objectResult struct {
	jetstream.ObjectResult
	cancel context.CancelFunc
}

// objectReader reads an object through a goroutine (pump). The store's
// reader cannot be cut off: its Read waits for the next chunk or its
// context's deadline, cancelling that context is noticed only when a chunk
// arrives, and Close waits for a Read in progress. So a connection lost in
// the middle of a read would block the reader until the deadline (it hung
// compaction, and Close behind it, for the two minutes of a test's
// context). Through the pump, Read returns as soon as ctx ends or the
// store has sent nothing for idle while the pump waited for it; the pump
// itself ends with the next chunk or the Get's deadline.
//
// The last bytes are delivered only after the store has reached the end of
// the object and checked its digest, so a caller that stops reading at the
// object's size (as retry.Policy.OpenRange does) never takes unverified
// bytes for the whole object.
type objectReader struct {
	pr *io.PipeReader
	// pw is written by the pump; closing it with an error (the pump's, or
	// a stall's or ctx's) is what makes Read return that error.
	pw   *io.PipeWriter
	stop func() bool // detaches the ctx watch
	res  *objectResult
}

func newObjectReader(ctx context.Context, res *objectResult, size int64, idle time.Duration) *objectReader {
	pr, pw := io.Pipe()
	r := &objectReader{pr: pr, pw: pw, res: res}
	r.stop = context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
	go r.pump(size, idle)
	return r
}

func (r *objectReader) pump(size int64, idle time.Duration) {
	pw := r.pw
	defer func() {
		_ = r.res.Close()
		r.res.cancel()
	}()
	stalled := fmt.Errorf("no data from the server for %v: %w", idle, nats.ErrTimeout)
	watchdog := time.AfterFunc(idle, func() { pw.CloseWithError(stalled) })
	watchdog.Stop()
	read := func(p []byte) (int, error) {
		watchdog.Reset(idle)
		defer watchdog.Stop()
		return r.res.Read(p)
	}
	buf := make([]byte, 64<<10)
	var got int64
	for {
		n, err := read(buf)
		got += int64(n)
		if err == nil && got >= size {
			// Hold the last bytes until the end is read: the store checks
			// the object's digest there.
			var b [1]byte
			m, eerr := 0, error(nil)
			for m == 0 && eerr == nil {
				m, eerr = read(b[:]) // (0, nil) is a wait that ended early
			}
			if m > 0 {
				eerr = fmt.Errorf("the object is longer than its size, %d bytes", size)
			}
			err = eerr
		}
		if errors.Is(err, io.EOF) && got != size {
			err = fmt.Errorf("%w: %d of %d bytes", io.ErrUnexpectedEOF, got, size)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			pw.CloseWithError(err)
			return
		}
		if n > 0 {
			if _, werr := pw.Write(buf[:n]); werr != nil {
				return // the reader is closed or gave up
			}
		}
		if err != nil {
			pw.Close()
			return
		}
	}
}

func (r *objectReader) Read(p []byte) (int, error) { return r.pr.Read(p) }

// Close ends the read without waiting for the pump: it cancels the Get's
// context (so the pump ends with the next chunk) and closes the pipe.
func (r *objectReader) Close() error {
	r.stop()
	r.res.cancel()
	return r.pr.Close()
}
