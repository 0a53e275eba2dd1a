#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the Slurm test: munged + slurmctld + slurmd on
# localhost, state and logs under $1 (default /tmp/subliminal_slurm). Prints the SLURM_CONF path.
# Usage: tests/slurm/local_cluster.sh start [DIR] | stop [DIR]. Needs root (it starts daemons) and the
# Debian packages slurm-wlm and munge (scripts/setup.sh installs them).
set -euo pipefail
cmd=${1:-start}
dir=${2:-/tmp/subliminal_slurm}
conf="$dir/slurm.conf"
if [[ "$cmd" == stop ]]; then
  # SIGTERM, then wait for the daemons to exit: slurmctld saves its state under $dir on the way out,
  # and a caller that removes $dir before that races it (CI saw "cannot remove all: ... fed_mgr_state.new")
  pids=()
  for p in slurmd slurmctld; do
    if [[ -f "$dir/$p.pid" ]]; then
      pid=$(cat "$dir/$p.pid")
      kill "$pid" 2>/dev/null && pids+=("$pid") || true
    fi
  done
  for _ in $(seq 1 100); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    (( alive )) || exit 0
    sleep 0.2
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  sleep 0.5
  exit 0
fi
mkdir -p "$dir/state" "$dir/spool" "$dir/log"
host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
cat > "$conf" <<CONF
ClusterName=subliminal-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
# munge: a key and the daemon (Debian's package creates the key; make one if it is missing)
if [[ ! -s /etc/munge/munge.key ]]; then
  mkdir -p /etc/munge && dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
  chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
if ! pgrep -x munged >/dev/null; then
  if id munge >/dev/null 2>&1; then runuser -u munge -- /usr/sbin/munged; else /usr/sbin/munged --force; fi
fi
export SLURM_CONF="$conf"
pgrep -f "slurmctld.*$conf" >/dev/null || /usr/sbin/slurmctld -f "$conf"
pgrep -f "slurmd.*$conf" >/dev/null || /usr/sbin/slurmd -f "$conf"
for _ in $(seq 1 60); do
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then echo "$conf"; exit 0; fi
  sleep 1
done
echo "the local Slurm cluster did not come up; logs in $dir/log" >&2
exit 1
