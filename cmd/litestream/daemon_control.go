package main

// The daemon's side of the control socket: Litestream's control API
// (control.Daemon) over the daemon's databases.

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/litestream-go/litestream/control"
)

var _ control.Daemon = (*daemon)(nil)

func (d *daemon) startControl() error {
	path := d.cfg.Socket.Path
	if path == "" {
		path = control.DefaultPath
	}
	srv, err := control.Listen(path, d, control.Options{
		Perm:       fs.FileMode(d.cfg.Socket.Permissions),
		ExpandPath: expandPath,
		Logger:     d.log,
	})
	if err != nil {
		return err
	}
	d.ctl = srv
	d.log.Info("control socket listening", "path", path)
	return nil
}

func (d *daemon) Info() control.InfoResponse {
	return control.InfoResponse{
		Version:       Version,
		PID:           os.Getpid(),
		UptimeSeconds: int64(time.Since(d.started).Seconds()),
		StartedAt:     d.started,
		DatabaseCount: len(d.entries()),
	}
}

func (d *daemon) List() control.ListResponse {
	resp := control.ListResponse{Databases: []control.DatabaseSummary{}}
	for _, e := range d.entries() {
		state, st := e.current()
		s := control.DatabaseSummary{Path: e.path, Status: state.String()}
		if state == stateReplicating && d.once {
			s.Status = "open" // open without its background loop, as Litestream says
		}
		if !st.LastSync.IsZero() {
			t := st.LastSync
			s.LastSyncAt = &t
		}
		resp.Databases = append(resp.Databases, s)
	}
	return resp
}

func (d *daemon) Status(context.Context) control.Status { return d.liveStatus() }

func (d *daemon) entry(path string) (*dbEntry, error) {
	e := d.find(path)
	if e == nil {
		return nil, fmt.Errorf("%w: %s", control.ErrNotFound, path)
	}
	return e, nil
}

func (d *daemon) Start(ctx context.Context, path string) (control.StartResponse, error) {
	return d.switchDB(ctx, path, (*dbEntry).start, "already_running", "started")
}

func (d *daemon) Stop(ctx context.Context, path string) (control.StopResponse, error) {
	r, err := d.switchDB(ctx, path, (*dbEntry).close, "stopped", "already_stopped")
	return control.StopResponse(r), err
}

// switchDB starts or stops (op) the database at path; its status is ifTrue
// when op reports true (start: it was running already; close: it was
// open), else ifFalse.
func (d *daemon) switchDB(ctx context.Context, path string, op func(*dbEntry, context.Context) (bool, error),
	ifTrue, ifFalse string) (control.StartResponse, error) {
	e, err := d.entry(path)
	if err != nil {
		return control.StartResponse{}, err
	}
	b, err := op(e, ctx)
	if err != nil {
		return control.StartResponse{}, err
	}
	status := ifFalse
	if b {
		status = ifTrue
	}
	_, st := e.current()
	return control.StartResponse{Status: status, Path: path, TXID: uint64(localTXID(st))}, nil
}

func (d *daemon) Register(ctx context.Context, path, replicaURL string) (control.RegisterDatabaseResponse, error) {
	if d.find(path) != nil {
		return control.RegisterDatabaseResponse{Status: "already_registered", Path: path}, nil
	}
	u, err := replicaArg(replicaURL)
	if err != nil {
		return control.RegisterDatabaseResponse{}, fmt.Errorf("%w: invalid replica url: %v", control.ErrInvalid, err)
	}
	dbc := &DBConfig{Path: path, Replica: &ReplicaConfig{URL: u}, global: d.cfg}
	if _, err := dbc.Replica.Replica(); err != nil {
		return control.RegisterDatabaseResponse{}, fmt.Errorf("%w: invalid replica url: %v", control.ErrInvalid, err)
	}
	e, err := d.newEntry(ctx, dbc)
	if err != nil {
		return control.RegisterDatabaseResponse{}, fmt.Errorf("%w: invalid replica url: %v", control.ErrInvalid, err)
	}
	e.opMu.Lock()
	err = e.open(ctx)
	e.opMu.Unlock()
	if err != nil {
		return control.RegisterDatabaseResponse{}, fmt.Errorf("failed to register database: %w", err)
	}
	if !d.add(e) {
		// Registered meanwhile by another request: keep that one.
		_, _ = e.close(context.WithoutCancel(ctx))
		return control.RegisterDatabaseResponse{Status: "already_registered", Path: path}, nil
	}
	d.log.Info("database registered", "db", path, "replica", e.red)
	return control.RegisterDatabaseResponse{Status: "registered", Path: path}, nil
}

func (d *daemon) Unregister(ctx context.Context, path string) (control.UnregisterDatabaseResponse, error) {
	e := d.find(path)
	if e == nil {
		return control.UnregisterDatabaseResponse{Status: "already_unregistered", Path: path}, nil
	}
	d.remove(e)
	if _, err := e.close(ctx); err != nil {
		return control.UnregisterDatabaseResponse{}, fmt.Errorf("failed to unregister database: %w", err)
	}
	_, st := e.current()
	d.log.Info("database unregistered", "db", path, "txid", st.TXID.String())
	return control.UnregisterDatabaseResponse{Status: "unregistered", Path: path, TXID: uint64(localTXID(st))}, nil
}

func (d *daemon) Sync(ctx context.Context, path string, wait bool) (control.SyncResponse, error) {
	e, err := d.entry(path)
	if err != nil {
		return control.SyncResponse{}, err
	}
	db := e.writer()
	if db == nil {
		return control.SyncResponse{}, fmt.Errorf("%w: %s", control.ErrNotOpen, path)
	}
	before := localTXID(db.Status())
	// This writer's sync uploads what it writes: with or without wait,
	// the replica holds the result when it returns.
	if err := db.Sync(ctx); err != nil {
		return control.SyncResponse{}, e.redact(fmt.Errorf("sync database: %w", err))
	}
	st := db.Status()
	resp := control.SyncResponse{Path: path, TXID: uint64(localTXID(st)), ReplicatedTXID: uint64(st.TXID)}
	switch {
	case localTXID(st) <= before:
		resp.Status = "no_change"
	case wait:
		resp.Status = "synced"
	default:
		resp.Status = "synced_local"
	}
	return resp, nil
}

func (d *daemon) TXID(path string) (uint64, error) {
	e, err := d.entry(path)
	if err != nil {
		return 0, err
	}
	_, st := e.current()
	return uint64(localTXID(st)), nil
}

func (d *daemon) SyncDiagnostics(path string) ([]control.SyncDiagnostic, error) {
	entries := d.entries()
	if path != "" {
		e, err := d.entry(path)
		if err != nil {
			return nil, err
		}
		entries = []*dbEntry{e}
	}
	var out []control.SyncDiagnostic
	for _, e := range entries {
		state, st := e.current()
		diag := control.SyncDiagnostic{
			Path:    e.path,
			Active:  state == stateReplicating,
			TXID:    uint64(localTXID(st)),
			WALSize: st.WALSize,
			Error:   redactString(st.LastError, e.ref),
		}
		if !st.LastSync.IsZero() {
			t := st.LastSync
			diag.UpdatedAt = &t
		}
		if st.Pending {
			diag.Reason = "upload pending"
		}
		out = append(out, diag)
	}
	return out, nil
}
