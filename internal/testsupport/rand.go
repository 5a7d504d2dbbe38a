package testsupport

import (
	"math/rand/v2"
	"testing"
	"time"
)

// Rand returns a random source for a randomized unit test, seeded from the
// clock, and logs the seed so that a failure can be replayed (with the
// same stream number). Seed is for suites rerun with a seed from the
// environment.
func Rand(tb testing.TB, stream uint64) *rand.Rand {
	tb.Helper()
	seed := uint64(time.Now().UnixNano())
	tb.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, stream))
}
