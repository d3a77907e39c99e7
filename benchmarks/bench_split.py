"""Is the gap to the paper's 85% the split? TF-IDF+SVM on a grouped vs a plain random split.

Benchmark 1 keeps identical names on one side of its 70:30 split; the paper used a plain
70:30 split. If near-duplicate names leaking into the test set explained the paper's higher
figures, a plain random split on the same data would score much higher. This measures it on
ghko99 with the same classifier and seeds, for K = 100 / 200 / 300:

    python -m benchmarks.bench_split --k 100 200 300 --seeds 13 14 15

writes benchmarks/out/bench_split.json and .md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
from sklearn.model_selection import train_test_split

from benchmarks.common import (
    OUT_DIR,
    group_stratified_split,
    load_ghko99_names,
    markdown_table,
    top_codes,
    topk_accuracy,
)
from hscode.text import title_key
from model.baseline import TfidfSvm


def run(names: list[str], labels: list[str], split: str, seed: int) -> dict:
    if split == "grouped":
        train_idx, test_idx = group_stratified_split(names, labels, 0.3, seed)
    else:
        train_idx, test_idx = train_test_split(
            np.arange(len(names)), test_size=0.3, stratify=labels, random_state=seed
        )
    train_keys = {title_key(names[i]) for i in train_idx}
    seen = float(np.mean([title_key(names[i]) in train_keys for i in test_idx]))
    t0 = time.perf_counter()
    model = TfidfSvm().fit([names[i] for i in train_idx], [labels[i] for i in train_idx])
    scores = model.decision_scores([names[i] for i in test_idx])
    index = {c: j for j, c in enumerate(model.classes_)}
    y = np.array([index[labels[i]] for i in test_idx])
    acc = topk_accuracy(scores, y, (1, 3))
    return {
        "split": split,
        "seed": seed,
        "train": len(train_idx),
        "test": len(test_idx),
        "test_names_seen_in_train": seen,
        "top1": acc[1],
        "top3": acc[3],
        "seconds": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[100, 200, 300])
    parser.add_argument("--seeds", type=int, nargs="+", default=[13, 14, 15])
    args = parser.parse_args(argv)
    frame = load_ghko99_names()
    runs = []
    for k in args.k:
        top = top_codes(frame, k)
        names, labels = top["name"].tolist(), top["hscode"].tolist()
        for split in ("grouped", "random"):
            for seed in args.seeds:
                result = {"k": k, **run(names, labels, split, seed)}
                print(json.dumps(result), file=sys.stderr, flush=True)
                runs.append(result)
    rows = []
    for k in args.k:
        for split in ("grouped", "random"):
            sel = [r for r in runs if r["k"] == k and r["split"] == split]

            def mean_sd(key: str, sel=sel) -> str:
                values = [100 * r[key] for r in sel]
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                return f"{statistics.mean(values):.2f} +- {sd:.2f}"

            rows.append(
                [
                    k,
                    split,
                    len(sel),
                    mean_sd("test_names_seen_in_train"),
                    mean_sd("top1"),
                    mean_sd("top3"),
                ]
            )
    table = markdown_table(
        ["K", "split", "seeds", "test names seen in train %", "top-1 %", "top-3 %"], rows
    )
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "bench_split.json").write_text(
        json.dumps({"args": vars(args), "runs": runs}, indent=2)
    )
    (OUT_DIR / "bench_split.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
