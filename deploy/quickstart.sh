#!/usr/bin/env bash
# deploy/quickstart.sh - from a fresh Debian 12 machine to a running search:
# installs what is missing, builds Release into build/, then runs the main
# job with defaults.  Idempotent: a second run skips what is done.
set -euo pipefail
NAS_ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$NAS_ROOT/deploy/lib.sh"

# shellcheck disable=SC2086
nas_install_missing $NAS_DEB_PACKAGES
# Options are named in full: a cache left by an earlier sanitizer build must not
# make the campaign run several times slower.
nas_build "$NAS_ROOT/build" -DCMAKE_BUILD_TYPE=Release -DNAS_SANITIZE=OFF -DNAS_WERROR=OFF
exec "$NAS_ROOT/deploy/run-local.sh" "$@"
