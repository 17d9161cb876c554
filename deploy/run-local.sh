#!/usr/bin/env bash
# deploy/run-local.sh - the quickstart's main job: a real local campaign on
# Fashion-MNIST.  One nas-master and one nas-worker per core on 127.0.0.1
# run deploy/examples/quick.yaml (about ten minutes on two cores), then the
# best architecture, its accuracy and the nasctl commands to look further
# are printed.
#
#   deploy/run-local.sh [--fresh] [--workers N] [--campaign FILE] [--dir DIR]
#
# Re-running resumes: the campaign database lives in DIR (default
# ./nasd-local) and a second run continues where the first stopped (after
# Ctrl-C or a crash), or just prints the result of a finished campaign.
# --fresh moves the old database aside and starts over.  Every process this
# script starts is stopped when it exits, whatever the reason.
set -euo pipefail
NAS_ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${NAS_BIN_DIR:-$NAS_ROOT/build/bin}
campaign=$NAS_ROOT/deploy/examples/quick.yaml
dir=$PWD/nasd-local
workers=$(nproc 2>/dev/null || echo 2)
fresh=0
while [ $# -gt 0 ]; do
    case "$1" in
        --fresh) fresh=1; shift ;;
        --workers) workers=${2:?--workers needs a number}; shift 2 ;;
        --campaign) campaign=$(cd "$(dirname "${2:?--campaign needs a file}")" && pwd)/$(basename "$2"); shift 2 ;;
        --dir) dir=${2:?--dir needs a directory}; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run-local.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
for b in nas-master nas-worker nasctl; do
    [ -x "$BIN/$b" ] || { echo "run-local.sh: $BIN/$b is missing; build first (deploy/quickstart.sh)" >&2; exit 1; }
done
[ -r "$campaign" ] || { echo "run-local.sh: cannot read campaign file $campaign" >&2; exit 1; }
case "$workers" in ''|*[!0-9]*|0) echo "run-local.sh: --workers needs a number >= 1" >&2; exit 2 ;; esac

# The data: quick.yaml reads the Debian package's copy (data.dir); say so
# plainly here rather than as forty failed tasks.
data_src=${NAS_DATA_DIR:-/usr/share/datasets/fashion-mnist}
if [ ! -r "$data_src/train-images-idx3-ubyte.gz" ] && [ ! -r "$data_src/train-images-idx3-ubyte" ]; then
    echo "run-local.sh: Fashion-MNIST not found in $data_src" >&2
    echo "  install it (apt-get install dataset-fashion-mnist) or set NAS_DATA_DIR" >&2
    exit 1
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
cd "$dir"
db=$(sed -n 's/^store:[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$campaign")
db=${db:-campaign.db}
if [ "$fresh" = 1 ] && [ -e "$db" ]; then
    old="$db.$(date +%Y%m%d-%H%M%S)"
    mv "$db" "$old"
    rm -f "$db-wal" "$db-shm"
    echo "nasd: previous campaign moved to $dir/$old"
fi
ctl=$(sed -n 's/^[[:space:]]*control:[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$campaign")
ctl=${ctl:-tcp://127.0.0.1:5555}
# The weight store's bulk socket (listen.weights) needs no flag: the master
# announces it to each worker in the answer to its Register.
status_ep=$(sed -n 's/^[[:space:]]*status:[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$campaign")

pids=()
cleanup() {
    trap - EXIT INT TERM
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.3; done
        kill -KILL "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
on_interrupt() {
    echo
    echo "nasd: interrupted; stopping (the campaign resumes on the next run)"
    [ -n "${master:-}" ] && kill -TERM "$master" 2>/dev/null || true
    cleanup
    exit 130
}
trap cleanup EXIT
trap on_interrupt INT TERM

echo "nasd: campaign $campaign"
echo "nasd: database $dir/$db, logs in $dir/*.log, $workers worker(s)"
# --cancel-on-stop: Ctrl-C hands leased tasks back at once instead of
# waiting for them; they are trained again after the resume.
"$BIN/nas-master" "$campaign" --db "$db" --cancel-on-stop --log-level info \
    >"$dir/master.out" 2>"$dir/master.log" &
master=$!
pids+=("$master")
for i in $(seq 1 "$workers"); do
    "$BIN/nas-worker" --master "$ctl" --name "local-$i" --threads 1 \
        >"$dir/worker-$i.log" 2>&1 &
    pids+=("$!")
done
echo "nasd: running; watch it with: $BIN/nasctl status${status_ep:+ --master $status_ep} --db $dir/$db"
set +e
wait "$master"
rc=$?
set -e
cat "$dir/master.out"
if [ "$rc" != 0 ]; then
    echo "nasd: the master failed (exit $rc); the end of $dir/master.log:" >&2
    tail -n 5 "$dir/master.log" >&2
    exit 1
fi
done_n=$("$BIN/nasctl" history --db "$db" --csv | tail -n +2 | wc -l)
if [ "$done_n" = 0 ]; then
    echo "nasd: no architecture was evaluated; the workers said:" >&2
    grep -h "failed" "$dir"/worker-*.log | tail -n 3 >&2 || true
    exit 1
fi
echo
"$BIN/nasctl" best --db "$db" --k 3
best=$("$BIN/nasctl" best --db "$db" --k 1 --json | grep -o '"arch":"[^"]*"' | head -n 1 | cut -d'"' -f4)
echo
echo "Look further:"
echo "  $BIN/nasctl status  --db $dir/$db"
echo "  $BIN/nasctl history --db $dir/$db --csv"
echo "  $BIN/nasctl pareto  --db $dir/$db"
[ -n "$best" ] && echo "  $BIN/nasctl dot '$best' | dot -Tpng > best.png"
exit 0
