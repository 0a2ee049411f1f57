#!/usr/bin/env bash
# A single-node SLURM on this machine, to try `snakemake --profile workflow/profiles/slurm` before a cluster (README,
# 'Running on a cluster') and for tests/test_slurm.py. Needs Debian's slurm-wlm and munge packages, and root (slurmd
# runs each job as its user). Takes about a second; nothing under /etc is written.
#
#   scripts/slurm_single_node.sh start DIR   # waits until the node is idle
#   scripts/slurm_single_node.sh stop DIR    # stops the daemons this script started in DIR (by their pid files)
#
# DIR holds slurm.conf, the controller's state, slurmd's spool, the logs and pid files (and a generated munge key when
# no munged runs). One node with this machine's CPUs and memory, one partition `debug` (the default; no time limit),
# no accounting (so `sacct` knows no job: run snakemake with `--slurm-status-command squeue`), process tracking by
# /proc (proctrack/linuxproc, task/none: no cgroups, so it runs in a container). Ports are free ones picked at start.
#
# Where clients find it: slurmd runs "configless" (it fetches slurm.conf from slurmctld and caches it), so every
# client on this machine reads /run/slurm/conf/slurm.conf, with no SLURM_CONF. That matters: the jobstep plugin runs
# each job's command through an srun whose environment it strips of SLURM_* variables. Hence two conditions: no
# /etc/slurm/slurm.conf (clients would read it first), and munge on its default socket /run/munge/munge.socket.2
# (slurmd needs it before it has a configuration): a munged already running there is used, else one is started.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
action=$1
dir=$2
export PATH="$PATH:/usr/sbin:/sbin"
MUNGE_SOCKET=/run/munge/munge.socket.2

stop() {
    local name pid
    for name in slurmd slurmctld munged; do
        [[ -f "$dir/$name.pid" ]] || continue
        pid=$(cat "$dir/$name.pid")
        # only a process this script started: its pid file is in DIR and the process still runs that program
        if [[ -n "$pid" ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$name" ]]; then
            kill "$pid"
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        rm -f "$dir/$name.pid"
    done
    # slurmd's link to its cached configuration: without it, clients here no longer find this (stopped) cluster
    if [[ -L /run/slurm/conf ]] && [[ "$(readlink /run/slurm/conf)" == "$(cd "$dir" 2>/dev/null && pwd)/"* ]]; then
        rm -f /run/slurm/conf
    fi
}

fail() {
    echo "error: $*" >&2
    stop
    exit 1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    local missing=()
    for prog in munged mungekey munge unmunge slurmctld slurmd sinfo python3; do
        command -v "$prog" >/dev/null || missing+=("$prog")
    done
    [[ ${#missing[@]} -eq 0 ]] || { echo "error: ${missing[*]} not found; install them: apt-get install slurm-wlm munge" >&2; exit 1; }
    [[ $(id -u) -eq 0 ]] || { echo "error: slurmd runs jobs as their user and must start as root; run $0 as root" >&2; exit 1; }
    if [[ -e /etc/slurm/slurm.conf ]]; then
        echo "error: /etc/slurm/slurm.conf exists, and SLURM clients would read it instead of this node's" \
             "configuration; run this on a machine that is not already a SLURM client" >&2
        exit 1
    fi
    if pgrep -x slurmd >/dev/null || pgrep -x slurmctld >/dev/null; then
        echo "error: a slurmd or slurmctld already runs here (pgrep -a slurm); stop it first" \
             "(scripts/slurm_single_node.sh stop ITS_DIR)" >&2
        exit 1
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    chmod 700 "$dir"
    mkdir -p "$dir/state" "$dir/spool"

    if ! munge -n -S "$MUNGE_SOCKET" 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1; then
        # no munged answers on the default socket: start one with a key of our own in DIR
        mkdir -p "$dir/munge" /run/munge
        chmod 700 "$dir/munge"
        [[ -f "$dir/munge/munge.key" ]] || mungekey --create --keyfile="$dir/munge/munge.key"
        chmod 600 "$dir/munge/munge.key"
        munged --force --key-file="$dir/munge/munge.key" --socket="$MUNGE_SOCKET" --pid-file="$dir/munged.pid" \
            --log-file="$dir/munged.log" --seed-file="$dir/munge/munged.seed" \
            || fail "munged did not start; see $dir/munged.log"
    fi

    local host cpus mem_mb ctld_port slurmd_port
    host=$(hostname -s)
    cpus=$(nproc)
    # RealMemory a little under what slurmd measures (a node that reports less than its configuration is drained)
    mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.95)}' /proc/meminfo)
    ctld_port=$(free_port)
    slurmd_port=$(free_port)
    cat > "$dir/slurm.conf" <<EOF
# written by scripts/slurm_single_node.sh: one node, no accounting, no cgroups
ClusterName=mgenet-single
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmctldParameters=enable_configless
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
# finished jobs stay visible to squeue for 5 minutes: the plugin's squeue status needs this >= 3 x its first wait
MinJobAge=300
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    # -i: ignore the state an earlier start in DIR left (its jobs went with the old slurmd)
    SLURM_CONF="$dir/slurm.conf" slurmctld -i || fail "slurmctld did not start; see $dir/slurmctld.log"
    env -u SLURM_CONF slurmd --conf-server "127.0.0.1:$ctld_port" || fail "slurmd did not start; see $dir/slurmd.log"
    local state=""
    for _ in $(seq 60); do
        state=$(env -u SLURM_CONF sinfo -h -N -o '%t' 2>/dev/null || true)
        [[ "$state" == "idle" ]] && break
        sleep 0.5
    done
    [[ "$state" == "idle" ]] \
        || fail "the node did not come up (state '${state:-none}'); see $dir/slurmctld.log and $dir/slurmd.log"
    echo "single-node SLURM up: $cpus CPUs, ${mem_mb} MB, partition debug; stop it with: $0 stop $dir"
}

case $action in
    start) start ;;
    stop) stop ;;
    *) usage ;;
esac
