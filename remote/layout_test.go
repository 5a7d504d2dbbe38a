package remote

import (
	"slices"
	"testing"
)

// TestKeys pins the two key layouts Litestream v0.5 writes (docs/ARCHITECTURE.md,
// storage layout) and that ParseKey reads back exactly what the layout
// writes, and nothing else.
func TestKeys(t *testing.T) {
	for _, tc := range []struct {
		keys            Keys
		level           int
		dir, file, seek string
		all             string
	}{
		{
			keys: Keys{Root: "db", Layout: LayoutS3}, level: 9,
			dir: "db/0009", file: "db/0009/0000000000000001-00000000000000ff.ltx", seek: "db/0009/0000000000000010",
			all: "db/",
		},
		{
			keys: Keys{Root: "", Layout: LayoutS3}, level: 1,
			dir: "/0001", file: "/0001/0000000000000001-00000000000000ff.ltx", seek: "/0001/0000000000000010",
			all: "/",
		},
		{
			keys: Keys{Root: "a/b", Layout: LayoutLTX}, level: 9,
			dir: "a/b/ltx/9", file: "a/b/ltx/9/0000000000000001-00000000000000ff.ltx", seek: "a/b/ltx/9/0000000000000010",
			all: "a/b/ltx/",
		},
		{
			keys: Keys{Root: "", Layout: LayoutLTX}, level: 0,
			dir: "ltx/0", file: "ltx/0/0000000000000001-00000000000000ff.ltx", seek: "ltx/0/0000000000000010",
			all: "ltx/",
		},
		{
			keys: Keys{Root: "/tmp/r", Layout: LayoutLTX}, level: 3,
			dir: "/tmp/r/ltx/3", file: "/tmp/r/ltx/3/0000000000000001-00000000000000ff.ltx", seek: "/tmp/r/ltx/3/0000000000000010",
			all: "/tmp/r/ltx/",
		},
	} {
		k := tc.keys
		if got := k.LevelDir(tc.level); got != tc.dir {
			t.Errorf("%+v: LevelDir = %q, want %q", k, got, tc.dir)
		}
		if got := k.LevelPrefix(tc.level); got != tc.dir+"/" {
			t.Errorf("%+v: LevelPrefix = %q, want %q", k, got, tc.dir+"/")
		}
		if got := k.File(tc.level, 1, 0xff); got != tc.file {
			t.Errorf("%+v: File = %q, want %q", k, got, tc.file)
		}
		if got := k.SeekKey(tc.level, 0x10); got != tc.seek {
			t.Errorf("%+v: SeekKey = %q, want %q", k, got, tc.seek)
		}
		if got := k.SeekKey(tc.level, 0); got != "" {
			t.Errorf("%+v: SeekKey(0) = %q, want \"\"", k, got)
		}
		if got := k.AllPrefix(); got != tc.all {
			t.Errorf("%+v: AllPrefix = %q, want %q", k, got, tc.all)
		}
		want := FileID{Level: tc.level, MinTXID: 1, MaxTXID: 0xff}
		if id, ok := k.ParseKey(tc.file); !ok || id != want {
			t.Errorf("%+v: ParseKey(%q) = %v, %v; want %v", k, tc.file, id, ok, want)
		}
		for level := 0; level <= MaxLevel; level++ {
			key := k.File(level, 0x10, 0x20)
			if id, ok := k.ParseKey(key); !ok || id != (FileID{level, 0x10, 0x20}) {
				t.Errorf("%+v: ParseKey(%q) = %v, %v", k, key, id, ok)
			}
		}
		for _, bad := range []string{
			tc.dir + "/0000000000000001-00000000000000FF.ltx", // not canonical
			tc.dir + "/.0000000000000001-00000000000000ff.ltx.tmp-1",
			tc.dir + "/sub/0000000000000001-00000000000000ff.ltx",
			tc.all + "generations/0000000000000001-00000000000000ff.ltx",
			tc.all + "10/0000000000000001-00000000000000ff.ltx",
			tc.all + "000a/0000000000000001-00000000000000ff.ltx",
			tc.all + "0000000000000001-00000000000000ff.ltx",
			"elsewhere/ltx/0/0000000000000001-00000000000000ff.ltx",
		} {
			if id, ok := k.ParseKey(bad); ok {
				t.Errorf("%+v: ParseKey(%q) = %v, want no file", k, bad, id)
			}
		}
		prefixes := k.DeletePrefixes()
		for level := 0; level <= MaxLevel; level++ {
			key := k.File(level, 1, 1)
			if !slices.ContainsFunc(prefixes, func(p string) bool { return len(key) > len(p) && key[:len(p)] == p }) {
				t.Errorf("%+v: DeletePrefixes %q do not cover %q", k, prefixes, key)
			}
		}
	}
	// At the bucket root, S3 keys may lack the leading slash (see ParseKey).
	if id, ok := (Keys{Layout: LayoutS3}).ParseKey("0009/0000000000000001-0000000000000002.ltx"); !ok || id != (FileID{9, 1, 2}) {
		t.Errorf("ParseKey without the leading slash = %v, %v", id, ok)
	}
	if _, ok := (Keys{Root: "db", Layout: LayoutS3}).ParseKey("0009/0000000000000001-0000000000000002.ltx"); ok {
		t.Errorf("ParseKey outside the root accepted")
	}
}

func TestFileID(t *testing.T) {
	id := FileID{Level: 3, MinTXID: 0x1a, MaxTXID: 0x2b}
	if got, want := id.String(), "level 3 file 000000000000001a-000000000000002b.ltx"; got != want {
		t.Fatalf("String = %q, want %q", got, want)
	}
	if got := FileDesc(3, 0x1a, 0x2b); got != id.String() {
		t.Fatalf("FileDesc = %q, want %q", got, id.String())
	}
}

func TestCleanRoot(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "/": "", "db": "db", "/db/": "db", "a//b/../c/": "a/c", "../x": "x", "/a/b": "a/b",
	} {
		if got := CleanRoot(in); got != want {
			t.Errorf("CleanRoot(%q) = %q, want %q", in, got, want)
		}
	}
}
