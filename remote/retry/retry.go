// Package retry is the project's one retry policy: how often and how
// patiently a remote operation is tried again, which failures are worth
// another try, and how a ranged read that fails in the middle of its body
// resumes from the byte it reached.
//
// A Policy is a value: each call site passes the policy it wants (the
// backends' defaults, a caller's tighter budget), and nothing is global.
//
// Layering rule: the layer closest to the storage (the backend) retries
// transient failures; a layer above it retries only what the backend could
// not (an error from the layer's own timeouts, say), never an error that
// already used up a budget. Do marks the error it gives up with as
// *ExhaustedError, and Retryable refuses it, so budgets do not multiply.
package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"sync/atomic"
	"syscall"
	"time"
)

// Policy says how an operation is retried. The zero value is usable:
// Default's numbers apply to the fields left zero.
type Policy struct {
	// Attempts is the total number of tries, the first included.
	Attempts int
	// Base is the wait before the first retry; each next wait doubles, up
	// to Max. The actual wait is a random value in [wait/2, wait].
	Base, Max time.Duration
	// AttemptTimeout, if set, bounds each try of Do: a try that runs out of
	// time is retried like a transient failure. A try that sends a body
	// read through Progress gets the time from its last progress, so a
	// large upload is not cut off while it moves. For a ranged read
	// (OpenRange) it bounds the time to the response and then every pause
	// in the body: a body that makes no progress for this long is a stall,
	// and the read resumes elsewhere.
	AttemptTimeout time.Duration
	// Logger receives one warning per retry (nil: slog.Default()).
	Logger *slog.Logger
}

// Default is the policy the backends use unless told otherwise: five tries
// over about three seconds, enough to ride out a restarting server or a
// burst of throttling without stalling a sync for long (the writer retries
// whole uploads on its own schedule).
var Default = Policy{Attempts: 5, Base: 200 * time.Millisecond, Max: 2 * time.Second}

// Never is a policy of one try.
var Never = Policy{Attempts: 1}

// WithAttemptTimeout returns p with AttemptTimeout set to d.
func (p Policy) WithAttemptTimeout(d time.Duration) Policy {
	p.AttemptTimeout = d
	return p
}

// WithDefaults returns p with Default's numbers in the fields left zero and
// a logger set.
func (p Policy) WithDefaults() Policy {
	if p.Attempts <= 0 {
		p.Attempts = Default.Attempts
	}
	if p.Base <= 0 {
		p.Base = Default.Base
	}
	if p.Max <= 0 {
		p.Max = max(Default.Max, p.Base)
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	return p
}

// Backoff returns the wait before retry n (1 for the first retry): Base
// doubled n-1 times, at most Max, jittered into [wait/2, wait].
func (p Policy) Backoff(n int) time.Duration {
	p = p.WithDefaults()
	wait := p.Base
	for i := 1; i < n && wait < p.Max; i++ {
		wait *= 2
	}
	wait = min(wait, p.Max)
	return wait/2 + rand.N(wait/2+1)
}

// ExhaustedError is the error Do returns when it gave up after more than one
// try: the last failure, and how many tries were made. Retryable refuses it,
// so an outer layer does not spend a second budget on the same failure.
type ExhaustedError struct {
	Attempts int
	Err      error
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("%v (gave up after %d attempts)", e.Err, e.Attempts)
}

func (e *ExhaustedError) Unwrap() error { return e.Err }

// AttemptTimeoutError is the failure of a try that ran out of its
// AttemptTimeout while the caller's context was still live. It is
// transient and does not wrap context.DeadlineExceeded, which would read as
// "the caller gave up".
type AttemptTimeoutError struct {
	Limit time.Duration
	Err   error // what the try failed with when it was cut off
}

func (e *AttemptTimeoutError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("no answer within %v", e.Limit)
	}
	return fmt.Sprintf("no answer within %v (%v)", e.Limit, e.Err)
}

// Timeout reports true: the try timed out.
func (e *AttemptTimeoutError) Timeout() bool { return true }

// Do calls fn until it succeeds, fails with an error that retryable does
// not accept, ctx ends, or the attempts are used up. It returns fn's last
// error; after more than one try it is wrapped in *ExhaustedError. A try
// that exceeds AttemptTimeout fails with *AttemptTimeoutError, which is
// retried whatever retryable says. what describes the operation in log
// messages, e.g. `s3 bucket "b": write "db/0000/x.ltx"`; it must not hold
// credentials.
func (p Policy) Do(ctx context.Context, what string, retryable func(error) bool, fn func(context.Context) error) error {
	p = p.WithDefaults()
	for attempt := 1; ; attempt++ {
		actx, cancel := ctx, context.CancelFunc(func() {})
		var dog *watchdog
		if p.AttemptTimeout > 0 {
			actx, cancel = context.WithCancel(ctx)
			dog = &watchdog{limit: p.AttemptTimeout}
			dog.timer = time.AfterFunc(p.AttemptTimeout, func() { dog.fired.Store(true); cancel() })
			actx = context.WithValue(actx, watchdogKey{}, dog)
		}
		err := fn(actx)
		timedOut := err != nil && dog != nil && dog.fired.Load() && ctx.Err() == nil
		if dog != nil {
			dog.timer.Stop()
		}
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		if timedOut {
			err = &AttemptTimeoutError{Limit: p.AttemptTimeout, Err: err}
		}
		if !timedOut && !retryable(err) {
			return err
		}
		if attempt >= p.Attempts {
			if attempt > 1 {
				return &ExhaustedError{Attempts: attempt, Err: err}
			}
			return err
		}
		d := p.Backoff(attempt)
		p.Logger.Warn("remote operation failed, retrying", "op", what, "attempt", attempt, "backoff", d, "error", err)
		if !sleep(ctx, d) {
			return err
		}
	}
}

// watchdog cuts off a try of Do that makes no progress for limit.
type watchdog struct {
	limit time.Duration
	timer *time.Timer
	fired atomic.Bool
}

type watchdogKey struct{}

// Progress returns a reader of r that, while a try of Policy.Do whose
// context is ctx reads it, counts every read as progress: the try's
// AttemptTimeout then runs from the last read instead of from the start.
// Wrap an upload's body with it. The result keeps r's Seek and ReadAt, which
// SDKs use to sign and resend a body.
func Progress(ctx context.Context, r io.Reader) io.Reader {
	dog, _ := ctx.Value(watchdogKey{}).(*watchdog)
	if dog == nil {
		return r
	}
	pr := &progressReader{r: r, dog: dog}
	if rs, ok := r.(io.ReadSeeker); ok {
		if ra, ok := r.(io.ReaderAt); ok {
			return &progressReadSeekerAt{progressReader: pr, s: rs, ra: ra}
		}
		return &progressReadSeeker{progressReader: pr, s: rs}
	}
	return pr
}

type progressReader struct {
	r   io.Reader
	dog *watchdog
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 && !p.dog.fired.Load() {
		p.dog.timer.Reset(p.dog.limit)
	}
	return n, err
}

type progressReadSeeker struct {
	*progressReader
	s io.Seeker
}

func (p *progressReadSeeker) Seek(off int64, whence int) (int64, error) { return p.s.Seek(off, whence) }

type progressReadSeekerAt struct {
	*progressReader
	s  io.Seeker
	ra io.ReaderAt
}

func (p *progressReadSeekerAt) Seek(off int64, whence int) (int64, error) {
	return p.s.Seek(off, whence)
}

func (p *progressReadSeekerAt) ReadAt(b []byte, off int64) (int, error) {
	n, err := p.ra.ReadAt(b, off)
	if n > 0 && !p.progressReader.dog.fired.Load() {
		p.progressReader.dog.timer.Reset(p.progressReader.dog.limit)
	}
	return n, err
}

// sleep waits d; false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// permanentError marks an error that no retry can fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying at any layer (denied access,
// bad credentials, an invalid request). errors.Is and errors.As still see
// err.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var pe *permanentError
	return errors.As(err, &pe)
}

// final reports whether err must not be retried by any layer: a context
// error, a missing file, a failure marked permanent, or one that already
// used up a retry budget.
func final(err error) bool {
	var ex *ExhaustedError
	return err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, fs.ErrNotExist) || IsPermanent(err) || errors.As(err, &ex)
}

// Transient reports whether err is a failure that a retry may fix: a
// network failure (IsTransientNet), a transient HTTP status
// (IsTransientStatus, from any error with an HTTPStatusCode method, as the
// AWS SDK's), or any error that says it is a timeout, such as
// *AttemptTimeoutError. Context errors, missing files, and errors marked
// Permanent or exhausted are not. Backends add their SDKs' own cases.
func Transient(err error) bool {
	if final(err) {
		return false
	}
	if IsTransientNet(err) {
		return true
	}
	var sc interface{ HTTPStatusCode() int }
	if errors.As(err, &sc) && sc.HTTPStatusCode() != 0 {
		return IsTransientStatus(sc.HTTPStatusCode())
	}
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// Retryable is the classifier for a layer above a backend (the page
// fetcher, restore): it retries any failure except the final ones (context
// errors, missing files, errors marked Permanent, and errors that already
// exhausted a budget below).
func Retryable(err error) bool { return !final(err) }

// IsTransientNet reports whether err is a network failure worth retrying:
// a connection reset, refused or aborted, a broken pipe, a timeout, a
// connection that closed mid-response (unexpected EOF) or before an HTTP
// response (a *url.Error wrapping io.EOF). Context errors are not.
func IsTransientNet(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	for _, e := range []error{syscall.ECONNRESET, syscall.ECONNREFUSED, syscall.ECONNABORTED, syscall.EPIPE, syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH} {
		if errors.Is(err, e) {
			return true
		}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	// An HTTP request whose connection closed before the response: Go
	// reports it as a *url.Error wrapping io.EOF.
	var ue *url.Error
	if errors.As(err, &ue) && errors.Is(ue.Err, io.EOF) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return false
}

// IsTransientStatus reports whether an HTTP status is worth retrying:
// request timeout, throttling, and server errors other than "not
// implemented".
func IsTransientStatus(code int) bool {
	switch {
	case code == 408, code == 429:
		return true
	case code >= 500 && code != 501 && code != 505:
		return true
	}
	return false
}
