package writer

import (
	"testing"
	"time"
)

func TestNextAligned(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		now  string
		iv   time.Duration
		want string
	}{
		{"2026-11-20T10:30:12.5Z", 30 * time.Second, "2026-11-20T10:30:30Z"},
		{"2026-11-20T10:30:30Z", 30 * time.Second, "2026-11-20T10:31:00Z"}, // strictly after
		{"2026-11-20T10:31:59Z", 5 * time.Minute, "2026-11-20T10:35:00Z"},
		{"2026-11-20T10:30:00Z", time.Hour, "2026-11-20T11:00:00Z"},
		{"2026-11-20T23:10:00Z", 24 * time.Hour, "2026-11-21T00:00:00Z"},
	} {
		if got := nextAligned(at(tc.now), tc.iv); !got.Equal(at(tc.want)) {
			t.Errorf("nextAligned(%s, %s) = %s, want %s", tc.now, tc.iv, got.Format(time.RFC3339Nano), tc.want)
		}
	}
}
