#!/usr/bin/env bash
# Installs everything hpcctl's tests need on a Debian machine, as root: Debian packages, Go modules,
# the unprivileged test user and FUSE access for it. Idempotent: a second run changes nothing and
# skips apt-get when every package is already installed.
set -euo pipefail

cd "$(dirname "$0")/.."

# Packages the tests call, one a line; keep in step with DESIGN.md's list.
PACKAGES=(
	squashfs-tools squashfs-tools-ng squashfuse fuse3 uidmap busybox-static debootstrap
	umoci skopeo docker-registry slurmctld slurmd slurm-client munge attr zstd xz-utils lz4
	iproute2 util-linux procps curl ca-certificates git make gcc libc6-dev e2fsprogs kmod
	# MPI jobs (docs/mpi.md): the host side of the hybrid model, srun --mpi=pmix, PBS-style qsub.
	openmpi-bin python3-mpi4py libpmix2 libpmix-dev slurm-wlm-torque
	# The setuid starter's attack tests watch its execve calls.
	strace
	# Only for a plain `go vet ./...` (cgo, no build tags), which builds containers/image's gpgme
	# signing mechanism; hpcctl itself builds CGO-free with containers_image_openpgp.
	libgpgme-dev pkg-config
)
TEST_USER=hpcuser
TEST_UID=2000

log() { printf 'install-test-deps: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and creates the user $TEST_USER)"

missing_packages() {
	local p
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
	done
}

install_packages() {
	local missing
	missing=$(missing_packages)
	if [ -z "$missing" ]; then
		log "Debian packages: all installed"
		return
	fi
	# shellcheck disable=SC2086 # one word per package
	log "Debian packages to install:" $missing
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# shellcheck disable=SC2086 # one word per package
	apt-get install -y -q --no-install-recommends $missing </dev/null
}

find_go() {
	if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
		export PATH=/usr/local/go/bin:$PATH
	fi
	command -v go >/dev/null 2>&1 || die "no go on PATH nor at /usr/local/go/bin/go: install Go $(sed -n 's/^go //p' go.mod) first"
}

download_modules() {
	find_go
	log "Go modules: go mod download"
	go mod download
}

create_user() {
	if ! getent passwd "$TEST_USER" >/dev/null; then
		getent group "$TEST_UID" >/dev/null && die "gid $TEST_UID is taken: free it or change TEST_UID"
		getent passwd "$TEST_UID" >/dev/null && die "uid $TEST_UID is taken: free it or change TEST_UID"
		log "creating user $TEST_USER (uid $TEST_UID)"
		groupadd -g "$TEST_UID" "$TEST_USER"
		useradd -m -u "$TEST_UID" -g "$TEST_UID" -s /bin/bash "$TEST_USER"
	fi
	local home
	home=$(getent passwd "$TEST_USER" | cut -d: -f6)
	mkdir -p "$home"
	chown "$TEST_USER:" "$home"
	# Subordinate ID ranges let tests map more than the user's own ID (newuidmap/newgidmap).
	local f
	for f in /etc/subuid /etc/subgid; do
		touch "$f"
		grep -q "^$TEST_USER:" "$f" || echo "$TEST_USER:200000:65536" >>"$f"
	done
}

# /dev/fuse is 0600 on these machines (DESIGN.md facts); a normal distribution has 0666, and
# unprivileged FUSE mounts fail with "Permission denied" without it.
open_fuse() {
	[ -e /dev/fuse ] || die "/dev/fuse is missing: load the fuse module (modprobe fuse)"
	chmod 0666 /dev/fuse
}

install_packages
download_modules
create_user
open_fuse
log "done"
