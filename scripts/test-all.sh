#!/usr/bin/env bash
# Runs the whole test suite on this machine, as root: installs the prerequisites, makes the
# fixtures, starts the services, runs the linter, the unit tests and the end-to-end tests, and
# stops the services again whatever happened. Prints how long each phase took. `make test-all`
# calls it.
set -euo pipefail

cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}

log() { printf 'test-all: %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { log "error: run as root (it installs packages and starts Slurm)"; exit 1; }

timings=()
# phase runs one step and records its duration; a failing step stops the run (set -e) after the
# EXIT trap has stopped the services and printed the timings so far.
phase() {
	local name=$1 start=$SECONDS rc=0
	shift
	log "---- $name"
	# set -e does not act inside a function called with ||: pass the status on explicitly.
	"$@" || rc=$?
	timings+=("$name $((SECONDS - start)) s$([ "$rc" = 0 ] || echo ", FAILED")")
	return "$rc"
}

# shellcheck disable=SC2317 # called by the EXIT trap
finish() {
	local status=$?
	scripts/services.sh stop || status=1
	log "---- timings"
	local t
	for t in "${timings[@]}"; do log "  $t"; done
	log "total $SECONDS s, exit status $status"
	exit "$status"
}
trap finish EXIT

phase deps "$MAKE" --no-print-directory deps
phase fixtures "$MAKE" --no-print-directory fixtures
phase services "$MAKE" --no-print-directory services-start
# Every test phase runs even when an earlier one fails, so one run shows every failure.
status=0
phase lint "$MAKE" --no-print-directory lint || status=1
phase unit-tests "$MAKE" --no-print-directory test-unit || status=1
phase unit-tests-as-user "$MAKE" --no-print-directory test-unit-user || status=1
phase e2e "$MAKE" --no-print-directory e2e || status=1
# The plain user's launches of those suites again, through the setuid starter.
phase e2e-via-starter "$MAKE" --no-print-directory e2e-via-starter || status=1
# The e2e suite runs with shared image sessions on (the default); its launcher, profile, audit and
# batch parts run again with them off.
phase e2e-no-session "$MAKE" --no-print-directory e2e-no-session || status=1
# A short run of each fuzz target beyond its seed corpus (make fuzz runs them longer).
phase fuzz "$MAKE" --no-print-directory fuzz FUZZTIME=15s || status=1
# The README's first command must keep working too.
phase demo "$MAKE" --no-print-directory demo || status=1
exit "$status"
