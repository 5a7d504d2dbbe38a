package writer

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
)

// dsn returns the URI our connections open: read-write but never create, so a
// missing database is an error and not a new empty file. busy bounds how long
// our statements wait for SQLite locks (Options.BusyTimeout).
func dsn(path string, busy time.Duration) string {
	// SQLite decodes %XX in URI paths; escape the characters that would end
	// the path or start an escape.
	r := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
	return fmt.Sprintf("file:%s?mode=rw&_busy_timeout=%d", r.Replace(path), busy.Milliseconds())
}

// openConns opens our four connections and puts the database in WAL mode.
func (d *DB) openConns(ctx context.Context) error {
	db, err := sql.Open("sqlite3", dsn(d.path, d.opts.BusyTimeout))
	if err != nil {
		return fmt.Errorf("open database %s: %w", d.path, err)
	}
	d.sqldb = db
	db.SetMaxIdleConns(4)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)

	for _, c := range []**sql.Conn{&d.ctl, &d.pin, &d.spare, &d.lock} {
		conn, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("open database %s: %w", d.path, err)
		}
		*c = conn
		if err := d.configure(ctx, conn); err != nil {
			return err
		}
	}

	// Changing the journal mode needs an exclusive lock and, in a directory
	// we cannot write, fails with "unable to open database file" because the
	// -wal and -shm files cannot be created.
	var mode string
	if err := d.ctl.QueryRowContext(ctx, `PRAGMA journal_mode=WAL`).Scan(&mode); err != nil {
		var serr sqlite3.Error
		if errors.As(err, &serr) && serr.Code == sqlite3.ErrCantOpen {
			return fmt.Errorf("put database %s in WAL mode: cannot create its -wal/-shm files (is the directory writable?): %w", d.path, err)
		}
		return fmt.Errorf("put database %s in WAL mode: %w", d.path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("put database %s in WAL mode: journal mode is still %q", d.path, mode)
	}
	var pageSize uint32
	if err := d.ctl.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&pageSize); err != nil {
		return fmt.Errorf("read page size of %s: %w", d.path, err)
	}
	d.pageSize = pageSize
	return nil
}

// configure sets per-connection options on one of our connections. These
// affect only our connections, never the application's.
func (d *DB) configure(ctx context.Context, conn *sql.Conn) error {
	// Our connections never write, so SQLite would never run an automatic
	// checkpoint from them anyway; say so explicitly: checkpoints are ours
	// to schedule.
	if _, err := conn.ExecContext(ctx, `PRAGMA wal_autocheckpoint=0`); err != nil {
		return fmt.Errorf("configure connection to %s: %w", d.path, err)
	}
	// When the last connection to a database closes, SQLite checkpoints and
	// deletes the WAL. If that connection is ours, keep the WAL file: its
	// salts and checksums let the next Open resume without a snapshot.
	err := conn.Raw(func(dc any) error {
		c, ok := dc.(*sqlite3.SQLiteConn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		return c.SetFileControlInt("main", sqlite3.SQLITE_FCNTL_PERSIST_WAL, 1)
	})
	if err != nil {
		return fmt.Errorf("configure connection to %s: %w", d.path, err)
	}
	return nil
}

// beginRead starts a read transaction on *pc. A deferred BEGIN takes no lock;
// the SELECT takes the WAL read lock, which the transaction then keeps until
// endRead.
func (d *DB) beginRead(ctx context.Context, pc **sql.Conn) error {
	conn := *pc
	if _, err := conn.ExecContext(ctx, `BEGIN`); err != nil {
		return fmt.Errorf("begin read transaction on %s: %w", d.path, err)
	}
	var n int64
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master`).Scan(&n); err != nil {
		d.endRead(pc)
		return fmt.Errorf("begin read transaction on %s: %w", d.path, err)
	}
	return nil
}

// endRead ends the read transaction on *pc, if any. It runs regardless of
// any caller's context: a read transaction left open would pin the WAL.
// If the rollback fails the connection is discarded (which ends the
// transaction too) and *pc is replaced by a fresh one.
func (d *DB) endRead(pc **sql.Conn) {
	conn := *pc
	_, err := conn.ExecContext(context.Background(), `ROLLBACK`)
	if err == nil || strings.Contains(err.Error(), "no transaction is active") {
		return
	}
	d.log.Warn("end read transaction failed; replacing connection", "err", err)
	_ = conn.Raw(func(any) error { return driver.ErrBadConn }) // discard it
	_ = conn.Close()
	fresh, ferr := d.sqldb.Conn(context.Background())
	if ferr == nil {
		if ferr = d.configure(context.Background(), fresh); ferr != nil {
			_ = fresh.Close()
		}
	}
	if ferr != nil {
		d.log.Error("replace connection failed", "err", errors.Join(err, ferr))
		return
	}
	*pc = fresh
}
