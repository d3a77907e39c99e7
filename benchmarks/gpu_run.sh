#!/usr/bin/env bash
# The last call of benchmarks/gpu_bundle.sh's parts, on the CUDA machine (copied there as
# .gpu/pN/run.sh): join the staged parts (/root/stage) and this call's own, check the checksum,
# install the packages the image lacks into /tmp/site (numpy 2.4 only if the image's fails the
# smoke test), put the names data at ../shared/data, then run benchmarks/gpu_check.sh into $OUT.
# DEVICES (default "cuda"), KS (default "100 all") and BUDGET (seconds from the start, default
# 540) go to gpu_check.sh as GPU_CHECK_DEVICES, GPU_CHECK_K and GPU_CHECK_DEADLINE.
set -uo pipefail
[ -n "${OUT:-}" ] || { echo "OUT (the folder for the results) is not set"; exit 2; }
T0=$(date +%s)
here="$(cd "$(dirname "$0")" && pwd)"
stage=/root/stage; mkdir -p $stage; cp "$here"/payload.part.* $stage/
ls -l $stage
cat $stage/payload.part.* >/tmp/payload.tgz
(cd /tmp && sha256sum -c "$here/payload.sha256") || { echo "payload checksum differs"; exit 3; }
rm -rf /tmp/pay && mkdir -p /tmp/pay && tar -xzf /tmp/payload.tgz -C /tmp/pay || exit 3
pip_target() { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$@"; }
pip_target /tmp/site /tmp/pay/wheels/*.whl || exit 4
cp -r /tmp/pay/kiwipiepy_model /tmp/site/
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
# never replace what is there: ../shared beside a checkout is the real data
if [ ! -e ../shared/data/ghko99_hscode/dataset.csv ]; then
    mkdir -p ../shared/data && cp -r /tmp/pay/data/ghko99_hscode ../shared/data/
fi
smoke() {
    python3 - <<'PY'
import numpy, torch, gensim, sklearn, pandas
from gensim.models import FastText
FastText(sentences=[["a", "b", "c"]] * 20, vector_size=8, min_count=1, epochs=1, workers=1)
from sklearn.svm import LinearSVC
LinearSVC().fit(numpy.random.rand(20, 3), [0, 1] * 10)
from model.tokenize import tokenize_texts
print("tokens:", tokenize_texts(["냉동 돼지고기 삼겹살 frozen pork"]))
from model.sentence import get_encoder
print("sentence:", get_encoder("use-m3").encode(["냉동 돼지고기"]).shape)
import hscode.settings, model.fit, hscode.training
print("smoke ok: numpy", numpy.__version__, "torch", torch.__version__, "gensim", gensim.__version__,
      "pandas", pandas.__version__, "sklearn", sklearn.__version__)
PY
}
if ! smoke; then
    echo "smoke failed with the image's numpy: retrying with the bundled one"
    pip_target /tmp/np /tmp/pay/npwheel/*.whl || exit 4
    export PYTHONPATH=/tmp/np:/tmp/site
    smoke || exit 5
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
echo "setup took $(($(date +%s) - T0))s"
GPU_CHECK_DEVICES="${DEVICES:-cuda}" GPU_CHECK_K="${KS:-100 all}" GPU_CHECK_WORK=/tmp/gpuwork \
    GPU_CHECK_DEADLINE=$((T0 + ${BUDGET:-540})) PYTHON=python3 benchmarks/gpu_check.sh "$OUT"
