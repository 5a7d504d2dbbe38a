//go:build !SQLITE3VFS_LOADABLE_EXT

package main

// Built without the tag, sqlite3vfs calls SQLite's functions by name, and a
// shared library would bind them to whatever SQLite the dynamic linker
// finds (the trap in FIELD-NOTES.md). Such a build exists only so that
// `go build ./...` and `go vet ./...` work: it links Debian's libsqlite3 to
// resolve those names, and its entry point refuses to load.

// #cgo LDFLAGS: -lsqlite3
import "C"

// loadableBuild reports whether sqlite3vfs routes SQLite calls through the
// host's API pointer.
const loadableBuild = false
