package remotetest

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/superfly/ltx"
)

func TestBuildLTX(t *testing.T) {
	ts := time.Date(2021, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	tests := []LTXSpec{
		{MinTXID: 1, MaxTXID: 1, Timestamp: ts},
		{MinTXID: 1, MaxTXID: 9, Timestamp: ts, Pages: 20, Seed: 3},
		{MinTXID: 7, MaxTXID: 7, Timestamp: ts, PageSize: 512, Pages: 3, Seed: 4},
	}
	for _, spec := range tests {
		data := BuildLTX(t, spec)
		dec := ltx.NewDecoder(bytes.NewReader(data))
		if err := dec.DecodeHeader(); err != nil {
			t.Fatal(err)
		}
		h := dec.Header()
		pageSize := spec.PageSize
		if pageSize == 0 {
			pageSize = 4096
		}
		if h.Flags != ltx.HeaderFlagNoChecksum || h.MinTXID != spec.MinTXID || h.MaxTXID != spec.MaxTXID ||
			h.Timestamp != ts.UnixMilli() || h.PageSize != pageSize || h.Commit != uint32(max(spec.Pages, 1)) {
			t.Fatalf("header %+v for %+v", h, spec)
		}
		var pgno uint32
		for {
			var ph ltx.PageHeader
			buf := make([]byte, pageSize)
			if err := dec.DecodePage(&ph, buf); err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			pgno++
			if ph.Pgno != pgno || ph.Flags != ltx.PageHeaderFlagSize || !bytes.Equal(buf, PageData(spec.Seed, pgno, pageSize)) {
				t.Fatalf("page %d: header %+v or content differs", pgno, ph)
			}
		}
		if err := dec.Close(); err != nil {
			t.Fatalf("verify: %v", err)
		}
		off, size := PageIndexRange(data)
		idx, err := ltx.DecodePageIndex(bytes.NewReader(data[off:off+size]), 0, spec.MinTXID, spec.MaxTXID)
		if err != nil || len(idx) != int(pgno) {
			t.Fatalf("page index: %d entries, %v", len(idx), err)
		}
	}
}
