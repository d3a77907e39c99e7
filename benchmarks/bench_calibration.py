"""Benchmark 4: calibration (ECE before/after temperature scaling) and the review rule's
accuracy versus coverage, on real names (ghko99, the K most frequent codes).

Same 70:30 grouped split as benchmark 1; 10% of the training part (grouped) is the
validation set. Scorers:
  pipeline         model.pipeline.fit, the product model (fastText + BiLSTM, name only) with
                   its TF-IDF SVM ensemble member (config ensemble="tfidf", the default). The
                   pipeline splits the validation set itself (stratified halves): one half
                   for early stopping and the mixture weight, the other for the temperature
  pipeline_neural  the same fit's network alone (what ensemble="none" trains: the network
                   does not depend on the ensemble), temperature fitted on the same
                   calibration half
  tfidf_svm        TF-IDF + linear SVM margins turned into probabilities by a softmax whose
                   temperature is fitted on the whole validation set (before: temperature 1)
--ensemble none trains the pipeline with ensemble="none" instead (then pipeline_neural is
that model too).

    python -m benchmarks.bench_calibration --k 100 --epochs 5 --threads 2

writes benchmarks/out/bench_calibration.json and .md.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import (
    OUT_DIR,
    group_stratified_split,
    load_ghko99_names,
    markdown_table,
    max_rss_mb,
    measure,
    top_codes,
)

THRESHOLDS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _progress_log():
    last = [-1]

    def report(done: int, total: int) -> None:
        tenth = 10 * done // max(total, 1)
        if tenth != last[0]:
            last[0] = tenth
            log(f"pipeline fit {done}/{total}")

    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--ensemble", choices=("tfidf", "none"), default="tfidf")
    args = parser.parse_args(argv)

    import torch

    from hscode.recommend import RequestInput
    from model.baseline import TfidfSvm
    from model.calibrate import coverage_curve, ece, fit_temperature, nll, softmax
    from model.pipeline import Example, ModelConfig, calibration_split, fit

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    data = top_codes(load_ghko99_names(), args.k)
    names, labels = data["name"].tolist(), data["hscode"].tolist()
    train_idx, test_idx = group_stratified_split(names, labels, 0.3, args.seed)
    inner, val = group_stratified_split(
        [names[i] for i in train_idx], [labels[i] for i in train_idx], 0.1, args.seed + 1
    )
    inner_idx, val_idx = train_idx[inner], train_idx[val]
    ex = [
        Example(key=str(i), title=n, label=lab)
        for i, (n, lab) in enumerate(zip(names, labels, strict=True))
    ]
    classes = sorted(set(labels))
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[c] for c in labels])
    results: dict = {}

    cfg = ModelConfig(
        inputs="title",
        epochs=args.epochs,
        device="cpu",
        seed=args.seed,
        num_threads=args.threads,
        ensemble=args.ensemble,
    )
    log(f"K={args.k}: fitting the pipeline on {len(inner_idx)} names ({args.epochs} epochs)")
    with measure() as cost:
        model = fit([ex[i] for i in inner_idx], [ex[i] for i in val_idx], cfg, _progress_log())
    test_ex = [ex[i] for i in test_idx]

    def entry(m, seconds: float) -> dict:
        evaluation = m.evaluate(test_ex)
        return {
            **{k: evaluation[k] for k in ("top1", "top3", "top5")},
            **{k: evaluation[k] for k in ("ece_before", "ece_after", "nll_before", "nll_after")},
            "temperature": evaluation["temperature"],
            "coverage": evaluation["coverage"],
            "train_seconds": seconds,
        }

    results["pipeline"] = entry(model, cost.seconds)
    results["pipeline"]["ensemble"] = model.history.get("ensemble")
    results["pipeline"]["calibration_split"] = {
        "stop": model.history["n_val_stop"],
        "calibration": model.history["n_val_calibration"],
    }
    log(f"pipeline: {results['pipeline']}")
    # the network alone, calibrated on the same calibration half of the validation set
    val_ex = [ex[i] for i in val_idx]
    _, cal = calibration_split([e.label for e in val_ex], cfg.calibration_share, cfg.seed)
    cal_ex = [val_ex[i] for i in cal]
    neural = copy.copy(model)
    neural.tfidf = None
    neural.temperature = fit_temperature(
        neural.neural_logits(cal_ex), neural.label_indices([e.label for e in cal_ex])
    )
    results["pipeline_neural"] = entry(neural, cost.seconds)
    requests = [RequestInput(str(i), e.title) for i, e in enumerate(test_ex)]
    for name, m in (("pipeline", model), ("pipeline_neural", neural)):
        t1 = time.perf_counter()
        m.recommend(requests, top_k=5, n_precedents=3, review_threshold=0.5)
        results[name]["recommend_per_s"] = len(requests) / (time.perf_counter() - t1)
    log(f"pipeline_neural: {results['pipeline_neural']}")

    with measure() as cost:
        svm = TfidfSvm(seed=args.seed).fit([names[i] for i in inner_idx], y[inner_idx])
    val_scores = svm.decision_scores([names[i] for i in val_idx])
    test_scores = svm.decision_scores([names[i] for i in test_idx])
    temperature = fit_temperature(val_scores, y[val_idx])
    raw, cal = softmax(test_scores, 1.0), softmax(test_scores, temperature)
    correct = cal.argmax(1) == y[test_idx]
    order = np.argsort(-cal, axis=1, kind="stable")
    results["tfidf_svm"] = {
        "top1": float(correct.mean()),
        "top3": float(np.mean((order[:, :3] == y[test_idx, None]).any(axis=1))),
        "top5": float(np.mean((order[:, :5] == y[test_idx, None]).any(axis=1))),
        "ece_before": ece(raw, y[test_idx]),
        "ece_after": ece(cal, y[test_idx]),
        "nll_before": nll(raw, y[test_idx]),
        "nll_after": nll(cal, y[test_idx]),
        "temperature": temperature,
        "coverage": coverage_curve(cal.max(1), correct, THRESHOLDS),
        "train_seconds": cost.seconds,
    }
    log(
        f"tfidf_svm: ece {results['tfidf_svm']['ece_before']:.4f} -> {results['tfidf_svm']['ece_after']:.4f}"
    )

    report = {
        "command": "python -m benchmarks.bench_calibration " + " ".join(argv or sys.argv[1:]),
        "k": args.k,
        "train": len(inner_idx),
        "val": len(val_idx),
        "test": len(test_idx),
        "total_seconds": time.perf_counter() - t0,
        "max_rss_mb": max_rss_mb(),
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_calibration.json").write_text(json.dumps(report, indent=1, default=float))
    lines = [
        f"# Benchmark 4: calibration and review rule, ghko99 names, K={args.k}",
        "",
        (
            f"Command: `{report['command']}`; train {report['train']}, val {report['val']}, "
            f"test {report['test']}; total {report['total_seconds']:.0f} s"
        ),
        "",
        markdown_table(
            [
                "scorer",
                "top-1 %",
                "top-3 %",
                "ECE before",
                "ECE after",
                "NLL before",
                "NLL after",
                "T",
            ],
            [
                [
                    n,
                    f"{100 * r['top1']:.2f}",
                    f"{100 * r['top3']:.2f}",
                    f"{r['ece_before']:.4f}",
                    f"{r['ece_after']:.4f}",
                    f"{r['nll_before']:.3f}",
                    f"{r['nll_after']:.3f}",
                    f"{r['temperature']:.3f}",
                ]
                for n, r in results.items()
            ],
        ),
        "",
        (
            "Accuracy versus coverage of the review rule (answer automatically when the calibrated "
            "confidence >= threshold):"
        ),
        "",
    ]
    for name, r in results.items():
        lines += [
            f"{name}:",
            "",
            markdown_table(
                ["threshold", "coverage %", "accuracy on covered %"],
                [
                    [
                        p["threshold"],
                        f"{100 * p['coverage']:.1f}",
                        "n/a" if p["n"] == 0 else f"{100 * p['accuracy']:.2f}",
                    ]
                    for p in r["coverage"]
                ],
            ),
            "",
        ]
    md = "\n".join(lines)
    (args.out / "bench_calibration.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
