package writer

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/litestream-go/litestream/remote/file"
)

// benchDB creates a database of about mb MiB (incompressible rows) with the
// given WAL checkpointed into it.
func benchDB(b *testing.B, mb int) (string, *sql.DB) {
	b.Helper()
	dir := b.TempDir()
	path := filepath.Join(dir, "bench.db")
	app, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000&_journal_mode=WAL")
	if err != nil {
		b.Fatal(err)
	}
	app.SetMaxOpenConns(1)
	b.Cleanup(func() { app.Close() })
	for _, q := range []string{
		`CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)`,
		`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < ?) INSERT INTO t(v) SELECT randomblob(1000) FROM c`,
		`PRAGMA wal_checkpoint(TRUNCATE)`,
	} {
		if _, err := app.Exec(q, mb*1024); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	return path, app
}

// openBench opens a writer of path that replicates to a new file replica in
// a temporary directory; the caller closes it.
func openBench(b *testing.B, path string) *DB {
	b.Helper()
	dir := b.TempDir()
	d := New(path, file.New(filepath.Join(dir, "replica")), Options{
		StagingDir: filepath.Join(dir, "staging"),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := d.Open(context.Background()); err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkSnapshot measures a first sync (full snapshot, L0 + L9) of a
// 64 MiB database to a file replica.
func BenchmarkSnapshot(b *testing.B) {
	path, _ := benchDB(b, 64)
	b.SetBytes(64 << 20)
	for i := 0; i < b.N; i++ {
		d := openBench(b, path)
		if err := d.Sync(context.Background()); err != nil {
			b.Fatal(err)
		}
		if err := d.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIncrementalSync measures one sync of a 100-row transaction
// (about 30 pages) into a 16 MiB database.
func BenchmarkIncrementalSync(b *testing.B) {
	path, app := benchDB(b, 16)
	d := openBench(b, path)
	ctx := context.Background()
	defer d.Close(ctx)
	if err := d.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if _, err := app.Exec(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 100) INSERT INTO t(v) SELECT randomblob(1000) FROM c`); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := d.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		if i%50 == 49 {
			if err := d.Checkpoint(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
}
