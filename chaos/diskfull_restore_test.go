package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDiskFullRestore fills, then frees, the volume of restore outputs: a
// restore onto a full volume must fail clearly and leave nothing that
// blocks the next one, and `restore -f` must carry on once space returns.
func TestDiskFullRestore(t *testing.T) {
	c, _, rng, dir := startTrials(t)
	vol := mountVolume(t, filepath.Join(dir, "vol"))
	db, replica := filepath.Join(dir, "app.db"), filepath.Join(dir, "replica")
	w := newWorkload(rng)
	createDB(t, db)
	cfg := daemonYAML(t, dir, db, fileURL(replica), "")
	d := startLS(t, "replicate", cleanEnv(), "replicate", "-config", cfg)
	for range 4 {
		id, sql := w.large("L", 1500+rng.IntN(1000))
		if err := commitOnce(w, db, id, sql); err != nil {
			t.Fatal(err)
		}
	}
	ch := newChecker(t, w, c, dir, db, replica)
	waitSynced := func() dbState {
		src, err := readSource(db, true)
		if err != nil {
			t.Fatal(err)
		}
		if !waitFor(ch.bound, 50*time.Millisecond, func() bool {
			st, err := readVFS(fileURL(replica), false)
			return err == nil && st.hash == src.hash
		}) {
			t.Fatalf("the replica did not catch up with the source:\n%s", tail(d.Out.String(), 3000))
		}
		return src
	}
	src := waitSynced()
	fi, _ := os.Stat(db)
	t.Logf("database %d KiB", fi.Size()>>10)

	cycles := pick(3, 20)
	for cycle := 1; cycle <= cycles; cycle++ {
		// A restore onto a full volume fails clearly and leaves nothing
		// that blocks the next one.
		out := filepath.Join(vol.dir, "restored.db")
		slack := int64(rng.Int64N(fi.Size() / 2))
		vol.fill(slack)
		res := runLS(t, 3*time.Minute, "restore", "-o", out, ch.url)
		label := fmt.Sprintf("cycle %d: restore onto a full volume (%d KiB left)", cycle, slack>>10)
		switch {
		case res.code == 0:
			st, err := readFile(out, true)
			if err != nil || st.hash != src.hash {
				c.add(outcomeWrong, fmt.Sprintf("%s exited 0 with a database that is not the source (err %v)", label, err))
			} else {
				c.add(outcomeOK, "") // it fitted after all
			}
		case !strings.Contains(strings.ToLower(res.stderr), "no space left"):
			c.add(outcomeWrong, fmt.Sprintf("%s failed without naming the full disk: %s", label, res))
		default:
			c.add(outcomeOK, "")
		}
		vol.free()
		os.Remove(out) // only if it succeeded above: leftovers are the point below
		if res.code != 0 {
			var left []string
			ents, _ := os.ReadDir(vol.dir)
			for _, e := range ents {
				left = append(left, e.Name())
			}
			res2 := runLS(t, 3*time.Minute, "restore", "-o", out, ch.url)
			if res2.code != 0 {
				c.add(outcomeStuck, fmt.Sprintf("%s: once space returned, the same restore failed (files left on the volume: %v): %s", label, left, res2))
			} else if st, err := readFile(out, true); err != nil || st.hash != src.hash {
				c.add(outcomeWrong, fmt.Sprintf("%s: the restore after it is not the source (err %v)", label, err))
			} else {
				c.add(outcomeOK, "")
			}
			os.Remove(out)
		}

		// restore -f onto the volume: it fills up while following, then
		// space returns and it must carry on by itself.
		fout := filepath.Join(vol.dir, fmt.Sprintf("follow-%d.db", cycle))
		f := startLS(t, "restore -f", cleanEnv(), "restore", "-f", "-o", fout, ch.url)
		if !waitFor(ch.bound, 50*time.Millisecond, func() bool {
			b, _ := os.ReadFile(fout + "-txid")
			return strings.TrimSpace(string(b)) == replicaMax(replica).String()
		}) {
			t.Fatalf("%s: restore -f did not restore the replica:\n%s", label, tail(f.Out.String(), 2000))
		}
		vol.fill(int64(rng.IntN(3)) * 64 << 10)
		for range 2 {
			id, sql := w.large("L", 800+rng.IntN(800))
			if err := commitOnce(w, db, id, sql); err != nil {
				t.Fatal(err)
			}
		}
		src = waitSynced()
		target := replicaMax(replica).String()
		time.Sleep(time.Duration(300+rng.IntN(1500)) * time.Millisecond) // it tries against the full volume
		vol.free()
		label = fmt.Sprintf("cycle %d: restore -f while its volume filled", cycle)
		ok := waitFor(ch.bound, 50*time.Millisecond, func() bool {
			b, _ := os.ReadFile(fout + "-txid")
			return f.Exited() || strings.TrimSpace(string(b)) == target
		})
		switch {
		case f.Exited():
			c.add(outcomeStuck, fmt.Sprintf("%s: it exited (%v) instead of carrying on once space returned: %s", label, f.Err(), tail(f.Out.String(), 1500)))
		case !ok:
			c.add(outcomeStuck, fmt.Sprintf("%s: not at TXID %s within %s of space returning: %s", label, target, ch.bound, tail(f.Out.String(), 1500)))
		default:
			f.Term(time.Minute)
			if st, err := readFile(fout, true); err != nil || st.hash != src.hash {
				c.add(outcomeWrong, fmt.Sprintf("%s: its output at TXID %s is not the source (err %v)", label, target, err))
			} else {
				c.add(outcomeOK, "")
			}
		}
		f.Kill()
		for _, suffix := range []string{"", "-txid", "-follow.ltx", "-follow.ltx.tmp", ".follow-init"} {
			os.Remove(fout + suffix)
		}
	}
	if code := d.Term(time.Minute); code != 0 {
		t.Errorf("replicate exited %d:\n%s", code, tail(d.Out.String(), 3000))
	}
}
