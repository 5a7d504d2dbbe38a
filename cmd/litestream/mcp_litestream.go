package main

// Litestream v0.5.18's MCP tools, with its names and arguments, beside this
// program's own (mcp.go): each runs the matching command of this program
// in-process (Litestream runs its binary from $PATH) and returns its text
// output; a failing command is a tool error with the output.

import (
	"bytes"
	"context"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type lsConfigArg struct {
	Config string `json:"config,omitempty" jsonschema:"Path to the Litestream config file. Optional."`
}

type lsPathArg struct {
	Path   string `json:"path" jsonschema:"Database path or replica URL."`
	Config string `json:"config,omitempty" jsonschema:"Path to the Litestream config file. Optional, ignored for replica URLs."`
}

type lsStatusArg struct {
	Config string `json:"config,omitempty" jsonschema:"Path to the Litestream config file. Optional."`
	Path   string `json:"path,omitempty" jsonschema:"Filter to a specific database path. Optional."`
}

type lsRestoreArg struct {
	Path            string `json:"path" jsonschema:"Database path or replica URL."`
	O               string `json:"o,omitempty" jsonschema:"Output path for the restored database. Optional."`
	Config          string `json:"config,omitempty" jsonschema:"Path to the Litestream config file. Optional."`
	TXID            string `json:"txid,omitempty" jsonschema:"Restore up to a specific transaction ID. Optional."`
	Timestamp       string `json:"timestamp,omitempty" jsonschema:"Restore to a specific point-in-time (RFC3339). Optional."`
	Parallelism     string `json:"parallelism,omitempty" jsonschema:"Files read at once. Optional."`
	IfDBNotExists   bool   `json:"if_db_not_exists,omitempty" jsonschema:"Return 0 if the database already exists. Optional."`
	IfReplicaExists bool   `json:"if_replica_exists,omitempty" jsonschema:"Return 0 if no backups found. Optional."`
}

// addLitestreamTools registers Litestream's tools; configPath is the
// daemon's config file (the default for the tools' config argument).
func (m *Main) addLitestreamTools(s *mcp.Server, configPath string) {
	run := func(ctx context.Context, args ...string) (*mcp.CallToolResult, any, error) {
		var out bytes.Buffer
		mm := &Main{Stdout: &out, Stderr: &out, Getenv: m.Getenv}
		err := mm.Run(ctx, args)
		if err != nil {
			return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: strings.TrimSpace(out.String()) + ": " + err.Error()}}}, nil, nil
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: out.String()}}}, nil, nil
	}
	config := func(c string) string {
		if c != "" {
			return c
		}
		return configPath
	}
	withConfig := func(args []string, c, path string) []string {
		if isURL(path) {
			return args // a replica URL takes no -config
		}
		if c := config(c); c != "" {
			args = append(args, "-config", c)
		}
		return args
	}
	mcp.AddTool(s, &mcp.Tool{Name: "litestream_databases", Description: "List databases and their replicas as defined in the Litestream config file. The default path is /etc/litestream.yml but is not required."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in lsConfigArg) (*mcp.CallToolResult, any, error) {
			return run(ctx, withConfig([]string{"databases"}, in.Config, "")...)
		})
	mcp.AddTool(s, &mcp.Tool{Name: "litestream_info", Description: "Get a comprehensive summary of Litestream's current status including databases, LTX files, and version information."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in lsConfigArg) (*mcp.CallToolResult, any, error) {
			var b strings.Builder
			b.WriteString("=== Litestream Status Report ===\n\nVersion Information:\n" + Version + "\n\n")
			c := config(in.Config)
			b.WriteString("Current Config Path:\n" + c + "\n\n")
			res, _, _ := run(ctx, withConfig([]string{"databases"}, in.Config, "")...)
			text := res.Content[0].(*mcp.TextContent).Text
			if res.IsError {
				return res, nil, nil
			}
			b.WriteString("Databases:\n" + text + "\nLTX Files:\n")
			lines := strings.Split(strings.TrimSpace(text), "\n")
			for _, line := range lines[min(1, len(lines)):] {
				f := strings.Fields(line)
				if len(f) == 0 {
					continue
				}
				r, _, _ := run(ctx, append(withConfig([]string{"ltx"}, in.Config, f[0]), f[0])...)
				b.WriteString("Database: " + f[0] + "\n" + r.Content[0].(*mcp.TextContent).Text + "\n")
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: b.String()}}}, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "litestream_restore", Description: "Restore a database from a Litestream replica."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in lsRestoreArg) (*mcp.CallToolResult, any, error) {
			args := []string{"restore"}
			if in.O != "" {
				args = append(args, "-o", in.O)
			}
			args = withConfig(args, in.Config, in.Path)
			if in.TXID != "" {
				args = append(args, "-txid", in.TXID)
			}
			if in.Timestamp != "" {
				args = append(args, "-timestamp", in.Timestamp)
			}
			if in.Parallelism != "" {
				args = append(args, "-parallelism", in.Parallelism)
			}
			if in.IfDBNotExists {
				args = append(args, "-if-db-not-exists")
			}
			if in.IfReplicaExists {
				args = append(args, "-if-replica-exists")
			}
			return run(ctx, append(args, in.Path)...)
		})
	mcp.AddTool(s, &mcp.Tool{Name: "litestream_version", Description: "Print the Litestream binary version."},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			return run(ctx, "version")
		})
	mcp.AddTool(s, &mcp.Tool{Name: "litestream_ltx", Description: "List all LTX files for a database or replica URL."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in lsPathArg) (*mcp.CallToolResult, any, error) {
			return run(ctx, append(withConfig([]string{"ltx"}, in.Config, in.Path), in.Path)...)
		})
	mcp.AddTool(s, &mcp.Tool{Name: "litestream_status", Description: "Display replication status including database path, status, local transaction ID, and WAL size."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in lsStatusArg) (*mcp.CallToolResult, any, error) {
			args := withConfig([]string{"status"}, in.Config, "")
			if in.Path != "" {
				args = append(args, in.Path)
			}
			return run(ctx, args...)
		})
	mcp.AddTool(s, &mcp.Tool{Name: "litestream_reset", Description: "Clear local Litestream state for a database. Removes local LTX files, forcing fresh snapshot on next sync. Database file is not modified."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in lsPathArg) (*mcp.CallToolResult, any, error) {
			return run(ctx, append(withConfig([]string{"reset"}, in.Config, ""), in.Path)...)
		})
}
