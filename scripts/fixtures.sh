#!/usr/bin/env bash
# Makes the cached test fixtures under $HPCCTL_TEST_CACHE (default /var/cache/hpcctl-test) and prints
# the environment the tests read, as shell exports on stdout (logs go to stderr):
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

log() { printf 'fixtures: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

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
	local mirror tmp
	mirror=$(apt_mirror)
	tmp=$(mktemp -d "$CACHE/.debian-rootfs.XXXXXX")
	log "debian-rootfs: debootstrap --variant=minbase --include=python3 $SUITE from the apt mirror (a few minutes)"
	if ! debootstrap --variant=minbase --include=python3 "$SUITE" "$tmp" "$mirror" >"$tmp.log" 2>&1; then
		tail -n 30 "$tmp.log" >&2
		rm -rf "$tmp" "$tmp.log"
		die "debootstrap failed (log above)"
	fi
	rm -f "$tmp.log"
	chmod 0755 "$tmp"
	rm -rf "$dir"
	mv "$tmp" "$dir"
	date -u +%FT%TZ >"$stamp"
}

print_env() {
	if [ -e "$CACHE/debian-rootfs.done" ]; then
		echo "export HPCCTL_TEST_DEBIAN_ROOTFS=$CACHE/debian-rootfs"
	fi
	local img
	for img in debian-oci busybox-oci; do
		if [ -e "$CACHE/$img.done" ]; then
			local var=HPCCTL_TEST_${img%-oci}
			var=${var^^}_OCI
			echo "export $var=$CACHE/$img"
		fi
	done
}

make_all() {
	[ "$(id -u)" = 0 ] || die "run as root (debootstrap needs it)"
	mkdir -p "$CACHE"
	chmod 0755 "$CACHE"
	make_debian_rootfs
}

case ${1:-make} in
make) make_all; print_env ;;
env) print_env ;;
*) die "unknown command '$1': use 'make' or 'env'" ;;
esac
