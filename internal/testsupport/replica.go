package testsupport

import (
	"cmp"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"

	"github.com/superfly/ltx"
)

// ReplicaFile is one LTX file of a file replica.
type ReplicaFile struct {
	Level    int
	Min, Max ltx.TXID
	Path     string
	Size     int64
}

var ltxName = regexp.MustCompile(`^[0-9a-f]{16}-[0-9a-f]{16}\.ltx$`)

// ReplicaFiles returns the LTX files of a file replica (<root>/ltx/<level>/),
// by level then MinTXID; none if root has no ltx directory yet. Other names
// (uploads in progress, hidden files) are skipped, and so is a file removed
// while it is listed (a running daemon's retention), so it can be called
// beside a daemon that writes the replica.
func ReplicaFiles(root string) ([]ReplicaFile, error) {
	var files []ReplicaFile
	levels, err := os.ReadDir(filepath.Join(root, "ltx"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	for _, l := range levels {
		level, err := strconv.Atoi(l.Name())
		if err != nil || !l.IsDir() {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(root, "ltx", l.Name()))
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if !ltxName.MatchString(e.Name()) {
				continue
			}
			minTXID, maxTXID, err := ltx.ParseFilename(e.Name())
			if err != nil {
				return nil, err
			}
			fi, err := e.Info()
			if errors.Is(err, os.ErrNotExist) {
				continue // removed meanwhile
			} else if err != nil {
				return nil, err
			}
			files = append(files, ReplicaFile{level, minTXID, maxTXID, filepath.Join(root, "ltx", l.Name(), e.Name()), fi.Size()})
		}
	}
	slices.SortFunc(files, func(a, b ReplicaFile) int {
		return cmp.Or(cmp.Compare(a.Level, b.Level), cmp.Compare(a.Min, b.Min))
	})
	return files, nil
}
