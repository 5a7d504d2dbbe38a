package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"syscall"
	"time"
)

// Retry retries an operation on transient errors with exponential backoff
// and jitter. The zero value is usable: DefaultRetry's numbers apply.
type Retry struct {
	// Attempts is the total number of tries, the first included.
	Attempts int
	// Base is the wait before the first retry; each next wait doubles, up
	// to Max. The actual wait is a random value in [wait/2, wait].
	Base, Max time.Duration
	// AttemptTimeout, if set, bounds each try: a try that runs out of time
	// is retried like a transient failure. It guards against requests that
	// hang (say, across a server restart). Leave it zero for calls whose
	// context must outlive the call, such as one returning a stream.
	AttemptTimeout time.Duration
	// Logger receives one warning per retry (nil: slog.Default()).
	Logger *slog.Logger
}

// WithAttemptTimeout returns p with AttemptTimeout set to d.
func (p Retry) WithAttemptTimeout(d time.Duration) Retry {
	p.AttemptTimeout = d
	return p
}

// DefaultRetry is the policy the backends use unless told otherwise: five
// tries over about three seconds, enough to ride out a restarting server or
// a burst of throttling without stalling a sync for long (the writer retries
// whole uploads on its own schedule).
var DefaultRetry = Retry{Attempts: 5, Base: 200 * time.Millisecond, Max: 2 * time.Second}

func (p Retry) withDefaults() Retry {
	if p.Attempts <= 0 {
		p.Attempts = DefaultRetry.Attempts
	}
	if p.Base <= 0 {
		p.Base = DefaultRetry.Base
	}
	if p.Max <= 0 {
		p.Max = DefaultRetry.Max
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	return p
}

// Do calls fn until it succeeds, fails with an error that transient does not
// accept, ctx ends, or the attempts are used up. It returns fn's last error
// (or ctx's). what describes the operation in log messages, e.g.
// `s3 bucket "b": write "db/0000/x.ltx"`; it must not hold credentials.
func (p Retry) Do(ctx context.Context, what string, transient func(error) bool, fn func(context.Context) error) error {
	p = p.withDefaults()
	wait := p.Base
	for attempt := 1; ; attempt++ {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if p.AttemptTimeout > 0 {
			actx, cancel = context.WithTimeout(ctx, p.AttemptTimeout)
		}
		err := fn(actx)
		timedOut := actx.Err() != nil
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		if timedOut {
			err = fmt.Errorf("%w (attempt timed out after %v)", err, p.AttemptTimeout)
		}
		if attempt >= p.Attempts || !(timedOut || transient(err)) {
			return err
		}
		d := wait/2 + rand.N(wait/2+1)
		p.Logger.Warn("remote operation failed, retrying", "op", what, "attempt", attempt, "backoff", d, "error", err)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		wait = min(wait*2, p.Max)
	}
}

// IsTransientNet reports whether err is a network failure worth retrying:
// a connection reset, refused or aborted, a broken pipe, a timeout, or a
// connection that closed mid-response. Context cancellation is not.
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
