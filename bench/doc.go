// Package bench holds the benchmarks behind the figures in the README.
// They drive the real binary and real SQLite, so they run only with
// "go test -bench" (see restore.sh), never as part of the unit tests, and
// assert nothing about timing.
package bench
