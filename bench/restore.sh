#!/usr/bin/env bash
# Restore of a ~1 GiB database from a local file replica, next to dd of the
# same file, in one run; prints a table of wall times and their ratio.
#
#   bench/restore.sh                      # 1 GiB, 3 runs, temp dir
#   BENCH_DB_MB=2048 BENCH_RUNS=5 BENCH_DIR=/mnt/fast bench/restore.sh
#
# Needs about 3.5x the database size of free disk in BENCH_DIR; everything
# is removed afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec go test -run '^$' -bench '^BenchmarkRestoreVsDD$' -benchtime 1x -timeout 60m ./bench/ "$@"
