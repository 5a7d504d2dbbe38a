# Front door of the repository. `make demo` shows replication end to end,
# `make test` runs every test (installing Debian's sqlite3 tools if missing).

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo development)
GO      ?= go
LDFLAGS := -X main.Version=$(VERSION)

.PHONY: all build extension deps test chaos demo bench clean

all: build

# bin/ ignores itself so build output never shows up in git status.
bin/.gitignore:
	@mkdir -p bin && echo '*' > $@

build: bin/.gitignore
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/litestream ./cmd/litestream

# A statically linked binary (cgo SQLite and libc linked in) that runs in
# an empty root: a scratch container image (see the Dockerfile), a chroot.
static: bin/.gitignore
	./scripts/build-static.sh bin/litestream-static $(VERSION)

# The container image (needs Docker; see the Dockerfile).
docker:
	docker build --build-arg VERSION=$(VERSION) -t litestream-go:$(VERSION) .

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

# The adversarial suite (chaos/, README "Adversarial suite"): the short
# profile (about 5 minutes, also part of make test); CHAOS=long runs each
# test longer. Prints each test's seed and its "NAME: trials=..." line.
chaos: SHELL := /bin/bash
chaos: deps bin/.gitignore
	@set -o pipefail; CHAOS=$${CHAOS:-short} LITESTREAM_REQUIRE_SERVERS=1 $(GO) test -count=1 -v -timeout 4h ./chaos/ 2>&1 | tee bin/chaos.log; \
	status=$$?; echo "--- chaos summary (full log: bin/chaos.log)"; grep -E '^Test[^ ]*: (trials=|seed )' bin/chaos.log; exit $$status

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
