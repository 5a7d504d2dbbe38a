#!/usr/bin/env bash
# Installs what the build and tests need, only when missing: from Debian's
# packages the sqlite3 shell, SQLite's headers (the loadable extension
# includes <sqlite3ext.h>), a C compiler for cgo, Python 3 (the extension is
# also tested from Python's sqlite3) and Node.js with npm (for Azurite, the
# Azure test server, which `make test` installs with scripts/testservers).
# Idempotent, and silent when everything is present.
set -euo pipefail

missing=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
have_pkg libsqlite3-dev || missing+=(libsqlite3-dev)
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
[ -x /usr/bin/python3 ] || missing+=(python3)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: missing ${missing[*]} and apt-get is not available; install them by hand" >&2
	exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
	sudo=(sudo)
fi
echo "install-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
