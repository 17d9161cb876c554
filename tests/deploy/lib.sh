# tests/deploy/lib.sh - sourced by the deployment tests (tests/deploy/*.sh,
# run by tests/test_deploy_*.c through tests/deploy_util.c).
#
# Exit status: 0 passed, 77 skipped (a "SKIP: reason" line first), anything
# else failed (a "FAIL: what" line first).  Every process a test starts is
# registered with nas_cleanup and stopped when the script exits, whatever
# the reason; the scratch directory $T goes with it.
# shellcheck shell=bash
set -euo pipefail
: "${NAS_SOURCE_DIR:?run from CTest, which sets NAS_SOURCE_DIR}"
: "${NAS_BIN_DIR:?run from CTest, which sets NAS_BIN_DIR}"
NAS_BUILD_DIR=$(cd "$NAS_BIN_DIR/.." && pwd)
NAS_FMNIST=${NAS_DATA_DIR:-/usr/share/datasets/fashion-mnist}

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
say() { echo "[$(date +%H:%M:%S)] $*"; }

# need CMD WHY: skip unless CMD is on PATH (WHY names the Debian package).
need() { command -v "$1" >/dev/null 2>&1 || skip "$1 is not installed ($2)"; }

# The root-only steps (dpkg, sshd, Slurm daemons) skip for other users.
need_root() { [ "$(id -u)" = 0 ] || skip "needs root ($*)"; }

T=$(mktemp -d "${TMPDIR:-/tmp}/nasd-deploy.XXXXXX")
chmod 755 "$T"
_nas_cleanups=()
nas_cleanup() { _nas_cleanups+=("$*"); }
_nas_exit() {
    local rc=$? i
    for ((i = ${#_nas_cleanups[@]} - 1; i >= 0; i--)); do eval "${_nas_cleanups[i]}" || true; done
    # A daemon still writing as it exits can make the first removal fail;
    # the scratch folder never decides the test's outcome.
    if [ -n "${NAS_DEPLOY_KEEP:-}" ]; then
        echo "kept $T"
    else
        rm -rf "$T" 2>/dev/null || { sleep 1; rm -rf "$T" || true; }
    fi
    exit "$rc"
}
trap _nas_exit EXIT
trap 'exit 143' TERM INT

# stop_pid PID: SIGTERM, up to 10 s, then SIGKILL.
stop_pid() {
    local p=$1 i
    kill -TERM "$p" 2>/dev/null || return 0
    for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.2; done
    kill -KILL "$p" 2>/dev/null || true
}

# free_port VAR: a base of three TCP ports free on 127.0.0.1 into VAR,
# below the ephemeral range and reserved for the life of this script the
# way the C suites reserve theirs (tests/e2e_util.c): an flock on
# /tmp/nasd-e2e-ports/BASE, bases 10000 + 3i.  Free right now is not
# enough: a master killed with -9 binds its ports again when it is started
# again, and a test running in parallel must not take them meanwhile.  The
# descriptor stays open in this shell (so no $(...): a subshell would drop
# the lock as it ends), and the children that inherit it hold it too.
free_port() {
    local p i used fd
    used=$(ss -Htan 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -u)
    mkdir -p /tmp/nasd-e2e-ports 2>/dev/null || true
    chmod 1777 /tmp/nasd-e2e-ports 2>/dev/null || true
    for i in $(seq 1 400); do
        p=$((10000 + 3 * (3334 + RANDOM % 3998))) # 20002 .. 31996: the high end of the C suites' bases
        printf '%s\n' "$used" | grep -qxE "$p|$((p + 1))|$((p + 2))" && continue
        if exec {fd}>>"/tmp/nasd-e2e-ports/$p" 2>/dev/null; then
            if ! flock -n "$fd"; then
                exec {fd}>&-
                continue
            fi
        fi
        printf -v "$1" '%s' "$p"
        return 0
    done
    fail "no free port"
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds.
wait_for() {
    local s=$1 what=$2 end
    shift 2
    end=$((SECONDS + s))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$end" ] || fail "timed out after ${s}s waiting for $what"
        sleep 0.5
    done
}

# need_fmnist: the tiny campaigns train on real Fashion-MNIST.
need_fmnist() {
    [ -r "$NAS_FMNIST/train-images-idx3-ubyte.gz" ] || [ -r "$NAS_FMNIST/train-images-idx3-ubyte" ] ||
        skip "Fashion-MNIST not in $NAS_FMNIST (apt-get install dataset-fashion-mnist)"
}

# write_campaign FILE NAME BUDGET HOST PORT: a tiny real campaign (a
# second or so per candidate), listening on HOST:PORT..PORT+2.
write_campaign() {
    cat >"$1" <<YAML
name: $2
seed: 3
data:
  set: fashion-mnist
  dir: $NAS_FMNIST
space:
  kind: cell
  blocks: 2
  ops: [id, avg3x3, max3x3, conv1x1]
strategy:
  name: evolution
  population: 4
  sample: 2
budget:
  evaluations: $3
fidelity:
  resolution: 14
  train_subset: 300
  val_size: 100
  epochs: 1
  batch: 50
  channels: 4
  cells: 1
  lr: 0.1
  threads: 1
final:
  top_k: 0
listen:
  control: tcp://$4:$5
  weights: tcp://$4:$(($5 + 1))
  status: tcp://$4:$(($5 + 2))
workers:
  heartbeat_ms: 500
  liveness: 5
store: campaign.db
YAML
}

# results DB: search results recorded so far (0 while there is no database).
results() {
    [ -r "$1" ] || { echo 0; return; }
    "$NAS_BIN_DIR/nasctl" history --db "$1" --csv 2>/dev/null | tail -n +2 | wc -l
}

# units_campaign UNITDIR ETC STATE BINDIR USER: run nas-master@tiny and
# nas-worker@1 from the unit files' text as systemd would, without systemd:
# specifiers filled in (%S = STATE, /etc/nasd = ETC, /usr/bin = BINDIR),
# each LoadCredential= copied into a credentials directory with mode 0400,
# the worker's EnvironmentFile= read, both run as USER (none: this user).
# Makes the keys, the campaign and worker.env under ETC; fails unless the
# campaign finishes with 4 results, one of them from the worker the unit
# names (HOST-1).
units_campaign() {
    local units=$1 etc=$2 state=$3 bin=$4 user=$5 port master_cmd worker_cmd master worker n
    local as=()
    [ -z "$user" ] || as=(setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups)
    mkdir -p "$etc/campaigns" "$etc/keys" "$etc/authorized" "$state/nasd/tiny"
    [ -z "$user" ] || chown "$user:" "$state/nasd/tiny"
    "$NAS_BIN_DIR/nasctl" keygen "$etc/keys/master" >/dev/null
    "$NAS_BIN_DIR/nasctl" keygen "$etc/keys/worker" >/dev/null
    cp "$etc/keys/worker.key" "$etc/authorized/"
    free_port port
    write_campaign "$etc/campaigns/tiny.yaml" tiny 4 127.0.0.1 "$port"
    printf 'NAS_MASTER=tcp://127.0.0.1:%s\nNAS_WORKER_OPTS=--threads 1 --data-dir %s\n' \
        "$port" "$NAS_FMNIST" >"$etc/worker.env"
    master_cmd=$(_unit_command "$units/nas-master@.service" tiny "$T/cred-master")
    worker_cmd=$(_unit_command "$units/nas-worker@.service" 1 "$T/cred-worker")
    # EnvironmentFile= as systemd reads this file: KEY=VALUE lines, the
    # value taken whole (spaces and all); the command's $VAR splits it.
    (while IFS='=' read -r k v; do
        case "$k" in [A-Z]*) export "$k=$v" ;; esac
    done <"$etc/worker.env"
    eval "exec ${as[*]} $worker_cmd") >"$T/worker.log" 2>&1 &
    worker=$!
    nas_cleanup stop_pid "$worker"
    # NAS_UNIT_STRACE=FILE: the master runs under strace -c (a summary in FILE).
    local trace=()
    if [ -n "${NAS_UNIT_STRACE:-}" ]; then
        trace=(strace -f -qq -c -o "$NAS_UNIT_STRACE")
        : >"$NAS_UNIT_STRACE"
        [ -z "$user" ] || chown "$user:" "$NAS_UNIT_STRACE"
    fi
    (cd "$state/nasd/tiny" && if [ -n "${trace[*]}" ]; then export ASAN_OPTIONS=detect_leaks=0; fi &&
        eval "exec ${as[*]} ${trace[*]} $master_cmd") >"$T/master.out" 2>"$T/master.log" &
    master=$!
    nas_cleanup stop_pid "$master"
    wait_for 240 "the unit-made master to finish" bash -c "! kill -0 $master"
    wait "$master" || fail "nas-master@tiny's command failed: $(tail -n 3 "$T/master.log")"
    n=$(results "$state/nasd/tiny/campaign.db")
    [ "$n" -ge 4 ] || fail "the units' campaign recorded $n results, not 4"
    grep -q "$(hostname)-1" <("$NAS_BIN_DIR/nasctl" history --db "$state/nasd/tiny/campaign.db" --csv) ||
        fail "no result came from the worker named by the unit ($(hostname)-1)"
    [ -z "$user" ] || [ "$(stat -c %U "$state/nasd/tiny/campaign.db")" = "$user" ] ||
        fail "the campaign database is not owned by $user"
    # A worker outlives its campaign (it waits for the next master).
    stop_pid "$worker"
}

# _unit_command UNIT INSTANCE CREDDIR (units_campaign's etc, state, bin,
# user): the unit's ExecStart= with continuation lines joined and
# specifiers filled in; fills CREDDIR from its LoadCredential= lines.
_unit_command() {
    local unit=$1 inst=$2 cred=$3 id path
    mkdir -p "$cred"
    while IFS=: read -r id path; do
        cp "${path/\/etc\/nasd/$etc}" "$cred/$id"
        chmod 400 "$cred/$id"
    done < <(sed -n 's/^LoadCredential=//p' "$unit")
    [ -z "$user" ] || chown -R "$user:" "$cred"
    sed -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*//; ta' "$unit" | sed -n 's/^ExecStart=//p' |
        sed -e "s|%i|$inst|g" -e "s|%S|$state|g" -e "s|%d|$cred|g" -e "s|%H|$(hostname)|g" \
            -e "s|/etc/nasd|$etc|g" -e "s|/usr/bin/|$bin/|g"
}
