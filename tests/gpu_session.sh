#!/usr/bin/env bash
# On a bare GPU machine whose image has torch, transformers, peft and accelerate: install the wheels that
# `make gpu-wheels` put in .whl/ (puzzlegen's other dependencies and TRL), then run tests/gpu_bench.py
# with the given arguments. Each lent-machine call is limited to 10 minutes, so split the modes:
#   bash tests/gpu_session.sh --modes full --json "$OUT/full.json"
#   bash tests/gpu_session.sh --modes lora --json "$OUT/lora.json"
#   bash tests/gpu_session.sh --modes full,full-unshared,full-static --no-trl --json "$OUT/variants.json"
#   bash tests/gpu_session.sh --modes lora --no-trl --check-7b --json "$OUT/7b.json"
set -euo pipefail
cd "$(dirname "$0")/.."
ls .whl/*.whl >/dev/null 2>&1 || { echo "no wheels in .whl/: run make gpu-wheels first (and carry .whl)"; exit 2; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site NO_ALBUMENTATIONS_UPDATE=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec python3 tests/gpu_bench.py "$@"
