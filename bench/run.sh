#!/usr/bin/env bash
# bench/run.sh NAME [ARGS...] - build (Release, build-bench/) and run one
# benchmark.  Convention: every benchmark prints one line per case,
#   case=<name> ours=<figure> peer=<figure> unit=<unit> ratio=<ours/peer>
# with the peer measured in the same run, and writes nothing into the
# repository unless given --out FILE.
set -euo pipefail
NAS_ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -lt 1 ] || [ "$1" = --help ] || [ "$1" = -h ]; then
    echo "usage: bench/run.sh NAME [ARGS...]"
    echo "benchmarks:"
    for f in "$NAS_ROOT"/bench/*/run; do [ -e "$f" ] && echo "  $(basename "$(dirname "$f")")"; done
    exit 0
fi
name=$1
shift
[ -x "$NAS_ROOT/bench/$name/run" ] || { echo "bench/run.sh: no benchmark '$name' (bench/$name/run)" >&2; exit 2; }
cmake -S "$NAS_ROOT" -B "$NAS_ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release -DNAS_BUILD_TESTS=OFF -DNAS_SANITIZE=OFF >/dev/null
cmake --build "$NAS_ROOT/build-bench" -j "$(nproc)" >/dev/null
export NAS_BIN_DIR=$NAS_ROOT/build-bench/bin
exec "$NAS_ROOT/bench/$name/run" "$@"
