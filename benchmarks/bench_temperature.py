"""The temperature fit: ``model.calibrate.fit_temperature`` (a bracketed Newton step on 1/T)
against L-BFGS through autograd, the fit it replaced (issue 18).

The mixture fits one temperature per member on every validation part, each over a
[validation rows x codes] matrix (at 100,000 cases about 10,000 x 1,900). Synthetic logits of
that shape, the true code raised by a noisy margin, time both fits on one thread and report
the temperature and the NLL each reaches:

    python -m benchmarks.bench_temperature --rows 8000 --classes 1910

Writes benchmarks/out/bench_temperature.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from benchmarks.common import OUT_DIR, log, markdown_table
from model.calibrate import fit_temperature, nll, softmax


def lbfgs_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The former fit: L-BFGS on log T from T = 1 (strong Wolfe), clipped to [0.05, 20]."""
    x = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(labels)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(x / log_t.exp(), y)
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(np.clip(float(log_t.detach().exp()), 0.05, 20.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--classes", type=int, default=1910)
    parser.add_argument("--scales", type=float, nargs="+", default=[0.5, 1.5, 4.0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    results = []
    for scale in args.scales:
        y = rng.integers(0, args.classes, args.rows)
        logits = rng.normal(0.0, 1.0, (args.rows, args.classes))
        logits[np.arange(args.rows), y] += rng.normal(2.5, 1.5, args.rows)
        logits *= scale
        row: dict[str, float] = {"scale": scale}
        for name, fit in (("newton", fit_temperature), ("lbfgs", lbfgs_temperature)):
            t0 = time.perf_counter()
            t = fit(logits, y)
            row[f"{name}_s"] = time.perf_counter() - t0
            row[f"{name}_T"] = t
            row[f"{name}_nll"] = nll(softmax(logits, t), y)
        log(
            f"scale {scale}: Newton {row['newton_s']:.2f} s T {row['newton_T']:.5f}, "
            f"L-BFGS {row['lbfgs_s']:.2f} s T {row['lbfgs_T']:.5f}"
        )
        results.append(row)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.bench_temperature " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    (OUT_DIR / "bench_temperature.json").write_text(
        json.dumps(
            {"command": command, "rows": args.rows, "classes": args.classes, "results": results},
            indent=2,
        )
    )
    table = markdown_table(
        ["logit scale", "Newton s", "Newton T", "L-BFGS s", "L-BFGS T", "NLL L-BFGS - Newton"],
        [
            [
                f"{r['scale']:g}",
                f"{r['newton_s']:.2f}",
                f"{r['newton_T']:.5f}",
                f"{r['lbfgs_s']:.2f}",
                f"{r['lbfgs_T']:.5f}",
                f"{r['lbfgs_nll'] - r['newton_nll']:.1e}",
            ]
            for r in results
        ],
    )
    (OUT_DIR / "bench_temperature.md").write_text(
        f"# bench_temperature\n\nCommand: `{command}`; {args.rows} x {args.classes} logits, one thread.\n\n{table}\n"
    )
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
