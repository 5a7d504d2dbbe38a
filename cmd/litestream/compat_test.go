package main

// Golden comparisons with the real Litestream v0.5.18 (real_test.go): the
// -h text and flags of every command, exit codes and error output of
// command-line mistakes, text and JSON output on the same replica, and
// the JSON fields its docs/CLI_JSON_OUTPUT.md calls stable.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/litestream-go/litestream/internal/testsupport"
)

// realCommands are Litestream v0.5.18's commands.
var realCommands = []string{"databases", "info", "list", "ltx", "register", "replicate", "reset", "restore",
	"start", "status", "stop", "sync", "unregister", "version"}

// helpDeviations are lines of Litestream's -h text that this build
// replaces, by command, because the flag does more here.
var helpDeviations = map[string][]string{
	"restore": {
		"Deprecated. Accepted for compatibility but has no effect in 0.5.x.",
		"Logs a warning when explicitly set.",
	},
}

// runBoth runs a command line with both tools under the same environment
// and returns (exit status, stdout, stderr) of ours and theirs.
func runBoth(t *testing.T, r *realLS, env map[string]string, args ...string) (c1 int, o1, e1 string, c2 int, o2, e2 string) {
	t.Helper()
	c1, o1, e1 = run(t, env, args...)
	var kv []string
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	c2, o2, e2 = r.run(t, append(kv, "TZ=UTC"), args...)
	return
}

// isSubsequence reports the first line of want that does not appear, in
// order, among have's lines ("" if all do); lines of skip are left out.
func isSubsequence(have, want string, skip []string) string {
	hl := strings.Split(have, "\n")
	i := 0
next:
	for _, w := range strings.Split(want, "\n") {
		for _, s := range skip {
			if strings.TrimSpace(w) == s {
				continue next
			}
		}
		for ; i < len(hl); i++ {
			if hl[i] == w {
				i++
				continue next
			}
		}
		return w
	}
	return ""
}

// TestGolden_Help: every command's -h, and the command list, hold
// Litestream's text line for line (this build may add lines), both exit 0,
// and every flag Litestream's help names is accepted here.
func TestGolden_Help(t *testing.T) {
	r := realLitestream(t)
	env := noConfig(t)
	flagRE := regexp.MustCompile(`^\s+(-[a-z][a-z-]*)`)
	for _, args := range [][]string{{"-h"}, {"help"}, {}} {
		c1, o1, _, c2, o2, _ := runBoth(t, r, env, args...)
		if c1 != c2 || o1 != o2 {
			t.Errorf("litestream %v: ours exit %d\n%s\ntheirs exit %d\n%s", args, c1, o1, c2, o2)
		}
	}
	for _, cmd := range realCommands {
		c1, o1, _, c2, o2, _ := runBoth(t, r, env, cmd, "-h")
		if c1 != 0 || c2 != 0 {
			t.Errorf("%s -h: exit %d (ours), %d (theirs)", cmd, c1, c2)
		}
		if missing := isSubsequence(o1, o2, helpDeviations[cmd]); missing != "" {
			t.Errorf("%s -h lacks Litestream's line %q:\nours:\n%s\ntheirs:\n%s", cmd, missing, o1, o2)
		}
		for _, line := range strings.Split(o2, "\n") {
			m := flagRE.FindStringSubmatch(line)
			if m == nil || strings.HasPrefix(strings.TrimSpace(line), "-"+"-") {
				continue
			}
			accepted := false
			for _, v := range []string{"true", "1", "1s", "x"} {
				if c, _, _ := run(t, env, cmd, m[1]+"="+v, "-h"); c == 0 {
					accepted = true
					break
				}
			}
			if !accepted {
				t.Errorf("%s: flag %s of Litestream is not accepted", cmd, m[1])
			}
		}
	}
}

// TestGolden_Errors: command-line mistakes exit with Litestream's status
// and print its messages.
func TestGolden_Errors(t *testing.T) {
	r := realLitestream(t)
	env := noConfig(t)
	dir := t.TempDir()
	for _, args := range [][]string{
		{"frobnicate"},
		{"start"}, {"stop"}, {"sync"}, {"unregister"}, {"reset"}, {"ltx"}, {"restore"},
		{"register"}, {"register", "/x.db"},
		{"info", "x"}, {"list", "x"}, {"databases", "x"},
		{"start", "/a", "/b"}, {"sync", "-timeout", "0", "/x"},
		{"info", "-socket", filepath.Join(dir, "none.sock"), "-timeout", "0"},
		{"replicate", "/a.db"},
		{"replicate", "-once", "-exec", "true", "/a.db", "file:///b"},
		{"replicate", "-force-snapshot", "/a.db", "file:///b"},
		{"replicate", "-enforce-retention", "/a.db", "file:///b"},
		{"replicate", "-config", "/x.yml", "/a.db", "file:///b"},
		{"restore", "file:///x"},
		{"restore", "-integrity-check", "some", "-o", "/x.db", "file:///x"},
		{"restore", "-nope"},
		{"ltx", "-level", "10", "file:///x"},
		{"ltx", "-level", "x", "file:///x"},
		{"reset", filepath.Join(dir, "none.db")},
	} {
		c1, o1, e1, c2, o2, e2 := runBoth(t, r, env, args...)
		// Stdout carries the usage text after a flag error: Litestream's
		// lines must be there (TestGolden_Help).
		if c1 != c2 || e1 != e2 || isSubsequence(o1, o2, helpDeviations[args[0]]) != "" {
			t.Errorf("litestream %s:\nours exit %d\nstdout %q\nstderr %q\ntheirs exit %d\nstdout %q\nstderr %q",
				strings.Join(args, " "), c1, o1, e1, c2, o2, e2)
		}
	}
}

// TestGolden_ReplicaOutput: on one replica (the fixture Litestream
// wrote), ltx, restore -dry-run and databases print the same text and
// JSON as Litestream, and restore -json's stable fields agree.
func TestGolden_ReplicaOutput(t *testing.T) {
	r := realLitestream(t)
	fx := fixtureDir(t)
	replica := "file://" + filepath.Join(fx, "replica")
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf("dbs:\n  - path: %s/app.db\n    replica: {url: '%s'}\n  - path: %s/b.db\n    replica: {type: s3, bucket: bkt, path: b}\n", dir, replica, dir))
	env := map[string]string{"LITESTREAM_CONFIG": cfg}
	for _, args := range [][]string{
		{"ltx", replica}, {"ltx", "-level", "all", replica}, {"ltx", "-level", "2", "-json", replica},
		{"ltx", "-level", "all", "-json", replica}, {"ltx", "-config", cfg, dir + "/app.db"},
		{"restore", "-dry-run", "-o", dir + "/x.db", replica},
		{"restore", "-dry-run", "-txid", "000000000000000c", "-o", dir + "/x.db", replica},
		{"version"},
	} {
		c1, o1, e1, c2, o2, e2 := runBoth(t, r, env, args...)
		if args[0] == "version" {
			o1 = strings.Replace(o1, "development", realVersion, 1)
		}
		if c1 != 0 || c2 != 0 || o1 != o2 {
			t.Errorf("litestream %s:\nours exit %d\n%s%s\ntheirs exit %d\n%s%s", strings.Join(args, " "), c1, o1, e1, c2, o2, e2)
		}
	}
	// Output with fields of this program after Litestream's: those agree.
	for _, args := range [][]string{
		{"databases", "-json"},
		{"restore", "-dry-run", "-json", "-o", dir + "/x.db", replica},
		{"restore", "-dry-run", "-json", "-txid", "0000000000000003", "-o", dir + "/x.db", replica},
	} {
		c1, o1, e1, c2, o2, e2 := runBoth(t, r, env, args...)
		if c1 != 0 || c2 != 0 {
			t.Fatalf("%v: exit %d %s / %d %s", args, c1, e1, c2, e2)
		}
		if diff := jsonSubset(t, o1, o2); diff != "" {
			t.Errorf("litestream %s: %s\nours:\n%s\ntheirs:\n%s", strings.Join(args, " "), diff, o1, o2)
		}
	}
	c1, o1, _, c2, o2, _ := runBoth(t, r, env, "databases")
	if c1 != 0 || c2 != 0 || firstColumns(o1, 2) != firstColumns(o2, 2) {
		t.Errorf("databases:\nours\n%s\ntheirs\n%s", o1, o2)
	}

	// restore -json: the same summary but for the duration.
	for i, run := range []func(...string) (int, string, string){
		func(a ...string) (int, string, string) { return runOurs(t, a...) },
		func(a ...string) (int, string, string) { return r.run(t, nil, a...) },
	} {
		out := filepath.Join(dir, fmt.Sprintf("restored%d.db", i))
		code, stdout, stderr := run("restore", "-json", "-integrity-check", "quick", "-o", out, replica)
		var res map[string]any
		if code != 0 || json.Unmarshal([]byte(stdout), &res) != nil {
			t.Fatalf("restore -json (%d): exit %d\n%s%s", i, code, stdout, stderr)
		}
		want := map[string]any{"db_path": out, "replica": "file", "txid": "000000000000000f", "integrity_check": "quick"}
		for k, v := range want {
			if res[k] != v {
				t.Errorf("restore -json (%d) %s = %v, want %v", i, k, res[k], v)
			}
		}
		if _, ok := res["duration_ms"].(float64); !ok {
			t.Errorf("restore -json (%d) duration_ms = %v", i, res["duration_ms"])
		}
		if got := testsupport.FileSHA256(t, out); got != fixtureSHA256 {
			t.Errorf("restore (%d) sha256 %s", i, got)
		}
	}
}

func runOurs(t *testing.T, args ...string) (int, string, string) { return run(t, nil, args...) }

// firstColumns keeps the first n whitespace-separated fields of each line
// (this build adds columns after Litestream's).
func firstColumns(s string, n int) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		out = append(out, strings.Join(f[:min(n, len(f))], " "))
	}
	return strings.Join(out, "\n")
}

// jsonSubset checks that every field of theirs is in ours with an equal
// value (recursively; arrays element by element); ours may have more.
func jsonSubset(t *testing.T, ours, theirs string) string {
	t.Helper()
	var a, b any
	if err := json.Unmarshal([]byte(ours), &a); err != nil {
		return "ours is not JSON: " + err.Error()
	}
	if err := json.Unmarshal([]byte(theirs), &b); err != nil {
		return "theirs is not JSON: " + err.Error()
	}
	return subset("$", a, b)
}

func subset(at string, ours, theirs any) string {
	switch tv := theirs.(type) {
	case map[string]any:
		ov, ok := ours.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: ours is %T, theirs an object", at, ours)
		}
		for k, v := range tv {
			o, ok := ov[k]
			if !ok {
				return fmt.Sprintf("%s.%s: missing in ours", at, k)
			}
			// The tools may pick different files for the same state;
			// the plan's range is compared above it.
			if k == "files" {
				continue
			}
			if d := subset(at+"."+k, o, v); d != "" {
				return d
			}
		}
	case []any:
		ov, ok := ours.([]any)
		if !ok || len(ov) != len(tv) {
			return fmt.Sprintf("%s: ours has %v elements, theirs %d", at, len(ov), len(tv))
		}
		for i := range tv {
			if d := subset(fmt.Sprintf("%s[%d]", at, i), ov[i], tv[i]); d != "" {
				return d
			}
		}
	default:
		if fmt.Sprint(ours) != fmt.Sprint(theirs) {
			return fmt.Sprintf("%s: ours %v, theirs %v", at, ours, theirs)
		}
	}
	return ""
}

// docFields parses the field tables of Litestream's CLI_JSON_OUTPUT.md:
// for each "## `litestream CMD -json`" section, the tables' fields and
// types in order (a section may hold two tables, restore's).
func docFields(t *testing.T, r *realLS) map[string][][][2]string {
	t.Helper()
	b, err := os.ReadFile(r.file("docs/CLI_JSON_OUTPUT.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][][][2]string{}
	var cmd string
	var table [][2]string
	row := regexp.MustCompile("^\\| `([a-z_\\[\\].]+)` \\| ([a-z]+) \\|")
	for _, line := range strings.Split(string(b), "\n") {
		if m := regexp.MustCompile("^## `litestream ([a-z]+) -json`").FindStringSubmatch(line); m != nil {
			cmd = m[1]
			continue
		}
		if m := row.FindStringSubmatch(line); m != nil && cmd != "" {
			table = append(table, [2]string{m[1], m[2]})
			continue
		}
		if table != nil {
			out[cmd] = append(out[cmd], table)
			table = nil
		}
	}
	return out
}

// checkDocFields checks a JSON document against one table of fields:
// each field present (unless optional) with the documented type.
func checkDocFields(t *testing.T, what, doc string, fields [][2]string, optional map[string]bool) {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Errorf("%s: not JSON: %v\n%s", what, err, doc)
		return
	}
	for _, f := range fields {
		vals := lookupField(v, f[0])
		if len(vals) == 0 {
			if !optional[f[0]] {
				t.Errorf("%s: field %s missing\n%s", what, f[0], doc)
			}
			continue
		}
		for _, x := range vals {
			ok := false
			switch f[1] {
			case "string":
				_, ok = x.(string)
			case "number":
				_, ok = x.(float64)
			case "array":
				_, ok = x.([]any)
			}
			if !ok {
				t.Errorf("%s: field %s is %T, documented as %s", what, f[0], x, f[1])
			}
		}
	}
}

// lookupField returns the values of a documented field path: "a.b" in an
// object, "a[].b" across an array, and a top-level array's elements'
// fields for a plain name.
func lookupField(v any, path string) []any {
	if arr, ok := v.([]any); ok {
		var out []any
		for _, e := range arr {
			out = append(out, lookupField(e, path)...)
		}
		return out
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	head, rest, _ := strings.Cut(path, ".")
	key := strings.TrimSuffix(head, "[]")
	x, ok := obj[key]
	if !ok {
		return nil
	}
	if rest == "" {
		return []any{x}
	}
	return lookupField(x, rest)
}

// TestJSONDocFields: every JSON output Litestream's docs/CLI_JSON_OUTPUT.md
// calls stable has each documented field with its documented type.
func TestJSONDocFields(t *testing.T) {
	r := realLitestream(t)
	docs := docFields(t, r)
	for _, cmd := range []string{"databases", "info", "list", "ltx", "restore", "status"} {
		if len(docs[cmd]) == 0 {
			t.Fatalf("no field table for %s in the docs", cmd)
		}
	}
	dir := t.TempDir()
	replica := testsupport.FixtureCopy(t)
	dbPath := filepath.Join(dir, "app.db")
	app := openApp(t, dbPath)
	sock := filepath.Join(dir, "ls.sock")
	cfg := writeConfig(t, dir, fmt.Sprintf("socket: {enabled: true, path: %s}\ndbs:\n  - path: %s\n    replica: {url: 'file://%s/own'}\n", sock, dbPath, dir))
	d := startDaemon(t, "-config", cfg)
	if _, err := app.Exec(`INSERT INTO t(v) VALUES ('x')`); err != nil {
		t.Fatal(err)
	}
	waitControl(t, sock)
	mustRunOK(t, "sync", "-wait", "-socket", sock, dbPath)

	outputs := map[string][]string{
		"databases": {mustRunOK(t, "databases", "-json", "-config", cfg)},
		"info":      {mustRunOK(t, "info", "-json", "-socket", sock)},
		"list":      {mustRunOK(t, "list", "-json", "-socket", sock)},
		"ltx":       {mustRunOK(t, "ltx", "-json", "-level", "all", "file://"+replica)},
		"restore": {
			mustRunOK(t, "restore", "-json", "-o", filepath.Join(dir, "r.db"), "file://"+replica),
			mustRunOK(t, "restore", "-dry-run", "-json", "-o", filepath.Join(dir, "r2.db"), "file://"+replica),
		},
		"status": {mustRunOK(t, "status", "-json", "-config", cfg)},
	}
	for cmd, tables := range docs {
		outs := outputs[cmd]
		if len(outs) != len(tables) {
			t.Errorf("%s: %d documented outputs, %d checked", cmd, len(tables), len(outs))
			continue
		}
		for i, fields := range tables {
			checkDocFields(t, cmd+" -json", outs[i], fields, nil)
		}
	}
	d.sigs <- syscall.SIGTERM
	d.wait(30 * time.Second)
}

// TestGrafanaDashboard: after a short replication, every panel of
// Litestream's own Grafana dashboard (read from its module) finds at least
// one series on this daemon's /metrics, and so does its job variable.
func TestGrafanaDashboard(t *testing.T) {
	r := realLitestream(t)
	b, err := os.ReadFile(r.file("grafana/litestream-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	app := openApp(t, dbPath)
	cfg := writeConfig(t, dir, fmt.Sprintf("addr: 127.0.0.1:0\ndbs:\n  - path: %s\n    monitor-interval: 20ms\n    checkpoint-interval: 100ms\n    replica: {url: 'file://%s/replica', sync-interval: 50ms}\n", dbPath, dir))
	d := startDaemon(t, "-config", cfg)
	addr := waitMetricsAddr(t, d)
	for i := 0; i < 20; i++ {
		if _, err := app.Exec(`INSERT INTO t(v) VALUES (?)`, strings.Repeat("x", 2000)); err != nil {
			t.Fatal(err)
		}
	}
	series := map[string]bool{}
	waitFor(t, "syncs and a checkpoint in the metrics", 20*time.Second, func() bool {
		mt := scrape(t, addr)
		clear(series)
		for k := range mt {
			name, _, _ := strings.Cut(k, "{")
			series[name] = true
		}
		return mt[fmt.Sprintf(`litestream_checkpoint_count{db="%s",mode="PASSIVE"}`, dbPath)] > 0 &&
			mt[fmt.Sprintf(`litestream_total_wal_bytes{db="%s"}`, dbPath)] > 0 &&
			mt[`litestream_replica_operation_bytes{operation="PUT",replica_type="file"}`] > 0
	})
	nameRE := regexp.MustCompile(`litestream_[a-z0-9_]+`)
	panels := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				continue
			}
			panels++
			for _, name := range nameRE.FindAllString(tg.Expr, -1) {
				if !series[name] {
					t.Errorf("panel %q: %s has no series (expr %s)", p.Title, name, tg.Expr)
				}
			}
		}
	}
	for _, v := range dash.Templating.List {
		for _, name := range nameRE.FindAllString(v.Definition, -1) {
			if !series[name] {
				t.Errorf("variable %q: %s has no series", v.Definition, name)
			}
		}
	}
	if panels < 10 {
		t.Fatalf("only %d panel queries in the dashboard", panels)
	}
	d.sigs <- syscall.SIGTERM
	d.wait(30 * time.Second)
}

// waitMetricsAddr returns the address the daemon's metrics listen on.
func waitMetricsAddr(t *testing.T, d *testDaemon) string {
	t.Helper()
	addrRE := regexp.MustCompile(`msg="metrics listening" addr=(\S+)`)
	var addr string
	waitFor(t, "the metrics listener", 10*time.Second, func() bool {
		m := addrRE.FindStringSubmatch(d.out.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	return addr
}

// TestSampleConfigs: Litestream's sample config from its etc/ runs
// unchanged with replicate -once, and the YAML of its provider guide
// loads, except where Litestream refuses it too.
func TestSampleConfigs(t *testing.T) {
	r := realLitestream(t)
	for _, name := range []string{"etc/litestream.yml"} {
		code, stdout, stderr := run(t, nil, "replicate", "-once", "-config", r.file(name))
		if code != 0 {
			t.Errorf("replicate -once -config %s: exit %d\n%s%s", name, code, stdout, stderr)
		}
		c2, o2, e2 := r.run(t, nil, "replicate", "-once", "-config", r.file(name))
		if c2 != code {
			t.Errorf("%s: Litestream exits %d, we %d\n%s%s", name, c2, code, o2, e2)
		}
	}
	b, err := os.ReadFile(r.file("docs/PROVIDER_COMPATIBILITY.md"))
	if err != nil {
		t.Fatal(err)
	}
	// Blocks Litestream v0.5.18 cannot run either.
	refused := map[string]string{
		"gcs://":            "Litestream knows no gcs scheme (gs:// is Google Cloud Storage)",
		"access-key-secret": "not a Litestream key (and oss is not in this build)",
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(b), -1)
	if len(blocks) < 15 {
		t.Fatalf("only %d YAML blocks in the provider guide", len(blocks))
	}
	for i, m := range blocks {
		y := m[1]
		if strings.HasPrefix(y, "replicas:") || strings.HasPrefix(y, "replica:") {
			y = "dbs:\n  - path: /db\n" + indent(y, "    ")
		}
		_, err := ParseConfig([]byte(y), true, env(nil))
		why := ""
		for k, v := range refused {
			if strings.Contains(y, k) {
				why = v
			}
		}
		switch {
		case why == "" && err != nil:
			t.Errorf("provider guide block %d does not load: %v\n%s", i+1, err, y)
		case why != "" && err == nil && !strings.Contains(y, "gcs://"):
			t.Errorf("provider guide block %d loads although %s", i+1, why)
		}
	}
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n") + "\n"
}

// TestGolden_Status: on a database Litestream replicated (its local state
// and its replica), status prints the same database, status, local TXID
// and WAL size as Litestream, in text and JSON; a missing database is "no
// database" in both.
func TestGolden_Status(t *testing.T) {
	r := realLitestream(t)
	_, theirs := bothTools(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	app := openApp(t, dbPath)
	insertRows(t, app, 12)
	cfg := writeConfig(t, dir, fmt.Sprintf("dbs:\n  - path: %s\n    replica: {url: 'file://%s/replica'}\n  - path: %s/missing.db\n    replica: {url: 'file://%s/r2'}\n", dbPath, dir, dir, dir))
	theirs.mustRun(t, nil, "replicate", "-once", dbPath, "file://"+filepath.Join(dir, "replica"))
	env := map[string]string{"LITESTREAM_CONFIG": cfg}
	c1, o1, e1, c2, o2, e2 := runBoth(t, r, env, "status", "-json")
	if c1 != 0 || c2 != 0 {
		t.Fatalf("status -json: %d %s / %d %s", c1, e1, c2, e2)
	}
	if d := jsonSubset(t, o1, o2); d != "" {
		t.Errorf("status -json: %s\nours:\n%s\ntheirs:\n%s", d, o1, o2)
	}
	c1, o1, _, c2, o2, _ = runBoth(t, r, env, "status")
	if c1 != 0 || c2 != 0 || firstColumns(o1, 4) != firstColumns(o2, 4) {
		t.Errorf("status:\nours\n%s\ntheirs\n%s", o1, o2)
	}
}
