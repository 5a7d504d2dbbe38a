package archtest

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// moduleDir returns the module's root directory and path.
func moduleDir(t *testing.T) (dir, path string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}} {{.Path}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	dir, path, ok := strings.Cut(strings.TrimSpace(string(out)), " ")
	if !ok {
		t.Fatalf("go list -m printed %q", out)
	}
	return dir, path
}

var backticked = regexp.MustCompile("`([^`]+)`")

// packageTable parses the package table of docs/ARCHITECTURE.md: for each
// package named in a row's first cell, the project packages its third cell
// allows it to import.
func packageTable(t *testing.T, doc string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	rows := make(map[string][]string)
	in := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			in = line == "## Packages"
			continue
		case !in || !strings.HasPrefix(line, "| `"):
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) != 3 {
			t.Fatalf("%s: table row with %d cells (want package | owns | imports): %s", doc, len(cells), line)
		}
		var allowed []string
		for _, m := range backticked.FindAllStringSubmatch(cells[2], -1) {
			allowed = append(allowed, m[1])
		}
		for _, m := range backticked.FindAllStringSubmatch(cells[0], -1) {
			if _, dup := rows[m[1]]; dup {
				t.Fatalf("%s: package %s has two rows", doc, m[1])
			}
			rows[m[1]] = allowed
		}
	}
	if len(rows) == 0 {
		t.Fatalf("%s: no package table under \"## Packages\"", doc)
	}
	return rows
}

// TestPackageTable: every package has a row, and imports only what its row
// allows (project packages; external libraries are not listed).
func TestPackageTable(t *testing.T) {
	dir, mod := moduleDir(t)
	doc := filepath.Join(dir, "docs", "ARCHITECTURE.md")
	rows := packageTable(t, doc)

	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "./...")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	seen := make(map[string]bool)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := rel(mod, fields[0])
		seen[pkg] = true
		allowed, ok := rows[pkg]
		if !ok {
			t.Errorf("package %s has no row in docs/ARCHITECTURE.md's package table: add one (what it owns, what it may import)", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, mod+"/") {
				continue
			}
			if r := rel(mod, imp); !slices.Contains(allowed, r) {
				t.Errorf("%s imports %s, which docs/ARCHITECTURE.md does not allow (it allows %v): move the code, or change the table with a reason", pkg, r, allowed)
			}
		}
	}
	for pkg := range rows {
		if !seen[pkg] {
			t.Errorf("docs/ARCHITECTURE.md has a row for %s, which is not a package of the module", pkg)
		}
	}
}

// TestNoSQLiteBelowWriter: the packages that plan, read and restore a
// replica link no SQLite driver and no VFS, and the command line does not
// link the VFS (docs/ARCHITECTURE.md, below the package table).
func TestNoSQLiteBelowWriter(t *testing.T) {
	dir, _ := moduleDir(t)
	const driver, vfs = "github.com/mattn/go-sqlite3", "github.com/psanford/sqlite3vfs"
	for _, tc := range []struct {
		pkg       string
		forbidden []string
	}{
		{"./remote/...", []string{driver, vfs}},
		{"./index", []string{driver, vfs}},
		{"./pagecache", []string{driver, vfs}},
		{"./restore", []string{driver, vfs}},
		{"./vfs", []string{driver}},
		{"./cmd/litestream", []string{vfs}},
	} {
		cmd := exec.Command("go", "list", "-deps", tc.pkg)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", tc.pkg, err)
		}
		deps := strings.Fields(string(out))
		for _, f := range tc.forbidden {
			if slices.Contains(deps, f) {
				t.Errorf("%s links %s; docs/ARCHITECTURE.md forbids it", tc.pkg, f)
			}
		}
	}
}

func rel(mod, pkg string) string {
	if pkg == mod {
		return "."
	}
	return strings.TrimPrefix(pkg, mod+"/")
}
