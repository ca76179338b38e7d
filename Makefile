# hpcctl builds as static, CGO-free binaries that copy to any cluster: bin/hpcctl (all a compute
# node needs to run images) and bin/hpcctl-image beside it (build, sign, verify, key), kept apart so
# that its libraries do not slow the start of every container.
GO        ?= go
TAGS      := containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/hpcctl/hpcctl/internal/cli.Version=$(VERSION)
GOFLAGS_B := -trimpath -tags "$(TAGS)" -ldflags "$(LDFLAGS)"
export CGO_ENABLED = 0

.PHONY: e2e-no-session all build test vet lint bench bench-exec bench-build bench-squashfs bench-mpi bench-session bench-recipe clean demo fuzz stress

all: build

build:
	$(GO) build $(GOFLAGS_B) -o bin/ ./cmd/hpcctl ./cmd/hpcctl-image ./cmd/hpcctl-starter

# The setuid installation (docs/launch.md, "The setuid starter"), as root: PREFIX/bin/hpcctl and
# hpcctl-image, PREFIX/libexec/hpcctl/hpcctl-starter owned by root with mode 4755, and
# PREFIX/etc/hpcctl/hpcctl.conf with allow_setuid = true (an existing file is kept as it is).
# BIN names the directory of already built binaries (default: build them into bin/).
PREFIX ?= /usr/local
BIN    ?=
.PHONY: install-suid
install-suid: $(if $(BIN),,build) man
	install -d -m 0755 $(PREFIX)/bin $(PREFIX)/libexec/hpcctl $(PREFIX)/etc/hpcctl $(PREFIX)/share/man/man1
	install -m 0755 $(or $(BIN),bin)/hpcctl $(or $(BIN),bin)/hpcctl-image $(PREFIX)/bin/
	install -o root -g root -m 4755 $(or $(BIN),bin)/hpcctl-starter $(PREFIX)/libexec/hpcctl/
	install -m 0644 _out/man/*.1 $(PREFIX)/share/man/man1/
	@for f in nvliblist.conf rocmliblist.conf; do [ -e $(PREFIX)/etc/hpcctl/$$f ] || install -m 0644 etc/$$f $(PREFIX)/etc/hpcctl/; done
	@if [ -e $(PREFIX)/etc/hpcctl/hpcctl.conf ]; then \
		echo "kept $(PREFIX)/etc/hpcctl/hpcctl.conf: set allow_setuid = true there to use the starter"; \
	else \
		sed 's/^# allow_setuid = false/allow_setuid = true/' etc/hpcctl.conf > $(PREFIX)/etc/hpcctl/hpcctl.conf.new && \
		chown root:root $(PREFIX)/etc/hpcctl/hpcctl.conf.new && chmod 0644 $(PREFIX)/etc/hpcctl/hpcctl.conf.new && \
		mv $(PREFIX)/etc/hpcctl/hpcctl.conf.new $(PREFIX)/etc/hpcctl/hpcctl.conf; \
	fi

# Man pages (section 1), one per command, generated from the command tree into _out/man, dated by
# the last commit so that the same sources give the same pages.
.PHONY: man
man:
	$(GO) run -tags "$(TAGS)" ./tools/mkman -out _out/man -version $(VERSION) -date $$(git log -1 --format=%cs 2>/dev/null || date -u +%F)

# The main job on an example image made locally: build it, look inside, run it.
demo: build
	$(GO) build -trimpath -o _out/probe ./examples/probe
	$(GO) run ./tools/mkexample -probe _out/probe -out _out/example-oci
	bin/hpcctl build --force _out/example.sif oci:_out/example-oci:latest
	bin/hpcctl inspect _out/example.sif
	@for p in default containall isolate; do echo "== hpcctl run --profile $$p _out/example.sif"; \
		bin/hpcctl run --profile $$p _out/example.sif || exit 1; done

# hpcctl build vs the classic unpack-then-mksquashfs pipeline, on the Debian fixture archive.
bench-build: build
	$(GO) run ./tools/buildbench -hpcctl bin/hpcctl

# Unit tests: no root, no network.
test:
	$(GO) test -tags "$(TAGS)" ./internal/... ./cmd/...

vet:
	$(GO) vet -tags "$(TAGS)" ./...

# golangci-lint, pinned and run through the Go toolchain: `go run pkg@version` fetches it from the
# module proxy once and caches the build, and adds nothing to go.mod. Settings: .golangci.yml.
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT ?= $(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
lint:
	$(GOLANGCI_LINT) run ./...

# Native Go fuzzing of the parsers of hostile input, FUZZTIME per target (go test -fuzz takes one
# target of one package at a time). The seed corpora (testdata/fuzz) run with the unit tests anyway;
# a crash is saved to the package's testdata/fuzz. Add targets to FUZZ as "package:Target".
FUZZTIME ?= 30s
FUZZ     := ./internal/sif:FuzzCheck ./internal/squashfs:FuzzOpen ./internal/layer:FuzzFlatten \
	./internal/config:FuzzParse ./internal/isolation:FuzzParseEnvFile ./internal/isolation:FuzzParseBinds \
	./internal/deffile:FuzzParse
fuzz:
	@set -e; for t in $(FUZZ); do pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -tags "$(TAGS)" -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; done

# Many launches at once (N per profile, root and plain user) and SIGKILL at each stage of a
# launch; 8 builds racing to one path through one cache, SIGKILL at each stage of a cold build,
# a full disk: each round ending with a check that nothing is left. Needs root and the user hpcuser;
# too long for CI on two cores.
N ?= 64
# The plain user's rounds run again through the setuid starter (make install-suid into a
# temporary prefix), and no starter process may be left either.
stress: build
	@P=$$(mktemp -d /tmp/hpcctl-stress-suid.XXXXXX) && chmod 0755 $$P && \
		$(MAKE) --no-print-directory install-suid PREFIX=$$P BIN=bin >/dev/null && \
		eval "$$(scripts/fixtures.sh env)" && $(GO) run -tags "$(TAGS)" ./tools/stress -hpcctl bin/hpcctl -n $(N) -suid $$P \
		$${HPCCTL_TEST_DEBIAN_OCI_ARCHIVE:+-source oci-archive:$$HPCCTL_TEST_DEBIAN_OCI_ARCHIVE:latest}; s=$$?; rm -rf $$P; exit $$s

# Benchmarks: each bench-* target measures one part; bench runs them all.
bench: bench-squashfs bench-build bench-exec bench-mpi bench-session bench-recipe

# Start-to-exit time of `hpcctl exec IMAGE /bin/true`, root and plain user, against the same
# work done by hand (unshare + mount + chroot) in the same run. Needs root and the user hpcuser.
# The last line: a plain user's exec through the setuid starter (installed with install-suid into
# a root-owned temporary prefix) against root's own start; the target is a ratio <= 1.1.
bench-exec: build
	@P=$$(mktemp -d /tmp/hpcctl-bench-suid.XXXXXX) && chmod 0755 $$P && \
		$(MAKE) --no-print-directory install-suid PREFIX=$$P BIN=bin >/dev/null && \
		$(GO) run -tags "$(TAGS)" ./tools/execbench -hpcctl bin/hpcctl -n 50 -suid $$P; s=$$?; rm -rf $$P; exit $$s

# MPI ping-pong bandwidth (mpi4py, 2 ranks, 1 MiB) in containers against the host, same run, as
# root and as a plain user, per profile. Needs root, hpcuser, Open MPI and the MPI fixture.
# Shared image sessions (issue 14): warm Python start against the chrooted tree, warm /bin/true,
# page cache of 16 concurrent containers against one. As root, with the user hpcuser.
bench-session: build
	eval "$$(scripts/fixtures.sh env)" && $(GO) run ./tools/sessionbench -hpcctl bin/hpcctl

bench-mpi: build
	eval "$$(scripts/fixtures.sh env)" && $(GO) run ./tools/mpibench -hpcctl bin/hpcctl

# Native squashfs writer against mksquashfs on $$HPCCTL_TEST_DEBIAN_ROOTFS (or TREE=dir).
# A definition-file build against apptainer build of the same recipe (hpcctl's figure alone
# where Apptainer is not installed).
bench-recipe: build
	eval "$$(scripts/fixtures.sh env)" && $(GO) run ./tools/recipebench -hpcctl bin/hpcctl

bench-squashfs:
	$(GO) run ./tools/sqfsbench $(if $(TREE),-tree $(TREE))

clean:
	rm -rf bin _out

# ---- test infrastructure: prerequisites, fixtures, services, end-to-end tests (all as root) ----
.PHONY: deps fixtures services-start services-stop test-unit test-unit-user e2e e2e-via-starter test-all

# Packages with unit tests: everything but the end-to-end tests themselves.
UNIT_PKGS := ./internal/... ./cmd/... ./e2e/cmd/... ./tools/internal/... ./tools/mkman/...
# The environment the end-to-end tests read, from the fixtures and the running services.
TEST_ENV  := eval "$$(scripts/fixtures.sh env)" && eval "$$(scripts/services.sh env)"

deps:
	scripts/install-test-deps.sh

fixtures:
	scripts/fixtures.sh >/dev/null

services-start:
	scripts/services.sh start >/dev/null

services-stop:
	scripts/services.sh stop

test-unit:
	$(TEST_ENV) && $(GO) test -tags "$(TAGS)" $(UNIT_PKGS)

# The unit tests again as the unprivileged test user (tests that need root skip there).
test-unit-user:
	GO="$(GO)" TAGS="$(TAGS)" scripts/unit-as-user.sh $(UNIT_PKGS)

# HPCCTL_TEST_STRICT=1 turns a missing capability into a failure, and noskip fails the run if any
# end-to-end test skipped anyway: CI provides every capability.
e2e:
	$(GO) build -o bin/noskip ./e2e/cmd/noskip
	$(TEST_ENV) && HPCCTL_TEST_STRICT=1 bin/noskip $(GO) test -json -count=1 -timeout 30m -tags "$(TAGS)" ./e2e/

# The launcher, profile (overlays included), policy and Slurm/batch suites once more through the
# setuid installation (make install-suid into the e2e directory): a plain user's launches of
# root's images then take the setuid starter (docs/launch.md, "The setuid starter").
E2E_VIA_STARTER := TestLauncher|TestProfile|TestPolicy|TestSlurm|TestBatch|TestPBS|TestMPI
e2e-via-starter:
	$(GO) build -o bin/noskip ./e2e/cmd/noskip
	$(TEST_ENV) && HPCCTL_TEST_STRICT=1 HPCCTL_TEST_VIA_STARTER=1 bin/noskip $(GO) test -json -count=1 -timeout 30m -tags "$(TAGS)" -run '$(E2E_VIA_STARTER)' ./e2e/

# The launcher, profile, audit and batch suites again with shared image sessions off (they are on by
# default): joining a session must change nothing, and the sessionless path must keep working.
E2E_NO_SESSION_RUN ?= TestLauncher|TestProfile|TestAudit|TestBatch|TestSlurm
e2e-no-session:
	$(GO) build -o bin/noskip ./e2e/cmd/noskip
	$(TEST_ENV) && HPCCTL_TEST_SESSIONS=off HPCCTL_TEST_STRICT=1 bin/noskip $(GO) test -json -count=1 -timeout 30m -tags "$(TAGS)" -run '$(E2E_NO_SESSION_RUN)' ./e2e/

test-all:
	MAKE="$(MAKE)" scripts/test-all.sh
