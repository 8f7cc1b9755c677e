#!/usr/bin/env bash
# The device check of a CUDA machine with PyTorch (ROS not needed): prints one JSON block with bench model
# (shipped model and paper-width R50, 375x1242 and 1024x2048, fp32/bf16/fp16, one compiled precision), the full
# pipeline per frame, the host-device copies, the instance depth statistics on host and device, AMP training
# speed, and the networks and pipeline replayed from CUDA graphs. Run from anywhere:
#   scripts/gpu_check.sh                 # on the GPU, <= 8 minutes
#   scripts/gpu_check.sh --dry --device cpu   # tiny sizes: checks the script itself on any machine
#   scripts/gpu_check.sh --output check.json  # also written after every section: a run cut short keeps its figures
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"  # run from anywhere: paths given (--output) stay the caller's
PYTHON="${PYTHON:-$( [ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python3 )}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec timeout 480 "$PYTHON" -m depth_panoptic_ros.bench.gpu_check "$@"
