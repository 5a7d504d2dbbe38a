package crypt_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/testsupport"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/crypt"
	"github.com/litestream-go/litestream/remote/file"
	"github.com/litestream-go/litestream/remote/remotetest"
	"github.com/litestream-go/litestream/remote/retry"
)

// x25519 returns a fresh X25519 identity and its recipient.
func x25519(t testing.TB) (*age.X25519Identity, age.Recipient) {
	id := generate(t, age.GenerateX25519Identity)
	return id, id.Recipient()
}

// hybrid returns a fresh post-quantum (ML-KEM + X25519) identity and its
// recipient.
func hybrid(t testing.TB) (*age.HybridIdentity, age.Recipient) {
	id := generate(t, age.GenerateHybridIdentity)
	return id, id.Recipient()
}

// generate returns a new identity made by gen, failing the test on error.
func generate[I age.Identity](t testing.TB, gen func() (I, error)) I {
	t.Helper()
	id, err := gen()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// counting counts the requests that reach the backend.
type counting struct {
	remote.Client
	opens, lists atomic.Int64
}

func (c *counting) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	c.opens.Add(1)
	return c.Client.OpenLTXFile(ctx, level, minTXID, maxTXID, offset, size)
}

func (c *counting) LTXFiles(ctx context.Context, level int, seek ltx.TXID) ([]*ltx.FileInfo, error) {
	c.lists.Add(1)
	return c.Client.LTXFiles(ctx, level, seek)
}

func newFileClient(t testing.TB) (*file.Client, string) {
	t.Helper()
	dir := t.TempDir()
	fc := file.New(dir)
	return fc, dir
}

func newClient(t testing.TB, inner remote.Client, opts crypt.Options) *crypt.Client {
	t.Helper()
	c, err := crypt.New(inner, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestContract: an encrypting client over the file backend is a remote.Client
// like any other (sizes, ranges, timestamps, listings, deletes), with X25519
// and with post-quantum recipients.
func TestContract(t *testing.T) {
	for _, kind := range []string{"x25519", "hybrid"} {
		t.Run(kind, func(t *testing.T) {
			var ids []age.Identity
			var rcpts []age.Recipient
			for range 2 {
				if kind == "x25519" {
					id, r := x25519(t)
					ids, rcpts = append(ids, id), append(rcpts, r)
				} else {
					id, r := hybrid(t)
					ids, rcpts = append(ids, id), append(rcpts, r)
				}
			}
			remotetest.RunContract(t, func(t *testing.T) remote.Client {
				fc, _ := newFileClient(t)
				// The second identity alone must read what is written to both.
				return newClient(t, fc, crypt.Options{Recipients: rcpts, Identities: ids[1:]})
			})
		})
	}
}

// buildLTX returns an LTX file of pages incompressible pages, each starting
// with marker (which LZ4 keeps as a literal).
func buildLTX(t testing.TB, minTXID, maxTXID ltx.TXID, pages int, marker string) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := ltx.NewEncoder(&buf)
	if err != nil {
		t.Fatal(err)
	}
	hdr := ltx.Header{Version: ltx.Version, Flags: ltx.HeaderFlagNoChecksum, PageSize: 4096, Commit: uint32(pages),
		MinTXID: minTXID, MaxTXID: maxTXID, Timestamp: 1700000000123}
	if err := enc.EncodeHeader(hdr); err != nil {
		t.Fatal(err)
	}
	for pgno := uint32(1); pgno <= uint32(pages); pgno++ {
		page := remotetest.PageData(uint64(minTXID), pgno, 4096)
		copy(page, marker)
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, page); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf.Bytes(), []byte(marker)) {
		t.Fatal("the marker is not in the plaintext file")
	}
	return buf.Bytes()
}

// TestRoundTrip: files of sizes around chunk boundaries are stored
// encrypted (no plaintext marker, the padded header length), read back
// whole and by random ranges exactly, with the plaintext size in listings,
// and decrypt with age itself (the padding stanza is ignored by age).
func TestRoundTrip(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	id, r := x25519(t)
	fc, dir := newFileClient(t)
	c := newClient(t, fc, crypt.Options{Recipients: []age.Recipient{r}, Identities: []age.Identity{id}})
	ctx := context.Background()
	const marker = "PLAINTEXT-MARKER-7f3a"
	for i, pages := range []int{1, 2, 15, 16, 17, 40, 100, 300} {
		txid := ltx.TXID(i + 1)
		data := buildLTX(t, txid, txid, pages, marker)
		info, err := c.WriteLTXFile(ctx, 0, txid, txid, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if info.Size != int64(len(data)) {
			t.Fatalf("write returned size %d, want %d", info.Size, len(data))
		}
		got, err := io.ReadAll(mustOpen(t, c, txid, 0, 0))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("whole read of %d bytes: err %v, equal %v", len(data), err, bytes.Equal(got, data))
		}
		for range 50 {
			off := rng.Int64N(int64(len(data)))
			size := rng.Int64N(int64(len(data))-off) + 1
			if rng.IntN(4) == 0 { // around chunk boundaries
				off = min(int64(len(data))-1, max(0, int64(rng.IntN(len(data)/crypt.ChunkSize+1))*crypt.ChunkSize-int64(rng.IntN(3))))
				size = min(int64(len(data))-off, int64(rng.IntN(3)+1))
			}
			got, err := io.ReadAll(mustOpen(t, c, txid, off, size))
			if err != nil || !bytes.Equal(got, data[off:off+size]) {
				t.Fatalf("file of %d bytes, range %d+%d: err %v, equal %v", len(data), off, size, err, bytes.Equal(got, data[off:off+size]))
			}
		}
		infos, err := c.LTXFiles(ctx, 0, txid)
		if err != nil || len(infos) == 0 || infos[0].Size != int64(len(data)) || !infos[0].CreatedAt.Equal(time.UnixMilli(1700000000123)) {
			t.Fatalf("listing %v %v, want size %d", infos, err, len(data))
		}
		raw, err := fc.LTXFiles(ctx, 0, txid)
		if err != nil || raw[0].Size != crypt.CipherSize(int64(len(data))) {
			t.Fatalf("stored size %d, want %d", raw[0].Size, crypt.CipherSize(int64(len(data))))
		}
	}
	for p, b := range testsupport.ReadTree(t, dir) {
		if bytes.Contains(b, []byte(marker)) || bytes.Contains(b, []byte("LTX1")) {
			t.Fatalf("%s holds plaintext", p)
		}
		if !crypt.IsEncrypted(b) {
			t.Fatalf("%s is not an age file", p)
		}
		hdr, err := age.ExtractHeader(bytes.NewReader(b))
		if err != nil || len(hdr) != crypt.AgeHeaderSize {
			t.Fatalf("%s: header of %d bytes (%v)", p, len(hdr), err)
		}
		// age itself decrypts it (interoperability, e.g. `age -d`).
		pr, err := age.Decrypt(bytes.NewReader(b), id)
		if err != nil {
			t.Fatalf("age.Decrypt %s: %v", p, err)
		}
		plain, err := io.ReadAll(pr)
		if err != nil || !bytes.HasPrefix(plain, []byte("LTX1")) {
			t.Fatalf("age.Decrypt %s: %v", p, err)
		}
		ra, n, err := age.DecryptReaderAt(bytes.NewReader(b), int64(len(b)), id)
		if err != nil || n != int64(len(plain)) {
			t.Fatalf("age.DecryptReaderAt %s: %v (size %d, want %d)", p, err, n, len(plain))
		}
		_ = ra
	}
}

func mustOpen(t testing.TB, c remote.Client, txid ltx.TXID, off, size int64) io.Reader {
	t.Helper()
	rc, err := c.OpenLTXFile(context.Background(), 0, txid, txid, off, size)
	if err != nil {
		t.Fatalf("open %d+%d: %v", off, size, err)
	}
	t.Cleanup(func() { rc.Close() })
	return rc
}

// TestSizes: the size mapping matches what age writes, for every size
// class around chunk boundaries.
func TestSizes(t *testing.T) {
	_, r := x25519(t)
	fc, _ := newFileClient(t)
	c := newClient(t, fc, crypt.Options{Recipients: []age.Recipient{r}})
	_ = c
	for _, p := range []int64{0, 1, crypt.ChunkSize - 1, crypt.ChunkSize, crypt.ChunkSize + 1, 2 * crypt.ChunkSize, 5*crypt.ChunkSize + 7} {
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, r)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(make([]byte, p))
		w.Close()
		hdr, _ := age.ExtractHeader(bytes.NewReader(buf.Bytes()))
		// age's own payload length plus our fixed header.
		want := int64(buf.Len()-len(hdr)) + crypt.AgeHeaderSize
		if got := crypt.CipherSize(p); got != want {
			t.Errorf("CipherSize(%d) = %d, want %d", p, got, want)
		}
		if got, ok := crypt.PlainSize(want); !ok || got != p {
			t.Errorf("PlainSize(%d) = %d, %v; want %d", want, got, ok, p)
		}
		if _, ok := crypt.PlainSize(want - 1); ok && p > 0 {
			// One byte short is a truncated file; only some such sizes are
			// invalid outright (the rest fail authentication).
			t.Logf("PlainSize(%d) valid", want-1)
		}
	}
	for _, bad := range []int64{0, crypt.PayloadOffset, crypt.PayloadOffset + 15, crypt.PayloadOffset + 65552 + 1} {
		if _, ok := crypt.PlainSize(bad); ok {
			t.Errorf("PlainSize(%d) is valid", bad)
		}
	}
}

// TestRecipients: several recipients each read alone; post-quantum and
// classic recipients cannot be mixed; too many recipients are refused;
// keys parse from their text forms.
func TestRecipients(t *testing.T) {
	fc, _ := newFileClient(t)
	_, x := x25519(t)
	_, h := hybrid(t)
	if _, err := crypt.New(fc, crypt.Options{Recipients: []age.Recipient{x, h}}); err == nil || !strings.Contains(err.Error(), "post-quantum") {
		t.Errorf("mixed recipients: %v", err)
	}
	var many []age.Recipient
	for range 6 {
		_, h := hybrid(t)
		many = append(many, h)
	}
	if _, err := crypt.New(fc, crypt.Options{Recipients: many}); err == nil || !strings.Contains(err.Error(), "allow 8192") {
		t.Errorf("six post-quantum recipients: %v", err)
	}
	if _, err := crypt.New(fc, crypt.Options{Recipients: many[:5]}); err != nil {
		t.Errorf("five post-quantum recipients: %v", err)
	}
	if _, err := crypt.New(fc, crypt.Options{}); err == nil {
		t.Error("no keys accepted")
	}
	xi, _ := age.GenerateX25519Identity()
	hi, _ := age.GenerateHybridIdentity()
	rs, err := crypt.ParseRecipients([]string{xi.Recipient().String(), " " + xi.Recipient().String() + " "})
	if err != nil || len(rs) != 2 {
		t.Errorf("ParseRecipients: %v", err)
	}
	if _, err := crypt.ParseRecipients([]string{hi.Recipient().String()}); err != nil {
		t.Errorf("ParseRecipients hybrid: %v", err)
	}
	for _, bad := range []string{"age1nope", "ssh-ed25519 AAAA", xi.String()} {
		_, err := crypt.ParseRecipients([]string{bad})
		if err == nil {
			t.Errorf("ParseRecipients(%.20s) accepted", bad)
		} else if strings.Contains(err.Error(), "AGE-SECRET-KEY") && len(err.Error()) > 0 && strings.Contains(err.Error(), xi.String()[16:]) {
			t.Errorf("error quotes a secret key: %v", err)
		}
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "key.txt")
	os.WriteFile(p, []byte("# created: now\n# public key: x\n"+xi.String()+"\n\n"+hi.String()+"\n"), 0o600)
	ids, err := crypt.ReadIdentityFile(p)
	if err != nil || len(ids) != 2 {
		t.Errorf("ReadIdentityFile: %v, %d", err, len(ids))
	}
	bad := filepath.Join(dir, "bad.txt")
	os.WriteFile(bad, []byte(xi.String()[:40]+"\n"), 0o600)
	if _, err := crypt.ReadIdentityFile(bad); err == nil || strings.Contains(err.Error(), xi.String()[:40]) {
		t.Errorf("bad identity file: %v", err)
	}
	if _, err := crypt.ReadIdentityFile(filepath.Join(dir, "missing")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing identity file: %v", err)
	}
}

// TestRequests: a cold read of the first chunk costs one request (the
// header comes with it), a cold read elsewhere two at once (header and
// chunks), a warm read one, and a read inside a chunk a previous read used
// partly none.
func TestRequests(t *testing.T) {
	id, r := x25519(t)
	fc, _ := newFileClient(t)
	w := newClient(t, fc, crypt.Options{Recipients: []age.Recipient{r}})
	data := buildLTX(t, 1, 1, 200, "x")
	if _, err := w.WriteLTXFile(context.Background(), 0, 1, 1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if len(data) < 3*crypt.ChunkSize {
		t.Fatalf("file of %d bytes is too small for this test", len(data))
	}
	cnt := &counting{Client: fc}
	c := newClient(t, cnt, crypt.Options{Identities: []age.Identity{id}})
	infos, err := c.LTXFiles(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	info := infos[0]
	read := func(off, size int64) {
		t.Helper()
		rc, err := c.OpenFile(context.Background(), info, off, size)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data[off:off+size]) {
			t.Fatalf("range %d+%d: %v", off, size, err)
		}
	}
	step := func(what string, want int64, f func()) {
		t.Helper()
		before := cnt.opens.Load()
		f()
		if got := cnt.opens.Load() - before; got != want {
			t.Errorf("%s: %d requests, want %d", what, got, want)
		}
	}
	step("cold tail read", 2, func() { read(int64(len(data))-1000, 1000) })
	step("warm read of another chunk", 1, func() { read(crypt.ChunkSize+100, 4096) })
	step("read inside the chunk the last read used partly", 0, func() { read(crypt.ChunkSize+5000, 4096) })
	c2 := newClient(t, cnt, crypt.Options{Identities: []age.Identity{id}})
	step("cold read of the first chunk", 1, func() {
		rc, err := c2.OpenFile(context.Background(), info, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, rc)
		rc.Close()
	})
	if cnt.lists.Load() != 1 {
		t.Errorf("%d listings, want 1", cnt.lists.Load())
	}
	// Without the listing entry, the size comes from the listing cache, or
	// one listing.
	c3 := newClient(t, cnt, crypt.Options{Identities: []age.Identity{id}})
	step("read without a listing", 1, func() {
		got, err := io.ReadAll(mustOpen(t, c3, 1, 10, 10))
		if err != nil || !bytes.Equal(got, data[10:20]) {
			t.Fatal(err)
		}
	})
	if cnt.lists.Load() != 2 {
		t.Errorf("%d listings, want 2", cnt.lists.Load())
	}
}

// TestKeyErrors: a reader without an identity, with the wrong one, and a
// writer without recipients get errors that name the file and the cause;
// an encrypted replica's reader refuses a plaintext file.
func TestKeyErrors(t *testing.T) {
	ctx := context.Background()
	_, r := x25519(t)
	other, _ := x25519(t)
	fc, _ := newFileClient(t)
	w := newClient(t, fc, crypt.Options{Recipients: []age.Recipient{r}})
	data := buildLTX(t, 1, 1, 3, "x")
	if _, err := w.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	name := remote.FileName(1, 1)
	check := func(what string, c remote.Client, want error) {
		t.Helper()
		_, err := c.OpenLTXFile(ctx, 0, 1, 1, 0, 0)
		if !errors.Is(err, want) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v, want %v naming %s", what, err, want, name)
		}
		if retry.Retryable(err) {
			t.Errorf("%s: %v is retryable", what, err)
		}
	}
	check("writer without identity", w, crypt.ErrNoIdentity)
	check("wrong identity", newClient(t, fc, crypt.Options{Identities: []age.Identity{other}}), crypt.ErrWrongIdentity)

	reader := newClient(t, fc, crypt.Options{Identities: []age.Identity{other}})
	if _, err := reader.WriteLTXFile(ctx, 0, 2, 2, bytes.NewReader(buildLTX(t, 2, 2, 1, "x"))); err == nil || !strings.Contains(err.Error(), "no age recipients") {
		t.Errorf("write without recipients: %v", err)
	}
	if infos, _ := fc.LTXFiles(ctx, 0, 2); len(infos) != 0 {
		t.Errorf("a reader wrote %v", infos)
	}
	// A plaintext file among encrypted ones.
	if _, err := fc.WriteLTXFile(ctx, 0, 3, 3, bytes.NewReader(buildLTX(t, 3, 3, 1, "x"))); err != nil {
		t.Fatal(err)
	}
	id, _ := x25519(t)
	c := newClient(t, fc, crypt.Options{Identities: []age.Identity{id}})
	if _, err := c.LTXFiles(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	_, err := c.OpenLTXFile(ctx, 0, 3, 3, 0, 100)
	if !errors.Is(err, crypt.ErrNotEncrypted) || !strings.Contains(err.Error(), remote.FileName(3, 3)) {
		t.Errorf("plaintext file: %v, want %v naming the file", err, crypt.ErrNotEncrypted)
	}
}

// TestTamper: a flipped byte anywhere (header, padding, MAC, nonce, chunk,
// tag), a truncated and an extended file: every read either fails with an
// error that names the file and says why, or returns exactly the original
// bytes (a range that does not touch the damage); a whole read always fails.
func TestTamper(t *testing.T) {
	ctx := context.Background()
	id, r := x25519(t)
	data := buildLTX(t, 1, 1, 40, "x") // three chunks, the last one short
	src, srcDir := newFileClient(t)
	if _, err := newClient(t, src, crypt.Options{Recipients: []age.Recipient{r}}).WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	var stored []byte
	var rel string
	for p, b := range testsupport.ReadTree(t, srcDir) {
		stored, rel = b, strings.TrimPrefix(p, srcDir)
	}
	n := len(stored)
	c1 := int(crypt.PayloadOffset) + crypt.ChunkSize + 16 // start of chunk 1
	cases := map[string]func([]byte) []byte{
		"intro":             func(b []byte) []byte { b[3] ^= 1; return b },
		"stanza":            func(b []byte) []byte { b[40] ^= 1; return b },
		"padding":           func(b []byte) []byte { b[2000] ^= 1; return b },
		"mac":               func(b []byte) []byte { b[crypt.AgeHeaderSize-10] ^= 1; return b },
		"nonce":             func(b []byte) []byte { b[crypt.AgeHeaderSize+3] ^= 1; return b },
		"chunk 0":           func(b []byte) []byte { b[crypt.PayloadOffset+100] ^= 1; return b },
		"tag of chunk 0":    func(b []byte) []byte { b[c1-1] ^= 1; return b },
		"chunk 1":           func(b []byte) []byte { b[c1+5] ^= 0x80; return b },
		"last byte":         func(b []byte) []byte { b[len(b)-1] ^= 1; return b },
		"truncated by 1":    func(b []byte) []byte { return b[:len(b)-1] },
		"truncated by 17":   func(b []byte) []byte { return b[:len(b)-17] },
		"cut after chunk 1": func(b []byte) []byte { return b[:c1+crypt.ChunkSize+16] },
		"extended":          func(b []byte) []byte { return append(b, make([]byte, 20)...) },
		"chunks swapped": func(b []byte) []byte {
			x := bytes.Clone(b[crypt.PayloadOffset:c1])
			copy(b[crypt.PayloadOffset:c1], b[c1:c1+len(x)])
			copy(b[c1:], x)
			return b
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			fc, dir := newFileClient(t)
			p := filepath.Join(dir, rel)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, damage(bytes.Clone(stored)), 0o644); err != nil {
				t.Fatal(err)
			}
			_ = n
			c := newClient(t, fc, crypt.Options{Identities: []age.Identity{id}})
			infos, err := c.LTXFiles(ctx, 0, 0)
			if err != nil || len(infos) != 1 {
				t.Fatal(err)
			}
			size := infos[0].Size
			ranges := [][2]int64{{0, 0}, {0, 100}, {size - 50, 50}, {crypt.ChunkSize + 10, 100}, {crypt.ChunkSize - 10, 20}, {10, size - 20}}
			for i, rg := range ranges {
				off, sz := rg[0], rg[1]
				if off < 0 || off >= size || off+sz > size {
					continue
				}
				rc, err := c.OpenFile(ctx, infos[0], off, sz)
				var got []byte
				if err == nil {
					got, err = io.ReadAll(rc)
					rc.Close()
				}
				if err != nil {
					if !errors.Is(err, crypt.ErrTampered) && !errors.Is(err, crypt.ErrFormat) && !errors.Is(err, crypt.ErrWrongIdentity) {
						t.Errorf("range %d+%d: error of no known kind: %v", off, sz, err)
					}
					if !strings.Contains(err.Error(), remote.FileName(1, 1)) {
						t.Errorf("range %d+%d: error does not name the file: %v", off, sz, err)
					}
					continue
				}
				end := off + sz
				if sz == 0 {
					end = size
				}
				if i == 0 {
					t.Errorf("whole read of a damaged file succeeded")
				}
				if end > int64(len(data)) || !bytes.Equal(got, data[off:end]) {
					t.Errorf("range %d+%d: wrong bytes from a damaged file", off, sz)
				}
			}
		})
	}
}
