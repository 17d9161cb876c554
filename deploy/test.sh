#!/usr/bin/env bash
# deploy/test.sh - installs what is missing, builds with AddressSanitizer and
# UBSan in build-test/, and runs every test.  Exit status is non-zero on any
# failure.  Pass ctest arguments through, e.g. `./deploy/test.sh -L unit`.
set -euo pipefail
NAS_ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$NAS_ROOT/deploy/lib.sh"

# shellcheck disable=SC2086
nas_install_missing $NAS_DEB_PACKAGES $NAS_TEST_PACKAGES
nas_build "$NAS_ROOT/build-test" -DCMAKE_BUILD_TYPE=Debug -DNAS_SANITIZE=ON -DNAS_WERROR=ON
# test_other_cpu emulates older CPUs with qemu-user, where AddressSanitizer
# cannot run: it takes nas-train from a plain build of its own.
cmake -S "$NAS_ROOT" -B "$NAS_ROOT/build-plain" -DCMAKE_BUILD_TYPE=Release -DNAS_NATIVE=OFF \
    -DNAS_SANITIZE=OFF >/dev/null
cmake --build "$NAS_ROOT/build-plain" -j "$(nproc)" --target nas-train
export NAS_PLAIN_BIN_DIR="$NAS_ROOT/build-plain/bin"
cd "$NAS_ROOT/build-test"
# Tests and OpenBLAS share two cores: never let BLAS spawn its own threads
# under a test that already runs in parallel (see docs/PERFORMANCE.md).
export OPENBLAS_NUM_THREADS=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# A failed test runs once more before it counts as failed: several tests
# (kills, restarts, real daemons) race wall-clock deadlines on a loaded
# 2-core machine.  Both runs' output is kept, so a rare real failure (the
# chaos test names its seed) is still seen in the log.
ctest --output-on-failure -j "$(nproc)" --repeat until-pass:2 "$@"
