package main

// The Model Context Protocol endpoint (mcp-addr): tools that let an AI
// assistant list the databases, read their live status and LTX files, and
// restore a database to a new path. Every tool calls this program's own code
// (the writer's status, the index listing, the restore path) in-process; no
// shell is involved. Like the metrics endpoint it binds localhost unless the
// address names a host.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/control"
	"github.com/litestream-go/litestream/remote"
)

type mcpDatabase struct {
	Path    string `json:"path" jsonschema:"absolute path of the database"`
	Replica string `json:"replica" jsonschema:"replica URL with secrets masked"`
	Type    string `json:"type" jsonschema:"replica backend"`
}

type mcpDatabases struct {
	Databases []mcpDatabase `json:"databases"`
}

type mcpDBArg struct {
	Database string `json:"database" jsonschema:"path of a replicated database, as listed by list_databases"`
}

type mcpLTXArgs struct {
	Database string `json:"database" jsonschema:"path of a replicated database, as listed by list_databases"`
	Level    *int   `json:"level,omitempty" jsonschema:"only this level (0-9); all levels when absent"`
}

type mcpLTXFile struct {
	Level   int       `json:"level"`
	MinTXID string    `json:"min_txid"`
	MaxTXID string    `json:"max_txid"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
}

type mcpLTXFiles struct {
	Files []mcpLTXFile `json:"files"`
}

type mcpRestoreArgs struct {
	Database  string `json:"database" jsonschema:"path of a replicated database, as listed by list_databases"`
	Output    string `json:"output" jsonschema:"absolute path of the new database file; must not exist"`
	TXID      string `json:"txid,omitempty" jsonschema:"restore up to this transaction ID (hex); latest when absent"`
	Timestamp string `json:"timestamp,omitempty" jsonschema:"restore the state at this RFC 3339 time; latest when absent"`
}

type mcpRestoreResult struct {
	Output   string `json:"output"`
	TXID     string `json:"txid"`
	Pages    uint32 `json:"pages"`
	PageSize uint32 `json:"page_size"`
	Files    int    `json:"files"`
}

// newMCPServer returns the MCP server for the running daemon's databases.
func (m *Main) newMCPServer(d *daemon, logger *slog.Logger) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "litestream", Version: Version}, nil)
	m.addLitestreamTools(s, d.cfg.Path)
	find := func(path string) (*dbEntry, error) {
		p, err := expandPath(path)
		if err != nil {
			return nil, err
		}
		if r := d.find(p); r != nil {
			return r, nil
		}
		return nil, fmt.Errorf("database %s is not replicated by this daemon (see list_databases)", path)
	}

	mcp.AddTool(s, &mcp.Tool{Name: "list_databases", Description: "List the databases this daemon replicates and their replicas."},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, mcpDatabases, error) {
			out := mcpDatabases{Databases: []mcpDatabase{}}
			for _, r := range d.entries() {
				out.Databases = append(out.Databases, mcpDatabase{Path: r.path, Replica: r.red, Type: r.client.Type()})
			}
			return nil, out, nil
		})

	mcp.AddTool(s, &mcp.Tool{Name: "status", Description: "Live replication status of every database: local and replica TXID, lag in seconds, WAL size, last sync and last error."},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, control.Status, error) {
			return nil, d.liveStatus(), nil
		})

	mcp.AddTool(s, &mcp.Tool{Name: "ltx_files", Description: "List the LTX files in a database's replica, by level and TXID range."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in mcpLTXArgs) (*mcp.CallToolResult, mcpLTXFiles, error) {
			r, err := find(in.Database)
			if err != nil {
				return nil, mcpLTXFiles{}, err
			}
			var files []*ltx.FileInfo
			if in.Level != nil {
				if *in.Level < 0 || *in.Level > remote.MaxLevel {
					return nil, mcpLTXFiles{}, fmt.Errorf("level must be 0-%d, not %d", remote.MaxLevel, *in.Level)
				}
				files, err = r.client.LTXFiles(ctx, *in.Level, 0)
			} else {
				files, err = remote.ListAll(ctx, r.client)
			}
			if err != nil {
				return nil, mcpLTXFiles{}, r.redact(fmt.Errorf("list replica %s: %w", r.red, err))
			}
			out := mcpLTXFiles{Files: make([]mcpLTXFile, 0, len(files))}
			for _, f := range files {
				out.Files = append(out.Files, mcpLTXFile{f.Level, f.MinTXID.String(), f.MaxTXID.String(), f.Size, f.CreatedAt.UTC()})
			}
			return nil, out, nil
		})

	mcp.AddTool(s, &mcp.Tool{Name: "restore", Description: "Restore a database from its replica to a new file (latest state, or at a TXID or time), checked with PRAGMA quick_check. Never overwrites a file."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in mcpRestoreArgs) (*mcp.CallToolResult, mcpRestoreResult, error) {
			r, err := find(in.Database)
			if err != nil {
				return nil, mcpRestoreResult{}, err
			}
			if in.Output == "" {
				return nil, mcpRestoreResult{}, errors.New("output is required")
			}
			out, err := expandPath(in.Output)
			if err != nil {
				return nil, mcpRestoreResult{}, err
			}
			if out == r.path {
				return nil, mcpRestoreResult{}, errors.New("output must not be the replicated database itself")
			}
			if _, err := os.Lstat(out); err == nil {
				return nil, mcpRestoreResult{}, fmt.Errorf("output %s already exists", out)
			}
			p := restoreParams{output: out, integrity: "quick"}
			if in.TXID != "" {
				if p.txid, err = parseTXID(in.TXID); err != nil {
					return nil, mcpRestoreResult{}, err
				}
			}
			if in.Timestamp != "" {
				if p.timestamp, err = time.Parse(time.RFC3339Nano, in.Timestamp); err != nil {
					return nil, mcpRestoreResult{}, fmt.Errorf("timestamp: %w", err)
				}
			}
			logger.Info("mcp: restore", "db", r.path, "output", out, "txid", in.TXID, "timestamp", in.Timestamp)
			res, err := m.restore(ctx, r.client, p, logger)
			if err != nil {
				return nil, mcpRestoreResult{}, r.redact(fmt.Errorf("restore %s to %s: %w", r.path, out, err))
			}
			return nil, mcpRestoreResult{Output: out, TXID: res.TXID.String(), Pages: res.Commit, PageSize: res.PageSize, Files: res.Files}, nil
		})
	return s
}

func mcpHandler(s *mcp.Server) http.Handler {
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)
}
