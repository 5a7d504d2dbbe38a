package chaos

import "testing"

// TestAppKill: the application (sqlite3 processes, synchronous=FULL) is
// SIGKILLed over and over — stalled inside COMMIT by the fsync shim, at
// random moments, inside BEGIN, while a large transaction spills, during
// VACUUM, during its own checkpoint — and after each kill another process
// commits different rows, while `litestream replicate` (levels on, short
// intervals) runs throughout. After each cycle every reader must equal the
// source.
func TestAppKill(t *testing.T) {
	runKillLoop(t, true, false, pick(15, 150))
}

// TestBothKill: both at once, including killing and restarting the daemon
// while an application process is stalled inside COMMIT.
func TestBothKill(t *testing.T) {
	runKillLoop(t, true, true, pick(8, 80))
}
