#!/usr/bin/env bash
# A private single-node Slurm cluster for the tests (Debian's slurm-wlm and munge):
#   cluster.sh start DIR   writes DIR/slurm.conf, starts munged, slurmctld and slurmd on their own
#                          socket, ports and state folders under DIR, waits until the node is idle;
#                          prints "SLURM_CONF=DIR/slurm.conf" for the clients (sbatch, squeue)
#   cluster.sh stop DIR    stops them
# Exit code 77 (with the reason on stderr) where this machine cannot run the daemons (not root,
# Slurm or munge missing), so the caller can skip saying why.
set -euo pipefail
cmd=${1:?start or stop}
dir=$(realpath -m "${2:?folder}")

stop() {
  for p in slurmd slurmctld munged; do
    [ -f "$dir/$p.pid" ] && kill "$(cat "$dir/$p.pid")" 2>/dev/null || true
  done
  sleep 1
  for p in slurmd slurmctld munged; do
    [ -f "$dir/$p.pid" ] && kill -9 "$(cat "$dir/$p.pid")" 2>/dev/null || true
  done
}
if [ "$cmd" = stop ]; then stop; exit 0; fi

for b in munged slurmctld slurmd sbatch; do
  command -v "$b" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin command -v "$b" >/dev/null 2>&1 ||
    { echo "cluster.sh: $b not found (scripts/install-deps.sh installs slurm-wlm and munge)" >&2; exit 77; }
done
PATH=$PATH:/usr/sbin
[ "$(id -u)" -eq 0 ] || { echo "cluster.sh: slurmd must run as root to start jobs as their user; this is uid $(id -u)" >&2; exit 77; }

mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
chmod 700 "$dir/munge"
head -c 1024 /dev/urandom > "$dir/munge/munge.key"
chmod 400 "$dir/munge/munge.key"
munged --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" --pid-file="$dir/munged.pid" \
  --log-file="$dir/munged.log" --seed-file="$dir/munge/seed" --force 2>"$dir/munged.err" ||
  { echo "cluster.sh: munged does not start: $(tail -1 "$dir/munged.err")" >&2; exit 77; }

host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
base=$(( 20000 + RANDOM % 20000 ))
cat > "$dir/slurm.conf" <<CONF
ClusterName=ewatest
SlurmctldHost=$host
SlurmctldPort=$base
SlurmdPort=$((base + 1))
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
PlugStackConfig=/dev/null
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$dir/slurm.conf
slurmctld -f "$dir/slurm.conf" -i 2>"$dir/slurmctld.err" || { echo "cluster.sh: slurmctld does not start: $(tail -1 "$dir/slurmctld.err")" >&2; stop; exit 77; }
slurmd -f "$dir/slurm.conf" 2>"$dir/slurmd.err" || { echo "cluster.sh: slurmd does not start: $(tail -1 "$dir/slurmd.err")" >&2; stop; exit 77; }
for _ in $(seq 60); do
  state=$(sinfo -h -N -o %t 2>/dev/null | head -1 || true)
  [ "$state" = idle ] && { echo "SLURM_CONF=$dir/slurm.conf"; exit 0; }
  sleep 1
done
echo "cluster.sh: the node did not become idle in 60 s (state '$state'; logs in $dir: $(tail -1 "$dir/slurmd.log" 2>/dev/null))" >&2
stop
exit 77
