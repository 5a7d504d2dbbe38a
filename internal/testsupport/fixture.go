package testsupport

import (
	"os"
	"path/filepath"
	"testing"
)

// The Litestream v0.5.18 fixture: a file-backend replica written by the real
// Litestream v0.5.18 daemon, the source database, and a README with the
// content expected at several TXIDs. It is data, never edited; it lives in
// this package's testdata so that a clone runs every test with nothing beside
// it (no ../shared folder, no path of one machine).
const fixtureName = "litestream-v0.5.18-file"

// FixtureSHA256 is the sha256 of the fixture's source.db, which Litestream's
// restore of the latest TXID (15) reproduces byte for byte.
const FixtureSHA256 = "14fa823941da3d28611583249fa3fc83fc60876a3e3753a1767652092a3c94bf"

// FixtureMaxTXID is the fixture replica's newest TXID.
const FixtureMaxTXID = 15

// Fixture returns the absolute path of the fixture's directory (README.md,
// source.db, replica/). Tests must not write into it: use FixtureCopy.
func Fixture(tb testing.TB) string {
	tb.Helper()
	root, err := RepoRoot()
	if err != nil {
		tb.Fatalf("locate the Litestream fixture: %v", err)
	}
	dir := filepath.Join(root, "internal", "testsupport", "testdata", fixtureName)
	if _, err := os.Stat(filepath.Join(dir, "replica", "ltx")); err != nil {
		tb.Fatalf("the Litestream fixture is missing from the repository: %v", err)
	}
	return dir
}

// FixtureReplica returns the absolute path of the fixture's replica root
// (the directory holding ltx/<level>/...), for a file backend or a file://
// URL. Read only.
func FixtureReplica(tb testing.TB) string {
	tb.Helper()
	return filepath.Join(Fixture(tb), "replica")
}

// FixtureSourceDB returns the absolute path of the fixture's source.db (the
// database at TXID 15). Read only.
func FixtureSourceDB(tb testing.TB) string {
	tb.Helper()
	return filepath.Join(Fixture(tb), "source.db")
}

// FixtureCopy returns a copy of the fixture's replica root in a temporary
// directory of tb, for tests that add, delete or damage replica files.
func FixtureCopy(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := os.CopyFS(dir, os.DirFS(FixtureReplica(tb))); err != nil {
		tb.Fatalf("copy the Litestream fixture: %v", err)
	}
	return dir
}
