package chaos

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/testsupport"
)

// requireTools skips the test when a tool is missing, or fails it when
// LITESTREAM_REQUIRE_SERVERS=1 (make test installs them).
func requireTools(t *testing.T) {
	t.Helper()
	if missing == "" {
		return
	}
	if os.Getenv("LITESTREAM_REQUIRE_SERVERS") == "1" {
		t.Fatalf("missing %s", missing)
	}
	t.Skipf("missing %s", missing)
}

// pick returns the short profile's value, or the long one under CHAOS=long.
func pick[T any](short, long_ T) T {
	if long {
		return long_
	}
	return short
}

// testSeed returns the test's seed ($CHAOS_SEED, else the clock), printed
// so that a failure can be rerun.
func testSeed(t *testing.T) (uint64, *rand.Rand) {
	t.Helper()
	seed, rng, err := testsupport.Seed("CHAOS_SEED")
	if err != nil {
		t.Fatal(err)
	}
	profile := "short"
	if long {
		profile = "long"
	}
	fmt.Printf("%s: seed %d (reproduce: CHAOS=%s CHAOS_SEED=%d go test -count=1 -v ./chaos -run '^%s$')\n", t.Name(), seed, profile, seed, t.Name())
	return seed, rng
}

// tally counts a test's trials and failures and prints the final line.
type tally struct {
	mu                         sync.Mutex
	trials, wrong, lost, stuck int
	notes                      []string
}

const (
	outcomeOK = iota
	outcomeWrong
	outcomeLost
	outcomeStuck
)

var outcomeNames = []string{"ok", "wrong", "lost", "stuck"}

// add records one trial's outcome; detail explains a failure.
func (c *tally) add(outcome int, detail string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trials++
	switch outcome {
	case outcomeWrong:
		c.wrong++
	case outcomeLost:
		c.lost++
	case outcomeStuck:
		c.stuck++
	}
	if outcome != outcomeOK && len(c.notes) < 40 {
		c.notes = append(c.notes, outcomeNames[outcome]+": "+detail)
	}
}

// report prints the final line and fails the test on any failure. Deferred
// first thing in a test, so that it prints even after t.Fatal.
func (c *tally) report(t *testing.T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Printf("%s: trials=%d wrong=%d lost=%d stuck=%d\n", t.Name(), c.trials, c.wrong, c.lost, c.stuck)
	if c.wrong+c.lost+c.stuck > 0 {
		t.Errorf("%d wrong, %d lost, %d stuck of %d trials:\n  %s", c.wrong, c.lost, c.stuck, c.trials, strings.Join(c.notes, "\n  "))
	}
}

// startTrials begins a test of trials: it skips (or fails) without the
// tools, prints the seed, and returns the tally (its line printed, and
// its failures reported, when the test ends), the seeded generator and the
// test's directory.
func startTrials(t *testing.T) (c *tally, seed uint64, rng *rand.Rand, dir string) {
	t.Helper()
	requireTools(t)
	c = &tally{}
	t.Cleanup(func() { c.report(t) })
	seed, rng = testSeed(t)
	return c, seed, rng, workDir(t)
}

// workDir is the test's directory (kept, and named, under CHAOS_KEEP=1).
func workDir(t *testing.T) string {
	t.Helper()
	if os.Getenv("CHAOS_KEEP") == "" {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("", "chaos-"+strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("directory (kept): %s", dir)
	return dir
}

// cleanEnv is the environment of every subprocess: no LITESTREAM_ variable
// or config file of the machine's.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "LITESTREAM_") || strings.HasPrefix(kv, "LOG_LEVEL=") || strings.HasPrefix(kv, "LD_PRELOAD=") {
			continue
		}
		env = append(env, kv)
	}
	return append(append(env, "LITESTREAM_CONFIG=/nonexistent/litestream.yml"), extra...)
}

func tail(s string, n int) string { return testsupport.Tail(s, n) }

func fileURL(dir string) string { return (&url.URL{Scheme: "file", Path: dir}).String() }

// ---------------------------------------------------------------------------
// The sqlite3 shell as a long-running process.

// shellProc is a `sqlite3 -batch -bail` process fed statements on stdin.
// The shell flushes its output after each statement, so a marker SELECT
// tells when everything before it has run; with -bail the first error ends
// the process.
type shellProc struct {
	name   string
	cmd    *exec.Cmd
	in     io.WriteCloser
	lines  chan string // stdout, closed at EOF
	stderr *testsupport.LockedBuffer
	done   chan struct{}
	err    error // valid after done
	mark   int
}

func startShell(t *testing.T, name string, env []string, dbArg string) *shellProc {
	t.Helper()
	p := &shellProc{name: name, lines: make(chan string, 1<<16), stderr: &testsupport.LockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command("sqlite3", "-batch", "-bail", dbArg)
	p.cmd.Env = env
	p.cmd.Stderr = p.stderr
	var err error
	if p.in, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start sqlite3 (%s): %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	return p
}

func (p *shellProc) pid() int { return p.cmd.Process.Pid }

func (p *shellProc) exited() bool { return testsupport.Closed(p.done) }

// send writes statements without waiting for them.
func (p *shellProc) send(script string) {
	_, _ = io.WriteString(p.in, script+"\n")
}

// newMark returns a fresh marker statement and the line it prints.
func (p *shellProc) newMark() (stmt, line string) {
	p.mark++
	line = fmt.Sprintf("chaos-mark-%d", p.mark)
	return fmt.Sprintf("SELECT '%s';", line), line
}

// run sends script and waits until it has run, returning its output lines.
func (p *shellProc) run(script string, timeout time.Duration) ([]string, error) {
	stmt, line := p.newMark()
	p.send(script + "\n" + stmt)
	return p.waitLine(line, timeout)
}

// waitLine collects output lines until want; an exit or the timeout first
// is an error carrying the shell's stderr.
func (p *shellProc) waitLine(want string, timeout time.Duration) ([]string, error) {
	var got []string
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				<-p.done
				return got, fmt.Errorf("sqlite3 (%s) exited (%v): %s", p.name, p.err, strings.TrimSpace(p.stderr.String()))
			}
			if l == want {
				return got, nil
			}
			got = append(got, l)
		case <-timer.C:
			return got, fmt.Errorf("sqlite3 (%s): no answer within %s; stderr: %s", p.name, timeout, strings.TrimSpace(p.stderr.String()))
		}
	}
}

// kill ends the process with SIGKILL and waits for it.
func (p *shellProc) kill() {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	for range p.lines {
	}
	<-p.done
}

// close ends the input and waits for a normal exit.
func (p *shellProc) close(timeout time.Duration) error {
	p.in.Close()
	for range p.lines {
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("sqlite3 (%s) did not exit within %s", p.name, timeout)
	}
	if p.err != nil {
		return fmt.Errorf("sqlite3 (%s): %v: %s", p.name, p.err, strings.TrimSpace(p.stderr.String()))
	}
	return nil
}

// shellOnce runs one sqlite3 process on script and returns its stdout; a
// non-zero exit is an error carrying stderr.
func shellOnce(env []string, dbArg, script string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sqlite3", "-batch", "-bail", dbArg)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(script)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = tail(strings.TrimSpace(stdout.String()), 500)
		}
		return stdout.String(), fmt.Errorf("sqlite3 %s: %v: %s", dbArg, err, msg)
	}
	return stdout.String(), nil
}

// ---------------------------------------------------------------------------
// litestream as a process.

type cliResult struct {
	code           int
	stdout, stderr string
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d; stderr: %s", r.code, tail(strings.TrimSpace(r.stderr), 2000))
}

// runLS runs the built binary and returns its exit status and output.
func runLS(t *testing.T, timeout time.Duration, args ...string) cliResult {
	t.Helper()
	return runLSEnv(t, nil, timeout, args...)
}

// runLSEnv is runLS with extra environment variables.
func runLSEnv(t *testing.T, env []string, timeout time.Duration, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, lsBin, args...)
	cmd.Env = cleanEnv(env...)
	var res cliResult
	var err error
	res.code, res.stdout, res.stderr, err = testsupport.RunCommand(cmd)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		res.stderr += fmt.Sprintf("\n(killed after %s)", timeout)
	default:
		t.Fatalf("run litestream %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// proc is a long-running litestream process (replicate, restore -f).
type proc = testsupport.Process

// startLS starts the built binary; it is killed when the test ends.
func startLS(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	return testsupport.StartProcess(t, name, lsBin, env, args...)
}

// daemonYAML is a config replicating dbPath to replica with short intervals
// and levels on: syncs every 50 ms, compactions every 1 s and 3 s, a
// snapshot every 5 s. extraDB is added to the database's entry.
func daemonYAML(t *testing.T, dir, dbPath, replicaURL, extraDB string) string {
	t.Helper()
	cfg := filepath.Join(dir, "litestream.yml")
	text := fmt.Sprintf(`logging:
  level: info
levels:
  - interval: 1s
  - interval: 3s
snapshot: {interval: 5s, retention: 1h}
dbs:
  - path: %s
    monitor-interval: 20ms
    checkpoint-interval: 300ms
    min-checkpoint-page-count: 100
%s    replica:
      url: %s
      sync-interval: 50ms
`, dbPath, extraDB, replicaURL)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// ---------------------------------------------------------------------------
// File replicas.

type replicaFile struct {
	level    int
	min, max ltx.TXID
	path     string
	size     int64
}

// listReplica returns a file replica's LTX files by level, then min TXID
// (testsupport.ReplicaFiles; none if it cannot be listed).
func listReplica(root string) []replicaFile {
	all, _ := testsupport.ReplicaFiles(root)
	files := make([]replicaFile, len(all))
	for i, f := range all {
		files[i] = replicaFile{f.Level, f.Min, f.Max, f.Path, f.Size}
	}
	return files
}

func replicaMax(root string) ltx.TXID {
	var m ltx.TXID
	for _, f := range listReplica(root) {
		m = max(m, f.max)
	}
	return m
}

// replicaStamp changes whenever a file is added, removed or rewritten.
func replicaStamp(root string) string {
	var b strings.Builder
	for _, f := range listReplica(root) {
		fmt.Fprintf(&b, "%d/%s-%s:%d;", f.level, f.min, f.max, f.size)
	}
	return b.String()
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(timeout, every time.Duration, cond func() bool) bool {
	return testsupport.Poll(timeout, every, cond)
}

// logProblems returns the error and warning lines of a litestream log.
func logProblems(log string) string {
	var lines []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") || strings.HasPrefix(l, "Error:") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}
