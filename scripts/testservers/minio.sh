#!/usr/bin/env bash
# Builds the MinIO server that remote/s3's tests run on 127.0.0.1, once, into
# the test server cache (see common.sh). MinIO has no release tags for Go
# modules, so the pseudo-version is pinned. A cold build takes about 4
# minutes and ~2 GB of Go caches; later runs return at once.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/common.sh"

version="v0.0.0-20260212201848-7aac2a2c5b7c"
dir="$(testservers_dir)/minio-$version"
bin="$dir/minio"

if [ -x "$bin" ]; then
	exit 0
fi
echo "testservers: building MinIO $version into $dir (a few minutes, once)" >&2
mkdir -p "$dir"
# Build into a temporary GOBIN so an interrupted build never leaves a
# half-written binary at the path the tests look for.
tmp="$(mktemp -d "$dir/.build-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# GOFLAGS from the environment (e.g. -mod=vendor) must not apply to a
# module outside this repository.
GOFLAGS= GOBIN="$tmp" go install "github.com/minio/minio@$version"
mv "$tmp/minio" "$bin"
echo "testservers: MinIO ready at $bin" >&2
