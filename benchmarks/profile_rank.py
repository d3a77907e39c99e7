"""Where scoring's model time goes: each stage of ``HSModel.rank`` timed on a saved model.

    python -m benchmarks.profile_rank --model-dir DIR --n 20000 [--batch-size 2000]

``DIR`` is a saved model, e.g. the champion ``hscode train --top-codes 100 --inputs title``
wrote (``hscode models list`` shows its path; ``benchmarks.bench_cli`` keeps one per seed
under its data dir). The requests are real ghko99 names, unique (a model suffix on
repeats, as ``benchmarks.bench_score``), scored in batches as scoring does (no database).
Each stage's time is exclusive (a member's time excludes the sentence encoder's inside it):
the sentence encoder, the network's tokenisation and forward pass, each member's scores,
the precedent search, the familiarity, and the rest (mixture, calibration, top-k, records).
``svm alone`` is the TF-IDF + SVM member's own time: the peer's scoring cost in the same
run. Writes ``benchmarks/out/profile_rank.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.bench_score import OUT_DIR, _request_titles


class StageTimer:
    """Exclusive wall time per stage: time inside a nested stage counts only there."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list[Any]] = []

    def wrap(self, stage: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            if self._stack:  # pause the enclosing stage
                outer = self._stack[-1]
                self.seconds[outer[0]] += time.perf_counter() - outer[1]
            self._stack.append([stage, time.perf_counter()])
            try:
                return fn(*args, **kwargs)
            finally:
                name, start = self._stack.pop()
                self.seconds[name] += time.perf_counter() - start
                self.calls[name] += 1
                if self._stack:
                    self._stack[-1][1] = time.perf_counter()

        return timed


def instrument(model: Any, timer: StageTimer) -> None:
    """Wrap the stages of ``model.rank`` (instance attributes: nothing global changes but the
    process-wide sentence encoder's package call)."""
    from model.sentence import get_encoder

    network = model.network
    network.encode = timer.wrap("network: tokenise", network.encode)
    network.run = timer.wrap("network: forward", network.run)
    for name, member in model.members.items():
        if str(name) != "network":
            member.scores = timer.wrap(f"member: {name}", member.scores)
    model.precedents.search = timer.wrap("precedent search", model.precedents.search)
    if model.familiarity is not None:
        model.familiarity.probability = timer.wrap("familiarity", model.familiarity.probability)
    encoder_name = str(model.config.ensemble.sentence_encoder)
    if encoder_name != "none":
        package = get_encoder(encoder_name)._load()
        package.encode = timer.wrap("sentence encoder", package.encode)
    model.rank = timer.wrap("rest (mixture, calibration, top-k, records)", model.rank)


def profile(model_dir: Path, n: int, batch_size: int, threads: int, seed: int) -> dict[str, Any]:
    import torch

    from model.hsmodel import HSModel
    from model.records import RequestInput

    torch.set_num_threads(threads)
    model = HSModel.load(model_dir)
    titles, source = _request_titles(n, seed)
    # load the lazy parts outside the timing: the encoder's table, and Kiwi, whose first
    # analysis in a process costs about 1-2 s (a Korean text, or the first batch pays it)
    warm = [RequestInput("warm", "warm up 예열")]
    model.rank(warm)
    timer = StageTimer()
    instrument(model, timer)
    start = time.perf_counter()
    for lo in range(0, n, batch_size):
        requests = [RequestInput(f"p{i}", t) for i, t in enumerate(titles[lo : lo + batch_size])]
        model.rank(requests, top_k=5, n_precedents=3)
    total = time.perf_counter() - start
    stages = dict(sorted(timer.seconds.items(), key=lambda kv: -kv[1]))
    return {
        "command": "python -m benchmarks.profile_rank "
        f"--model-dir {model_dir} --n {n} --batch-size {batch_size}",
        "model": str(model_dir),
        "members": [str(m) for m in model.members],
        "weights": {str(k): v for k, v in model.weights().items()},
        "n": n,
        "source": source,
        "batch_size": batch_size,
        "torch_threads": threads,
        "cpus": os.cpu_count(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "total_s": round(total, 2),
        "requests_per_s": round(n / total, 1),
        "stages_s": {k: round(v, 2) for k, v in stages.items()},
        "svm_alone_requests_per_s": round(n / stages["member: svm"], 1)
        if "member: svm" in stages
        else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=OUT_DIR / "profile_rank.json")
    args = parser.parse_args(argv)
    report = profile(args.model_dir, args.n, args.batch_size, args.threads, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    width = max(map(len, report["stages_s"]))
    print(f"{report['n']} requests in {report['total_s']} s: {report['requests_per_s']} /s")
    for stage, seconds in report["stages_s"].items():
        share = 100 * seconds / report["total_s"]
        print(f"  {stage:<{width}}  {seconds:8.2f} s  {share:5.1f}%")
    print(f"  the SVM member alone would score {report['svm_alone_requests_per_s']} requests/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
