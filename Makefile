# hpcctl builds as one static, CGO-free binary that copies to any cluster.
GO        ?= go
TAGS      := containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/hpcctl/hpcctl/internal/cli.Version=$(VERSION)
GOFLAGS_B := -trimpath -tags "$(TAGS)" -ldflags "$(LDFLAGS)"
export CGO_ENABLED = 0

.PHONY: all build test vet bench clean demo bench-build

all: build

build:
	$(GO) build $(GOFLAGS_B) -o bin/hpcctl ./cmd/hpcctl

# The main job on an example image made locally: build it, look inside, run it.
demo: build
	$(GO) build -trimpath -o _out/probe ./examples/probe
	$(GO) run ./tools/mkexample -probe _out/probe -out _out/example-oci
	bin/hpcctl build --force _out/example.sif oci:_out/example-oci:latest
	bin/hpcctl inspect _out/example.sif

bench: bench-build

# hpcctl build vs the classic unpack-then-mksquashfs pipeline, on the Debian fixture archive.
bench-build: build
	$(GO) run ./tools/buildbench -hpcctl bin/hpcctl

# Unit tests: no root, no network.
test:
	$(GO) test -tags "$(TAGS)" ./internal/... ./cmd/...

vet:
	$(GO) vet -tags "$(TAGS)" ./...

clean:
	rm -rf bin _out
