// Package crypt is client-side encryption of a replica with age
// (filippo.io/age): a remote.Client that wraps a backend, encrypts every LTX
// file it writes to a set of recipients and decrypts every byte range it
// reads with a set of identities, so that everything above it (the writer's
// uploads, compactions and snapshots, retention, restore, restore -f, the
// ltx command and the VFS) sees plain LTX files and needs no change.
//
// # Why one wrapper
//
// Every path to a replica's bytes goes through a remote.Client. Encrypting
// in that one place means no path can upload plaintext to a replica
// configured for encryption (the daemon and the CLI wrap the client when
// the replica has an age section, before anything else sees it) and no
// reader has its own decryption to get wrong. The wrapper sits directly on
// the backend (under the metrics wrapper's counting, so that metrics count
// what is stored) and is the only client the writer, restore and the VFS
// get.
//
// # Format: an age file with a fixed-length header
//
// Each stored object is a standard age-encryption.org/v1 file of the LTX
// file: the header (one stanza per recipient and a MAC), a 16-byte nonce,
// then the STREAM payload in chunks of 64 KiB of plaintext plus a 16-byte
// Poly1305 tag each, the last chunk flagged. `age -d -i key.txt FILE`
// decrypts it.
//
// The one addition: the header is padded to exactly AgeHeaderSize (8 KiB)
// with a stanza of type "litestream-pad", which age identities skip like
// any stanza they do not know and which the header MAC authenticates. A
// fixed header length makes the layout a pure function of the plaintext
// size (CipherSize, PlainSize): a listing's stored size maps to the plaintext
// size, and a plaintext byte range to the chunks that hold it, without
// reading anything. So
//
//   - LTXFiles reports plaintext sizes, and readers that compute offsets
//     from a file's size (the page-index tail read, restore's chunked
//     reads, the VFS's whole-file verification) are exact with no change
//     and no extra request;
//   - a range read fetches only the chunks covering it, in one request.
//
// An unpadded header's length depends on the recipients (about 100 bytes
// per X25519 recipient, 1.6 KiB per post-quantum one), so a reader would
// have to fetch each file's header before it could map any size or offset:
// one more round trip per cold file before its page index can be read, and
// every reader of FileInfo.Size would have to ask for the real size. The
// price of the fixed length is 8 KiB per file, and a limit of five
// post-quantum (or about eighty X25519) recipients; New refuses more.
//
// # Reads
//
// To decrypt any chunk a reader needs the file key, which only the header
// gives. A read that starts in the first chunk fetches the header in the
// same request (it directly precedes the chunk); any other read of a cold
// file fetches the header concurrently with its chunks (one more request,
// no more round trips); either way the key is cached per file, so later
// reads cost exactly one request, the same as on a plain replica. The
// page-index tail read of an index build runs concurrently with the header
// read of the same build, so opening a replica costs the same round trips
// as on a plain one. Chunks that a read used only in part (the neighbours of
// a page) are kept in a small cache, so the next page of the same chunk
// costs no request; the page fetcher's coalescing gap (64 KiB) already
// merges frames of one chunk into one request.
//
// age v1.3's DecryptReaderAt also decrypts at random offsets, but through an
// io.ReaderAt: it reads the header with several small reads and the final
// chunk before it returns, then one chunk per ReadAt. Over a network that
// is several round trips per cold file and one request per 64 KiB of a
// large read, where restore reads 4 MiB per request; so the chunks are
// opened here (STREAM is a small construction: ChaCha20-Poly1305 keyed by
// HKDF-SHA-256 of the file key and nonce, the nonce of chunk i being i as
// an 88-bit counter and a last-chunk flag), and the tests check the result
// against age's own encryption and decryption, DecryptReaderAt included.
// The header, where the key material is, is parsed and decrypted by age
// (ExtractHeader, DecryptHeader).
//
// # What is verified
//
// Every chunk is authenticated before a byte of it is returned, and its
// position (the counter) and whether it is the last are part of what is
// authenticated: a flipped byte, a chunk moved within or between files, a
// file cut short (even at a chunk boundary) or extended fails with
// ErrTampered; a wrong identity with ErrWrongIdentity, a missing one with
// ErrNoIdentity; a plaintext file in a replica configured for encryption
// with ErrNotEncrypted (anyone with write access to the storage can forge a
// plaintext file, but not an age file without knowing a recipient). Every
// error names the file and never carries key material. A range that does
// not touch the damage reads correctly: never wrong bytes.
//
// What age does not give: authentication of the writer (anyone who knows a
// recipient, a public key, can make a file that decrypts), freshness (the
// storage can serve an older replica or hide the newest files), and the
// binding of a file to its name (the LTX header inside, which readers check
// against the name, covers the TXIDs). Object names, sizes and timing stay
// visible to the storage provider.
//
// # Writes
//
// WriteLTXFile reads the LTX header (for the stored creation time, which
// backends otherwise read from the upload: remote.WithOpaqueWrite tells
// them not to), encrypts the stream with age's own STREAM writer and
// checks the result has the expected length. A file written again (a
// retried upload or compaction) has a new file key: a cached key that no
// longer authenticates a chunk is dropped, and the read's error is
// retryable once so that the retry reads the new header.
//
// Compaction, resuming after a restart and copying a level-0 snapshot to
// level 9 read the replica back, so the daemon needs an identity as well as
// the recipients (see cmd/litestream).
package crypt
