package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"

	_ "github.com/mattn/go-sqlite3" // the integrity check after restore
)

// This file holds the command's only direct uses of SQLite (through
// mattn/go-sqlite3): checking a restored database and creating an empty one.

// integrityCheck runs PRAGMA quick_check ("quick") or integrity_check
// ("full") on the database at path; "none" skips it. The file is opened
// read-only and immutable, so no -wal or -shm file is created beside it.
func integrityCheck(ctx context.Context, path, mode string) error {
	var pragma string
	switch mode {
	case "none":
		return nil
	case "quick", "":
		pragma = "PRAGMA quick_check"
	case "full":
		pragma = "PRAGMA integrity_check"
	default:
		return fmt.Errorf("unknown integrity check %q", mode)
	}
	dsn := (&url.URL{Scheme: "file", Path: path, RawQuery: "mode=ro&immutable=1"}).String()
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return fmt.Errorf("integrity check of %s: %w", path, err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, pragma)
	if err != nil {
		return fmt.Errorf("integrity check of %s: %w", path, err)
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return fmt.Errorf("integrity check of %s: %w", path, err)
		}
		msgs = append(msgs, s)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("integrity check of %s: %w", path, err)
	}
	if len(msgs) == 1 && msgs[0] == "ok" {
		return nil
	}
	if len(msgs) > 5 {
		msgs = append(msgs[:5], fmt.Sprintf("... (%d more)", len(msgs)-5))
	}
	return fmt.Errorf("integrity check (%s) of restored database %s failed: %s", mode, path, strings.Join(msgs, "; "))
}

// createEmptyDB creates an empty SQLite database in WAL mode at path.
func createEmptyDB(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite3", (&url.URL{Scheme: "file", Path: path, RawQuery: "mode=rwc"}).String())
	if err != nil {
		return fmt.Errorf("create database %s: %w", path, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "PRAGMA journal_mode=WAL"); err != nil {
		return fmt.Errorf("create database %s: %w", path, err)
	}
	return db.Close()
}
