// Package chaos is the adversarial suite (`make chaos`): it drives the real
// binaries — `litestream replicate`, `litestream restore` (also `-f`), the
// sqlite3 shell as the application and, with the built litestream_vfs
// extension, as a replica reader — through crashes, damaged replica files,
// full disks and storage faults, and checks every reader against what SQLite
// shows in the source.
//
// Every test prints its seed and a final line
//
//	TestName: trials=N wrong=W lost=L stuck=S
//
// wrong: a reader returned a state SQLite never showed (or a corrupt one)
// without an error; lost: a state older than the one the reader had to
// return (a committed transaction missing after the final sync, or a
// "latest" restore that silently stopped before files the replica holds);
// stuck: the replica did not catch up with a quiet source within the bound.
// Any non-zero count fails the test.
//
// Environment:
//
//	CHAOS=long     run each test longer (default: the short profile of
//	               `make test`, about 5 minutes for the whole suite)
//	CHAOS_SEED=N   reproduce a run (each test logs its seed)
//	CHAOS_KEEP=1   keep the built binaries and the tests' directories
package chaos
