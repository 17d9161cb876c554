#!/usr/bin/env bash
# deploy/quickstart.sh - from a fresh Debian 12 machine to a running search:
# installs what is missing, builds Release into build/, then runs the main
# job with defaults.  Idempotent: a second run skips what is done.
set -euo pipefail
NAS_ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$NAS_ROOT/deploy/lib.sh"

# shellcheck disable=SC2086
nas_install_missing $NAS_DEB_PACKAGES
nas_build "$NAS_ROOT/build" -DCMAKE_BUILD_TYPE=Release
exec "$NAS_ROOT/deploy/run-local.sh" "$@"
