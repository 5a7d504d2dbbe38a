package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/pierrec/lz4/v4"
)

// v3Fixture builds a Litestream v0.3 replica (generations/ layout) the way
// v0.3 wrote it: an LZ4 snapshot of the database file at the start of WAL
// index 0, then LZ4 segments of the WAL files, byte ranges at their
// offsets (two segments of index 0, one of index 1 after a checkpoint
// restarted the WAL). It returns the objects by key with their times and
// the row counts expected at each time.
type v3Obj struct {
	key  string
	data []byte
	time time.Time
}

func v3Fixture(t *testing.T) (objs []v3Obj, rowsAt map[time.Time]int) {
	t.Helper()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	app := openApp(t, dbPath)
	if _, err := app.Exec(`PRAGMA wal_autocheckpoint = 0`); err != nil {
		t.Fatal(err)
	}
	lz := func(b []byte) []byte {
		var buf bytes.Buffer
		w := lz4.NewWriter(&buf)
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	checkpoint := func() {
		if _, err := app.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			t.Fatal(err)
		}
	}
	const gen = "0123456789abcdef"
	base := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }
	rowsAt = map[time.Time]int{}
	rows := 0

	insertRows(t, app, 10)
	rows += 10
	checkpoint()
	objs = append(objs, v3Obj{fmt.Sprintf("generations/%s/snapshots/%08x.snapshot.lz4", gen, 0), lz(read(dbPath)), at(0)})
	rowsAt[at(0)] = rows

	insertRows(t, app, 7)
	rows += 7
	wal := read(dbPath + "-wal")
	objs = append(objs, v3Obj{fmt.Sprintf("generations/%s/wal/%08x_%08x.wal.lz4", gen, 0, 0), lz(wal), at(1)})
	rowsAt[at(1)] = rows
	n := len(wal)

	insertRows(t, app, 5)
	rows += 5
	wal = read(dbPath + "-wal")
	objs = append(objs, v3Obj{fmt.Sprintf("generations/%s/wal/%08x_%08x.wal.lz4", gen, 0, n), lz(wal[n:]), at(2)})
	rowsAt[at(2)] = rows

	checkpoint()
	insertRows(t, app, 3)
	rows += 3
	objs = append(objs, v3Obj{fmt.Sprintf("generations/%s/wal/%08x_%08x.wal.lz4", gen, 1, 0), lz(read(dbPath + "-wal")), at(3)})
	rowsAt[at(3)] = rows
	return objs, rowsAt
}

// TestRestore_V3 restores a Litestream v0.3 replica (file and S3 layouts)
// at its latest state and at each point in time, with this program and
// with Litestream v0.5.18, which agree. Before, this program said "no
// backups found".
func TestRestore_V3(t *testing.T) {
	objs, rowsAt := v3Fixture(t)
	latest := 0
	for _, n := range rowsAt {
		latest = max(latest, n)
	}
	check := func(t *testing.T, url string, env []string, tools ...tool) {
		for _, tl := range tools {
			dir := t.TempDir()
			out := filepath.Join(dir, "latest.db")
			tl.mustRun(t, env, "restore", "-o", out, url)
			if n := rowCount(t, out); n != latest {
				t.Errorf("%s: latest holds %d rows, want %d", tl.name, n, latest)
			}
			for ts, want := range rowsAt {
				out := filepath.Join(dir, fmt.Sprintf("at-%d.db", ts.Unix()))
				tl.mustRun(t, env, "restore", "-timestamp", ts.Format(time.RFC3339), "-o", out, url)
				if n := rowCount(t, out); n != want {
					t.Errorf("%s: at %s holds %d rows, want %d", tl.name, ts.Format(time.RFC3339), n, want)
				}
			}
		}
	}
	ours := oursTool()

	t.Run("file", func(t *testing.T) {
		root := t.TempDir()
		for _, o := range objs {
			p := filepath.Join(root, filepath.FromSlash(o.key))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, o.data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, o.time, o.time); err != nil {
				t.Fatal(err)
			}
		}
		url := "file://" + root
		check(t, url, nil, ours)
		if res := runCLI(t, "restore", "-txid", "1", "-o", filepath.Join(t.TempDir(), "x.db"), url); res.code != 1 || !strings.Contains(res.stderr, "no TXIDs") {
			t.Errorf("-txid on a v0.3 replica: exit %d %q", res.code, res.stderr)
		}
		// A stale WAL beside the output would be applied by SQLite to the
		// restored database: refused without -force, as for v0.5 replicas
		// (restore.Publish), and removed with it.
		out := filepath.Join(t.TempDir(), "stale.db")
		if err := os.WriteFile(out+"-wal", []byte("stale"), 0o644); err != nil {
			t.Fatal(err)
		}
		if res := runCLI(t, "restore", "-o", out, url); res.code != 1 || !strings.Contains(res.stderr, out+"-wal") {
			t.Errorf("v0.3 restore beside a stale WAL: exit %d %q, want an error naming it", res.code, res.stderr)
		}
		ours.mustRun(t, nil, "restore", "-force", "-o", out, url)
		if _, err := os.Stat(out + "-wal"); !os.IsNotExist(err) || rowCount(t, out) != latest {
			t.Errorf("v0.3 restore -force beside a stale WAL: wal %v, rows %d, want gone and %d", err, rowCount(t, out), latest)
		}
		_, theirs := bothTools(t)
		check(t, url, nil, theirs)
	})

	t.Run("s3", func(t *testing.T) {
		_, theirs := bothTools(t)
		m := startMinIO(t) // both tools get the credentials in their environment (m.env)
		m.bucket(t, "v03-replica")
		// S3 keeps its own upload times; the latest state is what both
		// restore there.
		for _, o := range objs {
			if _, err := m.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("v03-replica"),
				Key: aws.String("backups/app/" + o.key), Body: bytes.NewReader(o.data)}); err != nil {
				t.Fatal(err)
			}
		}
		url := m.url("v03-replica", "backups/app")
		for _, tl := range []tool{ours, theirs} {
			out := filepath.Join(t.TempDir(), "latest.db")
			tl.mustRun(t, m.env(), "restore", "-o", out, url)
			if n := rowCount(t, out); n != latest {
				t.Errorf("%s: latest holds %d rows, want %d", tl.name, n, latest)
			}
		}
	})
}
