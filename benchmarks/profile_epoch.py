"""One network epoch on the cost benchmark's corpus, and the optimiser's share of it.

    python -m benchmarks.profile_epoch --size 30000 --which companion

The corpus is ``bench_cost``'s (real ghko99 names, perturbed repeats past the real rows),
its codes with >= 3 cases, the first 65% of those rows as the training set. It trains the
main network (``--which main``) or the companion's configuration (``--which companion``) for
one epoch at the cost benchmark's settings (128 units, batch 128, 2 threads) without
validation, and prints the epoch's seconds, the seconds inside ``optimizer.step`` and the
parameter count. docs/benchmarks.md section 19.
"""

from __future__ import annotations

import argparse
import collections
import time
from typing import Any

import torch

from benchmarks.bench_cost import corpus
from model.config import ModelConfig
from model.records import Example
from model.runtime import threads
from model.train_loop import Progress, train_network


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=30_000)
    parser.add_argument("--which", choices=("main", "companion"), default="companion")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    frame, _ = corpus(args.size, args.seed)
    counts = collections.Counter(frame.hscode)
    rows = [(c, n) for c, n in zip(frame.hscode, frame.name, strict=True) if counts[c] >= 3]
    train = [Example(str(i), n, label=c) for i, (c, n) in enumerate(rows)][: int(len(rows) * 0.65)]
    labels = sorted({e.label for e in train})
    config = ModelConfig.from_flat(
        epochs=1, hidden=128, batch_size=128, inputs="title", num_threads=args.threads
    )
    if args.which == "companion":
        config = config.companion_config()

    spent = {"seconds": 0.0, "steps": 0}
    step = torch.optim.AdamW.step

    def timed(self: torch.optim.AdamW, *a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        out = step(self, *a, **k)
        spent["seconds"] += time.perf_counter() - t
        spent["steps"] += 1
        return out

    torch.optim.AdamW.step = timed  # type: ignore[method-assign]
    try:
        with threads(args.threads):
            trained = train_network(
                train, [], config, labels, torch.device("cpu"), Progress(10**9, None)
            )
    finally:
        torch.optim.AdamW.step = step  # type: ignore[method-assign]
    timings = trained.network.history.get("timings", {})
    n_params = sum(p.numel() for p in trained.network.module.parameters())
    print(
        f"size {args.size}, {args.which}: {len(train)} training names, {len(labels)} codes, "
        f"{n_params / 1e6:.1f} M parameters; embeddings {timings.get('embeddings_s', 0):.1f} s, "
        f"epoch {timings.get('train_s', 0):.1f} s, of which optimiser {spent['seconds']:.1f} s "
        f"over {spent['steps']} steps"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
