#!/usr/bin/env bash
# Installs every test server the tests need: MinIO for s3, Azurite for abs,
# and the real Litestream v0.5.18 that the compatibility tests (cmd/litestream, e2e/)
# compare against. The other backends' servers are Go modules embedded in
# the tests. Idempotent: quick when everything is already cached.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/minio.sh"
"$here/azurite.sh"
"$here/litestream.sh"
