#!/usr/bin/env bash
# The device check of a CUDA machine with PyTorch (ROS not needed): prints one JSON block with bench model
# (shipped model and paper-width R50, 375x1242 and 1024x2048, fp32/bf16/fp16, one compiled precision), the full
# pipeline per frame, the host-device copies, the instance depth statistics on host and device, and AMP training
# speed. Run from the repository root:
#   scripts/gpu_check.sh                 # on the GPU, <= 8 minutes
#   scripts/gpu_check.sh --dry --device cpu   # tiny sizes: checks the script itself on any machine
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec timeout 480 "$PYTHON" -m depth_panoptic_ros.bench.gpu_check "$@"
