//go:build SQLITE3VFS_LOADABLE_EXT

package main

// #cgo CFLAGS: -DLITESTREAM_LOADABLE=1
import "C"

// loadableBuild reports that sqlite3vfs routes SQLite calls through the
// host's API pointer.
const loadableBuild = true
