#!/usr/bin/env bash
# The GPU path, proven in one run on a CUDA machine (issue 18). Run from the repository root
# with the project installed (make install) and ../shared/data present:
#
#     benchmarks/gpu_check.sh [OUT_DIR]        # default: var/bench/gpu
#
# 1. the CUDA facts (device, torch, bf16);
# 2. the tests marked gpu (pytest -m gpu): fit on CUDA, load and score on the CPU;
# 3. the path users run: benchmarks.bench_cli at each K in GPU_CHECK_K (default "100"), seed 1
#    (hscode cases import -> hscode train --device D -> hscode predict) for each device D in
#    GPU_CHECK_DEVICES (default "cuda cpu": the CPU leg on the same machine gives the ratio),
#    against TF-IDF + SVM on the same rows, with its train and predict seconds. The recipe is
#    the product's default (20 epochs, 256 units; the 2-core benchmarks shrink it to fit).
# GPU_CHECK_DEADLINE (epoch seconds, optional): each benchmark leg runs under `timeout` until
# then and a leg that cannot start with 60 s left is skipped (said so), for a machine lent for
# a fixed time. Everything printed is also written to OUT_DIR/gpu_check.log, the reports to
# OUT_DIR/bench_cli_k<K>_<D>.{json,md}, and every CLI log (train.log holds the stage times) to
# OUT_DIR/cli_logs.tgz.
set -euo pipefail
out="${1:-var/bench/gpu}"
work="${GPU_CHECK_WORK:-$out/work}"
devices="${GPU_CHECK_DEVICES:-cuda cpu}"
ks="${GPU_CHECK_K:-100}"
deadline="${GPU_CHECK_DEADLINE:-0}"
mkdir -p "$out" "$work"
exec > >(tee "$out/gpu_check.log") 2>&1
py="${PYTHON:-python}"
keep_logs() { (cd "$work" && find . -name '*.log' -print0 | tar -czf - --null -T -) >"$out/cli_logs.tgz" || true; }
trap keep_logs EXIT
"$py" - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device: this check needs one"
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__,
      "| bf16:", torch.cuda.is_bf16_supported())
PY
"$py" -m pytest -q -m gpu tests -p no:cacheprovider || echo "gpu tests FAILED (rc $?)"
for k in $ks; do
    for device in $devices; do
        limit=()
        if [ "$deadline" -gt 0 ]; then
            left=$((deadline - $(date +%s)))
            if [ "$left" -lt 60 ]; then echo "skipped K=$k $device: ${left}s left"; continue; fi
            limit=(timeout "$left")
        fi
        SECONDS=0
        "${limit[@]}" "$py" -m benchmarks.bench_cli --k "$k" --seeds 1 --threads "$(nproc)" \
            --train-args "--device $device" --out "$out/bench_cli_k${k}_$device.json" \
            --work-dir "$work/k${k}_$device" \
            || echo "K=$k $device FAILED or cut (rc $?) after ${SECONDS}s"
    done
done
echo "gpu check done: $out"
