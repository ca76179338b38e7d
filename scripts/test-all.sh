#!/usr/bin/env bash
# Runs the whole test suite on this machine, as root: installs the prerequisites, makes the
# fixtures, starts the services, runs the unit tests and the end-to-end tests, and stops the
# services again whatever happened. Prints how long each phase took. `make test-all` calls it.
set -euo pipefail

cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}

log() { printf 'test-all: %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { log "error: run as root (it installs packages and starts Slurm)"; exit 1; }

timings=()
# phase runs one step and records its duration; a failing step stops the run (set -e) after the
# EXIT trap has stopped the services and printed the timings so far.
phase() {
	local name=$1 start=$SECONDS
	shift
	log "---- $name"
	"$@"
	timings+=("$name $((SECONDS - start)) s")
}

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
# Unit and end-to-end tests both run even when the first fails, so one run shows every failure.
status=0
phase unit-tests "$MAKE" --no-print-directory test-unit || status=1
phase e2e "$MAKE" --no-print-directory e2e || status=1
exit "$status"
