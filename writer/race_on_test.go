//go:build race

package writer

// raceEnabled skips tests that hash a gigabyte, which the race detector
// slows down tenfold.
const raceEnabled = true
