# hpcctl builds as one static, CGO-free binary that copies to any cluster.
GO        ?= go
TAGS      := containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/hpcctl/hpcctl/internal/cli.Version=$(VERSION)
GOFLAGS_B := -trimpath -tags "$(TAGS)" -ldflags "$(LDFLAGS)"
export CGO_ENABLED = 0

.PHONY: all build test vet bench bench-squashfs clean

all: build

build:
	$(GO) build $(GOFLAGS_B) -o bin/hpcctl ./cmd/hpcctl

# Unit tests: no root, no network.
test:
	$(GO) test -tags "$(TAGS)" ./internal/... ./cmd/...

vet:
	$(GO) vet -tags "$(TAGS)" ./...

# Benchmarks: each bench-* target measures one part; bench runs them all.
bench: bench-squashfs

# Native squashfs writer against mksquashfs on $$HPCCTL_TEST_DEBIAN_ROOTFS (or TREE=dir).
bench-squashfs:
	$(GO) run ./tools/sqfsbench $(if $(TREE),-tree $(TREE))

clean:
	rm -rf bin _out
