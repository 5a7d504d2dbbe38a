package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestMCP connects the SDK's MCP client to a running daemon's mcp-addr:
// tools/list, then every tool, a restore to a new path among them.
func TestMCP(t *testing.T) {
	dir, dbPath, replica, app := appDir(t)
	for i := 0; i < 20; i++ {
		if _, err := app.Exec(`INSERT INTO t(v) VALUES (?)`, fmt.Sprint("row ", i)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := writeConfig(t, dir, fmt.Sprintf("mcp-addr: 127.0.0.1:0\ndbs:\n  - path: %s\n    monitor-interval: 20ms\n    replica: {url: 'file://%s', sync-interval: 20ms}\n", dbPath, replica))
	d := startDaemon(t, "-config", cfg)
	addrRE := regexp.MustCompile(`msg="mcp listening" addr=(\S+)`)
	var addr string
	waitFor(t, "the MCP listener", 10*time.Second, func() bool {
		if m := addrRE.FindStringSubmatch(d.out.String()); m != nil {
			addr = m[1]
		}
		return addr != ""
	})
	waitFor(t, "the first sync", 10*time.Second, func() bool { return countLTX(replica) > 0 })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "v0"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: "http://" + addr, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()

	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	if strings.Join(names, ",") != "list_databases,litestream_databases,litestream_info,litestream_ltx,litestream_reset,litestream_restore,litestream_status,litestream_version,ltx_files,restore,status" {
		t.Fatalf("tools/list = %v", names)
	}

	call := func(name string, args map[string]any, out any) *mcp.CallToolResult {
		t.Helper()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if out != nil && !res.IsError {
			b, _ := json.Marshal(res.StructuredContent)
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		return res
	}
	var dbs mcpDatabases
	call("list_databases", nil, &dbs)
	if len(dbs.Databases) != 1 || dbs.Databases[0].Path != dbPath || dbs.Databases[0].Type != "file" {
		t.Errorf("list_databases = %+v", dbs)
	}
	var st struct {
		DBs []struct {
			Database    string `json:"database"`
			ReplicaTXID string `json:"replica_txid"`
		} `json:"dbs"`
	}
	// The first file may be listed before the daemon has recorded its
	// upload; poll until it has.
	waitFor(t, "the first upload in the status", 10*time.Second, func() bool {
		call("status", nil, &st)
		return len(st.DBs) == 1 && st.DBs[0].ReplicaTXID != "0000000000000000"
	})
	if len(st.DBs) != 1 || st.DBs[0].Database != dbPath || st.DBs[0].ReplicaTXID == "0000000000000000" {
		t.Errorf("status = %+v", st)
	}
	var files mcpLTXFiles
	call("ltx_files", map[string]any{"database": dbPath}, &files)
	if len(files.Files) != countLTX(replica) {
		t.Errorf("ltx_files listed %d files, the replica has %d", len(files.Files), countLTX(replica))
	}

	out := filepath.Join(dir, "restored.db")
	var rr mcpRestoreResult
	if res := call("restore", map[string]any{"database": dbPath, "output": out}, &rr); res.IsError {
		t.Fatalf("restore failed: %+v", res.Content)
	}
	if rr.Output != out || rr.TXID == "" {
		t.Errorf("restore = %+v", rr)
	}
	if got := queryString(t, out, "SELECT count(*) FROM t"); got != "20" {
		t.Errorf("restored %s rows, want 20", got)
	}
	// An existing output is refused, as is a database it does not replicate.
	if res := call("restore", map[string]any{"database": dbPath, "output": out}, nil); !res.IsError {
		t.Error("restore over an existing file succeeded")
	}
	if res := call("ltx_files", map[string]any{"database": "/nope.db"}, nil); !res.IsError {
		t.Error("ltx_files for an unknown database succeeded")
	}

	// Litestream's tools, by its names and arguments: text output.
	text := func(res *mcp.CallToolResult) string {
		if len(res.Content) == 0 {
			return ""
		}
		return res.Content[0].(*mcp.TextContent).Text
	}
	for _, tc := range []struct {
		name string
		args map[string]any
		want string
	}{
		{"litestream_version", nil, "development\n"},
		{"litestream_databases", nil, dbPath},
		{"litestream_status", map[string]any{"path": dbPath}, "ok"},
		{"litestream_ltx", map[string]any{"path": "file://" + replica}, "0000000000000001"},
		{"litestream_info", nil, "=== Litestream Status Report ==="},
		{"litestream_restore", map[string]any{"path": "file://" + replica, "o": filepath.Join(dir, "ls-restored.db")}, ""},
	} {
		res := call(tc.name, tc.args, nil)
		if res.IsError || !strings.Contains(text(res), tc.want) {
			t.Errorf("%s: error %v, output %q; want it to contain %q", tc.name, res.IsError, text(res), tc.want)
		}
	}
	if got := queryString(t, filepath.Join(dir, "ls-restored.db"), "SELECT count(*) FROM t"); got != "20" {
		t.Errorf("litestream_restore restored %s rows, want 20", got)
	}
	if res := call("litestream_restore", map[string]any{"path": "file://" + replica, "o": filepath.Join(dir, "ls-restored.db")}, nil); !res.IsError {
		t.Error("litestream_restore over an existing file succeeded")
	}
}
