# rollguard: the two entry points are `make demo` and `make test` (see README.md).
GO      ?= go
BIN     := bin/rollguard
SANDBOX := $(GO) run ./cmd/sandbox

.PHONY: build dist image sandbox-binaries realnode-binaries test-deps test vet demo bench clean

# The version is the git description (tag, commits since, revision), so `rollguard version` names the build.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

build:
	$(GO) build -ldflags "-X github.com/rollguard/rollguard/internal/version.Version=$(VERSION)" -o $(BIN) ./cmd/rollguard

# Release archives as the GitHub Action, the Azure and GitLab templates and the krew manifest download them:
# bin/dist/rollguard_OS_ARCH.tar.gz (holding the static binary rollguard) and bin/dist/checksums.txt.
DIST_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
DIST_DIR       ?= bin/dist
dist:
	rm -rf $(DIST_DIR) && mkdir -p $(DIST_DIR)
	for p in $(DIST_PLATFORMS); do os=$${p%/*}; arch=$${p#*/}; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath \
			-ldflags "-s -w -X github.com/rollguard/rollguard/internal/version.Version=$(VERSION)" \
			-o $(DIST_DIR)/$$os-$$arch/rollguard ./cmd/rollguard || exit 1; \
		tar -czf $(DIST_DIR)/rollguard_$${os}_$${arch}.tar.gz -C $(DIST_DIR)/$$os-$$arch rollguard || exit 1; \
		rm -r $(DIST_DIR)/$$os-$$arch; \
	done
	cd $(DIST_DIR) && sha256sum rollguard_*.tar.gz > checksums.txt

# The container image, built without a Docker daemon (cmd/rollguard-image): a non-root image whose entrypoint
# is rollguard, written to bin/rollguard-image.tar (docker load -i ...), and pushed when IMAGE is given:
#   make image IMAGE=registry.example.com/team/rollguard:v1.2.3 [PLATFORMS=linux/amd64,linux/arm64]
IMAGE     ?=
PLATFORMS ?=
IMAGE_OUT ?= bin/rollguard-image.tar
image:
	$(GO) run ./cmd/rollguard-image --version $(VERSION) \
		$(if $(PLATFORMS),--platform $(PLATFORMS),--out $(IMAGE_OUT)) $(if $(IMAGE),--push $(IMAGE))

# Builds the sandbox's Kubernetes binaries into the per-user cache once (about 8 minutes on 2 cores),
# printing progress; later runs find them there at once.
sandbox-binaries:
	cd sandbox && $(SANDBOX) build

vet:
	$(GO) vet ./...
	cd sandbox && $(GO) vet ./...

# The image-retention and image tests run a real registry server (Debian's docker-registry), the dashboard
# tests drive Debian's Chromium, the CI-template tests run shellcheck through actionlint, and the real node
# needs libseccomp-dev, pkg-config and the CNI plugins; each is installed when missing.
test-deps:
	.ci/registry.sh
	.ci/chromium.sh
	.ci/shellcheck.sh
	.ci/realnode.sh

# The real node's kubelet, containerd and runc (about 5 minutes on 2 cores, once). It needs root; without it
# the real-node tests fail in CI (CI=true) and skip elsewhere, naming what is missing.
realnode-binaries: test-deps
	@if [ "$$(id -u)" = 0 ]; then cd sandbox && $(SANDBOX) build --real-node; \
	else echo "real node: not root, not built; its tests fail in CI and skip elsewhere"; fi

test: vet sandbox-binaries test-deps realnode-binaries
	cd sandbox && $(GO) test -count=1 -timeout 30m ./...
	$(GO) test -count=1 -timeout 40m ./...

# The guard scene plays a teammate's kubectl: the sandbox builds a kubectl of the cluster's version (once).
demo: build sandbox-binaries
	cd sandbox && KUBECTL=$$($(SANDBOX) kubectl) $(SANDBOX) run --dir $(CURDIR)/.sandbox-demo -- $(CURDIR)/demo/demo.sh $(CURDIR)/$(BIN)

bench: build sandbox-binaries
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 120m ./bench/...

clean:
	rm -rf bin .sandbox-demo
