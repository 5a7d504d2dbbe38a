# Front door of the repository. `make demo` shows replication end to end,
# `make test` runs every test (installing Debian's sqlite3 tools if missing).

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo development)
GO      ?= go
LDFLAGS := -X main.Version=$(VERSION)

.PHONY: all build extension deps test demo bench clean

all: build

# bin/ ignores itself so build output never shows up in git status.
bin/.gitignore:
	@mkdir -p bin && echo '*' > $@

build: bin/.gitignore
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/litestream ./cmd/litestream

extension: bin/.gitignore deps
	@if [ -d extension ]; then \
		$(GO) build -tags SQLITE3VFS_LOADABLE_EXT -buildmode=c-shared -o bin/litestream_vfs.so ./extension; \
	else \
		echo "extension: ./extension does not exist yet; skipping"; \
	fi

deps:
	@./scripts/install-deps.sh

# LITESTREAM_REQUIRE_SERVERS makes the s3 and abs tests fail, not skip, when
# their servers (installed by deps) are missing.
test: deps
	./scripts/testservers/install.sh
	LITESTREAM_REQUIRE_SERVERS=1 $(GO) test -count=1 -timeout 25m ./...

demo: build deps
	./scripts/demo.sh

bench: deps
	@if [ -x scripts/bench.sh ]; then \
		./scripts/bench.sh; \
	elif [ -d bench ]; then \
		$(GO) test -run '^$$' -bench . ./bench/...; \
	else \
		echo "bench: ./bench does not exist yet; skipping"; \
	fi

clean:
	rm -rf bin demo-data
