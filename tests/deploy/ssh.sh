# tests/deploy/ssh.sh - deploy/launch.sh against a real sshd on this
# machine: two "hosts" (two ssh names for 127.0.0.1, each with its own
# remote directory) run a tiny real campaign with CurveZMQ keys copied over
# ssh.  Midway the master and one worker are killed with SIGKILL; a second
# `launch.sh start` resumes the campaign from its database and restarts the
# dead worker only; `launch.sh stop` stops every process and removes the
# secret keys from the hosts.
# shellcheck shell=bash source=tests/deploy/lib.sh
. "$(dirname "$0")/lib.sh"
need sshd "apt-get install openssh-server"
need ssh-keygen "apt-get install openssh-client"
need_root "sshd on a private port logs in as this user"
need_fmnist

# sshd: its own config, host key, port and authorized key; nothing of the
# machine's own sshd is used or changed (/run/sshd is its privilege
# separation directory, which it needs to exist).
mkdir -p /run/sshd "$T/ssh"
chmod 700 "$T/ssh"
ssh-keygen -q -t ed25519 -N '' -f "$T/ssh/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$T/ssh/id"
cp "$T/ssh/id.pub" "$T/ssh/authorized_keys"
free_port sshport
cat >"$T/ssh/sshd_config" <<CFG
Port $sshport
ListenAddress 127.0.0.1
HostKey $T/ssh/host_key
AuthorizedKeysFile $T/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $T/ssh/sshd.pid
CFG
/usr/sbin/sshd -D -e -f "$T/ssh/sshd_config" 2>"$T/ssh/sshd.log" &
nas_cleanup stop_pid "$!"
cat >"$T/ssh/config" <<CFG
Host node-a node-b
    HostName 127.0.0.1
    Port $sshport
    User $(id -un)
    IdentityFile $T/ssh/id
    IdentitiesOnly yes
    StrictHostKeyChecking accept-new
    UserKnownHostsFile $T/ssh/known_hosts
    LogLevel ERROR
CFG
wait_for 20 "sshd on port $sshport" ssh -F "$T/ssh/config" -o BatchMode=yes node-a true

printf '# two hosts\nnode-a\nnode-b 1   # one worker\n' >"$T/hosts"
free_port port
# The budget leaves the resumed campaign running for several seconds after
# the second start (node-a trains about two tasks a second), long enough for
# `launch status` to find node-b's restarted worker at work.
budget=40
write_campaign "$T/camp.yaml" sshcamp "$budget" 127.0.0.1 "$port"
launch() {
    "$NAS_SOURCE_DIR/deploy/launch.sh" "$@" --dir "$T/launch"
}
start() {
    launch start "$@" --hosts "$T/hosts" --master-host 127.0.0.1 --bin "$NAS_BIN_DIR" \
        --remote-bin "$NAS_BIN_DIR" --remote-dir "$T/remote/%h" --ssh-opts "-F $T/ssh/config"
}
nas_cleanup "'$NAS_SOURCE_DIR/deploy/launch.sh' stop --dir '$T/launch' --ssh-opts '-F $T/ssh/config' >/dev/null 2>&1"
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0

# A host named on two lines would share its workers' names and key: refused
# before anything starts, naming the host.
printf 'node-a\nnobody@node-a 2\n' >"$T/hosts-dup"
if "$NAS_SOURCE_DIR/deploy/launch.sh" start "$T/camp.yaml" --hosts "$T/hosts-dup" \
    --bin "$NAS_BIN_DIR" --dir "$T/launch-dup" >"$T/dup.log" 2>&1; then
    fail "launch.sh started a hosts file that names node-a twice"
fi
grep -q "host node-a is named on two lines" "$T/dup.log" || fail "the refusal does not name the host: $(cat "$T/dup.log")"
[ ! -e "$T/launch-dup/master.pid" ] || fail "a master was started for a refused hosts file"

start "$T/camp.yaml" >"$T/start1.log" 2>&1 || fail "launch.sh start failed: $(tail -n 5 "$T/start1.log")"
cat "$T/start1.log"
for h in node-a node-b; do
    [ "$(stat -c %a "$T/remote/$h")" = 700 ] || fail "$h's key directory is not 0700"
    [ "$(stat -c %a "$T/remote/$h/worker.key_secret")" = 600 ] || fail "$h's secret key is not 0600"
    cmp -s "$T/remote/$h/master.key" "$T/launch/keys/master.key" || fail "$h lacks the master's key"
    [ ! -e "$T/remote/$h/master.key_secret" ] || fail "the master's secret key went to $h"
done
cmp -s "$T/remote/node-a/worker.key_secret" "$T/remote/node-b/worker.key_secret" &&
    fail "two hosts share one secret key"
db=$T/launch/campaign.db
wait_for 120 "two results" bash -c "[ \$('$NAS_BIN_DIR/nasctl' history --db '$db' --csv 2>/dev/null | tail -n +2 | wc -l) -ge 2 ]"
# A crash: the master and node-b's worker die at once.
kill -KILL "$(cat "$T/launch/master.pid")" || fail "the master ended before the crash (budget too small)"
kill -KILL "$(cat "$T/remote/node-b/worker-1.pid")" || fail "node-b's worker was not running"
say "two hosts joined over ssh with their own keys; killed the master and node-b's worker"
a_pid=$(cat "$T/remote/node-a/worker-1.pid")
before=$(results "$db")
sleep 1
start >"$T/start2.log" 2>&1 || fail "the second launch.sh start failed: $(tail -n 5 "$T/start2.log")"
cat "$T/start2.log"
grep -q 'node-a: node-a-1 already running' "$T/start2.log" || fail "the live worker on node-a was not left alone"
grep -q 'node-b: node-b-1 started' "$T/start2.log" || fail "the dead worker on node-b was not started again"
[ "$(cat "$T/remote/node-a/worker-1.pid")" = "$a_pid" ] || fail "node-a's worker was replaced"
master=$(cat "$T/launch/master.pid")
status=$(launch status 2>&1) || fail "launch.sh status failed: $status"
printf '%s\n' "$status" | grep -q 'node-a: worker-1 running' || fail "status lacks node-a's worker: $status"
printf '%s\n' "$status" | grep -q 'node-b: worker-1 running' || fail "status lacks node-b's worker: $status"
printf '%s\n' "$status" | grep -q 'node-a-1' || fail "the master's status lists no node-a-1: $status"
wait_for 240 "the resumed campaign to finish" bash -c "! kill -0 $master"
n=$(results "$db")
[ "$n" -ge "$budget" ] || fail "the resumed campaign ended with $n results, not $budget; the end of its log: $(tail -n 5 "$T/launch/master.log")"
[ "$n" -ge "$before" ] || fail "results were lost in the crash ($before before, $n after)"
grep -q 'resum' "$T/launch/master.log" || fail "the master's log does not say it resumed"
"$NAS_BIN_DIR/nasctl" history --db "$db" --csv >"$T/history.csv"
grep -q 'node-a-1' "$T/history.csv" || fail "no result came from node-a"
# node-b's restarted worker followed the resumed campaign to its end.  It
# need not have trained any of it: node-a, whose worker lived through the
# crash, may finish the budget before node-b's new worker has started, since
# the lease node-b lost waits out its grace without holding node-a back.
grep -q 'campaign sshcamp is done' "$T/remote/node-b/worker-1.log" ||
    fail "node-b's restarted worker did not follow the resumed campaign to its end"
say "the campaign resumed after kill -9 of the master and a worker: $n results, both hosts' workers to the end"

launch stop >"$T/stop.log" 2>&1 || fail "launch.sh stop failed: $(cat "$T/stop.log")"
for h in node-a node-b; do
    [ ! -e "$T/remote/$h/worker.key_secret" ] || fail "stop left $h's secret key behind"
done
kill -0 "$a_pid" 2>/dev/null && fail "stop left node-a's worker running"
[ ! -e "$T/launch/master.pid" ] || fail "stop left a master pid file"
say "launch.sh stop stopped every worker and removed the secret keys"
