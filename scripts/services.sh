#!/usr/bin/env bash
# Starts and stops the services hpcctl's end-to-end tests need, on loopback only, as root:
# a local OCI registry (Debian's docker-registry) and a one-node Slurm cluster (munged, slurmctld,
# slurmd), without systemd: each daemon runs from a pid file under $HPCCTL_TEST_RUN.
#
#   scripts/services.sh start   (re)start everything, wait until it answers, print the exports
#   scripts/services.sh stop    stop what start started; stopping twice is fine
#   scripts/services.sh env     print the exports of the running services (shell syntax, stdout)
#   scripts/services.sh slurm cgroup|linuxproc
#                               restart Slurm with that process tracking plugin (the batch tests
#                               run in both: only the step's top process, or every process of the
#                               job, gets the scheduler's signals)
set -euo pipefail

RUN=${HPCCTL_TEST_RUN:-/run/hpcctl-test}
REG_PORT=${HPCCTL_TEST_REGISTRY_PORT:-5000}
REG_DIR=$RUN/registry
SLURM_DIR=$RUN/slurm
MUNGE_DIR=$RUN/munge

log() { printf 'services: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# wait_for tries a command every 0.2 s until it succeeds or the seconds run out.
wait_for() {
	local seconds=$1 i
	shift
	for ((i = 0; i < seconds * 5; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}

# alive tells whether the pid file names a running process whose command is $2: a pid file left
# by a dead daemon may name an unrelated process by now.
alive() {
	local pidfile=$1 comm=$2 pid
	[ -s "$pidfile" ] || return 1
	pid=$(cat "$pidfile")
	[ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$comm" ]
}

# stop_pidfile sends SIGTERM, waits up to 10 s, then SIGKILL; quiet when nothing runs.
stop_pidfile() {
	local pidfile=$1 comm=$2 pid
	if alive "$pidfile" "$comm"; then
		pid=$(cat "$pidfile")
		log "stopping $comm (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		if ! wait_for 10 bash -c "! kill -0 $pid"; then
			kill -KILL "$pid" 2>/dev/null || true
			wait_for 5 bash -c "! kill -0 $pid" || die "$comm (pid $pid) does not die"
		fi
	fi
	rm -f "$pidfile"
}

# ---- registry ---------------------------------------------------------------------------------

registry_up() { curl -fsS -o /dev/null "http://127.0.0.1:$REG_PORT/v2/" 2>/dev/null; }

port_taken() { ss -Htln "sport = :$1" | grep -q .; }

# pick_registry_port keeps $REG_PORT when it is free, else takes the next free one up to +20 (a
# distribution's own docker-registry service may hold 5000): the tests read the address from
# HPCCTL_TEST_REGISTRY, never assume it.
pick_registry_port() {
	local p
	for ((p = REG_PORT; p <= REG_PORT + 20; p++)); do
		if ! port_taken "$p"; then
			REG_PORT=$p
			return
		fi
	done
	die "no free loopback port in $REG_PORT..$((REG_PORT + 20)) for the registry: set HPCCTL_TEST_REGISTRY_PORT"
}

start_registry() {
	command -v docker-registry >/dev/null || die "docker-registry missing: run scripts/install-test-deps.sh"
	pick_registry_port
	rm -rf "$REG_DIR"
	mkdir -p "$REG_DIR/storage"
	echo "$REG_PORT" >"$REG_DIR/port"
	cat >"$REG_DIR/config.yml" <<-YML
		version: 0.1
		log:
		  level: warn
		storage:
		  filesystem:
		    rootdirectory: $REG_DIR/storage
		  delete:
		    enabled: true
		http:
		  addr: 127.0.0.1:$REG_PORT
	YML
	setsid docker-registry serve "$REG_DIR/config.yml" </dev/null >"$REG_DIR/registry.log" 2>&1 &
	echo $! >"$REG_DIR/registry.pid"
	if ! wait_for 30 registry_up; then
		tail -n 30 "$REG_DIR/registry.log" >&2 || true
		die "the registry on 127.0.0.1:$REG_PORT did not answer /v2/ within 30 s (log above)"
	fi
	log "registry: 127.0.0.1:$REG_PORT (storage $REG_DIR/storage)"
}

stop_registry() { stop_pidfile "$REG_DIR/registry.pid" docker-registry; }

# ---- munge ------------------------------------------------------------------------------------

munge_works() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
	local key=/etc/munge/munge.key
	if [ ! -s "$key" ]; then
		log "munge: making $key"
		mkdir -p /etc/munge
		dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
	fi
	chown munge:munge /etc/munge "$key"
	chmod 0700 /etc/munge
	chmod 0400 "$key"
	if munge_works; then
		log "munge: a running munged answers; using it"
		return
	fi
	mkdir -p "$MUNGE_DIR" /run/munge /var/lib/munge /var/log/munge
	chown munge:munge /run/munge /var/lib/munge /var/log/munge
	chmod 0755 /run/munge
	runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
	cp /run/munge/munged.pid "$MUNGE_DIR/munged.pid"
	if ! wait_for 10 munge_works; then
		tail -n 30 /var/log/munge/munged.log >&2 || true
		die "munged does not answer (log above)"
	fi
	log "munge: started munged"
}

stop_munge() { stop_pidfile "$MUNGE_DIR/munged.pid" munged; }

# ---- slurm ------------------------------------------------------------------------------------

# write_slurm_conf writes slurm.conf and cgroup.conf for one node on loopback; $1 is the proctrack
# plugin. batch_sched_delay=0 starts jobs in under a second; a short KillWait keeps scancel tests
# short; MinJobAge keeps finished jobs visible to `scontrol show job` (there is no slurmdbd).
write_slurm_conf() {
	local proctrack=$1 host cpus mem
	host=$(hostname -s)
	cpus=$(nproc)
	mem=$(free -m | awk '/^Mem:/ { print int($2 * 0.9) }')
	cat >"$SLURM_DIR/slurm.conf" <<-CONF
		ClusterName=hpcctltest
		SlurmctldHost=$host(127.0.0.1)
		SlurmUser=root
		SlurmdUser=root
		AuthType=auth/munge
		CredType=cred/munge
		SlurmctldPort=6817
		SlurmdPort=6818
		StateSaveLocation=$SLURM_DIR/ctld
		SlurmdSpoolDir=$SLURM_DIR/d
		SlurmctldPidFile=$SLURM_DIR/slurmctld.pid
		SlurmdPidFile=$SLURM_DIR/slurmd.pid
		SlurmctldLogFile=$SLURM_DIR/slurmctld.log
		SlurmdLogFile=$SLURM_DIR/slurmd.log
		SlurmctldDebug=info
		SlurmdDebug=info
		ProctrackType=proctrack/$proctrack
		TaskPlugin=task/none
		SelectType=select/cons_tres
		SelectTypeParameters=CR_Core
		SchedulerType=sched/backfill
		SchedulerParameters=batch_sched_delay=0
		AccountingStorageType=accounting_storage/none
		JobAcctGatherType=jobacct_gather/none
		# Job completion records in a file: `sacct -c` reads them (there is no slurmdbd).
		JobCompType=jobcomp/filetxt
		JobCompLoc=$SLURM_DIR/jobcomp.log
		MpiDefault=none
		MailProg=/bin/true
		ReturnToService=2
		KillWait=5
		MinJobAge=600
		InactiveLimit=0
		NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
		PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
	CONF
	cat >"$SLURM_DIR/cgroup.conf" <<-CONF
		CgroupPlugin=autodetect
		ConstrainCores=no
		ConstrainRAMSpace=no
		ConstrainDevices=no
	CONF
}

node_idle() { [ "$(sinfo -h -N -o %T 2>/dev/null | head -n1)" = idle ]; }

# trial_job runs a trivial batch job with an srun step and waits for it, proving that the
# controller schedules, slurmd launches batch scripts, and steps work.
trial_job() {
	local out=$SLURM_DIR/trial.out id state
	rm -f "$out"
	id=$(sbatch --parsable -o "$out" -t 1 --wrap 'srun -n1 echo trial-ok') || return 1
	wait_for 60 bash -c "[ -z \"\$(squeue -h -j $id 2>/dev/null)\" ]" || { scancel "$id" || true; return 1; }
	state=$(scontrol -o show job "$id" | grep -o 'JobState=[A-Z]*')
	[ "$state" = JobState=COMPLETED ] && grep -qx trial-ok "$out"
}

dump_slurm_logs() {
	local f
	for f in "$SLURM_DIR/slurmctld.log" "$SLURM_DIR/slurmd.log"; do
		[ -e "$f" ] || continue
		log "---- last lines of $f"
		tail -n 40 "$f" >&2
	done
}

# try_slurm starts slurmctld and slurmd with the given proctrack plugin and checks a job runs.
try_slurm() {
	local proctrack=$1
	rm -rf "$SLURM_DIR"
	mkdir -p "$SLURM_DIR/ctld" "$SLURM_DIR/d"
	write_slurm_conf "$proctrack"
	export SLURM_CONF=$SLURM_DIR/slurm.conf
	slurmctld -f "$SLURM_CONF" || return 1
	wait_for 30 scontrol ping || return 1
	slurmd -f "$SLURM_CONF" || return 1
	wait_for 60 node_idle || return 1
	trial_job || return 1
	echo "$proctrack" >"$SLURM_DIR/proctrack"
}

start_slurm() {
	if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null; then
		die "Slurm missing: run scripts/install-test-deps.sh"
	fi
	# proctrack/cgroup is what sites run (scancel then signals only a step's top process); fall
	# back to linuxproc where cgroups cannot be used.
	local p
	for p in cgroup linuxproc; do
		if try_slurm "$p"; then
			log "slurm: one node '$(hostname -s)' on 127.0.0.1, proctrack/$p, SLURM_CONF=$SLURM_CONF"
			return
		fi
		log "slurm: proctrack/$p did not work"
		dump_slurm_logs
		stop_slurm
	done
	die "could not start a working one-node Slurm cluster (logs above)"
}

stop_slurm() {
	stop_pidfile "$SLURM_DIR/slurmd.pid" slurmd
	stop_pidfile "$SLURM_DIR/slurmctld.pid" slurmctld
}

# ---- commands ---------------------------------------------------------------------------------

print_env() {
	if alive "$REG_DIR/registry.pid" docker-registry; then
		echo "export HPCCTL_TEST_REGISTRY=127.0.0.1:$(cat "$REG_DIR/port")"
	fi
	if alive "$SLURM_DIR/slurmctld.pid" slurmctld && alive "$SLURM_DIR/slurmd.pid" slurmd; then
		echo "export HPCCTL_TEST_SLURM=1"
		echo "export SLURM_CONF=$SLURM_DIR/slurm.conf"
		echo "export HPCCTL_TEST_SLURM_PROCTRACK=$(cat "$SLURM_DIR/proctrack")"
	fi
}

stop_all() {
	[ -d "$RUN" ] || return 0
	stop_slurm
	stop_munge
	stop_registry
}

start_all() {
	[ "$(id -u)" = 0 ] || die "run as root (it starts daemons)"
	stop_all
	mkdir -p "$RUN"
	start_registry
	start_munge
	start_slurm
}

# restart_slurm restarts Slurm with the proctrack plugin $1 and fails if it does not work.
restart_slurm() {
	[ "$(id -u)" = 0 ] || die "run as root (it starts daemons)"
	case ${1:-} in cgroup | linuxproc) ;; *) die "usage: $0 slurm cgroup|linuxproc" ;; esac
	munge_works || die "munged is not running: run '$0 start' first"
	stop_slurm
	if ! try_slurm "$1"; then
		dump_slurm_logs
		stop_slurm
		die "Slurm did not work with proctrack/$1 (logs above)"
	fi
	log "slurm: restarted with proctrack/$1"
}

case ${1:-} in
start) start_all; print_env ;;
slurm) restart_slurm "${2:-}"; print_env ;;
stop) stop_all ;;
env) print_env ;;
*) die "usage: $0 start|stop|env" ;;
esac
