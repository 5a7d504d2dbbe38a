package testsupport

import (
	"testing"
	"time"
)

// TestProcess: a process's output and exit status are seen, Term reports a
// death by signal as -1, and Kill on an exited process returns at once.
func TestProcess(t *testing.T) {
	p := StartProcess(t, "sh", "/bin/sh", nil, "-c", "echo hello; exit 3")
	if !Poll(10*time.Second, 5*time.Millisecond, p.Exited) {
		t.Fatal("sh did not exit")
	}
	if code := p.Term(time.Second); code != 3 || p.Out.String() != "hello\n" {
		t.Errorf("exit %d, output %q; want 3, %q", code, p.Out.String(), "hello\n")
	}
	p.Kill()

	s := StartProcess(t, "sleep", "/bin/sh", nil, "-c", "exec sleep 60")
	if s.Exited() {
		t.Fatal("sleep exited at once")
	}
	if code := s.Term(10 * time.Second); code != -1 || s.Err() == nil {
		t.Errorf("SIGTERM: exit %d (%v); want -1, killed by the signal", code, s.Err())
	}
	if Tail("abcdef", 3) != "...\ndef" || Tail("abc", 3) != "abc" {
		t.Errorf("Tail: %q %q", Tail("abcdef", 3), Tail("abc", 3))
	}
}
