package remotetest

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/internal/faultproxy"
	"github.com/litestream-go/litestream/remote"
)

// FaultOptions tune RunFaults.
type FaultOptions struct {
	// Kinds are the fault kinds to inject (default: all). The stalls cost
	// the client its attempt timeout each: give it a short one.
	Kinds []faultproxy.Kind
	// LargeSize is the size of a file written and read in several
	// requests (chunks, parts, blocks); 0 skips it.
	LargeSize int
}

// RunFaults checks a client whose requests go through proxy (an HTTP
// backend): for each fault kind, the first requests of each operation
// (write, list, ranged read, whole read, large write and read, delete) get
// the fault, and every operation must still succeed with the right content.
// A client passes by retrying transient failures, resuming or re-reading
// bodies cut short, and never taking a truncated body for data.
func RunFaults(t *testing.T, proxy *faultproxy.Proxy, c remote.Client, opts FaultOptions) {
	t.Helper()
	kinds := opts.Kinds
	if kinds == nil {
		kinds = faultproxy.Kinds
	}
	ts := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	var large []byte
	if opts.LargeSize > 0 {
		large = BuildLTX(t, LTXSpec{MinTXID: 1, MaxTXID: 1000, Timestamp: ts, Pages: opts.LargeSize / 4096, Seed: 99})
	}
	for i, kind := range kinds {
		t.Run(kind.String(), func(t *testing.T) {
			n := 2
			stall := kind == faultproxy.Stall || kind == faultproxy.StallMidBody
			if stall {
				n = 1 // each costs the client's attempt timeout
			}
			// op runs fn once for each position: with the first n
			// requests faulty (position 0), or with the request at that
			// position faulty (the upload's second request, say).
			op := func(name string, positions int, fn func() error) {
				t.Helper()
				if stall {
					positions = min(positions, 2)
				}
				for pos := range positions {
					count := n
					if pos > 0 {
						count = 1
						proxy.ForceAny(0, pos)
					}
					proxy.ForceAny(kind, count)
					err := fn()
					left := proxy.ClearForced()
					if err != nil {
						t.Fatalf("%s with %s faults at request %d (%d injected): %v", name, kind, pos+1, pos+count-left, err)
					}
				}
			}
			txid := ltx.TXID(i + 1)
			small := BuildLTX(t, LTXSpec{MinTXID: txid, MaxTXID: txid, Timestamp: ts, Pages: 30, Seed: uint64(txid)})
			op("write", 4, func() error {
				_, err := c.WriteLTXFile(t.Context(), 0, txid, txid, bytes.NewReader(small))
				return err
			})
			op("list", 1, func() error {
				infos, err := c.LTXFiles(t.Context(), 0, txid)
				if err == nil && (len(infos) != 1 || infos[0].MinTXID != txid || infos[0].Size != int64(len(small)) || !infos[0].CreatedAt.Equal(ts)) {
					t.Fatalf("list: %v", infos)
				}
				return err
			})
			op("ranged read", 1, func() error { return readCheck(t, c, 0, txid, txid, small, 1000, 50_000) })
			op("whole read", 1, func() error { return readCheck(t, c, 0, txid, txid, small, 0, 0) })
			if large != nil {
				op("large write", 4, func() error {
					_, err := c.WriteLTXFile(t.Context(), 9, 1, 1000, bytes.NewReader(large))
					return err
				})
				op("large read", 1, func() error { return readCheck(t, c, 9, 1, 1000, large, 0, 0) })
			}
			op("delete", 2, func() error {
				return c.DeleteLTXFiles(t.Context(), []*ltx.FileInfo{{Level: 0, MinTXID: txid, MaxTXID: txid}})
			})
			if infos, err := c.LTXFiles(t.Context(), 0, txid); err != nil || len(infos) != 0 {
				t.Fatalf("after delete: %v %v", infos, err)
			}
		})
	}
	s := proxy.Stats()
	t.Logf("%s", s)
	for _, kind := range kinds {
		if s.Faults[kind] == 0 {
			t.Errorf("%s was never injected", kind)
		}
	}
}

// readCheck reads a range of a file and compares it with want.
func readCheck(t *testing.T, c remote.Client, level int, minTXID, maxTXID ltx.TXID, want []byte, off, size int64) error {
	t.Helper()
	rc, err := c.OpenLTXFile(t.Context(), level, minTXID, maxTXID, off, size)
	if err != nil {
		return err
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	end := int64(len(want))
	if size > 0 {
		end = off + size
	}
	if !bytes.Equal(got, want[off:end]) {
		t.Fatalf("read %s bytes %d+%d: %d bytes without an error, not the file's", remote.FileDesc(level, minTXID, maxTXID), off, size, len(got))
	}
	return nil
}
