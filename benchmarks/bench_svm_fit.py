"""The one-vs-rest SVM fit on active sets against liblinear's plain fit (issue 18).

``model.baseline.fit_one_vs_rest`` solves each class's binary problem on its own rows, a
random sample of negatives and then every negative its weights score above -1, until no
row outside the set has a loss. This fits both on the same TF-IDF features of real names and
reports their time, held-out top-1 / top-3 and how far their weights are apart:

    python -m benchmarks.bench_svm_fit --threads 2            # add --plain for liblinear's fit

Data: ghko99 names of the codes with at least ``--min-cases`` cases, a grouped stratified
80/20 split (identical names on one side). Writes benchmarks/out/bench_svm_fit.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from benchmarks.common import (
    OUT_DIR,
    group_stratified_split,
    load_ghko99_names,
    log,
    markdown_table,
    measure,
    topk_accuracy,
)
from model.baseline import TfidfSvm, fit_one_vs_rest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--min-cases", type=int, default=3)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--plain", action="store_true", help="also liblinear's plain fit")
    args = parser.parse_args(argv)

    frame = load_ghko99_names()
    counts = frame["hscode"].value_counts()
    frame = frame[frame["hscode"].map(counts) >= args.min_cases].reset_index(drop=True)
    names, labels = frame["name"].tolist(), frame["hscode"].tolist()
    train, test = group_stratified_split(names, labels, 0.2, args.seed)
    svm = TfidfSvm(seed=args.seed, jobs=args.threads)
    svm.fit_vectorizers([names[i] for i in train])
    x = svm.sparse_features([names[i] for i in train])
    x_test = svm.sparse_features([names[i] for i in test]).astype(np.float32)
    y = np.array([labels[i] for i in train])
    log(f"{x.shape[0]} training names x {x.shape[1]} terms, {len(set(y))} codes, {len(test)} test")

    def evaluate(coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray) -> dict:
        index = {c: j for j, c in enumerate(classes)}
        keep = np.array([labels[i] in index for i in test])
        truth = np.array([index.get(labels[i], -1) for i in test])[keep]
        scores = np.asarray(x_test[keep] @ coef.T.astype(np.float32)) + intercept
        acc = topk_accuracy(scores, truth, (1, 3))
        return {"top1": acc[1], "top3": acc[3], "test_rows_of_known_codes": int(keep.sum())}

    runs = {}
    with measure() as cost:
        coef, intercept, classes = fit_one_vs_rest(x, y, svm.C, args.seed, None, args.threads)
    runs["active set"] = {"seconds": cost.seconds, "rss_growth_mb": cost.rss_growth_mb}
    runs["active set"] |= evaluate(coef, intercept, classes)
    log(f"active set: {runs['active set']}")
    if args.plain:
        from sklearn.svm import LinearSVC

        with measure() as cost:
            plain = LinearSVC(C=svm.C, random_state=args.seed).fit(x, y)
        runs["plain liblinear (one thread)"] = {
            "seconds": cost.seconds,
            "rss_growth_mb": cost.rss_growth_mb,
            **evaluate(plain.coef_, plain.intercept_, plain.classes_),
            "max_abs_coef_diff": float(np.abs(plain.coef_ - coef).max()),
            "max_abs_intercept_diff": float(np.abs(plain.intercept_ - intercept).max()),
        }
        log(f"plain: {runs['plain liblinear (one thread)']}")

    report = {
        "command": "python -m benchmarks.bench_svm_fit " + " ".join(argv or sys.argv[1:]),
        "train": int(x.shape[0]),
        "terms": int(x.shape[1]),
        "codes": len(classes),
        "test": len(test),
        "threads": args.threads,
        "runs": runs,
    }
    rows = [
        [
            name,
            f"{r['seconds']:.1f}",
            f"{100 * r['top1']:.2f}",
            f"{100 * r['top3']:.2f}",
            f"{r['rss_growth_mb'] / 1024:.1f}",
            f"{r.get('max_abs_coef_diff', float('nan')):.1e}",
        ]
        for name, r in runs.items()
    ]
    table = markdown_table(
        ["fit", "seconds", "top-1 %", "top-3 %", "memory growth GiB", "max coef diff"], rows
    )
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "bench_svm_fit.json").write_text(json.dumps(report, indent=2))
    (OUT_DIR / "bench_svm_fit.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
