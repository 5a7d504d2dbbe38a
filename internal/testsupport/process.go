package testsupport

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Process is a long-running child process a test drives (a `litestream
// replicate` daemon, a `restore -f` follower, another tool's daemon): its
// combined output is readable while it runs, and its end is observable
// without blocking. e2e and chaos share it.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	Out  *LockedBuffer // stdout and stderr
	done chan struct{}
	err  error // the Wait result; valid once done is closed
}

// StartProcess starts bin with args in env (nil: the test process's
// environment). When the test ends the process is killed if it still runs,
// and if the test failed the tail of its output is logged under name.
func StartProcess(tb testing.TB, name, bin string, env []string, args ...string) *Process {
	tb.Helper()
	p := &Process{Name: name, Out: &LockedBuffer{}, done: make(chan struct{})}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Env = env
	p.Cmd.Stdout, p.Cmd.Stderr = p.Out, p.Out
	if err := p.Cmd.Start(); err != nil {
		tb.Fatalf("start %s (%s): %v", name, bin, err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.Kill()
		if tb.Failed() {
			tb.Logf("%s (pid %d) output:\n%s", p.Name, p.Pid(), Tail(p.Out.String(), 8000))
		}
	})
	return p
}

// Pid is the process's id.
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Done is closed when the process has exited and its output is complete.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the process's exit error (nil: exit status 0); call it only once
// Done is closed.
func (p *Process) Err() error { return p.err }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool { return Closed(p.done) }

// Kill ends the process with SIGKILL (no cleanup of its own) and waits for
// it to be gone. It does nothing to a process that has exited.
func (p *Process) Kill() {
	if !p.Exited() {
		// An error means the process is already gone; done closes anyway.
		_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// Term sends SIGTERM and waits up to timeout for the exit; it returns the
// exit status, or -1 when the process did not exit in time (it is then
// killed) or died of a signal.
func (p *Process) Term(timeout time.Duration) int {
	if !p.Exited() {
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.Kill()
		return -1
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		return -1
	}
	return 0
}

// RunCommand runs cmd to its end with its stdout and stderr captured (e2e's
// and chaos's one-shot CLI runs). code is the exit status, or -1 when the
// process did not exit by itself (a signal, such as its context's kill);
// err is cmd.Run's error unless the process exited by itself, whatever its
// status.
func RunCommand(cmd *exec.Cmd) (code int, stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		code, err = ee.ExitCode(), nil
	default:
		code = -1
	}
	return code, out.String(), errOut.String(), err
}

// Closed reports, without blocking, whether ch is closed (a done or stop
// channel).
func Closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Tail is the last n bytes of s (a process's log), marked as cut when it is.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...\n" + s[len(s)-n:]
}

// Poll calls cond every interval until it holds (true) or timeout has
// passed (false). Tests poll with a deadline instead of sleeping a guessed
// time.
func Poll(timeout, every time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(every)
	}
	return true
}

// Seed is the seed of a randomized test: the value of the environment
// variable env when set, else the clock; and a generator seeded with it.
// The caller prints the seed with the command that reruns the test.
func Seed(env string) (uint64, *rand.Rand, error) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(env); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, nil, fmt.Errorf("%s=%q: %w", env, s, err)
		}
		seed = v
	}
	return seed, rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), nil
}
