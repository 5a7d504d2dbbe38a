// Package archtest keeps docs/ARCHITECTURE.md true where a machine can
// check it: every package of the module has a row in the document's package
// table, imports only the project packages its row allows, and the
// dependency rules below the table hold (no SQLite or VFS in the restore and
// index layers, no VFS in the command line). It has no code besides its
// tests.
package archtest
