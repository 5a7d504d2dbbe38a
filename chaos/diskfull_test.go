package chaos

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// volume is a small tmpfs the test can fill.
type volume struct {
	t      *testing.T
	dir    string
	filler string
}

// mountVolume mounts a 30 MiB tmpfs at dir, or skips the test saying why
// it cannot.
func mountVolume(t *testing.T, dir string) *volume {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=30m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (needs root or CAP_SYS_ADMIN): mount -t tmpfs: %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		// Processes using the volume were killed by earlier cleanups
		// (registered later, run first); retry briefly, then detach.
		if !waitFor(10*time.Second, 100*time.Millisecond, func() bool { return exec.Command("umount", dir).Run() == nil }) {
			_ = exec.Command("umount", "-l", dir).Run()
		}
	})
	return &volume{t: t, dir: dir, filler: filepath.Join(dir, ".chaos-filler")}
}

// fill writes to the volume until it is full, then frees slack bytes
// (rounded to pages by tmpfs), so some writes still succeed.
func (v *volume) fill(slack int64) {
	f, err := os.OpenFile(v.filler, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		v.t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for _, chunk := range []int{1 << 20, 4096} {
		for {
			if _, err := f.Write(buf[:chunk]); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					v.t.Fatalf("fill %s: %v", v.dir, err)
				}
				break
			}
		}
	}
	if slack > 0 {
		fi, _ := f.Stat()
		_ = f.Truncate(max(0, fi.Size()-slack))
	}
}

func (v *volume) free() {
	if err := os.Remove(v.filler); err != nil && !errors.Is(err, os.ErrNotExist) {
		v.t.Fatal(err)
	}
}

// used is the space in use on the volume, in bytes, and its size.
func (v *volume) used() (used, size int64) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(v.dir, &st); err != nil {
		v.t.Fatal(err)
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize, int64(st.Blocks) * st.Bsize
}

// TestDiskFull fills, then frees, the volume of the database (and the
// daemon's staging directory beside it) and of the replica. Replication
// must carry on by itself once space returns, SIGTERM must exit 0 after a
// final sync, and the readers must equal the source.
func TestDiskFull(t *testing.T) {
	requireTools(t)
	t.Run("db", func(t *testing.T) { diskFullReplication(t, "db") })
	t.Run("replica", func(t *testing.T) { diskFullReplication(t, "replica") })
}

func diskFullReplication(t *testing.T, which string) {
	c := &tally{}
	defer c.report(t)
	_, rng := testSeed(t)
	dir := workDir(t)
	vol := mountVolume(t, filepath.Join(dir, "vol"))
	// Rounds of a few cycles, each with a fresh database and replica: the
	// replica keeps every level's copy of the history, which outgrows a
	// small volume after a few cycles.
	for round := 1; round <= pick(1, 5); round++ {
		rdir := mkdir(dir, fmt.Sprintf("round-%d", round))
		rvol := mkdir(vol.dir, fmt.Sprintf("round-%d", round))
		diskFullRound(t, c, rng, vol, which, rdir, rvol)
		if err := os.RemoveAll(rvol); err != nil {
			t.Fatal(err)
		}
	}
}

func diskFullRound(t *testing.T, c *tally, rng *rand.Rand, vol *volume, which, dir, voldir string) {
	db, replica := filepath.Join(dir, "app.db"), filepath.Join(dir, "replica")
	if which == "db" {
		db = filepath.Join(voldir, "app.db")
	} else {
		replica = filepath.Join(voldir, "replica")
	}
	w := newWorkload(rng)
	createDB(t, db)
	cfg := daemonYAML(t, dir, db, fileURL(replica), "")
	// Snapshots every minute, not every 5 s: each is the whole database,
	// and kept, they would fill the small volume by themselves.
	b, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), "snapshot: {interval: 5s", "snapshot: {interval: 1m", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startLS(t, "replicate", cleanEnv(), "replicate", "-config", cfg)
	if !waitFor(time.Minute, 20*time.Millisecond, func() bool { return replicaMax(replica) > 0 }) {
		t.Fatalf("no first sync:\n%s", tail(d.out.String(), 3000))
	}
	ch := newChecker(t, w, c, dir, db, replica)
	ch.startFollowers()
	reported, appErrs := 0, 0
	cycles := 4
	for cycle := 1; cycle <= cycles; cycle++ {
		bg := startWriter(t, w, db, 10*time.Millisecond)
		// Large transactions now and then fill the volume faster.
		time.Sleep(time.Duration(200+rng.IntN(500)) * time.Millisecond)
		id, sql := w.large("L", 300+rng.IntN(1000))
		_ = commitOnce(w, db, id, sql)
		// Either nearly full, or room for the application's next large
		// transactions in the WAL but not for the daemon's copy of them.
		slack := int64(rng.IntN(4)) * 64 << 10
		if rng.IntN(2) == 0 {
			slack = int64(1+rng.IntN(6)) << 20
		}
		logBefore := len(d.out.String())
		vol.fill(slack)
		// Writes go on against the full volume for a while.
		time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
		for range 2 {
			id, sql := w.large("L", 200+rng.IntN(600))
			_ = commitOnce(w, db, id, sql)
		}
		if strings.Contains(strings.ToLower(d.out.String()[logBefore:]), "no space left") {
			reported++
		}
		vol.free()
		// The test's own data must leave the volume mostly free, or a
		// stuck replica would only mean the volume is really full.
		if used, size := vol.used(); used > size*2/3 {
			t.Fatalf("cycle %d: the %s volume holds %d MiB of %d MiB without the filler: the test's data outgrew it", cycle, which, used>>20, size>>20)
		}
		time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
		appErrs += len(bg.halt())
		if d.exited() {
			t.Fatalf("cycle %d: replicate exited (%v):\n%s", cycle, d.err, tail(d.out.String(), 3000))
		}
		used, _ := vol.used()
		label := fmt.Sprintf("cycle %d (%s volume filled, %d KiB left; %d MiB used after freeing)", cycle, which, slack>>10, used>>20)
		t.Log(label)
		ch.check(label, false)
	}
	code := d.term(2 * time.Minute)
	final := "final"
	if code != 0 || !strings.Contains(d.out.String(), "final sync done") {
		c.add(outcomeLost, fmt.Sprintf("replicate exited %d after SIGTERM (want 0 after a final sync): %s", code, tail(d.out.String(), 2000)))
		final = "final (after a failed shutdown)"
	} else {
		c.add(outcomeOK, "")
	}
	ch.check(final, true)
	ch.finalSource()
	ch.live.kill()
	ch.follow.kill()
	t.Logf("%d cycles; the daemon's log named the full disk in %d; the application's writer met %d errors", cycles, reported, appErrs)
}
