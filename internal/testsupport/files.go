package testsupport

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FileSHA256 returns the hex SHA-256 of the file at path (a restored
// database compared with FixtureSHA256, say).
func FileSHA256(tb testing.TB, path string) string {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		tb.Fatalf("read %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// FirstDiff compares the files a and b byte for byte. It returns the offset
// of the first byte where they differ (where the shorter one ends, if it is
// a prefix of the other), or -1 if they are identical.
func FirstDiff(a, b string) (int64, error) {
	fa, err := os.Open(a)
	if err != nil {
		return -1, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return -1, err
	}
	defer fb.Close()
	const chunk = 4 << 20
	ba, bb := make([]byte, chunk), make([]byte, chunk)
	for off := int64(0); ; off += chunk {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if err := readErr(a, ea); err != nil {
			return -1, err
		}
		if err := readErr(b, eb); err != nil {
			return -1, err
		}
		n := min(na, nb)
		if !bytes.Equal(ba[:n], bb[:n]) {
			for i := range n {
				if ba[i] != bb[i] {
					return off + int64(i), nil
				}
			}
		}
		if na != nb {
			return off + int64(n), nil
		}
		if ea != nil { // both ended here
			return -1, nil
		}
	}
}

// readErr is io.ReadFull's error unless it only says the file ended.
func readErr(path string, err error) error {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return fmt.Errorf("read %s: %w", path, err)
}

// ReadTree returns the content of every file below dir, by path (dir
// joined with the file's path below it): what a file replica stores, say.
func ReadTree(tb testing.TB, dir string) map[string][]byte {
	tb.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = b
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}
