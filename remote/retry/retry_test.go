package retry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"syscall"
	"testing"
	"time"
)

var errTransient = fmt.Errorf("read: %w", syscall.ECONNRESET)

var fast = Policy{Attempts: 3, Base: time.Millisecond, Max: 2 * time.Millisecond}

func TestDo(t *testing.T) {
	denied := errors.New("403 denied")
	tests := []struct {
		name      string
		fails     []error
		wantCalls int
		wantErr   error
		exhausted bool
	}{
		{"success", nil, 1, nil, false},
		{"transient then success", []error{errTransient, errTransient}, 3, nil, false},
		{"gives up", []error{errTransient, errTransient, errTransient, errTransient}, 3, syscall.ECONNRESET, true},
		{"permanent at once", []error{denied}, 1, denied, false},
		{"missing file at once", []error{fmt.Errorf("x: %w", fs.ErrNotExist)}, 1, fs.ErrNotExist, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := fast.Do(t.Context(), "op", Transient, func(context.Context) error {
				calls++
				if calls <= len(tt.fails) {
					return tt.fails[calls-1]
				}
				return nil
			})
			if calls != tt.wantCalls || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("calls %d err %v; want %d %v", calls, err, tt.wantCalls, tt.wantErr)
			}
			var ex *ExhaustedError
			if errors.As(err, &ex) != tt.exhausted {
				t.Fatalf("exhausted = %v for %v", !tt.exhausted, err)
			}
			if tt.exhausted && (Retryable(err) || Transient(err)) {
				t.Fatalf("an exhausted error is retryable again: %v", err)
			}
		})
	}
	t.Run("attempt timeout retried", func(t *testing.T) {
		calls := 0
		err := fast.WithAttemptTimeout(10*time.Millisecond).Do(t.Context(), "op", Transient, func(ctx context.Context) error {
			calls++
			if calls == 1 {
				<-ctx.Done() // a hung request
				return ctx.Err()
			}
			return nil
		})
		if err != nil || calls != 2 {
			t.Fatalf("calls %d err %v", calls, err)
		}
	})
	t.Run("attempt timeouts exhausted", func(t *testing.T) {
		err := fast.WithAttemptTimeout(time.Millisecond).Do(t.Context(), "op", Transient, func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		})
		var te *AttemptTimeoutError
		if !errors.As(err, &te) || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("want an attempt timeout that is not the caller's deadline, got %v", err)
		}
	})
	t.Run("progress keeps a slow upload alive", func(t *testing.T) {
		// Reads every 5ms for 150ms under a 40ms timeout: through
		// Progress the try lives; without it, it is cut off.
		for _, wrap := range []bool{true, false} {
			calls := 0
			err := Policy{Attempts: 1}.WithAttemptTimeout(40*time.Millisecond).Do(t.Context(), "op", Transient, func(ctx context.Context) error {
				calls++
				var r io.Reader = io.NewSectionReader(bytes.NewReader(make([]byte, 30)), 0, 30)
				if wrap {
					r = Progress(ctx, r)
					if _, ok := r.(io.ReadSeeker); !ok {
						t.Fatal("Progress lost Seek")
					}
				}
				b := make([]byte, 1)
				for {
					if err := ctx.Err(); err != nil {
						return err
					}
					if _, err := r.Read(b); err == io.EOF {
						return nil
					}
					time.Sleep(5 * time.Millisecond) // a slow link
				}
			})
			var te *AttemptTimeoutError
			if wrap && err != nil || !wrap && !errors.As(err, &te) {
				t.Fatalf("progress %v: %v", wrap, err)
			}
		}
	})
	t.Run("canceled context stops", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		calls := 0
		err := fast.Do(ctx, "op", Transient, func(context.Context) error {
			calls++
			cancel()
			return errTransient
		})
		if calls != 1 || !errors.Is(err, errTransient) {
			t.Fatalf("calls %d err %v", calls, err)
		}
	})
}

func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		err                  error
		transient, retryable bool
	}{
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, true, true},
		{fmt.Errorf("x: %w", syscall.ECONNREFUSED), true, true},
		{io.ErrUnexpectedEOF, true, true},
		{&net.DNSError{IsTimeout: true}, true, true},
		{&AttemptTimeoutError{Limit: time.Second}, true, true},
		{statusErr(503), true, true},
		{statusErr(429), true, true},
		{statusErr(403), false, true},
		{statusErr(404), false, true},
		{Permanent(errTransient), false, false},
		{&ExhaustedError{Attempts: 2, Err: errTransient}, false, false},
		{fmt.Errorf("x: %w", fs.ErrNotExist), false, false},
		{context.Canceled, false, false},
		{context.DeadlineExceeded, false, false},
		{errors.New("decode failed"), false, true},
		{&url.Error{Op: "Put", URL: "http://x", Err: io.EOF}, true, true},
	} {
		if got := Transient(tt.err); got != tt.transient {
			t.Errorf("Transient(%v) = %v", tt.err, got)
		}
		if got := Retryable(tt.err); got != tt.retryable {
			t.Errorf("Retryable(%v) = %v", tt.err, got)
		}
	}
	for code, want := range map[int]bool{200: false, 403: false, 404: false, 408: true, 429: true, 500: true, 501: false, 503: true} {
		if IsTransientStatus(code) != want {
			t.Errorf("IsTransientStatus(%d) != %v", code, want)
		}
	}
}

type statusErr int

func (e statusErr) Error() string       { return fmt.Sprintf("status %d", int(e)) }
func (e statusErr) HTTPStatusCode() int { return int(e) }

func TestBackoff(t *testing.T) {
	p := Policy{Base: 100 * time.Millisecond, Max: time.Second}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 50: time.Second} {
		for range 20 {
			if d := p.Backoff(n); d < want/2 || d > want {
				t.Fatalf("Backoff(%d) = %v, want in [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

// object is a fake remote object whose reads fail as a script says.
type object struct {
	data []byte

	mu     sync.Mutex
	opens  []int64 // offset of every open
	script func(try int, off int64) fault
}

// fault is what one try does: fail to open, or deliver cut bytes of the
// body and then end it short (cutErr nil), fail with cutErr, or stall.
type fault struct {
	openErr   error
	stallOpen bool
	cut       int // -1: no cut
	cutErr    error
	stall     bool
	short     int  // the open claims this many fewer bytes
	unknown   bool // the open does not know the length (size 0 only)
}

var none = fault{cut: -1}

func (o *object) open(ctx context.Context, off, size int64) (io.ReadCloser, int64, error) {
	o.mu.Lock()
	try := len(o.opens)
	o.opens = append(o.opens, off)
	o.mu.Unlock()
	f := none
	if o.script != nil {
		f = o.script(try, off)
	}
	if f.stallOpen {
		<-ctx.Done()
		return nil, 0, ctx.Err()
	}
	if f.openErr != nil {
		return nil, 0, f.openErr
	}
	if off >= int64(len(o.data)) {
		return nil, 0, errors.New("range outside the file")
	}
	n := size
	if n == 0 {
		n = int64(len(o.data)) - off
	}
	if f.unknown && size == 0 {
		return &body{ctx: ctx, data: o.data[off : off+n], f: f}, -1, nil
	}
	return &body{ctx: ctx, data: o.data[off : off+n], f: f}, n - int64(f.short), nil
}

type body struct {
	ctx  context.Context
	data []byte
	read int
	f    fault
}

func (b *body) Read(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	if b.f.cut >= 0 && b.read >= b.f.cut {
		switch {
		case b.f.stall:
			<-b.ctx.Done()
			return 0, b.ctx.Err()
		case b.f.cutErr != nil:
			return 0, b.f.cutErr
		}
		return 0, io.EOF
	}
	end := len(b.data)
	if b.f.cut >= 0 {
		end = min(end, b.f.cut)
	}
	if b.read >= end {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 1000)], b.data[b.read:end])
	b.read += n
	return n, nil
}

func (b *body) Close() error { return nil }

func randomData(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 3))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func TestOpenRange(t *testing.T) {
	data := randomData(1, 300_000)
	type result struct {
		opens int
		err   error
	}
	run := func(t *testing.T, p Policy, off, size int64, script func(int, int64) fault) (result, []byte) {
		t.Helper()
		o := &object{data: data, script: script}
		rc, err := p.OpenRange(t.Context(), "object x", Transient, off, size, o.open)
		if err != nil {
			return result{len(o.opens), err}, nil
		}
		defer rc.Close()
		got, err := io.ReadAll(rc)
		return result{len(o.opens), err}, got
	}
	check := func(t *testing.T, got []byte, off, size int64) {
		t.Helper()
		want := data[off:]
		if size > 0 {
			want = data[off : off+size]
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("got %d bytes, want %d; content differs: %v", len(got), len(want), !bytes.Equal(got, want))
		}
	}

	t.Run("clean", func(t *testing.T) {
		r, got := run(t, fast, 1000, 50_000, nil)
		if r.err != nil || r.opens != 1 {
			t.Fatal(r)
		}
		check(t, got, 1000, 50_000)
	})
	t.Run("to the end", func(t *testing.T) {
		r, got := run(t, fast, 299_000, 0, nil)
		if r.err != nil {
			t.Fatal(r)
		}
		check(t, got, 299_000, 0)
	})
	t.Run("reset mid-body resumes at the byte reached", func(t *testing.T) {
		var offs []int64
		r, got := run(t, fast, 1000, 200_000, func(try int, off int64) fault {
			offs = append(offs, off)
			if try < 2 {
				return fault{cut: 30_000 + try, cutErr: errTransient}
			}
			return none
		})
		if r.err != nil || r.opens != 3 {
			t.Fatal(r)
		}
		check(t, got, 1000, 200_000)
		if offs[1] != 31_000 || offs[2] != 61_001 {
			t.Fatalf("resumed at %v, want [1000 31000 61001]", offs)
		}
	})
	t.Run("short body is detected and resumed", func(t *testing.T) {
		r, got := run(t, fast, 0, 100_000, func(try int, off int64) fault {
			if try == 0 {
				return fault{cut: 5000} // clean EOF after 5000 bytes
			}
			return none
		})
		if r.err != nil || r.opens != 2 {
			t.Fatal(r)
		}
		check(t, got, 0, 100_000)
	})
	t.Run("short body without retries is an error", func(t *testing.T) {
		r, got := run(t, Never, 0, 100_000, func(int, int64) fault { return fault{cut: 5000} })
		if !errors.Is(r.err, io.ErrUnexpectedEOF) || len(got) > 5000 {
			t.Fatalf("%v, %d bytes", r, len(got))
		}
	})
	t.Run("open failures retried", func(t *testing.T) {
		r, got := run(t, fast, 0, 10, func(try int, _ int64) fault {
			if try < 2 {
				return fault{openErr: statusErr(503)}
			}
			return none
		})
		if r.err != nil || r.opens != 3 {
			t.Fatal(r)
		}
		check(t, got, 0, 10)
	})
	t.Run("missing file not retried", func(t *testing.T) {
		r, _ := run(t, fast, 0, 10, func(int, int64) fault { return fault{openErr: fs.ErrNotExist} })
		if !errors.Is(r.err, fs.ErrNotExist) || r.opens != 1 {
			t.Fatal(r)
		}
	})
	t.Run("permanent mid-body failure not retried", func(t *testing.T) {
		r, _ := run(t, fast, 0, 100_000, func(int, int64) fault { return fault{cut: 10, cutErr: statusErr(403)} })
		if r.err == nil || r.opens != 1 {
			t.Fatal(r)
		}
	})
	t.Run("budget of tries without progress", func(t *testing.T) {
		r, _ := run(t, fast, 0, 100_000, func(int, int64) fault { return fault{cut: 100, cutErr: errTransient} })
		var ex *ExhaustedError
		if !errors.As(r.err, &ex) || r.opens != fast.Attempts || Retryable(r.err) {
			t.Fatalf("%v after %d opens, want exhausted after %d", r.err, r.opens, fast.Attempts)
		}
	})
	t.Run("progress renews the budget", func(t *testing.T) {
		// Every try fails after 70 KB: 300 KB need 5 tries, more than
		// the budget of 3, and each made progress.
		r, got := run(t, fast, 0, 0, func(int, int64) fault { return fault{cut: 70_000, cutErr: errTransient} })
		if r.err != nil || r.opens != 5 {
			t.Fatal(r)
		}
		check(t, got, 0, 0)
	})
	t.Run("stalled body is cut off and resumed", func(t *testing.T) {
		start := time.Now()
		r, got := run(t, fast.WithAttemptTimeout(50*time.Millisecond), 0, 100_000, func(try int, _ int64) fault {
			if try == 0 {
				return fault{cut: 20_000, stall: true}
			}
			return none
		})
		if r.err != nil || r.opens != 2 {
			t.Fatal(r)
		}
		check(t, got, 0, 100_000)
		t.Logf("took %v", time.Since(start))
	})
	t.Run("stalled open is cut off and retried", func(t *testing.T) {
		r, got := run(t, fast.WithAttemptTimeout(20*time.Millisecond), 5, 100, func(try int, _ int64) fault {
			if try == 0 {
				return fault{stallOpen: true}
			}
			return none
		})
		if r.err != nil || r.opens != 2 {
			t.Fatal(r)
		}
		check(t, got, 5, 100)
	})
	t.Run("stalls exhaust the budget", func(t *testing.T) {
		r, _ := run(t, fast.WithAttemptTimeout(5*time.Millisecond), 0, 100, func(int, int64) fault { return fault{stallOpen: true} })
		var te *AttemptTimeoutError
		if !errors.As(r.err, &te) || r.opens != fast.Attempts || errors.Is(r.err, context.DeadlineExceeded) {
			t.Fatal(r)
		}
	})
	t.Run("slow body is not a stall", func(t *testing.T) {
		// Progress every few ms keeps a 30ms watchdog quiet.
		o := &object{data: data[:20_000]}
		rc, err := fast.WithAttemptTimeout(30*time.Millisecond).OpenRange(t.Context(), "x", Transient, 0, 0,
			func(ctx context.Context, off, size int64) (io.ReadCloser, int64, error) {
				b, n, err := o.open(ctx, off, size)
				return io.NopCloser(&slow{r: b}), n, err
			})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(got, data[:20_000]) || len(o.opens) != 1 {
			t.Fatalf("%v, %d opens", err, len(o.opens))
		}
	})
	t.Run("resume offered a different length", func(t *testing.T) {
		r, _ := run(t, fast, 0, 100_000, func(try int, _ int64) fault {
			if try == 0 {
				return fault{cut: 10, cutErr: errTransient}
			}
			return fault{cut: -1, short: 1}
		})
		if r.err == nil {
			t.Fatal("accepted a resumed body of the wrong length")
		}
	})
	t.Run("unknown length reads to the end and resumes", func(t *testing.T) {
		r, got := run(t, fast, 100_000, 0, func(try int, _ int64) fault {
			switch try {
			case 0:
				return fault{cut: 30_000, cutErr: errTransient, unknown: true}
			case 1:
				return fault{cut: 40_000, cutErr: errTransient} // a known length this time
			}
			return fault{cut: -1, unknown: true}
		})
		if r.err != nil || r.opens != 3 {
			t.Fatal(r)
		}
		check(t, got, 100_000, 0)
	})
	t.Run("canceled context stops at once", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		o := &object{data: data, script: func(int, int64) fault { return fault{cut: 10, stall: true} }}
		rc, err := fast.OpenRange(ctx, "x", Transient, 0, 1000, o.open)
		if err != nil {
			t.Fatal(err)
		}
		go func() { time.Sleep(10 * time.Millisecond); cancel() }() // the caller gives up while a read blocks
		_, err = io.ReadAll(rc)
		if !errors.Is(err, context.Canceled) || len(o.opens) != 1 {
			t.Fatalf("%v after %d opens", err, len(o.opens))
		}
	})
}

// slow delivers 500 bytes per Read, 2ms apart.
type slow struct{ r io.Reader }

func (s *slow) Read(p []byte) (int, error) {
	time.Sleep(2 * time.Millisecond) // a slow network
	return s.r.Read(p[:min(len(p), 500)])
}

// TestOpenRangeRandom: random faults at every point of many reads never
// yield wrong bytes: each read is exact or fails.
func TestOpenRangeRandom(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 9))
	data := randomData(seed, 200_000)
	var mu sync.Mutex
	ok, failed := 0, 0
	for range 300 {
		off := rng.Int64N(int64(len(data)))
		size := rng.Int64N(int64(len(data)) - off + 1)
		o := &object{data: data, script: func(int, int64) fault {
			mu.Lock()
			defer mu.Unlock()
			switch rng.IntN(6) {
			case 0:
				return fault{openErr: errTransient}
			case 1:
				return fault{cut: rng.IntN(50_000), cutErr: errTransient}
			case 2:
				return fault{cut: rng.IntN(50_000)}
			}
			return none
		}}
		rc, err := Policy{Attempts: 4, Base: time.Microsecond, Max: time.Microsecond}.OpenRange(t.Context(), "x", Transient, off, size, o.open)
		if err != nil {
			failed++
			continue
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		want := data[off:]
		if size > 0 {
			want = data[off : off+size]
		}
		switch {
		case err != nil:
			failed++
		case !bytes.Equal(got, want):
			t.Fatalf("read %d+%d returned %d wrong bytes without an error", off, size, len(got))
		default:
			ok++
		}
	}
	t.Logf("%d exact, %d failed", ok, failed)
	if ok < 250 {
		t.Fatalf("only %d of 300 reads succeeded", ok)
	}
}
