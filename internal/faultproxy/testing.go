package faultproxy

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// Environment variables that override a test's seed and rates, so a failure
// can be replayed (SeedEnv) and a suite run harder (RatesEnv, in
// ParseRates's syntax) without editing code.
const (
	SeedEnv  = "LITESTREAM_FAULT_SEED"
	RatesEnv = "LITESTREAM_FAULT_RATES"
)

// Seed returns the seed from SeedEnv, or one from the clock, and logs it.
func Seed(tb testing.TB) uint64 {
	tb.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(SeedEnv); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			tb.Fatalf("%s=%q: %v", SeedEnv, s, err)
		}
		seed = v
	}
	tb.Logf("fault seed %d (replay with %s=%d)", seed, SeedEnv, seed)
	return seed
}

// StartT starts a proxy in front of target for a test and closes it when
// the test ends. A zero opts.Seed takes Seed(tb); RatesEnv, if set,
// replaces opts.Rates. The seed, the rates and, at the end, the stats are
// logged.
func StartT(tb testing.TB, target string, opts Options) *Proxy {
	tb.Helper()
	if opts.Seed == 0 {
		opts.Seed = Seed(tb)
	}
	if s := os.Getenv(RatesEnv); s != "" {
		r, err := ParseRates(s)
		if err != nil {
			tb.Fatalf("%s: %v", RatesEnv, err)
		}
		opts.Rates = r
	}
	p, err := Start(target, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Logf("faultproxy %s -> %s, rates %s", p.URL(), target, opts.Rates)
	tb.Cleanup(func() {
		tb.Logf("faultproxy: %s", p.Stats())
		_ = p.Close()
	})
	return p
}
