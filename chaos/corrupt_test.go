package chaos

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
)

// TestCorruption damages one file of a replica — a flipped byte, a
// truncation, a deletion, or another file's bytes under its name — at each
// level (0, compactions, snapshots), and reads the damaged replica with
// `litestream restore`, a new sqlite3 process through the extension, and two
// readers that were following the replica when the damage arrived (`restore
// -f` and a sqlite3 process through the extension). Acceptable: the right
// state, or an error naming the damaged file (for the following VFS: the
// state before the damage, with litestream_error() naming it). A state
// SQLite never showed, or one labelled with another TXID, is wrong, and so
// is an error or an older state whose report names no damaged file; a
// "latest" that silently stops before files the replica still names is
// lost; a follower that neither advances nor reports anything is stuck.
func TestCorruption(t *testing.T) {
	c, _, rng, dir := startTrials(t)
	m := &matrix{t: t, rng: rng, c: c, dir: dir, w: newWorkload(rng), txns: map[ltx.TXID]int{}, stats: map[string]int{}}
	m.build()
	perKind := pick(4, 100)
	kinds := []string{"flip", "truncate", "delete", "swap"}
	for i := range perKind * len(kinds) {
		m.trial(i, kinds[i%len(kinds)])
	}
	var keys []string
	for k, n := range m.stats {
		keys = append(keys, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(keys)
	t.Logf("%s", strings.Join(keys, " "))
}

type matrix struct {
	t        *testing.T
	rng      *rand.Rand
	c        *tally
	dir      string
	w        *workload
	pristine string
	src      dbState
	files    []replicaFile
	levels   []int
	plan     []replicaFile    // the files a restore of the latest state reads
	txns     map[ltx.TXID]int // TXID -> transactions in its state (from the pristine replica)
	stats    map[string]int
}

// build replicates ~10 s of writes (small and large transactions, a
// VACUUM) with levels on, then stops the daemon: the pristine replica holds
// level 0, levels 1 and 2 and level-9 snapshots.
func (m *matrix) build() {
	t := m.t
	db := filepath.Join(m.dir, "app.db")
	m.pristine = filepath.Join(m.dir, "pristine")
	createDB(t, db)
	cfg := daemonYAML(t, m.dir, db, fileURL(m.pristine), "")
	d := startLS(t, "replicate", cleanEnv(), "replicate", "-config", cfg)
	bg := startWriter(t, m.w, db, 40*time.Millisecond)
	// Write for the profile's time and, since the first level-9 snapshot
	// comes one snapshot interval (5 s) or more after the first sync, on
	// until there is one: the snapshot-level trials need it (bounded).
	deadline := time.Now().Add(pick(8*time.Second, 20*time.Second))
	giveUp := deadline.Add(time.Minute)
	for i := 0; time.Now().Before(deadline) || (!hasLevel(m.pristine, remote.SnapshotLevel) && time.Now().Before(giveUp)); i++ {
		var err error
		switch i % 4 {
		case 0, 1:
			// Rows of ~2 KiB that do not compress: snapshots and
			// compactions grow past 1 MiB, which the VFS reads by range.
			id, sql := m.w.largeNoise("L", 500+m.rng.IntN(1000), 24)
			err = commitOnce(m.w, db, id, sql)
		case 2:
			_, err = shellOnce(appEnv(), db, appPrelude+"\nVACUUM;\n", time.Minute)
		default:
			id, sql := m.w.trim("T")
			err = commitOnce(m.w, db, id, sql)
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(500+m.rng.IntN(1000)) * time.Millisecond) // pacing
	}
	if errs := bg.halt(); len(errs) > 0 {
		t.Fatalf("writer: %v", errs)
	}
	if code := d.Term(time.Minute); code != 0 {
		t.Fatalf("replicate exited %d:\n%s", code, tail(d.Out.String(), 3000))
	}
	var err error
	if m.src, err = readSource(db, true); err != nil {
		t.Fatal(err)
	}
	m.files = listReplica(m.pristine)
	seen := map[int]bool{}
	for _, f := range m.files {
		if !seen[f.level] {
			seen[f.level] = true
			m.levels = append(m.levels, f.level)
		}
	}
	m.plan = m.latestPlan()
	var largest int64
	for _, f := range m.files {
		largest = max(largest, f.size)
	}
	t.Logf("largest file %d KiB", largest>>10)
	t.Logf("pristine replica: %d files, levels %v, TXID %s; source: %d transactions", len(m.files), m.levels, replicaMax(m.pristine), len(m.src.txlog))
	if len(m.levels) < 3 || m.levels[0] != remote.L0 || m.levels[len(m.levels)-1] != remote.SnapshotLevel {
		t.Fatalf("the replica has levels %v only; want level 0, a compaction level and snapshots", m.levels)
	}
	// The restore of the pristine replica must be the source, or nothing
	// below means anything.
	st, txid, err := m.restore(m.pristine)
	if err != nil || st.hash != m.src.hash || txid != replicaMax(m.pristine) {
		t.Fatalf("the undamaged replica restores to TXID %s, %d txns, err %v; want the source (%d txns)", txid, len(st.txlog), err, len(m.src.txlog))
	}
}

var restoredTXID = regexp.MustCompile(`msg=restored txid=([0-9a-f]{16})`)

// restore restores replica (latest) and returns the state and its TXID.
func (m *matrix) restore(replica string, args ...string) (dbState, ltx.TXID, error) {
	out := filepath.Join(m.dir, "restored.db")
	os.Remove(out)
	res := runLS(m.t, 3*time.Minute, append(append([]string{"restore", "-integrity-check", "full", "-o", out}, args...), fileURL(replica))...)
	if res.code != 0 {
		return dbState{}, 0, fmt.Errorf("restore: %s", res)
	}
	sm := restoredTXID.FindStringSubmatch(res.stderr)
	if sm == nil {
		return dbState{}, 0, fmt.Errorf("restore exited 0 but logged no restored TXID: %s", res)
	}
	txid, _ := ltx.ParseTXID(sm[1])
	st, err := readFile(out, true)
	return st, txid, err
}

// txnsAt is the number of transactions in the source's state at txid.
func (m *matrix) txnsAt(txid ltx.TXID) (int, error) {
	if n, ok := m.txns[txid]; ok {
		return n, nil
	}
	st, _, err := m.restore(m.pristine, "-txid", txid.String())
	if err != nil {
		return 0, fmt.Errorf("the pristine replica does not restore TXID %s: %w", txid, err)
	}
	m.txns[txid] = len(st.txlog)
	return len(st.txlog), nil
}

// damage is one change to one file.
type damage struct {
	kind   string
	target replicaFile // by its name in the pristine replica
	detail string
	data   []byte // the target's bytes after the damage (nil: deleted)
}

// latestPlan returns the files of the pristine replica that a restore of
// its latest state reads (restore -dry-run).
func (m *matrix) latestPlan() []replicaFile {
	res := runLS(m.t, time.Minute, "restore", "-dry-run", "-json", fileURL(m.pristine))
	if res.code != 0 {
		m.t.Fatalf("restore -dry-run: %s", res)
	}
	var plan struct {
		Files []struct {
			Level   int    `json:"level"`
			MinTXID string `json:"min_txid"`
			MaxTXID string `json:"max_txid"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &plan); err != nil {
		m.t.Fatalf("restore -dry-run -json: %v\n%s", err, res.stdout)
	}
	var files []replicaFile
	for _, pf := range plan.Files {
		for _, f := range m.files {
			if f.level == pf.Level && f.min.String() == pf.MinTXID && f.max.String() == pf.MaxTXID {
				files = append(files, f)
			}
		}
	}
	if len(files) != len(plan.Files) {
		m.t.Fatalf("the plan names files the replica does not hold:\n%s", res.stdout)
	}
	return files
}

// pickDamage damages, half the time, a file the latest state is restored
// from, else any file; the level is drawn first, so every level gets its
// share.
func (m *matrix) pickDamage(kind string) damage {
	from := m.files
	if m.rng.IntN(2) == 0 {
		from = m.plan
	}
	var levels []int
	for _, f := range from {
		if !slices.Contains(levels, f.level) {
			levels = append(levels, f.level)
		}
	}
	level := levels[m.rng.IntN(len(levels))]
	var at []replicaFile
	for _, f := range from {
		if f.level == level {
			at = append(at, f)
		}
	}
	f := at[m.rng.IntN(len(at))]
	b, err := os.ReadFile(f.path)
	if err != nil {
		m.t.Fatal(err)
	}
	d := damage{kind: kind, target: f}
	name := fmt.Sprintf("%s (%d bytes)", d.name(), len(b))
	switch kind {
	case "flip":
		off := m.rng.IntN(len(b))
		x := byte(1 + m.rng.IntN(255))
		b[off] ^= x
		d.data, d.detail = b, fmt.Sprintf("%s: byte %d xor %#02x", name, off, x)
	case "truncate":
		n := m.rng.IntN(len(b))
		d.data, d.detail = b[:n], fmt.Sprintf("%s: truncated to %d bytes", name, n)
	case "delete":
		d.detail = name + ": deleted"
	case "swap":
		var other replicaFile
		for other = f; other.path == f.path; {
			other = m.files[m.rng.IntN(len(m.files))]
		}
		ob, err := os.ReadFile(other.path)
		if err != nil {
			m.t.Fatal(err)
		}
		d.data, d.detail = ob, fmt.Sprintf("%s: replaced by the bytes of L%d %s-%s", name, other.level, other.min, other.max)
	}
	return d
}

// copyReplica copies the pristine files for which keep holds into dst,
// each written to a temporary name and renamed (as an upload completes).
func (m *matrix) copyReplica(dst string, keep func(replicaFile) bool, dmg *damage) {
	for _, f := range m.files {
		if !keep(f) {
			continue
		}
		rel, _ := filepath.Rel(m.pristine, f.path)
		p := filepath.Join(dst, rel)
		var data []byte
		if dmg != nil && f.path == dmg.target.path {
			if dmg.data == nil {
				os.Remove(p)
				continue
			}
			data = dmg.data
		} else {
			var err error
			if data, err = os.ReadFile(f.path); err != nil {
				m.t.Fatal(err)
			}
		}
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		tmp := filepath.Join(filepath.Dir(p), ".chaos-copy.tmp")
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			m.t.Fatal(err)
		}
		// Keep the mtime: it is the file's creation time for timestamps.
		_ = os.Chtimes(tmp, time.Time{}, fileMTime(f.path))
		if err := os.Rename(tmp, p); err != nil {
			m.t.Fatal(err)
		}
	}
}

func fileMTime(p string) time.Time {
	fi, err := os.Stat(p)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// judgeState: st (labelled txid, with errNote the reader's own report of a
// problem) read from a replica whose files name TXIDs up to named, one of
// them damaged by dmg. An older state than named is acceptable only with a
// report, and the report must name the damaged file.
func (m *matrix) judgeState(st dbState, txid, named ltx.TXID, errNote string, dmg damage, stale int) (int, string) {
	if ok, why := isPrefix(st.txlog, m.src.txlog); !ok {
		return outcomeWrong, "not a state of the source: " + why
	}
	want, err := m.w.replayHash(st.txlog)
	if err != nil {
		return outcomeWrong, err.Error()
	}
	if st.hash != want {
		return outcomeWrong, fmt.Sprintf("its txlog is the source's first %d transactions but its content is not their result", len(st.txlog))
	}
	n, err := m.txnsAt(txid)
	if err != nil {
		return outcomeWrong, fmt.Sprintf("labelled TXID %s: %v", txid, err)
	}
	if n != len(st.txlog) {
		return outcomeWrong, fmt.Sprintf("labelled TXID %s, whose state has %d transactions, but holds %d", txid, n, len(st.txlog))
	}
	if txid < named && errNote == "" {
		return stale, fmt.Sprintf("TXID %s, though the replica names files up to %s, and no error", txid, named)
	}
	if txid < named && !namesDamaged(errNote, dmg) {
		return outcomeWrong, fmt.Sprintf("TXID %s, though the replica names files up to %s, with a report that does not name the damaged file %s: %s", txid, named, dmg.name(), tail(errNote, 1500))
	}
	return outcomeOK, ""
}

func (m *matrix) trial(i int, kind string) {
	t := m.t
	dmg := m.pickDamage(kind)
	m.stats[fmt.Sprintf("%s-L%d", kind, dmg.target.level)]++
	label := fmt.Sprintf("trial %d (%s)", i+1, dmg.detail)
	record := func(reader string, outcome int, why string) {
		m.c.add(outcome, label+", "+reader+": "+why)
		if outcome != outcomeOK {
			t.Logf("%s, %s: %s: %s", label, reader, outcomeNames[outcome], why)
		} else if why != "" {
			t.Logf("%s, %s: error naming the file: %s", label, reader, tail(why, 300))
		}
	}
	// What the damaged replica still names.
	var named ltx.TXID
	for _, f := range m.files {
		if kind != "delete" || f.path != dmg.target.path {
			named = max(named, f.max)
		}
	}

	// One-shot readers on the damaged replica.
	dmgDir := filepath.Join(m.dir, fmt.Sprintf("damaged-%d", i))
	m.copyReplica(dmgDir, func(replicaFile) bool { return true }, &dmg)
	if st, txid, err := m.restore(dmgDir); err != nil {
		m.stats["restore error"]++
		o, why := namedError(err.Error(), dmg)
		record("restore", o, why)
	} else {
		o, why := m.judgeState(st, txid, named, "", dmg, outcomeLost)
		record("restore", o, why)
	}
	if st, err := readVFS(fileURL(dmgDir), true); err != nil {
		m.stats["vfs error"]++
		o, why := namedError(err.Error(), dmg)
		record("vfs", o, why)
	} else {
		txid, errNote := parseVFSExtra(st.extra)
		o, why := m.judgeState(st, txid, named, errNote, dmg, outcomeLost)
		record("vfs", o, why)
	}
	os.RemoveAll(dmgDir)

	// Followers: start them on the replica up to a TXID before the end,
	// then the rest arrives with the damage (a target already there is
	// damaged in place).
	// Half the time the target is the next file a follower needs.
	maxTXID := replicaMax(m.pristine)
	cut := ltx.TXID(1 + m.rng.IntN(int(maxTXID)-1))
	if dmg.target.min > 1 && m.rng.IntN(2) == 0 {
		cut = dmg.target.min - 1
	}
	liveDir := filepath.Join(m.dir, fmt.Sprintf("live-%d", i))
	m.copyReplica(liveDir, func(f replicaFile) bool { return f.max <= cut }, nil)
	cut = replicaMax(liveDir)
	out := filepath.Join(m.dir, fmt.Sprintf("follow-%d.db", i))
	follow := startLS(t, "restore -f", cleanEnv(), "restore", "-f", "-o", out, fileURL(liveDir))
	live := startShell(t, "vfs-live", vfsEnv(), ":memory:")
	_, liveErr := live.run(vfsOpen(fileURL(liveDir)), time.Minute)
	followTXID := func() ltx.TXID {
		b, _ := os.ReadFile(out + "-txid")
		v, _ := ltx.ParseTXID(strings.TrimSpace(string(b)))
		return v
	}
	liveState := func(full bool) (dbState, ltx.TXID, string, error) {
		lines, err := live.run(stateScript(full, true), time.Minute)
		if err != nil {
			return dbState{}, 0, "", err
		}
		st, err := parseState(strings.Join(lines, "\n"))
		txid, note := parseVFSExtra(st.extra)
		return st, txid, note, err
	}
	ready := liveErr == nil && waitFor(30*time.Second, 50*time.Millisecond, func() bool {
		_, txid, _, err := liveState(false)
		return err == nil && txid == cut && (followTXID() == cut || follow.Exited())
	})
	if !ready || follow.Exited() {
		t.Fatalf("%s: the followers did not reach TXID %s of the undamaged replica (follow at %s, exited %v; vfs: %v):\n%s", label, cut, followTXID(), follow.Exited(), liveErr, tail(follow.Out.String(), 2000))
	}
	m.copyReplica(liveDir, func(f replicaFile) bool { return f.max > cut || f.path == dmg.target.path }, &dmg)

	// restore -f: it must reach the end, or stop with an error, or at
	// least report one.
	waitFor(15*time.Second, 50*time.Millisecond, func() bool { return follow.Exited() || followTXID() == named })
	exited := follow.Exited()
	code := follow.Term(time.Minute)
	logText := follow.Out.String()
	ftxid := followTXID()
	st, err := readFile(out, true)
	switch {
	case err != nil:
		record("restore-f", outcomeWrong, fmt.Sprintf("followed from TXID %s; its output at TXID %s does not read: %v; log: %s", cut, ftxid, err, tail(logText, 1500)))
	default:
		// Its report: the log's errors and warnings.
		errNote := logProblems(logText)
		if exited && code != 0 {
			errNote = fmt.Sprintf("exited %d: %s", code, errNote)
			m.stats["restore-f error"]++
		} else if errNote != "" {
			m.stats["restore-f error logged"]++
		}
		o, why := m.judgeState(st, ftxid, named, errNote, dmg, outcomeStuck)
		if o != outcomeOK {
			why = fmt.Sprintf("followed from TXID %s: %s; log: %s", cut, why, tail(logText, 1500))
		}
		record("restore-f", o, why)
	}

	// The following VFS: the new state, or the old one with an error.
	var lst dbState
	var ltxid ltx.TXID
	var note string
	waitFor(15*time.Second, 100*time.Millisecond, func() bool {
		lst, ltxid, note, err = liveState(false)
		return err != nil || ltxid == named || note != ""
	})
	if err == nil {
		lst, ltxid, note, err = liveState(true)
	}
	if err != nil {
		m.stats["vfs-live error"]++
		o, why := namedError(err.Error(), dmg)
		record("vfs-live", o, why)
	} else {
		if note != "" {
			m.stats["vfs-live error reported"]++
		}
		o, why := m.judgeState(lst, ltxid, named, note, dmg, outcomeStuck)
		record("vfs-live", o, why)
	}
	live.kill()
	if os.Getenv("CHAOS_KEEP") == "" {
		os.RemoveAll(liveDir)
	}
	for _, p := range []string{out, out + "-txid"} {
		os.Remove(p)
	}
}

func (d damage) name() string {
	return fmt.Sprintf("L%d %s-%s", d.target.level, d.target.min, d.target.max)
}

// namedError: an error is an acceptable outcome if it names the damaged
// file (issue 9 point 2: "an error naming it").
func namedError(msg string, dmg damage) (int, string) {
	if !namesDamaged(msg, dmg) {
		return outcomeWrong, fmt.Sprintf("the error does not name the damaged file %s: %s", dmg.name(), msg)
	}
	return outcomeOK, msg
}

// txidRange matches a TXID range as messages write one: a file name
// (0000000000000003-0000000000000007.ltx) or "TXIDs 3-7".
var txidRange = regexp.MustCompile(`(?i)\b(?:0x)?([0-9a-f]{1,16})-(?:0x)?([0-9a-f]{1,16})\b`)

// namesDamaged reports whether msg names the damaged file: its TXID range
// (alone or in its file name or path), or, for a deleted file, a missing
// range that holds its first TXID (a gap report).
func namesDamaged(msg string, dmg damage) bool {
	f := dmg.target
	for _, sm := range txidRange.FindAllStringSubmatch(msg, -1) {
		lo, err1 := strconv.ParseUint(sm[1], 16, 64)
		hi, err2 := strconv.ParseUint(sm[2], 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		if ltx.TXID(lo) == f.min && ltx.TXID(hi) == f.max {
			return true
		}
		if dmg.kind == "delete" && ltx.TXID(lo) <= f.min && f.min <= ltx.TXID(hi) {
			return true
		}
	}
	return false
}

var vfsExtra = regexp.MustCompile(`^txid:(\d+) error:(.*)$`)

// parseVFSExtra parses the TXID and litestream_error() from a VFS state.
func parseVFSExtra(s string) (ltx.TXID, string) {
	sm := vfsExtra.FindStringSubmatch(s)
	if sm == nil {
		return 0, "no litestream_txid() in the output"
	}
	v, _ := strconv.ParseUint(sm[1], 10, 64)
	note := sm[2]
	if note == "none" {
		note = ""
	}
	return ltx.TXID(v), note
}

// hasLevel reports whether the file replica at root holds a file of level.
func hasLevel(root string, level int) bool {
	return slices.ContainsFunc(listReplica(root), func(f replicaFile) bool { return f.level == level })
}
