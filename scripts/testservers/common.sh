# Shared by the test server install scripts: where the servers are cached.
# The Go tests look in the same place (internal/testserver).
# LITESTREAM_TESTSERVERS_DIR overrides it.
testservers_dir() {
	echo "${LITESTREAM_TESTSERVERS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/litestream-testservers}"
}
