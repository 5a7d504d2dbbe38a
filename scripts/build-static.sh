#!/usr/bin/env bash
# Builds a statically linked litestream binary: SQLite (mattn/go-sqlite3,
# cgo) and the C library linked in, no dynamic loader, so it runs in an
# empty root (a scratch container, a chroot). `make static` runs it; the
# test cmd/litestream/static uses it too, so both build the same thing.
#
#   scripts/build-static.sh OUTPUT [VERSION]
#
# Needs gcc and the static C library (Debian: gcc, libc6-dev). The tags:
# osusergo and netgo use Go's user and DNS code instead of glibc's NSS
# (which static glibc cannot load); sqlite_omit_load_extension leaves out
# dlopen. TLS roots come from /etc/ssl/certs (or SSL_CERT_FILE) at run time.
set -euo pipefail
out="${1:?usage: build-static.sh OUTPUT [VERSION]}"
version="${2:-development}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
CGO_ENABLED=1 exec "${GO:-go}" build \
	-tags 'osusergo netgo sqlite_omit_load_extension' \
	-trimpath \
	-ldflags "-s -w -linkmode external -extldflags '-static' -X main.Version=${version}" \
	-o "$out" ./cmd/litestream
