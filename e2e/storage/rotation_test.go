package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/crypt"
	"github.com/litestream-go/litestream/remote/file"
	"github.com/litestream-go/litestream/restore"
	"github.com/litestream-go/litestream/writer"
)

// TestAgeKeyRotation (issue 13 item 5) follows the README's procedure: a
// replica written with key A; the writer restarts with recipient B and
// identities A and B (it reads A's files to resume and compact); a snapshot
// encrypted to B, then retention, re-encrypt the history: afterwards every
// file decrypts with B alone, restore with B alone equals the source, and A
// alone no longer reads the replica.
func TestAgeKeyRotation(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	a, _ := age.GenerateX25519Identity()
	b, _ := age.GenerateX25519Identity()
	dir := t.TempDir()
	root := filepath.Join(dir, "replica")
	path := filepath.Join(dir, "app.db")
	app := openApp(t, path)
	wrap := func(rcpt *age.X25519Identity, ids ...age.Identity) remote.Client {
		c, err := crypt.New(file.New(root), crypt.Options{Recipients: []age.Recipient{rcpt.Recipient()}, Identities: ids})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	insert := func(n int) {
		for i := range n {
			if _, err := app.Exec(`INSERT INTO t(n, v) VALUES (?, randomblob(300))`, i); err != nil {
				t.Fatal(err)
			}
		}
	}
	run := func(c remote.Client, opts writer.Options, steps func(d *writer.DB)) {
		t.Helper()
		opts.StagingDir = filepath.Join(dir, "staging")
		opts.Logger = quiet(t)
		opts.MonitorInterval = time.Hour
		opts.SnapshotInterval = -1
		opts.Levels = []time.Duration{time.Hour} // level 1 is the top level, compacted by hand here
		d := writer.New(path, c, opts)
		if err := d.Open(ctx); err != nil {
			t.Fatal(err)
		}
		steps(d)
		if err := d.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sync := func(d *writer.DB) {
		t.Helper()
		if err := d.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// compactAndSnapshot compacts level 0 into level 1, then writes a
	// snapshot: both read the files there and write new ones.
	compactAndSnapshot := func(d *writer.DB) {
		t.Helper()
		if _, err := d.Compact(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Snapshot(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// Key A: level-0 files, a compaction and a snapshot.
	run(wrap(a, a), writer.Options{RetentionDisabled: true}, func(d *writer.DB) {
		for range 5 {
			insert(20)
			sync(d)
		}
		compactAndSnapshot(d)
		insert(20)
		sync(d)
	})

	// Rotation: recipient B, identities A and B; more writes, a compaction
	// and a snapshot (both read A's files and write B's) and retention with
	// no grace, as the daemon's schedule does in time.
	run(wrap(b, a, b), writer.Options{SnapshotRetention: time.Millisecond, L0Retention: time.Millisecond, RetentionGrace: -1},
		func(d *writer.DB) {
			insert(20)
			sync(d)
			compactAndSnapshot(d)
			time.Sleep(5 * time.Millisecond) // let the old files pass the 1 ms retention
			if _, err := d.EnforceRetention(ctx); err != nil {
				t.Fatal(err)
			}
		})
	want := digest(t, app)

	// Every file left decrypts with B alone.
	onlyB, err := crypt.New(file.New(root), crypt.Options{Identities: []age.Identity{b}})
	if err != nil {
		t.Fatal(err)
	}
	files, err := remote.ListAll(ctx, onlyB)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, remote.IDOf(f).String())
		rc, err := remote.OpenFile(ctx, onlyB, f, 0, 0)
		if err == nil {
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
		}
		if err != nil {
			t.Errorf("after rotation: %v", err)
		}
	}
	t.Logf("files after rotation: %v", names)

	out := filepath.Join(dir, "restored.db")
	if _, err := restore.Run(ctx, onlyB, restore.Options{OutputPath: out, Logger: quiet(t)}); err != nil {
		t.Fatalf("restore with B alone: %v", err)
	}
	if got := digest(t, openReadOnly(t, out)); got != want {
		t.Fatalf("restored with B alone: %s, want %s", got, want)
	}

	onlyA, _ := crypt.New(file.New(root), crypt.Options{Identities: []age.Identity{a}})
	_, err = restore.Run(ctx, onlyA, restore.Options{OutputPath: filepath.Join(dir, "a.db"), Logger: quiet(t)})
	if !errors.Is(err, crypt.ErrWrongIdentity) {
		t.Errorf("restore with the retired key A: %v, want %v", err, fmt.Sprint(crypt.ErrWrongIdentity))
	}
}
