#!/usr/bin/env bash
# Makes the cached test fixtures under $HPCCTL_TEST_CACHE (default /var/cache/hpcctl-test) and prints
# the environment the tests read, as shell exports on stdout (logs go to stderr):
#
#   debian-rootfs/     Debian bookworm minbase + python3 (debootstrap)  HPCCTL_TEST_DEBIAN_ROOTFS
#   debian-oci/, .tar  that tree as a 3-layer OCI layout / oci-archive    HPCCTL_TEST_DEBIAN_OCI(_ARCHIVE)
#   busybox-oci/, .tar busybox-static with its applet links               HPCCTL_TEST_BUSYBOX_OCI(_ARCHIVE)
#   mpi-rootfs/        debian-rootfs + python3-mpi4py and Open MPI (the     HPCCTL_TEST_MPI_ROOTFS
#                      host's versions: the MPI tests' hybrid model)
#
# Each image is tagged "latest" (oci:DIR:latest, oci-archive:FILE:latest).
#
#   scripts/fixtures.sh [make]   make what is missing, then print the exports
#   scripts/fixtures.sh env      print the exports of the fixtures that are complete, make nothing
#
# Each fixture is made in a temporary directory beside its final place and renamed when complete,
# with a stamp file beside it, so an interrupted run leaves nothing that looks finished.
set -euo pipefail

cd "$(dirname "$0")/.."

CACHE=${HPCCTL_TEST_CACHE:-/var/cache/hpcctl-test}
SUITE=bookworm
# OCI_VERSION is written into the OCI images' stamp files: change it when e2e/cmd/mkfixtures
# changes what it makes, and every machine remakes them.
OCI_VERSION=2

log() { printf 'fixtures: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# scratch is the temporary directory being filled; cleanup removes it if the script stops early.
scratch=""
cleanup() {
	[ -n "$scratch" ] || return 0
	# debootstrap mounts /proc inside its target and leaves it mounted when it fails: unmount
	# before removing, and never cross into another file system.
	local m
	awk -v d="$scratch" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
		umount -l "$m" || true
	done
	rm -rf --one-file-system "$scratch" "$scratch.log"
	scratch=""
}
trap cleanup EXIT

# apt_mirror prints the Debian mirror this machine's apt uses for $SUITE: the network here reaches
# only that mirror, so it is read at run time, never written down.
apt_mirror() {
	local f uri=""
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -e "$f" ] || continue
		# deb822: stanzas separated by blank lines; take URIs of a stanza whose Suites names $SUITE.
		uri=$(awk -v suite="$SUITE" '
			BEGIN { RS = ""; FS = "\n" }
			{
				u = ""; s = 0
				for (i = 1; i <= NF; i++) {
					if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); u = a[2] }
					if ($i ~ /^Suites:/) { n = split($i, b, /[ \t]+/); for (j = 2; j <= n; j++) if (b[j] == suite) s = 1 }
				}
				if (u != "" && s) { print u; exit }
			}' "$f")
		[ -n "$uri" ] && break
	done
	if [ -z "$uri" ] && [ -e /etc/apt/sources.list ]; then
		uri=$(awk -v suite="$SUITE" '
			$1 == "deb" {
				i = 2
				if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
				if ($(i + 1) == suite) { print $i; exit }
			}' /etc/apt/sources.list)
	fi
	[ -n "$uri" ] || die "no apt source for $SUITE in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list"
	printf '%s\n' "$uri"
}

# make_debian_rootfs makes $CACHE/debian-rootfs: Debian minbase with python3, the tree the build
# and launch tests turn into images. A tree made earlier by the same debootstrap command is reused.
make_debian_rootfs() {
	local dir=$CACHE/debian-rootfs stamp=$CACHE/debian-rootfs.done
	if [ -e "$stamp" ] && [ -x "$dir/usr/bin/python3" ]; then
		log "debian-rootfs: reusing $dir"
		return
	fi
	if [ -x "$dir/usr/bin/python3" ] && [ -x "$dir/bin/sh" ]; then
		log "debian-rootfs: adopting the existing tree at $dir"
		date -u +%FT%TZ >"$stamp"
		return
	fi
	command -v debootstrap >/dev/null || die "debootstrap missing: run scripts/install-test-deps.sh"
	local mirror
	mirror=$(apt_mirror)
	scratch=$(mktemp -d "$CACHE/.debian-rootfs.XXXXXX")
	log "debian-rootfs: debootstrap --variant=minbase --include=python3 $SUITE from the apt mirror (a few minutes)"
	if ! debootstrap --variant=minbase --include=python3 "$SUITE" "$scratch" "$mirror" >"$scratch.log" 2>&1; then
		tail -n 30 "$scratch.log" >&2
		die "debootstrap failed (log above)"
	fi
	# The OCI images are made from this tree: remake them too.
	rm -f "$scratch.log" "$stamp" "$CACHE/debian-oci.done"
	chmod 0755 "$scratch"
	rm -rf --one-file-system "$dir"
	mv "$scratch" "$dir"
	scratch=""
	date -u +%FT%TZ >"$stamp"
}

# make_oci_images makes $CACHE/{debian,busybox}-oci (OCI layouts) and .tar (oci-archives) with
# e2e/cmd/mkfixtures, from the Debian tree and the host's static busybox.
make_oci_images() {
	if [ "$(cat "$CACHE/debian-oci.done" 2>/dev/null)" = "$OCI_VERSION" ] &&
		[ "$(cat "$CACHE/busybox-oci.done" 2>/dev/null)" = "$OCI_VERSION" ]; then
		log "debian-oci, busybox-oci: reusing"
		return
	fi
	[ -x /bin/busybox ] || die "/bin/busybox missing: run scripts/install-test-deps.sh (busybox-static)"
	command -v go >/dev/null 2>&1 || export PATH=/usr/local/go/bin:$PATH
	scratch=$(mktemp -d "$CACHE/.oci.XXXXXX")
	log "debian-oci, busybox-oci: making OCI images with e2e/cmd/mkfixtures"
	CGO_ENABLED=0 go run ./e2e/cmd/mkfixtures -debian-rootfs "$CACHE/debian-rootfs" -busybox /bin/busybox -out "$scratch"
	chmod -R a+rX "$scratch"
	local img
	for img in debian-oci busybox-oci; do
		rm -f "$CACHE/$img.done"
		rm -rf "${CACHE:?}/$img" "$CACHE/$img.tar"
		mv "$scratch/$img" "$CACHE/$img"
		mv "$scratch/$img.tar" "$CACHE/$img.tar"
		echo "$OCI_VERSION" >"$CACHE/$img.done"
	done
	rm -rf "$scratch"
	scratch=""
}

# make_mpi_rootfs makes $CACHE/mpi-rootfs: the Debian tree with python3-mpi4py, Open MPI and PMIx
# installed from the host's own apt sources, so that the container's MPI is the host's version
# (the hybrid model: host mpirun or srun starts ranks that use the container's library).
make_mpi_rootfs() {
	local dir=$CACHE/mpi-rootfs stamp=$CACHE/mpi-rootfs.done
	if [ -e "$stamp" ] && [ -x "$dir/usr/bin/python3" ]; then
		log "mpi-rootfs: reusing $dir"
		return
	fi
	scratch=$(mktemp -d "$CACHE/.mpi-rootfs.XXXXXX")
	log "mpi-rootfs: installing python3-mpi4py into a copy of debian-rootfs (a minute or two)"
	cp -a "$CACHE/debian-rootfs/." "$scratch/"
	# The host's apt sources and settings for the install only; the tree keeps its own after.
	mkdir -p "$scratch/.host-apt"
	mv "$scratch/etc/apt/sources.list" "$scratch/.host-apt/sources.list"
	cp /etc/apt/sources.list.d/*.sources "$scratch/etc/apt/sources.list.d/" 2>/dev/null || true
	[ -e /etc/apt/sources.list ] && cp /etc/apt/sources.list "$scratch/etc/apt/sources.list"
	cp /etc/apt/apt.conf.d/* "$scratch/etc/apt/apt.conf.d/" 2>/dev/null || true
	cp -L /etc/resolv.conf "$scratch/etc/resolv.conf"
	if ! unshare --mount --fork sh -c "mount -t proc proc '$scratch/proc' && chroot '$scratch' sh -c '
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q && apt-get install -y -q --no-install-recommends python3-mpi4py openmpi-bin libpmix2 python3-numpy &&
		apt-get clean && rm -rf /var/lib/apt/lists/*'" >"$scratch.log" 2>&1; then
		tail -n 30 "$scratch.log" >&2
		die "installing MPI into mpi-rootfs failed (log above)"
	fi
	rm -f "$scratch"/etc/apt/sources.list.d/*.sources "$scratch/etc/apt/sources.list" "$scratch/etc/resolv.conf"
	(cd "$CACHE/debian-rootfs/etc/apt/apt.conf.d" && ls) >"$scratch/.host-apt/keep"
	for f in "$scratch"/etc/apt/apt.conf.d/*; do
		grep -qxF "$(basename "$f")" "$scratch/.host-apt/keep" || rm -f "$f"
	done
	mv "$scratch/.host-apt/sources.list" "$scratch/etc/apt/sources.list"
	rm -rf "$scratch/.host-apt" "$scratch.log"
	[ -x "$scratch/usr/bin/mpirun" ] || die "mpi-rootfs: no mpirun after the install"
	rm -rf --one-file-system "$dir"
	mv "$scratch" "$dir"
	scratch=""
	date -u +%FT%TZ >"$stamp"
}

print_env() {
	if [ -e "$CACHE/debian-rootfs.done" ]; then
		echo "export HPCCTL_TEST_DEBIAN_ROOTFS=$CACHE/debian-rootfs"
	fi
	if [ "$(cat "$CACHE/debian-oci.done" 2>/dev/null)" = "$OCI_VERSION" ]; then
		echo "export HPCCTL_TEST_DEBIAN_OCI=$CACHE/debian-oci"
		echo "export HPCCTL_TEST_DEBIAN_OCI_ARCHIVE=$CACHE/debian-oci.tar"
	fi
	if [ -e "$CACHE/mpi-rootfs.done" ]; then
		echo "export HPCCTL_TEST_MPI_ROOTFS=$CACHE/mpi-rootfs"
	fi
	if [ "$(cat "$CACHE/busybox-oci.done" 2>/dev/null)" = "$OCI_VERSION" ]; then
		echo "export HPCCTL_TEST_BUSYBOX_OCI=$CACHE/busybox-oci"
		echo "export HPCCTL_TEST_BUSYBOX_OCI_ARCHIVE=$CACHE/busybox-oci.tar"
	fi
}

make_all() {
	[ "$(id -u)" = 0 ] || die "run as root (debootstrap needs it)"
	mkdir -p "$CACHE"
	chmod 0755 "$CACHE"
	make_debian_rootfs
	make_oci_images
	make_mpi_rootfs
}

case ${1:-make} in
make) make_all; print_env ;;
env) print_env ;;
*) die "unknown command '$1': use 'make' or 'env'" ;;
esac
