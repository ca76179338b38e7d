# hpcctl builds as one static, CGO-free binary that copies to any cluster.
GO        ?= go
TAGS      := containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/hpcctl/hpcctl/internal/cli.Version=$(VERSION)
GOFLAGS_B := -trimpath -tags "$(TAGS)" -ldflags "$(LDFLAGS)"
export CGO_ENABLED = 0

.PHONY: all build test vet bench bench-exec clean

all: build

build:
	$(GO) build $(GOFLAGS_B) -o bin/hpcctl ./cmd/hpcctl

# Unit tests: no root, no network.
test:
	$(GO) test -tags "$(TAGS)" ./internal/... ./cmd/...

vet:
	$(GO) vet -tags "$(TAGS)" ./...

bench: bench-exec

# Start-to-exit time of `hpcctl exec IMAGE /bin/true`, root and plain user, against the same
# work done by hand (unshare + mount + chroot) in the same run. Needs root and the user hpcuser.
bench-exec: build
	$(GO) run -tags "$(TAGS)" ./tools/execbench -hpcctl bin/hpcctl -n 50

clean:
	rm -rf bin _out
