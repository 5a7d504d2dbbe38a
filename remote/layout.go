package remote

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/superfly/ltx"
)

// Layout is the way a backend names the levels of a replica below its root.
// Litestream v0.5 uses two, and every backend uses the one Litestream uses
// for it, so that both tools share a replica (docs/ARCHITECTURE.md, storage layout).
type Layout int

const (
	// LayoutLTX is "<root>/ltx/<level decimal>/<file>": file, gs, abs,
	// sftp, webdav and nats.
	LayoutLTX Layout = iota
	// LayoutS3 is "<root>/<level as %04x>/<file>": s3. At the bucket root
	// (an empty root) the keys are "/<level>/<file>", with a leading slash,
	// because Litestream v0.5 writes them so (root + "/" + ...).
	LayoutS3
)

// Keys names the objects (or paths) of one replica: the one place that
// spells out the key layout. Root is the replica's root inside the bucket,
// container or directory, without a trailing "/"; "" is the bucket root.
// Keys use "/" separators; the file backend converts them to the OS's.
type Keys struct {
	Root   string
	Layout Layout
}

// CleanRoot returns a replica path as Keys.Root wants it: "/"-separated,
// cleaned ("a//b/../c" is "a/c"), without a leading or trailing "/"; ""
// for the bucket root.
func CleanRoot(p string) string { return strings.Trim(path.Clean("/"+p), "/") }

// LevelDir returns the directory (key prefix without the trailing "/") of
// level's files.
func (k Keys) LevelDir(level int) string {
	if k.Layout == LayoutS3 {
		return k.Root + "/" + fmt.Sprintf("%04x", level)
	}
	return path.Join(k.Root, "ltx", strconv.Itoa(level))
}

// LevelPrefix returns the key prefix of level's files, ending in "/".
func (k Keys) LevelPrefix(level int) string { return k.LevelDir(level) + "/" }

// File returns the key of one LTX file.
func (k Keys) File(level int, minTXID, maxTXID ltx.TXID) string {
	return k.LevelPrefix(level) + FileName(minTXID, maxTXID)
}

// FileOf returns the key of a listed file.
func (k Keys) FileOf(id FileID) string { return k.File(id.Level, id.MinTXID, id.MaxTXID) }

// SeekKey returns the key a listing of level from TXID seek starts at (or
// after: the name of a file with MinTXID seek sorts right after it), or ""
// for seek 0. File names are fixed-width lower-case hex, so byte order is
// numeric order: the seek is a number, never a name prefix.
func (k Keys) SeekKey(level int, seek ltx.TXID) string {
	if seek == 0 {
		return ""
	}
	return k.LevelPrefix(level) + fmt.Sprintf("%016x", uint64(seek))
}

// AllPrefix returns the one key prefix under which every level of the
// replica lies, ending in "/": "<root>/ltx/" in LayoutLTX, "<root>/" in
// LayoutS3. A listing of it may also return keys outside the layout (other
// files under the root); ParseKey tells them apart.
func (k Keys) AllPrefix() string {
	if k.Layout == LayoutS3 {
		return k.Root + "/"
	}
	return path.Join(k.Root, "ltx") + "/"
}

// DeletePrefixes returns the key prefixes that DeleteAll empties: together
// they hold every file of the replica and nothing outside its layout. In
// LayoutLTX that is the one "<root>/ltx/" directory; in LayoutS3 each level
// directory, since "<root>/" may hold other things (a v0.3 generations/
// tree, another replica's path).
func (k Keys) DeletePrefixes() []string {
	if k.Layout != LayoutS3 {
		return []string{k.AllPrefix()}
	}
	out := make([]string, 0, MaxLevel+1)
	for level := 0; level <= MaxLevel; level++ {
		out = append(out, k.LevelPrefix(level))
	}
	return out
}

// ParseKey returns the file a key names, and whether it names one: a key
// of the layout with a level in 0..MaxLevel and a canonical file name (a
// name ltx.ParseFilename accepts in another spelling would not be found
// again under the name FileName gives it). In LayoutS3 at the bucket root
// the key may lack the leading "/" (MinIO stores Litestream's "/0009/..."
// so when it arrives by multipart upload, and replicas of earlier builds
// used that form).
func (k Keys) ParseKey(key string) (FileID, bool) {
	rest, ok := strings.CutPrefix(key, k.AllPrefix())
	if !ok && k.Layout == LayoutS3 && k.Root == "" {
		rest, ok = key, !strings.HasPrefix(key, "/")
	}
	if !ok {
		return FileID{}, false
	}
	dir, name, ok := strings.Cut(rest, "/")
	if !ok {
		return FileID{}, false
	}
	var level int
	if k.Layout == LayoutS3 {
		n, err := strconv.ParseUint(dir, 16, 8)
		if err != nil || len(dir) != 4 {
			return FileID{}, false
		}
		level = int(n)
	} else {
		n, err := strconv.Atoi(dir)
		if err != nil || strconv.Itoa(n) != dir {
			return FileID{}, false
		}
		level = n
	}
	if level < 0 || level > MaxLevel {
		return FileID{}, false
	}
	minTXID, maxTXID, ok := ParseFileName(name)
	if !ok {
		return FileID{}, false
	}
	return FileID{Level: level, MinTXID: minTXID, MaxTXID: maxTXID}, true
}

// ParseFileName returns the TXIDs of a canonical LTX file name
// ("%016x-%016x.ltx", lower-case hex), and false for anything else
// (temporary files, foreign files, other spellings of a name).
func ParseFileName(name string) (minTXID, maxTXID ltx.TXID, ok bool) {
	minTXID, maxTXID, err := ltx.ParseFilename(name)
	if err != nil || FileName(minTXID, maxTXID) != name {
		return 0, 0, false
	}
	return minTXID, maxTXID, true
}
