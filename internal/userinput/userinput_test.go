package userinput

import (
	"errors"
	"testing"

	"github.com/superfly/ltx"
)

func TestParseSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
	}{
		// Litestream v0.5.18's own table (cmd/litestream TestParseByteSize).
		{"1MiB", 1 << 20}, {"5MiB", 5 << 20}, {"1GiB", 1 << 30}, {"1TiB", 1 << 40}, {"1024KiB", 1 << 20},
		{"1MB", 1_000_000}, {"5MB", 5_000_000}, {"1GB", 1_000_000_000}, {"1TB", 1_000_000_000_000}, {"1000KB", 1_000_000},
		{"1M", 1_000_000}, {"1K", 1000}, {"1G", 1_000_000_000}, {"1T", 1_000_000_000_000},
		{"1.5MB", 1_500_000}, {"1.5MiB", 1_572_864}, {"0.5MB", 500_000}, {"2.5GiB", 2_684_354_560}, {"100.5KB", 100_500},
		{"100B", 100}, {"100", 100},
		{"1mib", 1 << 20}, {"5MIB", 5 << 20}, {"1gib", 1 << 30},
		{"1 MiB", 1 << 20}, {"5 MB", 5_000_000}, {"10 GiB", 10 << 30},
		// The sizes this project's documents and tests use.
		{"64MB", 64_000_000}, {"64MiB", 64 << 20}, {"64mb", 64_000_000}, {"2G", 2_000_000_000},
		{"512 KiB", 512 << 10}, {"0", 0}, {"10B", 10}, {"1048576", 1 << 20}, {"1.5 KiB", 1536}, {"2k", 2000}, {"10MB", 10_000_000},
		{" 8MiB ", 8 << 20},
	} {
		got, err := ParseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", " ", "lots", "-1", "MiB", "MB", "1XB", "5 parsecs", "10EB"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestParseTXID(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want ltx.TXID
	}{
		{"000000000000000a", 0xa}, {"0000000000000010", 0x10}, {"10", 0x10}, {"a", 0xa}, {"A", 0xa},
		{"0xa", 0xa}, {"0X1F", 0x1f}, {"0x000000000000001f", 0x1f}, {" 15 ", 0x15},
		{"ffffffffffffffff", ltx.TXID(^uint64(0))},
	} {
		got, err := ParseTXID(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseTXID(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "0x", "g", "-1", "+1", "1_0", "1 0", "00000000000000001", "2026-11-20", "0x-1"} {
		if got, err := ParseTXID(in); err == nil {
			t.Errorf("ParseTXID(%q) = %v, want an error", in, got)
		}
	}
	for _, in := range []string{"0", "0000000000000000", "0x0"} {
		if _, err := ParseTXID(in); !errors.Is(err, ErrTXIDZero) {
			t.Errorf("ParseTXID(%q): err = %v, want ErrTXIDZero", in, err)
		}
	}
}
