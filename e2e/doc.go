// Package e2e holds the project's end-to-end tests. They build the real
// litestream binary once (TestMain), run "litestream replicate" as a
// subprocess against real SQLite databases written by the test process, and
// check restores through the command line against the source: randomized
// workloads, SIGKILL crashes, a database larger than 1 GiB (with the lock
// page), interoperability with a replica written by Litestream v0.5.18 and
// with the real Litestream v0.5.18 (both tools on one replica, file and
// MinIO: bothways_test.go), age-encrypted replicas, Litestream v0.3
// replicas, config credentials on NATS, and the command line's error cases.
// The end-to-end test of each storage backend in process is in e2e/storage.
//
// Environment:
//
//	E2E_SEED   seed of the randomized tests (printed by every run)
//	E2E_TXNS   transactions of the randomized workload (default 4000)
//	E2E_LITESTREAM_V05  a real Litestream v0.5 binary: enables the
//	           interop tests in litestream_test.go (skipped otherwise)
//	LITESTREAM_REQUIRE_SERVERS=1  MinIO or the installed Litestream v0.5.18
//	           (scripts/testservers/) missing is a failure, not a skip
//
// The binary is internal/testsupport's cached build (BuildCLI), and the
// Litestream v0.5.18 fixture is in the repository (testsupport.Fixture).
package e2e
