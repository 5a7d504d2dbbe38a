// Package e2e holds the project's end-to-end tests. They build the real
// litestream binary once (TestMain), run "litestream replicate" as a
// subprocess against real SQLite databases written by the test process, and
// check restores through the command line against the source: randomized
// workloads, SIGKILL crashes, a database larger than 1 GiB (with the lock
// page), interoperability with a replica written by Litestream v0.5.18 (and,
// optionally, with a real Litestream binary), and the command line's error
// cases.
//
// Environment:
//
//	E2E_SEED   seed of the randomized tests (printed by every run)
//	E2E_TXNS   transactions of the randomized workload (default 4000)
//	E2E_LITESTREAM_V05  a real Litestream v0.5 binary: enables the
//	           interop tests in litestream_test.go (skipped otherwise)
//
// The binary is internal/testsupport's cached build (BuildCLI), and the
// Litestream v0.5.18 fixture is in the repository (testsupport.Fixture).
package e2e
