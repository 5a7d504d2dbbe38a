package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// extStats is the part of litestream_stats()'s JSON the test checks.
type extStats struct {
	TXID          uint64  `json:"txid"`
	Hits          int64   `json:"hits"`
	Misses        int64   `json:"misses"`
	Fetches       int64   `json:"fetches"`
	BytesFetched  int64   `json:"bytes_fetched"`
	CachePages    int64   `json:"cache_pages"`
	CacheBytes    int64   `json:"cache_bytes"`
	CacheMaxBytes int64   `json:"cache_max_bytes"`
	Polls         int64   `json:"polls"`
	PollLag       float64 `json:"poll_lag_seconds"`
}

// TestShellStats runs queries in the sqlite3 shell and reads
// litestream_stats() (and PRAGMA litestream_stats) between them: a cold
// query misses and fetches; the same query on a reopened connection (a new
// SQLite page cache, the same replica) hits the replica's cache.
func TestShellStats(t *testing.T) {
	const query = "select count(*), total(user_id), total(length(payload)) from events;\n"
	script := `.load ` + extPath + `
.open file:app.db?vfs=litestream
select litestream_stats();
` + query + `select litestream_stats();
.open file:app.db?vfs=litestream
` + query + `pragma litestream_stats;
`
	out, errOut, err := shell(t, []string{"LITESTREAM_REPLICA_URL=" + fixtureURL(t), "LITESTREAM_CACHE_SIZE=16MiB"}, script)
	if err != nil {
		t.Fatalf("sqlite3: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	const result = "2585|6556214.0|517000.0"
	if len(lines) != 5 || lines[1] != result || lines[3] != result {
		t.Fatalf("output:\n%s\nwant 3 JSON lines around two results %s\nstderr:\n%s", out, result, errOut)
	}
	var st [3]extStats
	for i, l := range []string{lines[0], lines[2], lines[4]} {
		if err := json.Unmarshal([]byte(l), &st[i]); err != nil {
			t.Fatalf("stats %q: %v", l, err)
		}
		if st[i].TXID != 15 || st[i].CacheMaxBytes != 16<<20 || st[i].PollLag < 0 || st[i].PollLag > 60 {
			t.Errorf("stats %d: %s", i, l)
		}
	}
	before, cold, warm := st[0], st[1], st[2]
	t.Logf("before %+v\ncold %+v\nwarm %+v", before, cold, warm)
	if cold.Misses <= before.Misses || cold.Fetches <= before.Fetches || cold.BytesFetched <= before.BytesFetched {
		t.Errorf("the cold query did not miss and fetch: before %+v, after %+v", before, cold)
	}
	if cold.CachePages == 0 || cold.CacheBytes == 0 {
		t.Errorf("cache empty after the cold query: %+v", cold)
	}
	if warm.Hits <= cold.Hits {
		t.Errorf("the repeated query did not hit the cache: before %+v, after %+v", cold, warm)
	}
	// Read-ahead that the cold query started may still land after it
	// returned, so a few more misses are possible; a repeated query that
	// missed like a cold one is not.
	if d := warm.Misses - cold.Misses; d > cold.Misses/4 {
		t.Errorf("the repeated query missed %d more pages (the cold one %d): before %+v, after %+v", d, cold.Misses, cold, warm)
	}
}
