#!/usr/bin/env bash
# bench/fuzz.sh [SECONDS] [TARGET...] - build the libFuzzer harnesses with
# clang in build-fuzz/ and run each for SECONDS (default 60), one after the
# other, starting from the committed seeds in tests/fuzz/corpus/NAME.
#
# New inputs the fuzzer finds go to build-fuzz/corpus/NAME (not committed);
# a crash is written to build-fuzz/crashes/NAME/ and reported at the end.
# To keep a crash fixed for good, copy it to tests/fuzz/regress/NAME/:
# tests/test_fuzz_regress.c replays that folder in the normal test run,
# and this script replays it first in the fuzz build (whose UBSan also
# checks float-to-int casts, which gcc's -fsanitize=undefined does not).
#
# Environment: NAS_FUZZ_JOBS (cmake -j, default 2), NAS_FUZZ_RSS_MB
# (libFuzzer -rss_limit_mb, default 2048), NAS_FUZZ_MAX_LEN (-max_len,
# default 8192), CC (default clang, then clang-14).
set -uo pipefail
NAS_ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = --help ] || [ "${1:-}" = -h ]; then
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi
secs=${1:-60}
shift || true
case $secs in ''|*[!0-9]*) echo "bench/fuzz.sh: SECONDS must be a number, got '$secs'" >&2; exit 2;; esac
all="wire wire_body genome_text genome_json json config idx cifar safetensors table keys"
targets=${*:-$all}
cc=${CC:-}
if [ -z "$cc" ]; then
    for c in clang clang-14; do command -v "$c" >/dev/null && { cc=$c; break; }; done
fi
[ -n "$cc" ] || { echo "bench/fuzz.sh: clang not found (apt-get install clang libclang-rt-dev)" >&2; exit 2; }

B=$NAS_ROOT/build-fuzz
mkdir -p "$B"
cmake -S "$NAS_ROOT" -B "$B" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DNAS_FUZZ=ON -DNAS_SANITIZE=ON -DNAS_BUILD_TESTS=OFF >"$B/cmake.log" 2>&1 \
    || { cat "$B/cmake.log" >&2; exit 2; }
cmake --build "$B" --target nas_fuzz -j "${NAS_FUZZ_JOBS:-2}" >"$B/build.log" 2>&1 \
    || { tail -40 "$B/build.log" >&2; exit 2; }

failed=""
export OPENBLAS_NUM_THREADS=1
for t in $targets; do
    bin=$B/fuzz/fuzz_$t
    [ -x "$bin" ] || { echo "bench/fuzz.sh: no harness '$t'" >&2; failed="$failed $t"; continue; }
    mkdir -p "$B/corpus/$t" "$B/crashes/$t"
    # Crash files of earlier runs stay for reference; only new ones count.
    before=$(find "$B/crashes/$t" -type f | wc -l)
    log=$B/fuzz_$t.log
    # Known crashers first: the clang build checks more UB than gcc's
    # (float-cast-overflow), so a regression can show here and not in ctest.
    reg=$NAS_ROOT/tests/fuzz/regress/$t
    if [ -d "$reg" ] && [ -n "$(ls -A "$reg")" ]; then
        if ! "$bin" "$reg"/* >"$B/regress_$t.log" 2>&1; then
            printf 'target=%-12s REGRESSION: a file in tests/fuzz/regress/%s still crashes\n' "$t" "$t"
            grep -m1 -A6 'ERROR: \|runtime error\|assertion failed' "$B/regress_$t.log" | sed 's/^/    /'
            failed="$failed $t"
        fi
    fi
    dict=()
    [ -f "$NAS_ROOT/tests/fuzz/dict/$t.dict" ] && dict=(-dict="$NAS_ROOT/tests/fuzz/dict/$t.dict")
    "$bin" "$B/corpus/$t" "$NAS_ROOT/tests/fuzz/corpus/$t" "${dict[@]}" -max_total_time="$secs" \
        -rss_limit_mb="${NAS_FUZZ_RSS_MB:-2048}" -max_len="${NAS_FUZZ_MAX_LEN:-8192}" \
        -timeout=10 -artifact_prefix="$B/crashes/$t/" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
    crashes=$(( $(find "$B/crashes/$t" -type f | wc -l) - before ))
    printf 'target=%-12s seconds=%s execs=%s cov=%s crashes=%s rc=%s\n' "$t" "$secs" "${execs:-?}" \
        "${cov:-?}" "$crashes" "$rc"
    if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        case " $failed " in *" $t "*) ;; *) failed="$failed $t" ;; esac
        grep -m1 -A12 'ERROR: \|runtime error\|nas_abort\|assertion failed' "$log" | sed 's/^/    /'
    fi
done
if [ -n "$failed" ]; then
    echo "bench/fuzz.sh: crashes or errors in:$failed (inputs under $B/crashes/)"
    exit 1
fi
echo "bench/fuzz.sh: no crashes"
