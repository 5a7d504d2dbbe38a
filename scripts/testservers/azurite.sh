#!/usr/bin/env bash
# Installs Azurite (the Azure Storage emulator) that remote/abs's tests run on
# 127.0.0.1, once, into the test server cache (see common.sh). It needs Node
# and npm (Debian's nodejs/npm; 3.37.0 warns about Node 20 but runs).
# About 1.5 minutes the first time; later runs return at once.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/common.sh"

version="3.37.0"
dir="$(testservers_dir)/azurite-$version"
bin="$dir/node_modules/.bin/azurite-blob"

if [ -x "$bin" ] && [ -f "$dir/.complete" ]; then
	exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
	if command -v apt-get >/dev/null 2>&1; then
		sudo=()
		[ "$(id -u)" -ne 0 ] && sudo=(sudo)
		echo "testservers: installing nodejs and npm" >&2
		"${sudo[@]}" apt-get update -qq
		DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
	else
		echo "testservers: npm is missing; install Node.js and npm" >&2
		exit 1
	fi
fi
echo "testservers: installing azurite@$version into $dir (about 1.5 minutes, once)" >&2
mkdir -p "$dir"
rm -f "$dir/.complete"
npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "azurite@$version" >&2
touch "$dir/.complete"
echo "testservers: Azurite ready at $bin" >&2
