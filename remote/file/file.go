// Package file is the remote.Client for a replica in a local directory, in
// the layout Litestream v0.5 writes:
//
//	<root>/ltx/<level decimal>/<%016x-%016x>.ltx
//
// A file's creation time (the LTX header timestamp) is stored as its mtime.
// Writes go to a hidden temporary file in the level directory that is
// fsynced and renamed into place, so a reader sees a whole file or none.
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/internal/backend"
)

// Client is a file replica rooted at a directory. It is safe for concurrent
// use; it holds no state besides the root path.
type Client struct {
	root string
	keys remote.Keys

	// wrapWriter, if set, wraps the temp file writer; tests use it to inject
	// write errors such as ENOSPC.
	wrapWriter func(io.Writer) io.Writer

	// reqs counts the operations, by the kind an object store would bill
	// them as (a directory read is a LIST).
	reqs remote.Requests
}

// RequestCounts returns the operations so far, by kind: a level's
// directory read is a LIST, an open a GET, a write a PUT, each file
// deleted a DELETE.
func (c *Client) RequestCounts() remote.RequestCounts { return c.reqs.RequestCounts() }

var _ remote.Client = (*Client)(nil)

// New returns a client for the replica rooted at root. The directory need
// not exist: it is created by the first write.
func New(root string) *Client {
	root = filepath.Clean(root)
	return &Client{root: root, keys: remote.Keys{Root: filepath.ToSlash(root), Layout: remote.LayoutLTX}}
}

// Type returns "file".
func (c *Client) Type() string { return "file" }

// Root returns the replica root directory.
func (c *Client) Root() string { return c.root }

// LevelDir returns the directory holding the files of level.
func (c *Client) LevelDir(level int) string {
	return filepath.FromSlash(c.keys.LevelDir(level))
}

// FilePath returns the path of one LTX file.
func (c *Client) FilePath(level int, minTXID, maxTXID ltx.TXID) string {
	return filepath.FromSlash(c.keys.File(level, minTXID, maxTXID))
}

// LTXFiles lists the files of level with MinTXID >= seek, by MinTXID.
// Temporary and foreign files are ignored. A missing root or level is empty.
func (c *Client) LTXFiles(ctx context.Context, level int, seek ltx.TXID) ([]*ltx.FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := backend.CheckLevel(level); err != nil {
		return nil, fmt.Errorf("file replica %s: list: %w", c.root, err)
	}
	dir := c.LevelDir(level)
	c.reqs.Add(remote.ReqList)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		// ENOENT only: a root that is a regular file gives ENOTDIR, and an
		// unreadable one EACCES, which are real errors.
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("file replica %s: list level %d: %w", c.root, level, err)
	}

	var infos []*ltx.FileInfo
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		name := e.Name()
		minTXID, maxTXID, ok := remote.ParseFileName(name)
		if !ok || minTXID < seek {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted since ReadDir
		} else if err != nil {
			return nil, fmt.Errorf("file replica %s: stat %s: %w", c.root, filepath.Join(dir, name), err)
		}
		infos = append(infos, &ltx.FileInfo{
			Level:     level,
			MinTXID:   minTXID,
			MaxTXID:   maxTXID,
			Size:      fi.Size(),
			CreatedAt: fi.ModTime().UTC(),
		})
	}
	backend.SortInfos(infos)
	return infos, nil
}

// OpenLTXFile opens bytes [offset, offset+size) of a file; size 0 reads to
// the end. A range that does not lie inside the file is an error, and so is
// a file that turns out shorter than the range while it is read.
func (c *Client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := backend.CheckLevel(level); err != nil {
		return nil, fmt.Errorf("file replica %s: open: %w", c.root, err)
	}
	path := c.FilePath(level, minTXID, maxTXID)
	if err := backend.CheckRange(offset, size); err != nil {
		return nil, fmt.Errorf("file replica: open %s: %w", path, err)
	}
	c.reqs.Add(remote.ReqGet)
	f, err := os.Open(path)
	if err != nil {
		// *PathError names the path and wraps ErrNotExist when missing.
		return nil, fmt.Errorf("file replica: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("file replica: %w", err)
	}
	end, err := backend.RangeEnd(offset, size, fi.Size())
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("file replica: open %s: %w", path, err)
	}
	// The file may shrink while it is read (it never should: files are
	// immutable); the reader then fails rather than end early.
	return backend.ExactReader(sectionFile{io.NewSectionReader(f, offset, end-offset), f}, end-offset, "file replica "+path), nil
}

type sectionFile struct {
	*io.SectionReader
	f *os.File
}

func (s sectionFile) Close() error { return s.f.Close() }

// WriteLTXFile stores the LTX file read from r atomically, with its mtime
// set to the header timestamp. The header's TXIDs must match the name.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := backend.CheckLevel(level); err != nil {
		return nil, fmt.Errorf("file replica %s: write: %w", c.root, err)
	}
	path := c.FilePath(level, minTXID, maxTXID)
	if err := backend.CheckWrite(level, minTXID, maxTXID); err != nil {
		return nil, fmt.Errorf("file replica: write %s: %w", path, err)
	}
	createdAt, r, err := backend.ReadHeader(ctx, r, minTXID, maxTXID)
	if err != nil {
		return nil, fmt.Errorf("file replica: write %s: %w", path, err)
	}

	dir := filepath.Dir(path)
	c.reqs.Add(remote.ReqPut)
	if err := c.mkdirLevel(dir); err != nil {
		return nil, err
	}

	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, writeErr(path, fmt.Errorf("create temp file: %w", err))
	}
	tmp := f.Name()
	n, err := c.writeTemp(ctx, f, r)
	if err != nil {
		_ = os.Remove(tmp)
		return nil, writeErr(path, err)
	}
	if err := os.Chtimes(tmp, createdAt, createdAt); err != nil {
		_ = os.Remove(tmp)
		return nil, writeErr(path, fmt.Errorf("set mtime: %w", err))
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return nil, writeErr(path, fmt.Errorf("rename temp file: %w", err))
	}
	if err := syncDir(dir); err != nil {
		// The file is in place but may not survive a crash; say so rather
		// than report it as durable.
		return nil, writeErr(path, err)
	}
	return &ltx.FileInfo{
		Level:     level,
		MinTXID:   minTXID,
		MaxTXID:   maxTXID,
		Size:      n,
		CreatedAt: createdAt,
	}, nil
}

// writeTemp copies r to f, fsyncs and closes it. f is closed on return.
func (c *Client) writeTemp(ctx context.Context, f *os.File, r io.Reader) (int64, error) {
	var w io.Writer = f
	if c.wrapWriter != nil {
		w = c.wrapWriter(f)
	}
	n, err := io.Copy(w, backend.ContextReader(ctx, r))
	if err != nil {
		_ = f.Close()
		return n, fmt.Errorf("copy after %d bytes: %w", n, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return n, fmt.Errorf("fsync: %w", err)
	}
	if err := f.Close(); err != nil {
		return n, fmt.Errorf("close: %w", err)
	}
	return n, nil
}

// mkdirLevel creates a level directory (and the root) if needed. When it
// creates the level directory it fsyncs its parent so the new entry
// survives a crash along with the file written into it.
func (c *Client) mkdirLevel(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return writeErr(dir, fmt.Errorf("create level directory: %w", err))
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return writeErr(dir, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// writeErr names the destination path and makes a full disk obvious.
func writeErr(path string, err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("file replica: write %s: no space left on device: %w", path, err)
	}
	if errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("file replica: write %s: disk quota exceeded: %w", path, err)
	}
	return fmt.Errorf("file replica: write %s: %w", path, err)
}

// DeleteLTXFiles removes files; missing ones are skipped. It tries every
// file and returns all failures.
func (c *Client) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	paths, errs := backend.DeleteKeys(files, c.FilePath, func(op, path string, err error) error {
		return fmt.Errorf("file replica: %s %s: %w", op, path, err)
	})
	for _, path := range paths {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		c.reqs.Add(remote.ReqDelete)
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("file replica: delete: %w", err))
		}
	}
	// No directory fsync: a delete lost in a crash leaves a file that
	// retention deletes again.
	return errors.Join(errs...)
}

// DeleteAll removes <root>/ltx and everything in it. The root itself, which
// may hold other things, stays.
func (c *Client) DeleteAll(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Clean(filepath.FromSlash(c.keys.DeletePrefixes()[0]))
	c.reqs.Add(remote.ReqDelete)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("file replica: delete all: remove %s: %w", dir, err)
	}
	return nil
}

var _ remote.RawReader = (*Client)(nil)

// ListRaw lists the files under root/prefix (recursively), for reading
// Litestream v0.3's generations/ tree.
func (c *Client) ListRaw(ctx context.Context, prefix string) ([]remote.RawObject, error) {
	var out []remote.RawObject
	base := filepath.Join(c.root, filepath.FromSlash(prefix))
	err := filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(c.root, p)
		if err != nil {
			return err
		}
		out = append(out, remote.RawObject{Key: filepath.ToSlash(rel), Size: fi.Size(), ModTime: fi.ModTime().UTC()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("file replica %s: list %s: %w", c.root, prefix, err)
	}
	return out, nil
}

// OpenRaw opens root/key.
func (c *Client) OpenRaw(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(c.root, filepath.FromSlash(key)))
	if err != nil {
		return nil, fmt.Errorf("file replica %s: open %s: %w", c.root, key, err)
	}
	return f, nil
}
