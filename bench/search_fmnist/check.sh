#!/usr/bin/env bash
# bench/search_fmnist/check.sh - a seconds-long check of the benchmark's
# script without training anything (not a CTest test: the benchmark needs
# no build to show its help).  It checks that --help works and names the
# flags, that the analysis and plot code pass their self-test on made-up
# histories, and that bad arguments are refused with a message and exit 2.
set -euo pipefail
RUN=$(cd "$(dirname "$0")" && pwd)/run
fail() { echo "search_fmnist/check: $*" >&2; exit 1; }

help=$("$RUN" --help) || fail "--help exited with $?"
for flag in --evals --seeds --workers --final-top-k --out; do
    grep -q -- "$flag" <<<"$help" || fail "--help does not mention $flag"
done
"$RUN" --self-test >/dev/null || fail "--self-test failed"

# Bad input: a clear message naming the flag, exit 2, before any build.
expect_usage_error() {
    local want=$1; shift
    local out rc=0
    out=$(NAS_BIN_DIR=/nonexistent/bin /usr/bin/python3 "$(dirname "$RUN")/search_fmnist.py" "$@" 2>&1) || rc=$?
    [ "$rc" = 2 ] || fail "'$*' exited with $rc, not 2"
    grep -q -- "$want" <<<"$out" || fail "'$*' did not say '$want': $out"
}
expect_usage_error "--evals must be >= 1" --evals 0
expect_usage_error "--seeds needs an integer" --seeds many
expect_usage_error "--sample (6) must be <= --population (5)" --population 5 --sample 6
expect_usage_error "--population (20) must be <= --evals (12)" --evals 12
expect_usage_error "unknown strategy 'pnas'" --strategies evolution,pnas
expect_usage_error "nas-master is missing" --evals 30

# The comparisons on compare.py: help, and an unknown case refused with exit 2.
for drv in multifidelity spaces; do
    /usr/bin/python3 "$(dirname "$RUN")/$drv.py" --help | grep -q -- "--cases" ||
        fail "$drv --help does not mention --cases"
    rc=0
    out=$(NAS_BIN_DIR=/nonexistent/bin /usr/bin/python3 "$(dirname "$RUN")/$drv.py" \
          --cases nosuch 2>&1) || rc=$?
    [ "$rc" = 2 ] || fail "$drv --cases nosuch exited with $rc, not 2"
    grep -q "unknown case 'nosuch'" <<<"$out" || fail "$drv did not name the case: $out"
done
echo "search_fmnist/check: ok"
