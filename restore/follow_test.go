package restore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/testsupport"
	"github.com/litestream-go/litestream/remote"
	fileremote "github.com/litestream-go/litestream/remote/file"
)

const followPS = 512

// followPrimary writes a synthetic replica: random page changes per TXID,
// with the database image at each TXID kept for comparison.
type followPrimary struct {
	t      *testing.T
	c      remote.Client
	rng    *rand.Rand
	img    []byte
	txid   ltx.TXID
	images map[ltx.TXID][]byte
	// changed[txid] are the pages each TXID wrote.
	changed map[ltx.TXID]map[uint32]bool
}

func newFollowPrimary(t *testing.T) *followPrimary {
	return &followPrimary{
		t: t, c: fileremote.New(t.TempDir()), rng: testsupport.Rand(t, 7),
		images: map[ltx.TXID][]byte{}, changed: map[ltx.TXID]map[uint32]bool{},
	}
}

// commit changes random pages (and sometimes the size) as the next TXID,
// written to level 0 (and level 9 for TXID 1).
func (p *followPrimary) commit() {
	p.t.Helper()
	p.txid++
	n := uint32(len(p.img) / followPS)
	if p.txid == 1 {
		n = 20
	} else {
		switch p.rng.IntN(5) {
		case 0:
			n += uint32(p.rng.IntN(5))
		case 1:
			n -= uint32(p.rng.IntN(3))
		}
	}
	img := make([]byte, int(n)*followPS)
	copy(img, p.img)
	ch := map[uint32]bool{}
	for i := 0; i < 1+p.rng.IntN(4); i++ {
		ch[1+uint32(p.rng.IntN(int(n)))] = true
	}
	for pg := uint32(len(p.img)/followPS) + 1; pg <= n; pg++ {
		ch[pg] = true
	}
	if p.txid == 1 {
		for pg := uint32(1); pg <= n; pg++ {
			ch[pg] = true
		}
	}
	for pg := range ch {
		for i := 0; i < followPS; i++ {
			img[int(pg-1)*followPS+i] = byte(p.rng.Uint32())
		}
	}
	p.img = img
	p.images[p.txid] = img
	p.changed[p.txid] = ch
	p.write(0, p.txid, p.txid)
	if p.txid == 1 {
		p.write(remote.SnapshotLevel, 1, 1)
	}
}

// commitN commits n times.
func (p *followPrimary) commitN(n int) {
	p.t.Helper()
	for i := 0; i < n; i++ {
		p.commit()
	}
}

// write encodes the pages changed in minTXID..maxTXID at their state at
// maxTXID as one file of level.
func (p *followPrimary) write(level int, minTXID, maxTXID ltx.TXID) {
	p.t.Helper()
	img := p.images[maxTXID]
	commit := uint32(len(img) / followPS)
	pages := map[uint32]bool{}
	for tx := minTXID; tx <= maxTXID; tx++ {
		for pg := range p.changed[tx] {
			if pg <= commit {
				pages[pg] = true
			}
		}
	}
	spec := ltx.FileSpec{Header: ltx.Header{Flags: ltx.HeaderFlagNoChecksum, PageSize: followPS,
		Commit: commit, MinTXID: minTXID, MaxTXID: maxTXID, Timestamp: time.Now().UnixMilli()}}
	for pg := uint32(1); pg <= commit; pg++ {
		if pages[pg] {
			spec.Pages = append(spec.Pages, ltx.PageSpec{Header: ltx.PageHeader{Pgno: pg}, Data: img[int(pg-1)*followPS : int(pg)*followPS]})
		}
	}
	data := testsupport.LTX(p.t, spec)
	if _, err := p.c.WriteLTXFile(context.Background(), level, minTXID, maxTXID, bytes.NewReader(data)); err != nil {
		p.t.Fatal(err)
	}
}

// followTo runs Follow until it has applied txid, then stops it.
func followTo(t *testing.T, c remote.Client, out string, txid ltx.TXID) {
	t.Helper()
	f := startFollow(t, c, out, discardLogger())
	waitApplied(t, f.applied, txid)
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
}

// bgFollow is a Follow running in the background, polling every 10 ms.
type bgFollow struct {
	cancel context.CancelFunc
	done   chan error
	mu     sync.Mutex
	last   ltx.TXID
}

func startFollow(t *testing.T, c remote.Client, out string, logger *slog.Logger) *bgFollow {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f := &bgFollow{cancel: cancel, done: make(chan error, 1)}
	go func() {
		f.done <- Follow(ctx, c, FollowOptions{OutputPath: out, Interval: 10 * time.Millisecond, Logger: logger,
			Applied: func(txid ltx.TXID) { f.mu.Lock(); f.last = txid; f.mu.Unlock() }})
	}()
	return f
}

// applied is the last TXID the follower applied.
func (f *bgFollow) applied() ltx.TXID { f.mu.Lock(); defer f.mu.Unlock(); return f.last }

// stop cancels the follower and returns Follow's error.
func (f *bgFollow) stop() error { f.cancel(); return <-f.done }

// followOnce runs Follow in the foreground, polling every millisecond, until
// it returns (the tests that call it expect an error).
func followOnce(c remote.Client, out string) error {
	return Follow(context.Background(), c, FollowOptions{OutputPath: out, Interval: time.Millisecond, Logger: discardLogger()})
}

func waitApplied(t *testing.T, applied func() ltx.TXID, txid ltx.TXID) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for applied() < txid {
		if time.Now().After(deadline) {
			t.Fatalf("follower at TXID %s, want %s", applied(), txid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func checkFollowOutput(t *testing.T, out string, want []byte, txid ltx.TXID) {
	t.Helper()
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("output at TXID %s differs (%d bytes, want %d)", txid, len(got), len(want))
	}
	b, err := os.ReadFile(out + "-txid")
	if err != nil || string(bytes.TrimSpace(b)) != txid.String() {
		t.Fatalf("recorded TXID %q, %v; want %s", b, err, txid)
	}
}

func TestFollowAppliesNewFiles(t *testing.T) {
	p := newFollowPrimary(t)
	p.commitN(5)
	out := filepath.Join(t.TempDir(), "f.db")
	f := startFollow(t, p.c, out, discardLogger())
	waitApplied(t, f.applied, 5)
	for i := 0; i < 30; i++ {
		p.commit()
		if i%7 == 0 {
			waitApplied(t, f.applied, p.txid)
		}
	}
	waitApplied(t, f.applied, p.txid)
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
	checkFollowOutput(t, out, p.img, p.txid)

	// Resume: stopped and behind; meanwhile level 0 was compacted into
	// level 1 and deleted, including a file straddling the output's TXID.
	at := p.txid
	p.commitN(6)
	p.write(1, at-2, p.txid) // overlaps the output's state
	l0, _ := p.c.LTXFiles(context.Background(), 0, at-2)
	if err := p.c.DeleteLTXFiles(context.Background(), l0); err != nil {
		t.Fatal(err)
	}
	followTo(t, p.c, out, p.txid)
	checkFollowOutput(t, out, p.img, p.txid)
}

// TestFollowCrashResume leaves the state of a crash in the middle of an
// apply (journal downloaded, some pages written, TXID not recorded): the
// next Follow re-applies it and goes on.
func TestFollowCrashResume(t *testing.T) {
	p := newFollowPrimary(t)
	p.commitN(4)
	out := filepath.Join(t.TempDir(), "f.db")
	followTo(t, p.c, out, 4)
	p.commit()
	p.commit()
	// The crash: TXID 5 downloaded to the journal and half applied.
	f := &follower{c: p.c, out: out, log: discardLogger()}
	l0, _ := p.c.LTXFiles(context.Background(), 0, 5)
	if err := f.fetch(context.Background(), l0[0]); err != nil {
		t.Fatal(err)
	}
	img5 := p.images[5]
	o, err := os.OpenFile(out, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	o.WriteAt(img5[:followPS], 0) // page 1 (changed or not, idempotent)
	o.Close()

	followTo(t, p.c, out, 6)
	checkFollowOutput(t, out, p.img, 6)
	if _, err := os.Stat(out + "-follow.ltx"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("journal left behind: %v", err)
	}
}

func TestFollowErrors(t *testing.T) {
	p := newFollowPrimary(t)
	p.commitN(3)
	dir := t.TempDir()
	// An existing database without a recorded TXID is not followed.
	plain := filepath.Join(dir, "plain.db")
	os.WriteFile(plain, []byte("x"), 0o644)
	err := Follow(context.Background(), p.c, FollowOptions{OutputPath: plain, Logger: discardLogger()})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("not recorded")) {
		t.Fatalf("follow of a plain file: %v", err)
	}

	// History deleted past the follower: a clear error.
	out := filepath.Join(dir, "f.db")
	f := startFollow(t, p.c, out, discardLogger())
	waitApplied(t, f.applied, 3)
	f.stop()
	p.commitN(3)
	l0, _ := p.c.LTXFiles(context.Background(), 0, 4)
	p.c.DeleteLTXFiles(context.Background(), l0[:1])
	err = followOnce(p.c, out)
	if !errors.Is(err, ErrFollowGap) || !strings.Contains(err.Error(), "TXIDs 0000000000000004-0000000000000004") {
		t.Fatalf("follow across a gap: %v", err)
	}
	checkFollowOutput(t, out, p.images[3], 3)
}

// A file whose bytes are another file's (swapped under its name) is an
// error naming it, and nothing of it is applied. Before, follow applied
// TXID 5's bytes found under TXID 6's name, believed itself at TXID 6, and
// later applied TXID 7 on top of the state at 5: pages of two states mixed.
func TestFollowSwappedFile(t *testing.T) {
	p, root, out := followerBehind(t)
	l0 := filepath.Join(root, "ltx", "0")
	five, err := os.ReadFile(filepath.Join(l0, ltx.FormatFilename(5, 5)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(l0, ltx.FormatFilename(6, 6)), five, 0o644); err != nil {
		t.Fatal(err)
	}
	err = followOnce(p.c, out)
	if err == nil || !strings.Contains(err.Error(), "level 0 file 0000000000000006-0000000000000006.ltx") || !strings.Contains(err.Error(), "header says TXIDs 0000000000000005") {
		t.Fatalf("follow over a swapped file: %v", err)
	}
	checkFollowOutput(t, out, p.images[5], 5)
}

// followerBehind returns a primary on a file replica (root) at TXID 7 and
// the output of a follower stopped at TXID 4, for tests that damage one of
// the files of TXIDs 5-7 before following again.
func followerBehind(t *testing.T) (p *followPrimary, root, out string) {
	t.Helper()
	p = newFollowPrimary(t)
	root = t.TempDir()
	p.c = fileremote.New(root)
	p.commitN(4)
	out = filepath.Join(t.TempDir(), "f.db")
	followTo(t, p.c, out, 4)
	p.commitN(3) // 5, 6, 7
	return p, root, out
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A damaged file (a byte flipped, or cut short) is an error naming the
// replica's file, not only the local journal it was downloaded to, and
// nothing of it is applied. Before, the error named only the journal
// ("follow: decode .../f.db-follow.ltx: ..."), so the user could not tell which
// replica file to look at (issue 9 point 2: "an error naming it").
func TestFollowDamagedFile(t *testing.T) {
	for _, kind := range []string{"flip", "truncate"} {
		t.Run(kind, func(t *testing.T) {
			p, root, out := followerBehind(t)
			six := filepath.Join(root, "ltx", "0", ltx.FormatFilename(6, 6))
			b, err := os.ReadFile(six)
			if err != nil {
				t.Fatal(err)
			}
			// Past the header, so the file still names TXID 6: only
			// decoding the whole file finds the damage.
			at := ltx.HeaderSize + (len(b)-ltx.HeaderSize)/2
			if kind == "flip" {
				b[at] ^= 0x55
			} else {
				b = b[:at]
			}
			if err := os.WriteFile(six, b, 0o644); err != nil {
				t.Fatal(err)
			}
			err = followOnce(p.c, out)
			if err == nil || !strings.Contains(err.Error(), "level 0 file 0000000000000006-0000000000000006.ltx") {
				t.Fatalf("follow over a damaged file: %v", err)
			}
			checkFollowOutput(t, out, p.images[5], 5)
		})
	}
}
