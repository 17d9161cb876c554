# tests/deploy/lib.sh - sourced by the deployment tests (tests/deploy/*.sh,
# run by tests/test_deploy_*.c through tests/deploy_util.c).
#
# Exit status: 0 passed, 77 skipped (a "SKIP: reason" line first), anything
# else failed (a "FAIL: what" line first).  Every process a test starts is
# registered with nas_cleanup and stopped when the script exits, whatever
# the reason; the scratch directory $T goes with it.
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
    if [ -n "${NAS_DEPLOY_KEEP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi
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

# free_port: a base of three TCP ports free on 127.0.0.1 (below the
# ephemeral range, away from the C suites' 10000-32000 by starting high).
free_port() {
    local p i used
    used=$(ss -Htan 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -u)
    for i in $(seq 1 200); do
        p=$((20000 + (RANDOM % 12000)))
        if ! printf '%s\n' "$used" | grep -qxE "$p|$((p + 1))|$((p + 2))"; then
            echo "$p"
            return 0
        fi
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
