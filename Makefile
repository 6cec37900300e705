# rollguard: the two entry points are `make demo` and `make test` (see README.md).
GO      ?= go
BIN     := bin/rollguard
SANDBOX := $(GO) run ./cmd/sandbox

.PHONY: build sandbox-binaries test-deps test vet demo bench clean

# The version is the git description (tag, commits since, revision), so `rollguard version` names the build.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

build:
	$(GO) build -ldflags "-X github.com/rollguard/rollguard/internal/version.Version=$(VERSION)" -o $(BIN) ./cmd/rollguard

# Builds the sandbox's Kubernetes binaries into the per-user cache once (about 8 minutes on 2 cores),
# printing progress; later runs find them there at once.
sandbox-binaries:
	cd sandbox && $(SANDBOX) build

vet:
	$(GO) vet ./...
	cd sandbox && $(GO) vet ./...

# The image-retention tests run a real registry server (Debian's docker-registry) and the dashboard tests
# drive Debian's Chromium; each is installed when missing.
test-deps:
	.ci/registry.sh
	.ci/chromium.sh

test: vet sandbox-binaries test-deps
	cd sandbox && $(GO) test -count=1 -timeout 30m ./...
	$(GO) test -count=1 -timeout 40m ./...

demo: build sandbox-binaries
	cd sandbox && $(SANDBOX) run --dir $(CURDIR)/.sandbox-demo -- $(CURDIR)/demo/demo.sh $(CURDIR)/$(BIN)

bench: build sandbox-binaries
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./bench/...

clean:
	rm -rf bin .sandbox-demo
