#!/usr/bin/env bash
# The GPU path, proven in one run on a CUDA machine (issue 18). Run from the repository root
# with the project installed (make install) and ../shared/data present:
#
#     benchmarks/gpu_check.sh [OUT_DIR]        # default: var/bench/gpu
#
# 1. the CUDA facts (device, torch, bf16);
# 2. the tests marked gpu (pytest -m gpu): fit on CUDA, load and score on the CPU;
# 3. the path users run on CUDA: benchmarks.bench_cli at K = 100, seed 1 (hscode cases
#    import -> hscode train --device cuda -> hscode predict), against TF-IDF + SVM on the
#    same rows, with its train and predict seconds; then the same on the CPU for the ratio.
#    The recipe is the default network size (the CPU benchmarks use --epochs 6 --hidden 128
#    --batch-size 128 to fit 2 cores; the GPU has room for the default).
# Everything it prints is also written under OUT_DIR (gpu_check.log and the JSON reports).
set -euo pipefail
out="${1:-var/bench/gpu}"
mkdir -p "$out"
exec > >(tee "$out/gpu_check.log") 2>&1
py="${PYTHON:-python}"
"$py" - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device: this check needs one"
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__,
      "| bf16:", torch.cuda.is_bf16_supported())
PY
"$py" -m pytest -q -m gpu tests -p no:cacheprovider
for device in cuda cpu; do
    "$py" -m benchmarks.bench_cli --k 100 --seeds 1 --threads "$(nproc)" \
        --train-args "--device $device" --out "$out/bench_cli_$device.json"
done
echo "gpu check done: $out"
