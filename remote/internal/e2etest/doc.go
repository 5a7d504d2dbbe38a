// Package e2etest holds the end-to-end test of every remote backend: a
// writer replicates a database under write load to the backend's real
// test server, then restore.Run restores it and the VFS queries it, both
// through a client opened from the replica URL, and all three must agree.
// It has no code of its own besides the test.
package e2etest
