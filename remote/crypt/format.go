package crypt

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
)

// The age-encryption.org/v1 layout of a file this package writes:
//
//	[0, AgeHeaderSize)                    the age header, padded to exactly this length
//	[AgeHeaderSize, PayloadOffset)        the 16-byte STREAM nonce
//	[PayloadOffset, ...)                  STREAM chunks: ChunkSize plaintext bytes + 16-byte tag each,
//	                                      the last one shorter (or empty, for an empty file) and flagged
const (
	// AgeHeaderSize is the length of the age header of every file this
	// package writes: the recipients' stanzas plus a padding stanza that
	// fills it up. A fixed length is what lets a reader map a listing's
	// ciphertext size to the plaintext size, and a plaintext offset to a
	// ciphertext offset, without reading anything (see the package doc).
	// 8 KiB holds five post-quantum (mlkem768x25519, ~1.6 KiB each) or
	// about eighty X25519 recipients.
	AgeHeaderSize = 8 << 10
	// PayloadOffset is where the first STREAM chunk starts.
	PayloadOffset = AgeHeaderSize + streamNonceSize
	// ChunkSize is the plaintext size of a STREAM chunk (age's, fixed by
	// its format).
	ChunkSize = 64 << 10

	streamNonceSize = 16
	tagSize         = chacha20poly1305.Overhead
	encChunkSize    = ChunkSize + tagSize
	// padType is the stanza type of the padding. age identities skip
	// stanzas of types they do not know (the age spec; the age CLI and
	// rage too), and the header MAC covers it like any stanza.
	padType = "litestream-pad"
)

// ageIntro is how every age file begins.
var ageIntro = []byte("age-encryption.org/v1\n")

// IsEncrypted reports whether b, the first bytes of a file, begin an age
// file.
func IsEncrypted(b []byte) bool {
	return bytes.HasPrefix(b, ageIntro) || (len(b) < len(ageIntro) && len(b) > 0 && bytes.HasPrefix(ageIntro, b))
}

// CipherSize returns the stored size of a file of plain plaintext bytes.
func CipherSize(plain int64) int64 {
	return PayloadOffset + plain + chunkCount(plain)*tagSize
}

// PlainSize returns the plaintext size of a stored file of cipher bytes, and
// whether cipher is the size of any file this package can write (a file cut
// short, or not padded to AgeHeaderSize, usually is not). When it is not,
// the size returned is a best guess: reading the file then fails
// authentication.
func PlainSize(cipher int64) (int64, bool) {
	l := cipher - PayloadOffset
	if l < tagSize {
		return 0, false
	}
	n := (l + encChunkSize - 1) / encChunkSize
	p := l - n*tagSize
	return p, CipherSize(p) == cipher
}

// chunkCount is how many STREAM chunks hold plain bytes: an empty file has
// one empty chunk.
func chunkCount(plain int64) int64 {
	return max(1, (plain+ChunkSize-1)/ChunkSize)
}

// chunkOffset is the stored offset of chunk i.
func chunkOffset(i int64) int64 { return PayloadOffset + i*encChunkSize }

// fileKey is what the header of one file yields: the STREAM key (as an
// AEAD) and the nonce that identifies this encryption of the file.
type fileKey struct {
	aead  cipher.AEAD
	nonce [streamNonceSize]byte
}

// chunkNonce is STREAM's nonce of chunk i: an 88-bit big-endian counter,
// then the last-chunk flag.
func chunkNonce(i int64, last bool) [chacha20poly1305.NonceSize]byte {
	var n [chacha20poly1305.NonceSize]byte
	binary.BigEndian.PutUint64(n[3:11], uint64(i))
	if last {
		n[11] = 1
	}
	return n
}

// open decrypts and authenticates chunk i (ct, with its tag) into dst[:0].
// The last-chunk flag is part of the authenticated nonce, so a file cut at a
// chunk boundary, or a chunk moved to another position or file, fails.
func (k *fileKey) open(dst, ct []byte, i int64, last bool) ([]byte, error) {
	n := chunkNonce(i, last)
	return k.aead.Open(dst[:0], n[:], ct, nil)
}

// Errors of reading encrypted files. Every error a Client returns wraps one
// of these where it applies, and names the file.
var (
	// ErrNoIdentity: the replica is encrypted but no identity is
	// configured to read it.
	ErrNoIdentity = errors.New("no age identity configured")
	// ErrWrongIdentity: none of the configured identities can decrypt the
	// file (it is encrypted to other recipients).
	ErrWrongIdentity = errors.New("none of the configured age identities can decrypt it (it is encrypted to other recipients)")
	// ErrTampered: the file's bytes fail authentication: modified,
	// truncated, or extended.
	ErrTampered = errors.New("age authentication failed: the file was modified or truncated")
	// ErrNotEncrypted: a replica configured for encryption holds a
	// plaintext LTX file. Reading it would trust bytes that anyone with
	// write access to the storage can forge, so it is refused.
	ErrNotEncrypted = errors.New("the file is not encrypted, but the replica is configured for age encryption (a replica cannot switch to encryption in place: give the encrypted one a new path)")
	// ErrFormat: the file is not an age file this program wrote (an age
	// header of another length, or not age at all).
	ErrFormat = errors.New("not an encrypted LTX file of this format")
)

// parseHeader reads the key of a file from its first PayloadOffset bytes.
func parseHeader(b []byte, ids []age.Identity) (*fileKey, error) {
	if len(b) < PayloadOffset {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the %d-byte header", ErrFormat, len(b), PayloadOffset)
	}
	if !bytes.HasPrefix(b, ageIntro) {
		if bytes.HasPrefix(b, []byte("LTX")) {
			return nil, ErrNotEncrypted
		}
		return nil, fmt.Errorf("%w: no age header", ErrFormat)
	}
	hdr, err := age.ExtractHeader(bytes.NewReader(b[:AgeHeaderSize]))
	if err != nil {
		// A header longer than AgeHeaderSize ends in the middle of the
		// read: parsing fails at its end.
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if len(hdr) != AgeHeaderSize {
		return nil, fmt.Errorf("%w: its age header is %d bytes, not %d", ErrFormat, len(hdr), AgeHeaderSize)
	}
	if len(ids) == 0 {
		return nil, ErrNoIdentity
	}
	key, err := age.DecryptHeader(hdr, ids...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, ErrWrongIdentity
		}
		// "bad header MAC" and the like: the header was modified.
		return nil, fmt.Errorf("%w: %v", ErrTampered, err)
	}
	k := &fileKey{}
	copy(k.nonce[:], b[AgeHeaderSize:PayloadOffset])
	sk, err := hkdf.Key(sha256.New, key, k.nonce[:], "payload", chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	if k.aead, err = chacha20poly1305.New(sk); err != nil {
		return nil, err
	}
	return k, nil
}

// padRecipient adds one stanza of padType that pads the header to
// AgeHeaderSize. It carries the labels of the real recipients so that age's
// rule against mixing post-quantum and classic recipients still applies to
// them and not to the padding.
type padRecipient struct {
	arg    string
	body   int
	labels []string
}

func (p padRecipient) Wrap(fileKey []byte) ([]*age.Stanza, error) {
	s, _, err := p.WrapWithLabels(fileKey)
	return s, err
}

func (p padRecipient) WrapWithLabels([]byte) ([]*age.Stanza, []string, error) {
	s := &age.Stanza{Type: padType, Body: make([]byte, p.body)}
	if p.arg != "" {
		s.Args = []string{p.arg}
	}
	return []*age.Stanza{s}, p.labels, nil
}

// stanzaLen is the marshalled length of a stanza of padType with an
// argument of argLen bytes (none if 0) and a body of body bytes: the line
// "-> type [arg]\n", the body in unpadded base64 wrapped at 64 columns, and
// the short (possibly empty) last line's newline.
func stanzaLen(argLen, body int) int {
	n := len("-> ") + len(padType) + 1
	if argLen > 0 {
		n += 1 + argLen
	}
	c := (body*8 + 5) / 6
	return n + c + c/64 + 1
}

// encrypter encrypts files to a fixed set of recipients with headers of
// exactly AgeHeaderSize bytes.
type encrypter struct {
	recipients []age.Recipient // the configured ones, then the padding
}

// newEncrypter checks the recipients (age refuses to mix post-quantum and
// classic ones) and sizes the padding.
func newEncrypter(recipients []age.Recipient) (*encrypter, error) {
	if len(recipients) == 0 {
		return nil, errors.New("no age recipients")
	}
	var labels []string
	if l, ok := recipients[0].(age.RecipientWithLabels); ok {
		_, ls, err := l.WrapWithLabels(make([]byte, 16))
		if err != nil {
			return nil, err
		}
		labels = slices.Sorted(slices.Values(ls))
	}
	// The header's length without padding does not depend on the file
	// key: every stanza of a native recipient has a fixed size.
	probe := padRecipient{labels: labels}
	hdr, err := headerLen(append(slices.Clone(recipients), probe))
	if err != nil {
		return nil, err
	}
	need := AgeHeaderSize - (hdr - stanzaLen(0, 0))
	pad, ok := padding(need)
	if !ok {
		return nil, fmt.Errorf("%d age recipients make a header of %d bytes; encrypted replicas allow %d (at most five post-quantum or about eighty X25519 recipients)",
			len(recipients), hdr-stanzaLen(0, 0), AgeHeaderSize)
	}
	pad.labels = labels
	e := &encrypter{recipients: append(slices.Clone(recipients), pad)}
	if n, err := headerLen(e.recipients); err != nil {
		return nil, err
	} else if n != AgeHeaderSize {
		return nil, fmt.Errorf("internal error: padded age header is %d bytes, want %d", n, AgeHeaderSize)
	}
	return e, nil
}

// padding finds a padding stanza of exactly need bytes.
func padding(need int) (padRecipient, bool) {
	for argLen := 0; argLen <= 3; argLen++ {
		for body := 0; ; body++ {
			n := stanzaLen(argLen, body)
			if n == need {
				return padRecipient{arg: "pad"[:argLen], body: body}, true
			}
			if n > need {
				break
			}
		}
	}
	return padRecipient{}, false
}

// headerLen encrypts an empty file to recipients and returns its header's
// length.
func headerLen(recipients []age.Recipient) (int, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, recipients...)
	if err != nil {
		return 0, err
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	// Empty plaintext: header, nonce, one empty chunk (its tag).
	return buf.Len() - streamNonceSize - tagSize, nil
}

// encryptReader returns a reader of the encryption of src, and a function
// that reports how many plaintext bytes it has read so far.
func (e *encrypter) encryptReader(src io.Reader) (io.Reader, func() int64, error) {
	er := &encReader{src: src, tmp: make([]byte, ChunkSize)}
	w, err := age.Encrypt(&er.out, e.recipients...)
	if err != nil {
		return nil, nil, err
	}
	if er.out.Len() != PayloadOffset {
		// Never upload a file readers would map wrongly.
		return nil, nil, fmt.Errorf("internal error: age header and nonce are %d bytes, want %d", er.out.Len(), PayloadOffset)
	}
	er.w = w
	return er, func() int64 { return er.n }, nil
}

// encReader pulls plaintext from src through age's STREAM writer, which
// writes ciphertext into out, and serves out.
type encReader struct {
	src  io.Reader
	w    io.WriteCloser
	out  bytes.Buffer
	tmp  []byte
	n    int64
	done bool
	err  error
}

func (r *encReader) Read(p []byte) (int, error) {
	for r.out.Len() == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.done {
			return 0, io.EOF
		}
		n, err := r.src.Read(r.tmp)
		if n > 0 {
			r.n += int64(n)
			if _, werr := r.w.Write(r.tmp[:n]); werr != nil {
				r.err = werr
				continue
			}
		}
		switch {
		case err == io.EOF:
			r.done = true
			if cerr := r.w.Close(); cerr != nil {
				r.err = cerr
			}
		case err != nil:
			r.err = err
		}
	}
	return r.out.Read(p)
}
