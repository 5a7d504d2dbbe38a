package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/litestream-go/litestream/internal/testsupport"
	"github.com/superfly/ltx"
)

func dryRun(t *testing.T, replica string, args ...string) restorePlan {
	t.Helper()
	code, stdout, stderr := run(t, noConfig(t), append(append([]string{"restore", "-dry-run", "-json"}, args...), replica)...)
	if code != 0 {
		t.Fatalf("restore -dry-run %v: exit %d: %s", args, code, stderr)
	}
	var p restorePlan
	if err := json.Unmarshal([]byte(stdout), &p); err != nil {
		t.Fatalf("dry-run JSON: %v\n%s", err, stdout)
	}
	return p
}

func planString(p restorePlan) string {
	var parts []string
	for _, f := range p.Files {
		parts = append(parts, strings.TrimLeft(f.MinTXID, "0")+"-"+strings.TrimLeft(f.MaxTXID, "0")+"@"+string(rune('0'+f.Level)))
	}
	return strings.Join(parts, " ")
}

// TestRestore_DryRunAndTimestamp: the plan over the fixture's levels, as
// JSON and text, and a restore by timestamp to the moment a plan reports.
func TestRestore_DryRunAndTimestamp(t *testing.T) {
	fx := fixtureDir(t)
	replica := "file://" + filepath.Join(fx, "replica")
	for _, tc := range []struct {
		args []string
		txid string
		want string
	}{
		// Fewest files, newest snapshot first, then the longest steps.
		{nil, "000000000000000f", "1-1@9 2-9@2 a-f@2"},
		{[]string{"-txid", "5"}, "0000000000000005", "1-1@9 2-5@1"},
		{[]string{"-txid", "3"}, "0000000000000003", "1-1@9 2-2@0 3-3@0"},
		{[]string{"-txid", "000000000000000c"}, "000000000000000c", "1-1@9 2-9@2 a-a@0 b-b@0 c-c@0"},
	} {
		p := dryRun(t, replica, tc.args...)
		if p.TXID != tc.txid || planString(p) != tc.want {
			t.Errorf("dry-run %v: TXID %s plan %q, want %s %q", tc.args, p.TXID, planString(p), tc.txid, tc.want)
		}
		var sum int64
		for _, f := range p.Files {
			sum += f.Size
		}
		if sum != p.Size || sum == 0 {
			t.Errorf("dry-run size %d, files sum %d", p.Size, sum)
		}
	}

	// Text form.
	code, stdout, _ := run(t, noConfig(t), "restore", "-dry-run", "-txid", "9", replica)
	if code != 0 || !strings.Contains(stdout, "txid range: 0000000000000001 - 0000000000000009") || !strings.Contains(stdout, "Files to fetch:") {
		t.Errorf("text dry-run: exit %d\n%s", code, stdout)
	}

	// By timestamp: the moment TXID 9 was created gives TXID 9. A copy of
	// the fixture whose file times are the LTX header timestamps (as the
	// file backend writes them; checkouts lose them).
	stamped := testsupport.FixtureCopy(t)
	stampHeaderTimes(t, stamped)
	replica = "file://" + stamped
	p9 := dryRun(t, replica, "-txid", "9")
	ts := p9.Timestamp
	if p := dryRun(t, replica, "-timestamp", ts); p.TXID != "0000000000000009" {
		t.Errorf("dry-run -timestamp %s: TXID %s, want 9", ts, p.TXID)
	}
	out := filepath.Join(t.TempDir(), "at9.db")
	if code, _, stderr := run(t, noConfig(t), "restore", "-timestamp", ts, "-o", out, replica); code != 0 {
		t.Fatalf("restore -timestamp: exit %d: %s", code, stderr)
	}
	if got := queryString(t, out, "select count(*) || ',' || total(id) || ',' || total(length(name)) from users"); got != "4000,8002000.0,32561.0" {
		t.Errorf("users at TXID 9 = %s", got)
	}

	// Errors.
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"restore", "-f", "-txid", "5", "-o", out + "x", replica}, "cannot use -f with"},
		{[]string{"restore", "-dry-run", "-txid", "99", replica}, "the replica has TXIDs 0000000000000001"},
		{[]string{"restore", "-dry-run", "-timestamp", "2000-01-01T00:00:00Z", replica}, "no state was created at or before"},
	} {
		code, _, stderr := run(t, noConfig(t), tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want an error containing %q", tc.args, code, stderr, tc.msg)
		}
	}
}

// stampHeaderTimes sets each LTX file's modification time to its header
// timestamp.
func stampHeaderTimes(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".ltx") {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		buf := make([]byte, ltx.HeaderSize)
		if _, err := io.ReadFull(f, buf); err != nil {
			return err
		}
		var hdr ltx.Header
		if err := hdr.UnmarshalBinary(buf); err != nil {
			return err
		}
		ts := time.UnixMilli(hdr.Timestamp)
		return os.Chtimes(p, ts, ts)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRestore_Follow: restore -f restores the fixture, records its TXID and
// keeps running until interrupted; a second run resumes.
func TestRestore_Follow(t *testing.T) {
	dir := t.TempDir()
	replica := "file://" + testsupport.FixtureCopy(t)
	out := filepath.Join(dir, "follow.db")
	for round := 0; round < 2; round++ {
		ctx, cancel := context.WithCancel(context.Background())
		var stderr bytes.Buffer
		m := &Main{Stdout: &bytes.Buffer{}, Stderr: &stderr, Getenv: env(noConfig(t))}
		done := make(chan int, 1)
		go func() { done <- m.Main(ctx, []string{"restore", "-f", "-o", out, replica}) }()
		deadline := time.Now().Add(20 * time.Second)
		for {
			b, _ := os.ReadFile(out + "-txid")
			if strings.TrimSpace(string(b)) == "000000000000000f" {
				break
			}
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("round %d: no recorded TXID 15; stderr:\n%s", round, stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("round %d: restore -f exit %d: %s", round, code, stderr.String())
		}
		if got := testsupport.FileSHA256(t, out); got != fixtureSHA256 {
			t.Fatalf("round %d: followed output sha256 %s, want the source database's", round, got)
		}
	}
}

// TestRestore_Gap: a replica missing a level-0 file that nothing else covers
// used to restore "latest" as the state before the hole and exit 0. Now the
// restore fails naming the missing TXIDs and leaves no output; -allow-gap
// restores the state before the gap, identical to -txid at that point.
func TestRestore_Gap(t *testing.T) {
	dir := t.TempDir()
	root := testsupport.FixtureCopy(t)
	for _, f := range []string{"0/000000000000000d-000000000000000d.ltx", "1/000000000000000a-000000000000000f.ltx", "2/000000000000000a-000000000000000f.ltx"} {
		if err := os.Remove(filepath.Join(root, "ltx", f)); err != nil {
			t.Fatal(err)
		}
	}
	replica := "file://" + root

	out := filepath.Join(dir, "out.db")
	code, _, stderr := run(t, noConfig(t), "restore", "-o", out, replica)
	if code == 0 || !strings.Contains(stderr, "TXIDs 000000000000000d-000000000000000d") || !strings.Contains(stderr, "-allow-gap") {
		t.Fatalf("restore over a gap: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("a failed restore left %s: %v", out, err)
	}
	code, _, stderr = run(t, noConfig(t), "restore", "-dry-run", replica)
	if code == 0 || !strings.Contains(stderr, "TXIDs 000000000000000d-000000000000000d") {
		t.Fatalf("dry-run over a gap: exit %d\n%s", code, stderr)
	}
	if p := dryRun(t, replica, "-allow-gap"); p.TXID != "000000000000000c" {
		t.Fatalf("dry-run -allow-gap plans TXID %s, want 000000000000000c", p.TXID)
	}

	code, _, stderr = run(t, noConfig(t), "restore", "-allow-gap", "-o", out, replica)
	if code != 0 || !strings.Contains(stderr, "gap") {
		t.Fatalf("restore -allow-gap: exit %d\n%s", code, stderr)
	}
	want := filepath.Join(dir, "want.db")
	if code, _, stderr := run(t, noConfig(t), "restore", "-txid", "c", "-o", want, "file://"+testsupport.FixtureReplica(t)); code != 0 {
		t.Fatalf("restore -txid c of the intact fixture: exit %d\n%s", code, stderr)
	}
	if testsupport.FileSHA256(t, out) != testsupport.FileSHA256(t, want) {
		t.Fatal("restore -allow-gap differs from the intact replica's state at TXID c")
	}
	// -txid and -timestamp at or before the gap need no flag.
	if code, _, stderr := run(t, noConfig(t), "restore", "-txid", "c", "-o", filepath.Join(dir, "c.db"), replica); code != 0 {
		t.Fatalf("restore -txid c: exit %d\n%s", code, stderr)
	}
}
