#!/usr/bin/env bash
# Runs the unit tests again as the unprivileged test user, as root: hpcctl's users are not root,
# and a test that passes as root can hide a permission bug. Test binaries are compiled as root
# (the module cache is root's) and run as the user from a world-readable copy of the sources (the
# checkout may sit under a directory only root can enter). Tests that need root skip here: the
# strict root run covers them, so HPCCTL_TEST_STRICT is not passed on.
#
#   scripts/unit-as-user.sh [packages...]   default: ./internal/... ./cmd/... ./e2e/cmd/...
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
TAGS=${TAGS:-containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper}
TEST_USER=${HPCCTL_TEST_USER:-hpcuser}

log() { printf 'unit-as-user: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it switches to $TEST_USER)"
getent passwd "$TEST_USER" >/dev/null || die "no user $TEST_USER: run scripts/install-test-deps.sh"
[ $# -gt 0 ] || set -- ./internal/... ./cmd/... ./e2e/cmd/...

tmp=$(mktemp -d /tmp/hpcctl-unit-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
chmod 0755 "$tmp"
mkdir -p "$tmp/src" "$tmp/tests"
tar --exclude=./.git --exclude=./bin --exclude=./_out -cf - . | tar -C "$tmp/src" -xf -
chmod -R a+rX "$tmp"

# Listed first, so that a package that does not build fails the run here.
pkgs=$("$GO" list -tags "$TAGS" -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}}{{end}}' "$@")
uid=$(id -u "$TEST_USER")
gid=$(id -g "$TEST_USER")
root=$(pwd)
status=0
n=0
while read -r pkg dir; do
	[ -n "$pkg" ] || continue
	n=$((n + 1))
	bin=$tmp/tests/$n.test
	CGO_ENABLED=0 "$GO" test -c -tags "$TAGS" -o "$bin" "$pkg"
	chmod 0755 "$bin"
	start=$SECONDS
	if out=$(cd "$tmp/src/${dir#"$root"}" && setpriv --reuid="$uid" --regid="$gid" --init-groups --reset-env -- \
		"$bin" -test.count=1 -test.timeout=10m 2>&1); then
		printf 'ok  \t%s\t%ds (as %s)\n' "$pkg" $((SECONDS - start)) "$TEST_USER"
	else
		printf '%s\nFAIL\t%s\t%ds (as %s)\n' "$out" "$pkg" $((SECONDS - start)) "$TEST_USER"
		status=1
	fi
done <<<"$pkgs"
[ "$n" -gt 0 ] || log "no package with tests in $*"
exit "$status"
