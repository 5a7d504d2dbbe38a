#!/usr/bin/env bash
# Builds the real Litestream v0.5.18 that the compatibility tests of
# cmd/litestream and e2e/ compare against (golden -h/text/JSON output, both-ways
# replication on one replica, its sample configs and Grafana dashboard),
# once, into the test server cache (see common.sh). It is a Go module like
# MinIO: about 3 minutes cold. Its module source (docs/, etc/, the Grafana
# dashboard) stays in the Go module cache, where the tests read it.
#
# Run the binary with AWS_CA_BUNDLE unset: with it set, v0.5.18 cannot build
# its S3 client ("unable to add custom RootCAs HTTPClient").
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/common.sh"

version="v0.5.18"
module="github.com/benbjohnson/litestream"
dir="$(testservers_dir)/litestream-$version"
bin="$dir/litestream"

# The binary alone is not enough: the tests also read the module's files.
if [ -x "$bin" ] && GOFLAGS= go mod download -json "$module@$version" >/dev/null 2>&1; then
	exit 0
fi
echo "testservers: building Litestream $version into $dir (about 3 minutes, once)" >&2
mkdir -p "$dir"
tmp="$(mktemp -d "$dir/.build-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# GOFLAGS from the environment must not apply to a module outside this
# repository. The version is stamped the way its release builds do, so
# `litestream version` prints v0.5.18 and not "(devel)".
GOFLAGS= GOBIN="$tmp" go install -ldflags "-X main.Version=$version" "$module/cmd/litestream@$version"
GOFLAGS= go mod download "$module@$version"
mv "$tmp/litestream" "$bin"
echo "testservers: Litestream $version ready at $bin" >&2
