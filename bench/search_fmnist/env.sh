# bench/search_fmnist/env.sh - sourced by this folder's wrappers: the
# Release binaries (bench/run.sh's build, or one made here) in NAS_BIN_DIR,
# and one BLAS thread per process (the workers are the parallelism).
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
if [ -n "${NAS_BIN_DIR:-}" ]; then BUILD=$(cd "$NAS_BIN_DIR/.." && pwd); else BUILD=$ROOT/build-bench; fi
if [ ! -x "$BUILD/bin/nas-master" ] || [ ! -x "$BUILD/bin/nas-worker" ] || [ ! -x "$BUILD/bin/nasctl" ]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DNAS_BUILD_TESTS=OFF -DNAS_SANITIZE=OFF >/dev/null
    cmake --build "$BUILD" -j2 >/dev/null
fi
export NAS_BIN_DIR=$BUILD/bin
export OPENBLAS_NUM_THREADS=1
