#!/usr/bin/env bash
# deploy/launch.sh - a campaign across machines with ssh and nothing else: the
# master runs here, workers run on the hosts of a file, CurveZMQ keys are
# made here and copied to each host over ssh (docs/DEPLOY.md, "ssh").
#
#   deploy/launch.sh start CAMPAIGN.yaml --hosts FILE [options]
#   deploy/launch.sh status [--dir DIR]
#   deploy/launch.sh stop [--dir DIR]
#
# The hosts file has one host a line, `[USER@]HOST [WORKERS]` (WORKERS
# defaults to 1); `#` starts a comment.  Everything lives in DIR (default
# ./nasd-launch): the campaign database, the keys, the logs, the hosts.
#
# start options:
#   --hosts FILE         hosts to start workers on (required for start)
#   --dir DIR            state directory (default ./nasd-launch)
#   --master-host ADDR   the address workers dial (default: hostname -f)
#   --bin DIR            where nas-master and nasctl are here (default:
#                        build/bin of this checkout, else PATH)
#   --remote-bin DIR     where nas-worker is on the hosts (default: PATH)
#   --remote-dir DIR     the hosts' directory for keys and logs, relative to
#                        the ssh login's home unless absolute; %h stands for
#                        the host (default .nasd/NAME, NAME the campaign's)
#   --ssh-opts "OPTS"    options for every ssh, e.g. "-F ssh_config -p 2222"
#   --worker-opts "OPTS" further nas-worker options, e.g. "--data-dir DIR"
#   --wait               stay until the campaign ends, then stop the workers
#
# start again with the same DIR resumes: the master continues from its
# database, running workers are left alone and dead ones started again.
# stop sends SIGTERM to every worker (each gives its task back), then to
# the master (which re-queues leased tasks), and removes the secret keys
# from the hosts.
set -euo pipefail
NAS_ROOT=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "launch.sh: $*" >&2; exit 1; }
# A local process that still runs: kill -0 also answers for a zombie (a
# killed master whose parent has not reaped it) and for a process on its
# way out (after a kill -9 the kernel tears down its memory first, which
# under load or with a large address space takes a while; the flag
# PF_EXITING, 0x4 in /proc/PID/stat's ninth field, says so), which must
# both count as gone.
alive() {
    local st
    kill -0 "$1" 2>/dev/null || return 1
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    # shellcheck disable=SC2086
    set -- $st
    [ "$1" != Z ] && [ "$1" != X ] && [ $(("${7:-0}" & 4)) -eq 0 ]
}
# gone PID: it has let go of its files (its store lock among them): it does
# not exist, or only as a zombie.
gone() { ! kill -0 "$1" 2>/dev/null || [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" = Z ]; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }

cmd=${1:-}
[ -n "$cmd" ] || usage 2
shift
case "$cmd" in
    start|stop|status) ;;
    -h|--help) usage 0 ;;
    *) echo "launch.sh: unknown command '$cmd' (start, status, stop; try --help)" >&2; exit 2 ;;
esac
campaign=
if [ "$cmd" = start ] && [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    campaign=$1
    shift
fi
hosts='' dir=$PWD/nasd-launch master_host='' bin='' remote_bin='' remote_dir='' wait=0
ssh_opts='' worker_opts=''
while [ $# -gt 0 ]; do
    case "$1" in
        --hosts) hosts=${2:?--hosts needs a file}; shift 2 ;;
        --dir) dir=${2:?--dir needs a directory}; shift 2 ;;
        --master-host) master_host=${2:?--master-host needs an address}; shift 2 ;;
        --bin) bin=$(cd "${2:?--bin needs a directory}" && pwd); shift 2 ;;
        --remote-bin) remote_bin=${2:?--remote-bin needs a directory}; shift 2 ;;
        --remote-dir) remote_dir=${2:?--remote-dir needs a directory}; shift 2 ;;
        --ssh-opts) ssh_opts=${2?--ssh-opts needs options}; shift 2 ;;
        --worker-opts) worker_opts=${2?--worker-opts needs options}; shift 2 ;;
        --wait) wait=1; shift ;;
        -h|--help) usage 0 ;;
        *) echo "launch.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

# status and stop use what start was given (--bin, --ssh-opts), kept in DIR.
remember() {
    local key=$1 val=$2
    if [ -n "$val" ] && [ "$cmd" = start ]; then mkdir -p "$dir" && printf '%s\n' "$val" >"$dir/$key"
    elif [ -z "$val" ] && [ -f "$dir/$key" ]; then val=$(cat "$dir/$key"); fi
    printf '%s' "$val"
}
ssh_opts=$(remember ssh-opts "$ssh_opts")
bin=$(remember bin-dir "$bin")
if [ -z "$bin" ]; then
    if [ -x "$NAS_ROOT/build/bin/nas-master" ]; then bin=$NAS_ROOT/build/bin
    else bin=$(dirname "$(command -v nas-master || echo /usr/bin/nas-master)"); fi
fi
for b in nas-master nasctl; do
    [ "$cmd" = start ] || [ "$b" = nasctl ] || continue
    [ -x "$bin/$b" ] || die "$bin/$b not found (build first, install the nasd package, or pass --bin)"
done

# The remote side: one small sh script per action, run with `ssh HOST sh -s`
# so that nothing but sh and nas-worker is needed on a host.
ssh_to() {
    local host=$1
    shift
    # shellcheck disable=SC2086
    ssh -o BatchMode=yes $ssh_opts "$host" "$@"
}
quote() { local a out=; for a in "$@"; do out+=" $(printf '%q' "$a")"; done; printf '%s' "$out"; }

# The remote scripts are expanded by the host's sh, not here.
# shellcheck disable=SC2016
remote_start='set -eu
cd "$1"; n=$2; worker=$3; master=$4; name=$5; shift 5
i=1
while [ "$i" -le "$n" ]; do
    if [ -f "worker-$i.pid" ] && kill -0 "$(cat "worker-$i.pid")" 2>/dev/null; then
        echo "$name-$i already running"
    else
        nohup "$worker" --master "$master" --key ./worker --master-key ./master.key \
            --name "$name-$i" "$@" >"worker-$i.log" 2>&1 </dev/null &
        echo $! >"worker-$i.pid"
        echo "$name-$i started (pid $!)"
    fi
    i=$((i + 1))
done'
# shellcheck disable=SC2016
remote_stop='set -u
cd "$1" 2>/dev/null || exit 0
pids=
for f in worker-*.pid; do
    [ -f "$f" ] || continue
    p=$(cat "$f"); rm -f "$f"
    kill -TERM "$p" 2>/dev/null && pids="$pids $p"
done
for _ in $(seq 1 60); do
    alive=
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
    [ -z "$alive" ] && break
    sleep 0.5
done
for p in ${alive:-}; do kill -KILL "$p" 2>/dev/null; done
rm -f worker.key_secret
echo "stopped:${pids:- nothing}"'
# shellcheck disable=SC2016
remote_status='cd "$1" 2>/dev/null || { echo "no state"; exit 0; }
for f in worker-*.pid; do
    [ -f "$f" ] || continue
    if kill -0 "$(cat "$f")" 2>/dev/null; then echo "${f%.pid} running"; else echo "${f%.pid} dead"; fi
done'

# remote_dir_of HOST: the host's directory (--remote-dir with %h filled in).
remote_dir_of() { local r; r=$(cat "$dir/remote-dir"); printf '%s' "${r//%h/$(host_id "$1")}"; }

# hosts_of FILE: "HOST WORKERS" lines, comments and blanks dropped.
hosts_of() {
    sed 's/#.*//' "$1" | awk 'NF { n = $2 ? $2 : 1; print $1, n }'
}
# The name a host's key and workers go by: HOST without USER@, made safe.
host_id() { local h=${1#*@}; printf '%s' "${h//[^A-Za-z0-9._-]/_}"; }

stop_master() {
    local p
    [ -f "$dir/master.pid" ] || return 0
    p=$(cat "$dir/master.pid")
    if kill -TERM "$p" 2>/dev/null; then
        for _ in $(seq 1 120); do alive "$p" || break; sleep 0.5; done
        kill -KILL "$p" 2>/dev/null || true
        echo "master stopped (pid $p)"
    fi
    rm -f "$dir/master.pid"
}

stop_workers() {
    local host n
    [ -f "$dir/hosts" ] || return 0
    while read -r host n; do
        echo "$host: $(ssh_to "$host" sh -s -- "$(quote "$(remote_dir_of "$host")")" \
            <<<"$remote_stop" 2>&1 | tail -n 1)"
    done <"$dir/hosts"
}

status_ep() { sed -n 's/^[[:space:]]*status:[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$dir/campaign.yaml"; }

if [ "$cmd" = stop ]; then
    [ -d "$dir" ] || die "no launch state in $dir"
    stop_workers
    stop_master
    exit 0
fi
if [ "$cmd" = status ]; then
    [ -d "$dir" ] || die "no launch state in $dir"
    if [ -f "$dir/master.pid" ] && alive "$(cat "$dir/master.pid")"; then
        echo "master running (pid $(cat "$dir/master.pid"))"
    else
        echo "master not running"
    fi
    while read -r host n; do
        ssh_to "$host" sh -s -- "$(quote "$(remote_dir_of "$host")")" <<<"$remote_status" 2>&1 |
            sed "s/^/$host: /"
    done <"$dir/hosts"
    ep=$(status_ep)
    exec "$bin/nasctl" status ${ep:+--master "${ep/\*/127.0.0.1}"} --key "$dir/keys/ctl" \
        --master-key "$dir/keys/master.key" --db "$dir/campaign.db"
fi

# start
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [ -n "$campaign" ]; then
    [ -r "$campaign" ] || die "cannot read campaign file $campaign"
    cp "$campaign" "$dir/campaign.yaml"
fi
[ -r "$dir/campaign.yaml" ] || die "start needs CAMPAIGN.yaml the first time"
if [ -n "$hosts" ]; then
    [ -r "$hosts" ] || die "cannot read hosts file $hosts"
    hosts_of "$hosts" >"$dir/hosts"
fi
[ -s "$dir/hosts" ] || die "no hosts: pass --hosts FILE (one [USER@]HOST [WORKERS] a line)"
# A host's workers, key and remote directory are named after HOST alone, so
# a host on two lines (node1 and alice@node1) would share them: refuse it.
seen=' '
while read -r host n; do
    case "$n" in ''|*[!0-9]*|0) die "hosts file: '$host $n': WORKERS must be a number >= 1" ;; esac
    case "$seen" in *" $(host_id "$host") "*)
        die "hosts file: host $(host_id "$host") is named on two lines; give it once, with its number of workers" ;;
    esac
    seen="$seen$(host_id "$host") "
done <"$dir/hosts"

name=$(sed -n 's/^name:[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$dir/campaign.yaml")
name=${name:-campaign}
ctl=$(sed -n 's/^[[:space:]]*control:[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$dir/campaign.yaml")
port=${ctl##*:}
case "$port" in ''|*[!0-9]*) die "campaign file: listen.control '$ctl' names no TCP port" ;; esac
master_host=${master_host:-$(hostname -f 2>/dev/null || hostname)}
master_ep=tcp://$master_host:$port
if [ -n "$remote_dir" ]; then echo "$remote_dir" >"$dir/remote-dir"; fi
[ -s "$dir/remote-dir" ] || echo ".nasd/$name" >"$dir/remote-dir"
worker=${remote_bin:+$remote_bin/}nas-worker

# Keys: the master's, one for nasctl, one per host; made once and kept, so a
# second start resumes with the same keys.  Only public keys go into the
# authorized directory; a host gets its own secret key and nothing else.
mkdir -p "$dir/keys" "$dir/authorized"
chmod 700 "$dir/keys"
key() { [ -f "$dir/keys/$1.key_secret" ] || "$bin/nasctl" keygen "$dir/keys/$1" >/dev/null; }
key master
key ctl
cp "$dir/keys/ctl.key" "$dir/authorized/ctl.key"
while read -r host n; do
    id=$(host_id "$host")
    key "worker-$id"
    cp "$dir/keys/worker-$id.key" "$dir/authorized/worker-$id.key"
done <"$dir/hosts"

# The master, unless one from an earlier start still runs.
if [ -f "$dir/master.pid" ] && alive "$(cat "$dir/master.pid")"; then
    echo "master already running (pid $(cat "$dir/master.pid")); resuming the workers"
    [ "$wait" = 0 ] || die "--wait needs a master started by this call; stop it first"
else
    # A master killed a moment ago may still be on its way out, holding its
    # store's lock and its ports until it is gone: the new one waits for it.
    if [ -f "$dir/master.pid" ]; then
        old=$(cat "$dir/master.pid")
        for _ in $(seq 1 600); do gone "$old" && break; sleep 0.1; done
        gone "$old" || die "the previous master (pid $old) is still exiting after 60 s"
    fi
    log_at=$(stat -c %s "$dir/master.log" 2>/dev/null || echo 0)
    listening() { tail -c +$((log_at + 1)) "$dir/master.log" 2>/dev/null | grep -q 'listening for weights on'; }
    (cd "$dir" && exec "$bin/nas-master" campaign.yaml --db campaign.db --cancel-on-stop \
        --key keys/master --authorized authorized >>master.out 2>>master.log) &
    master=$!
    echo "$master" >"$dir/master.pid"
    # Started means listening (the weights socket is bound last), not alive
    # a second later: a master that fails after a slow start (a port taken,
    # the store locked) must fail this call, not leave workers dialling a
    # master that is not there.
    for _ in $(seq 1 600); do
        listening && break
        alive "$master" || break
        sleep 0.1
    done
    alive "$master" ||
        die "the master exited as it started; the end of $dir/master.log: $(tail -n 3 "$dir/master.log")"
    listening || die "the master (pid $master) is not listening after 60 s; see $dir/master.log"
    echo "master started (pid $master), workers dial $master_ep; logs in $dir"
fi

# Each host: its keys through ssh's stdin into a 0700 directory (tar keeps
# the secret key's 0600), then its workers.
failed=0
while read -r host n; do
    id=$(host_id "$host")
    rdir=$(remote_dir_of "$host")
    stage=$(mktemp -d)
    cp -p "$dir/keys/worker-$id.key" "$stage/worker.key"
    cp -p "$dir/keys/worker-$id.key_secret" "$stage/worker.key_secret"
    cp -p "$dir/keys/master.key" "$stage/master.key"
    if ! tar -C "$stage" -cf - . |
        ssh_to "$host" "umask 077 && mkdir -p $(quote "$rdir") && chmod 700 $(quote "$rdir") &&
            tar -xf - -C $(quote "$rdir")"; then
        echo "$host: cannot copy the keys over ssh" >&2
        failed=1
    else
        # shellcheck disable=SC2086
        args=$(quote "$rdir" "$n" "$worker" "$master_ep" "$id" $worker_opts)
        ssh_to "$host" sh -s -- "$args" <<<"$remote_start" | sed "s/^/$host: /" ||
            { echo "$host: cannot start workers" >&2; failed=1; }
    fi
    rm -rf "$stage"
done <"$dir/hosts"

if [ "$wait" = 0 ]; then
    [ "$failed" = 0 ] || echo "launch.sh: some hosts failed; fix them and run start again" >&2
    echo "watch: $0 status --dir $dir; stop: $0 stop --dir $dir"
    exit "$failed"
fi
trap 'echo "launch.sh: interrupted; stopping"; stop_workers; stop_master; exit 130' INT TERM
set +e
wait "$master"
rc=$?
set -e
rm -f "$dir/master.pid"
stop_workers
cat "$dir/master.out"
[ "$rc" = 0 ] || die "the master failed (exit $rc); see $dir/master.log"
exit "$failed"
