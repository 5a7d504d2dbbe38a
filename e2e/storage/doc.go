// Package storage holds the end-to-end test of every remote backend, in
// process (no binary): a writer replicates a database under write load to
// the backend's real test server, then restore.Run restores it and the VFS
// queries it, both through a client opened from the replica URL, and all
// three must agree; also under injected storage faults (internal/faultproxy),
// the request cost of an idle reader, and age key rotation. It has no code
// of its own besides the tests. The end-to-end tests of the built binary are
// in the parent package, e2e.
package storage
