#!/usr/bin/env bash
# deploy/run-local.sh - the main job of quickstart.sh, on an existing build:
# a low-fidelity training run of a small network on Fashion-MNIST.
set -euo pipefail
NAS_ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$NAS_ROOT/build/bin
exec "$BIN/nas-train" --arch small14 --data fashion-mnist --epochs 1 "$@"
