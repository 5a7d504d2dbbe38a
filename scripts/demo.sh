#!/usr/bin/env bash
# make demo: replicate a database under write load, stop the daemon with
# SIGTERM, restore the replica into a new file, and prove the copy is
# byte-identical to the (checkpointed) source. Exits non-zero otherwise.
# Idempotent: everything lives in ./demo-data, which is recreated each run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN=${BIN:-$PWD/bin/litestream}
DIR=$PWD/demo-data
DB=$DIR/app.db
REPLICA=$DIR/replica
RESTORED=$DIR/restored.db
SECONDS_OF_LOAD=${DEMO_SECONDS:-10}

say() { printf '\n==> %s\n' "$*"; }

[ -x "$BIN" ] || { echo "demo: $BIN not built (run make build)" >&2; exit 1; }
rm -rf "$DIR"
mkdir -p "$DIR"
echo '*' > "$DIR/.gitignore" # the demo directory ignores itself

say "creating $DB"
sqlite3 "$DB" >/dev/null <<'SQL'
PRAGMA journal_mode=WAL;
CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, score INTEGER NOT NULL);
CREATE TABLE events(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, payload BLOB NOT NULL);
CREATE INDEX events_user ON events(user_id);
SQL

say "starting: litestream replicate $DB file://$REPLICA"
"$BIN" replicate "$DB" "file://$REPLICA" >"$DIR/replicate.log" 2>&1 &
DAEMON=$!
cleanup() { kill "$DAEMON" 2>/dev/null || true; }
trap cleanup EXIT

# Wait (bounded) until the daemon has opened the database.
for _ in $(seq 1 100); do
	grep -q 'msg=replicating' "$DIR/replicate.log" 2>/dev/null && break
	kill -0 "$DAEMON" 2>/dev/null || { cat "$DIR/replicate.log"; echo "demo: daemon exited early" >&2; exit 1; }
	sleep 0.1
done
grep -q 'msg=replicating' "$DIR/replicate.log" || { cat "$DIR/replicate.log"; echo "demo: daemon not ready" >&2; exit 1; }

say "writing for ${SECONDS_OF_LOAD}s with the sqlite3 shell (one transaction per statement)"
txns=0
batch=0
end=$((SECONDS + SECONDS_OF_LOAD))
while [ "$SECONDS" -lt "$end" ]; do
	{
		echo "PRAGMA busy_timeout=5000; PRAGMA synchronous=NORMAL;"
		for i in $(seq 1 500); do
			echo "INSERT INTO users(name, score) VALUES ('user-$batch-$i', $((RANDOM % 1000)));"
			echo "INSERT INTO events(user_id, payload) VALUES (last_insert_rowid(), randomblob(100 + abs(random() % 400)));"
		done
		echo "UPDATE users SET score = score + 1 WHERE id % 10 = $((batch % 10));"
		echo "DELETE FROM events WHERE id % 17 = $((batch % 17)) AND id > (SELECT max(id) - 400 FROM events);"
		# A bulk transaction too, so some syncs carry many pages.
		echo "BEGIN; INSERT INTO events(user_id, payload) SELECT id, randomblob(300) FROM users WHERE id % 50 = $((batch % 50)) LIMIT 200; COMMIT;"
	} | sqlite3 "$DB" >/dev/null
	txns=$((txns + 1003))
	batch=$((batch + 1))
done
echo "$txns transactions in $batch batches"

say "stopping the daemon with SIGTERM (final sync)"
kill -TERM "$DAEMON"
status=0
wait "$DAEMON" || status=$?
trap - EXIT
if [ "$status" -ne 0 ]; then
	cat "$DIR/replicate.log"
	echo "demo: replicate exited with status $status" >&2
	exit 1
fi
tail -n 3 "$DIR/replicate.log"
echo "replica: $(find "$REPLICA" -name '*.ltx' | wc -l) LTX files, $(du -sh "$REPLICA" | cut -f1)"

say "restoring: litestream restore -o $RESTORED file://$REPLICA"
"$BIN" restore -o "$RESTORED" "file://$REPLICA"

say "checkpointing the source: PRAGMA wal_checkpoint(TRUNCATE)"
sqlite3 "$DB" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null

say "comparing"
counts() { sqlite3 "$1" 'SELECT (SELECT count(*) FROM users) || " users, " || (SELECT count(*) FROM events) || " events, score sum " || (SELECT total(score) FROM users);'; }
src_counts=$(counts "$DB")
dst_counts=$(counts "$RESTORED")
echo "source:   $src_counts"
echo "restored: $dst_counts"
sha256sum "$DB" "$RESTORED"
ok=1
[ "$src_counts" = "$dst_counts" ] || { echo "demo: row counts differ" >&2; ok=0; }
cmp "$DB" "$RESTORED" || { echo "demo: restored file differs from the source" >&2; ok=0; }
if [ "$ok" -ne 1 ]; then
	exit 1
fi
say "OK: the restored database is byte-identical to the source"
