package restore

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/testsupport"
)

// bigPrimary is a followPrimary whose database is about mib MiB.
func bigPrimary(t *testing.T, mib int) *followPrimary {
	p := newFollowPrimary(t)
	p.commit()
	bigPrimaryGrow(t, p, mib)
	return p
}

// A restore onto a full volume fails with an error naming the file and the
// cause, leaves nothing behind, and the same restore works once space
// returns.
func TestRestoreDiskFull(t *testing.T) {
	disk := testsupport.MountTmpfs(t, "30m")
	p := bigPrimary(t, 8)
	filler := testsupport.FillVolume(t, disk, 2<<20)
	out := filepath.Join(disk, "out.db")
	_, err := Run(context.Background(), p.c, Options{OutputPath: out, Logger: discardLogger()})
	if err == nil || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), out) {
		t.Fatalf("restore onto a full volume: %v, want ENOSPC naming %s", err, out)
	}
	if names := testsupport.DirNames(t, disk); len(names) != 1 {
		t.Fatalf("a failed restore left %v", names)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), p.c, Options{OutputPath: out, Logger: discardLogger()}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, p.img) {
		t.Fatalf("restored output differs (%v)", err)
	}
}

// logCatcher records the messages of log records that carry an error.
type logCatcher struct {
	mu   sync.Mutex
	errs []string
}

func (l *logCatcher) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCatcher) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "error" || a.Key == "err" {
			l.mu.Lock()
			l.errs = append(l.errs, a.Value.String())
			l.mu.Unlock()
		}
		return true
	})
	return nil
}
func (l *logCatcher) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCatcher) WithGroup(string) slog.Handler      { return l }
func (l *logCatcher) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.errs {
		if strings.Contains(e, s) {
			return true
		}
	}
	return false
}

// restore -f on a volume that fills up: the follower reports the full disk
// (naming the file) and keeps going; once space returns it catches up to
// exactly the replica's state. Before, Follow returned the first error and
// the command exited.
func TestFollowDiskFull(t *testing.T) {
	disk := testsupport.MountTmpfs(t, "30m")
	p := bigPrimary(t, 4)
	out := filepath.Join(disk, "f.db")
	logs := &logCatcher{}
	f := startFollow(t, p.c, out, slog.New(logs))
	waitApplied(t, f.applied, p.txid)

	filler := testsupport.FillVolume(t, disk, 64<<10)
	grown := bigPrimaryGrow(t, p, 6) // new files larger than the space left
	waitFullDiskLogged(t, logs, f)
	if !logs.has(disk) {
		t.Fatalf("the full-disk error does not name the file: %v", logs.errs)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, f.applied, grown)
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
	checkFollowOutput(t, out, p.img, p.txid)
	for _, n := range testsupport.DirNames(t, disk) {
		if strings.HasSuffix(n, ".tmp") || strings.Contains(n, "follow") {
			t.Fatalf("left behind: %s (all: %v)", n, testsupport.DirNames(t, disk))
		}
	}
}

// bigPrimaryGrow adds TXIDs that grow the database by about mib MiB in all
// and returns the last TXID.
func bigPrimaryGrow(t *testing.T, p *followPrimary, mib int) ltx.TXID {
	t.Helper()
	target := len(p.img) + mib<<20
	for len(p.img) < target {
		p.txid++
		n := uint32(len(p.img)/followPS) + 2048
		img := make([]byte, int(n)*followPS)
		copy(img, p.img)
		ch := map[uint32]bool{}
		for pg := uint32(len(p.img)/followPS) + 1; pg <= n; pg++ {
			ch[pg] = true
			for i := 0; i < followPS; i++ {
				img[int(pg-1)*followPS+i] = byte(p.rng.Uint32())
			}
		}
		p.img, p.images[p.txid], p.changed[p.txid] = img, img, ch
		p.write(0, p.txid, p.txid)
	}
	return p.txid
}

// The initial restore of restore -f on a full volume waits for space too.
func TestFollowDiskFullAtStart(t *testing.T) {
	disk := testsupport.MountTmpfs(t, "30m")
	p := bigPrimary(t, 4)
	filler := testsupport.FillVolume(t, disk, 1<<20)
	out := filepath.Join(disk, "f.db")
	logs := &logCatcher{}
	f := startFollow(t, p.c, out, slog.New(logs))
	waitFullDiskLogged(t, logs, f)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, f.applied, p.txid)
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
	checkFollowOutput(t, out, p.img, p.txid)
}

// waitFullDiskLogged waits until the follower logs a full-disk error; its
// returning meanwhile is a failure (it must carry on).
func waitFullDiskLogged(t *testing.T, logs *logCatcher, f *bgFollow) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !logs.has("no space left on device") {
		select {
		case err := <-f.done:
			t.Fatalf("follow stopped on a full disk: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no full-disk error reported (errors: %v)", logs.errs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
