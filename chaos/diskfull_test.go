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

// TestDiskFull fills, then frees, the volume of the database (with its WAL
// and the daemon's staging directory beside it) and, separately, the
// replica's. Replication must carry on by itself once space returns,
// SIGTERM must exit 0 after a final sync, and the readers must equal the
// source; the daemon's reports of the full disk must name the path.
func TestDiskFull(t *testing.T) {
	requireTools(t)
	t.Run("db", diskFullDatabase)
	t.Run("replica", diskFullReplica)
}

// diskFullDatabase is issue 9's measurement: "with the database's volume
// full, the daemon never catches up after space returns; SIGTERM exits 1;
// the final restore differs". The database, its WAL and the daemon's
// staging directory share a 30 MiB volume, and the WAL file has grown (a
// burst of writes while a reader held the log) to more than the space left
// beside it. So while the volume is full the application can still commit
// that much into the WAL's old frames, and once space returns its WAL takes
// the space as fast as it comes: a daemon that needs room on the volume to
// copy what it uploads (a staged file) never gets it. Each cycle: the WAL
// is checkpointed, the volume filled, the application commits back to back
// (rewriting rows in place, so a checkpoint needs no room either), the
// volume is freed while it goes on, and it stops; every reader must then
// equal the source within the bound. At the end SIGTERM must exit 0 after a
// final sync, and the readers hold every transaction.
func diskFullDatabase(t *testing.T) {
	c, _, rng, dir := startTrials(t)
	vol := mountVolume(t, filepath.Join(dir, "vol"))
	db, replica := filepath.Join(vol.dir, "app.db"), filepath.Join(dir, "replica")
	w := newWorkload(rng)
	createDB(t, db)
	const rows = 1000 // about 4 MiB: a row per page, each of incompressible bytes
	for range 4 {
		id, sql := w.noiseRows("L", rows/4)
		if err := commitOnce(w, db, id, sql); err != nil {
			t.Fatal(err)
		}
	}
	d := startLS(t, "replicate", cleanEnv(), "replicate", "-config", slowSnapshots(t, daemonYAML(t, dir, db, fileURL(replica), "")))
	ch := newChecker(t, w, c, dir, db, replica)
	// quiet waits until the replica holds the quiet source and the WAL is
	// checkpointed (the application's next commit starts it over).
	quiet := func(what string) bool {
		src, err := readSource(db, false)
		if err != nil {
			t.Fatal(err)
		}
		ok := waitFor(ch.bound, 50*time.Millisecond, func() bool {
			st, err := readVFS(ch.url, false)
			return err == nil && st.hash == src.hash && walBackfilled(db)
		})
		if !ok {
			t.Logf("%s: the replica did not catch up with the quiet source, or the WAL was not checkpointed, within %s", what, ch.bound)
		}
		return ok
	}
	if !quiet("start") {
		t.Fatalf("no first sync:\n%s", tail(d.Out.String(), 3000))
	}
	ch.startFollowers()

	// The WAL file grows past half the free space while a reader holds the
	// log (no checkpoint can restart it).
	used0, size := vol.used()
	target := (size-used0)/2 + 2<<20
	reader := startShell(t, "reader", appEnv(), db)
	if _, err := reader.run("BEGIN;\nSELECT count(*) FROM items;", time.Minute); err != nil {
		t.Fatal(err)
	}
	for walSize(db) < target {
		lo := 1 + rng.IntN(rows-250)
		id, sql := w.rewrite("g", lo, lo+249)
		if err := commitOnce(w, db, id, sql); err != nil {
			t.Fatalf("grow the WAL to %d MiB: %v", target>>20, err)
		}
	}
	if err := reader.close(time.Minute); err != nil {
		t.Fatal(err)
	}
	quiet("after the WAL grew")
	used, _ := vol.used()
	wal := walSize(db)
	t.Logf("volume %d MiB: database %d KiB, WAL %.1f MiB, %.1f MiB free", size>>20, fileSize(db)>>10, float64(wal)/(1<<20), float64(size-used)/(1<<20))
	if size-used < 4<<20 || wal < size-used {
		t.Fatalf("setup: want the WAL (%d MiB) larger than the free space (%d MiB), and at least 4 MiB free", wal>>20, (size-used)>>20)
	}

	cycles := pick(2, 8)
	for cycle := 1; cycle <= cycles; cycle++ {
		if cycle > 1 {
			quiet(fmt.Sprintf("before cycle %d", cycle))
		}
		slack := int64(rng.IntN(2)) * 64 << 10
		vol.fill(slack)
		bg := startWriterGen(t, w, db, 0, func() (string, string) {
			lo := 1 + w.intn(rows-100)
			return w.rewrite("r", lo, lo+99) // ~400 KiB of WAL
		})
		time.Sleep(time.Duration(1500+rng.IntN(1500)) * time.Millisecond) // commits go on against the full volume
		whileFull := bg.count()
		vol.free()
		time.Sleep(time.Duration(1000+rng.IntN(1000)) * time.Millisecond) // and on once space returned
		errs := bg.halt()
		if d.Exited() {
			t.Fatalf("cycle %d: replicate exited (%v):\n%s", cycle, d.Err(), tail(d.Out.String(), 3000))
		}
		used, _ := vol.used()
		after := bg.count() - whileFull
		label := fmt.Sprintf("cycle %d (database volume filled, %d KiB left; the application committed %d rewrites, ~%d MiB of WAL, while it was full, %d after it was freed; %d commits failed; now WAL %.1f MiB, %.1f MiB free)",
			cycle, slack>>10, whileFull, whileFull*100*4096>>20, after, len(errs), float64(walSize(db))/(1<<20), float64(size-used)/(1<<20))
		if len(errs) > 0 {
			label += fmt.Sprintf("; the first: %s", tail(errs[0], 300))
		}
		t.Log(label)
		ch.check(label, false)
	}
	finishFullDisk(t, c, ch, d, vol.dir)
	if os.Getenv("CHAOS_KEEP") != "" {
		_ = os.WriteFile(filepath.Join(dir, "replicate.log"), []byte(d.Out.String()), 0o644)
	}
	t.Logf("%d syncs uploaded straight from the WAL (staging full); the daemon's last errors and warnings:\n%s", strings.Count(d.Out.String(), "uploading straight from the WAL"), tail(logProblems(d.Out.String()), 3000))
}

// finishFullDisk stops the daemon (SIGTERM: it must exit 0 after a final
// sync, or the trial counts as lost), checks every reader against the
// source a last time, stops the readers, and checks the daemon's full-disk
// reports.
func finishFullDisk(t *testing.T, c *tally, ch *checker, d *proc, volDir string) {
	t.Helper()
	code := d.Term(2 * time.Minute)
	final := "final"
	if code != 0 || !strings.Contains(d.Out.String(), "final sync done") {
		c.add(outcomeLost, fmt.Sprintf("replicate exited %d after SIGTERM (want 0 after a final sync): %s", code, tail(d.Out.String(), 2000)))
		final = "final (after a failed shutdown)"
	} else {
		c.add(outcomeOK, "")
	}
	ch.check(final, true)
	ch.finalSource()
	ch.live.kill()
	ch.follow.Kill()
	fullDiskReports(t, c, d.Out.String(), volDir)
}

// fullDiskReports checks that every line of the daemon's log that reports
// a full disk names the path it could not write, on the volume.
func fullDiskReports(t *testing.T, c *tally, log, volDir string) {
	t.Helper()
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(strings.ToLower(l), "no space left") {
			continue
		}
		n++
		if !strings.Contains(l, volDir+"/") {
			c.add(outcomeWrong, "the daemon reported the full disk without naming the path on the volume: "+tail(l, 500))
			return
		}
	}
	c.add(outcomeOK, "")
	t.Logf("the daemon's log reported the full disk %d times, each naming a path on the volume", n)
}

// slowSnapshots changes a daemonYAML config to snapshot every minute, not
// every 5 s: each is the whole database, and kept, they would fill a small
// volume by themselves. It returns the config's path.
func slowSnapshots(t *testing.T, cfg string) string {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), "snapshot: {interval: 5s", "snapshot: {interval: 1m", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// diskFullReplica fills, then frees, the volume of a file replica while the
// application writes; fresh rounds (a database and replica each) keep the
// replica's history, which every level keeps a copy of, well under the
// volume's size.
func diskFullReplica(t *testing.T) {
	c, _, rng, dir := startTrials(t)
	vol := mountVolume(t, filepath.Join(dir, "vol"))
	for round := 1; round <= pick(1, 5); round++ {
		rdir := mkdir(dir, fmt.Sprintf("round-%d", round))
		rvol := mkdir(vol.dir, fmt.Sprintf("round-%d", round))
		diskFullReplicaRound(t, c, rng, vol, rdir, rvol)
		if err := os.RemoveAll(rvol); err != nil {
			t.Fatal(err)
		}
	}
}

func diskFullReplicaRound(t *testing.T, c *tally, rng *rand.Rand, vol *volume, dir, voldir string) {
	db, replica := filepath.Join(dir, "app.db"), filepath.Join(voldir, "replica")
	w := newWorkload(rng)
	createDB(t, db)
	d := startLS(t, "replicate", cleanEnv(), "replicate", "-config", slowSnapshots(t, daemonYAML(t, dir, db, fileURL(replica), "")))
	if !waitFor(time.Minute, 20*time.Millisecond, func() bool { return replicaMax(replica) > 0 }) {
		t.Fatalf("no first sync:\n%s", tail(d.Out.String(), 3000))
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
		// Either nearly full, or room for small uploads but not large ones.
		slack := int64(rng.IntN(4)) * 64 << 10
		if rng.IntN(2) == 0 {
			slack = int64(1+rng.IntN(6)) << 20
		}
		logBefore := len(d.Out.String())
		vol.fill(slack)
		// Writes go on against the full volume for a while.
		time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
		for range 2 {
			id, sql := w.large("L", 200+rng.IntN(600))
			_ = commitOnce(w, db, id, sql)
		}
		if strings.Contains(strings.ToLower(d.Out.String()[logBefore:]), "no space left") {
			reported++
		}
		vol.free()
		// The test's own data must leave the volume mostly free, or a
		// stuck replica would only mean the volume is really full.
		if used, size := vol.used(); used > size*2/3 {
			t.Fatalf("cycle %d: the replica volume holds %d MiB of %d MiB without the filler: the test's data outgrew it", cycle, used>>20, size>>20)
		}
		time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
		appErrs += len(bg.halt())
		if d.Exited() {
			t.Fatalf("cycle %d: replicate exited (%v):\n%s", cycle, d.Err(), tail(d.Out.String(), 3000))
		}
		used, _ := vol.used()
		label := fmt.Sprintf("cycle %d (replica volume filled, %d KiB left; %d MiB used after freeing)", cycle, slack>>10, used>>20)
		t.Log(label)
		ch.check(label, false)
	}
	finishFullDisk(t, c, ch, d, vol.dir)
	t.Logf("%d cycles; the daemon's log named the full disk in %d; the application's writer met %d errors", cycles, reported, appErrs)
}
