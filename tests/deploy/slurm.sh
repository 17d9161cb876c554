# tests/deploy/slurm.sh - deploy/slurm/nasd.sbatch on a real single-node
# Slurm: munged, slurmctld and slurmd from Debian run on this machine with a
# private configuration, key, socket and ports (nothing of a system Slurm is
# used or changed).  A tiny campaign goes through sbatch; midway the job is
# requeued with `scontrol requeue`, and its second run must resume the
# campaign from the shared state directory and finish it.
# shellcheck shell=bash source=tests/deploy/lib.sh
. "$(dirname "$0")/lib.sh"
need slurmctld "apt-get install slurm-wlm"
need slurmd "apt-get install slurm-wlm"
need sbatch "apt-get install slurm-client"
need munged "apt-get install munge"
need_root "slurmd runs jobs as their submitter"
need_fmnist

node=$(hostname -s)
mkdir -p "$T/munge" "$T/ctld" "$T/slurmd" "$T/state"
chmod 700 "$T/munge"
dd if=/dev/urandom of="$T/munge/munge.key" bs=1024 count=1 2>/dev/null
chmod 400 "$T/munge/munge.key"
munged --force --key-file="$T/munge/munge.key" --socket="$T/munge/sock" \
    --pid-file="$T/munge/munged.pid" --log-file="$T/munge/munged.log" \
    --seed-file="$T/munge/seed" >"$T/munge/out" 2>&1 ||
    fail "munged did not start: $(cat "$T/munge/out")"
nas_cleanup 'stop_pid "$(cat "$T/munge/munged.pid")"'

free_port ports
cat >"$T/slurm.conf" <<CONF
ClusterName=nasdtest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ports
SlurmdPort=$((ports + 1))
AuthType=auth/munge
CredType=cred/munge
# cred_expire also delays a requeued job's next start (120 s by default).
AuthInfo=socket=$T/munge/sock,cred_expire=10
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$T/ctld
SlurmdSpoolDir=$T/slurmd
SlurmctldPidFile=$T/ctld/slurmctld.pid
SlurmdPidFile=$T/slurmd/slurmd.pid
SlurmctldLogFile=$T/ctld/slurmctld.log
SlurmdLogFile=$T/slurmd/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
JobRequeue=1
KillWait=20
MinJobAge=600
NodeName=$node NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$T/slurm.conf
slurmctld -D -f "$SLURM_CONF" >"$T/ctld/out" 2>&1 &
nas_cleanup stop_pid "$!"
slurmd -D -f "$SLURM_CONF" -N "$node" >"$T/slurmd/out" 2>&1 &
nas_cleanup stop_pid "$!"
wait_for 60 "the Slurm node to be idle" bash -c "sinfo -h -o %T -n $node | grep -qx idle"
say "single-node Slurm up (slurmctld, slurmd, munged on private ports and socket)"

free_port port
write_campaign "$T/camp.yaml" slurmcamp 16 0.0.0.0 "$port"
job=$(cd "$T" && NAS_BIN_DIR=$NAS_BIN_DIR NAS_MASTER_HOST=127.0.0.1 \
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
    sbatch --parsable --nodes=1 --ntasks=1 --output="$T/job.out" \
    "$NAS_SOURCE_DIR/deploy/slurm/nasd.sbatch" "$T/camp.yaml" "$T/state") ||
    fail "sbatch refused the job"
job=${job%%;*}
nas_cleanup "scancel $job"
db=$T/state/campaign.db
jobstate() { scontrol show job "$job" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }
wait_for 120 "two results from the Slurm job" bash -c "[ \$('$NAS_BIN_DIR/nasctl' history --db '$db' --csv 2>/dev/null | tail -n +2 | wc -l) -ge 2 ]"
before=$(results "$db")
scontrol requeue "$job" || fail "scontrol requeue $job failed"
say "job $job requeued after $before results"
wait_for 300 "the requeued job to finish" bash -c "[ \"\$(scontrol show job $job | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')\" = COMPLETED ]" ||
    fail "job $job ended $(jobstate): $(tail -n 5 "$T/job.out")"
restarts=$(scontrol show job "$job" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p')
[ "${restarts:-0}" -ge 1 ] || fail "job $job was not run again (Restarts=$restarts)"
n=$(results "$db")
[ "$n" -ge 16 ] || fail "the requeued campaign ended with $n results, not 16"
grep -q '(run 1)' "$T/job.out" || fail "the job's output shows no second run: $(tail -n 5 "$T/job.out")"
grep -q 'resum' "$T/state/master.log" || fail "the second run's master did not resume"
[ "$(stat -c %a "$T/state/keys")" = 700 ] || fail "the shared key directory is not 0700"
say "sbatch ran the campaign, scontrol requeue stopped it after $before results, the rerun finished it with $n"
