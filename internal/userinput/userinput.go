// Package userinput holds the one rule for each kind of value a user types
// in more than one place (a YAML key, a flag, an environment variable, a
// file URI parameter, an SQL function argument), so that the same text means
// the same thing everywhere:
//
//   - sizes ("64MB", "5MiB", "1048576"): Litestream v0.5.18's rule, which is
//     github.com/dustin/go-humanize's ParseBytes: KB/MB/GB/TB (and K/M/G/T)
//     are powers of 1000, KiB/MiB/GiB/TiB (and Ki/Mi/Gi/Ti) powers of 1024,
//     a plain number is bytes, decimals are allowed ("1.5MiB"), case and a
//     space before the unit do not matter;
//   - transaction IDs ("000000000000000a", "a", "0xA"): hexadecimal, as
//     Litestream and LTX file names print them, with or without leading
//     zeros and an optional 0x prefix; TXID 0 does not exist.
//
// Secret URL query parameters and configuration keys are decided in one
// place too, remote.IsSecretParam, next to the replica URL parser.
package userinput

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/superfly/ltx"
)

// ParseSize parses a byte size (see the package comment): "64MB" is
// 64,000,000 bytes and "64MiB" 67,108,864, as in Litestream's YAML keys.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("invalid size %q: empty", s)
	}
	n, err := humanize.ParseBytes(t)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: want bytes, or a number with a unit such as 64MB (10^6) or 64MiB (2^20)", s)
	}
	if n > math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: larger than %d bytes", s, int64(math.MaxInt64))
	}
	return int64(n), nil
}

// ErrTXIDZero is returned (wrapped) by ParseTXID for TXID 0, which no
// replica holds: TXIDs start at 1.
var ErrTXIDZero = errors.New("TXID 0 does not exist; TXIDs start at 1")

// ParseTXID parses a transaction ID (see the package comment): hex, with or
// without leading zeros and a 0x prefix, at most 16 digits, not 0.
func ParseTXID(s string) (ltx.TXID, error) {
	t := strings.TrimSpace(s)
	if p, ok := strings.CutPrefix(t, "0x"); ok {
		t = p
	} else if p, ok := strings.CutPrefix(t, "0X"); ok {
		t = p
	}
	// ParseUint would take a sign or underscores; a TXID has neither.
	if t == "" || len(t) > 16 || strings.IndexFunc(t, func(r rune) bool { return !isHexDigit(r) }) >= 0 {
		return 0, fmt.Errorf("invalid TXID %q: want hex digits as Litestream prints them, such as 000000000000000a, a or 0xa", s)
	}
	v, err := strconv.ParseUint(t, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid TXID %q: %w", s, err)
	}
	if v == 0 {
		return 0, fmt.Errorf("invalid TXID %q: %w", s, ErrTXIDZero)
	}
	return ltx.TXID(v), nil
}

func isHexDigit(r rune) bool {
	return '0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F'
}
