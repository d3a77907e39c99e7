"""Benchmark 4: calibration (ECE before/after calibration) and the review rule's accuracy
versus coverage, on real names (ghko99, the K most frequent codes), for one or more seeds.

For each seed: the 70:30 grouped split of benchmark 1 (made on this K with this seed); 10% of
the training part (grouped) is the validation set. Scorers:
  pipeline         model.fit.fit with the shipped default ModelConfig (fastText + subword
                   BiLSTM mixed with the TF-IDF SVM and k-NN members), name only. The pipeline
                   splits validation in two stratified parts: early stopping uses one; the
                   mixture is cross-fitted on both parts and the final temperature is fitted on
                   the out-of-fold mixed scores of the whole validation set, then the top-1
                   confidence is Platt-recalibrated on the same scores (ranking kept)
  pipeline_neural  the same fit's network alone (what ensemble="none" trains), temperature
                   and top-label recalibration fitted on the calibration part of validation
  tfidf_svm        TF-IDF + linear SVM margins turned into probabilities by a softmax whose
                   temperature is fitted on the whole validation set (before: temperature 1)
Diagnostics for `pipeline`: ECE with 10/15/20 bins, a bootstrap 90% interval of the test ECE
(its sampling noise), the test ECE with the temperature alone (no top-label step) and under
the temperature either validation part alone would have given, and reliability tables.

    python -m benchmarks.bench_calibration --k 100 --epochs 5 --threads 2 --seeds 13 14

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
    fit_progress,
    group_stratified_split,
    load_ghko99_names,
    log,
    markdown_table,
    max_rss_mb,
    measure,
    top_codes,
)

THRESHOLDS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def reliability(probs: np.ndarray, y: np.ndarray, n_bins: int = 10) -> list[dict]:
    from model.calibrate import reliability_bins

    return reliability_bins(probs.max(1), probs.argmax(1) == y, n_bins)


def _reliability_rows(run: dict) -> list[list]:
    d = run["results"]["pipeline"]["diagnostics"]
    t_only = {b["bin"]: b for b in d["reliability_temperature_only"]}
    final = {b["bin"]: b for b in d["reliability"]}
    rows = []
    for name in sorted(set(t_only) | set(final)):
        row = [run["seed"], name]
        for b in (t_only.get(name), final.get(name)):
            row += (
                [b["n"], f"{b['mean_confidence']:.3f}", f"{b['accuracy']:.3f}"]
                if b
                else [0, "", ""]
            )
        rows.append(row)
    return rows


def run_seed(frame, args: argparse.Namespace, seed: int) -> dict:
    from model.baseline import TfidfSvm
    from model.calibrate import (
        TopLabelCalibrator,
        coverage_curve,
        ece,
        fit_temperature,
        nll,
        softmax,
    )
    from model.config import ModelConfig
    from model.fit import fit
    from model.records import Example
    from model.validation import calibration_split

    data = top_codes(frame, args.k)
    names, labels = data["name"].tolist(), data["hscode"].tolist()
    train_idx, test_idx = group_stratified_split(names, labels, 0.3, seed)
    inner, val = group_stratified_split(
        [names[i] for i in train_idx], [labels[i] for i in train_idx], 0.1, seed + 1
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
    cfg = ModelConfig.from_flat(
        inputs="title",
        epochs=args.epochs,
        device="cpu",
        seed=seed,
        num_threads=args.threads,
        ensemble=args.ensemble,
    )
    log(f"seed {seed} K={args.k}: fitting the pipeline on {len(inner_idx)} names")
    with measure() as cost:
        model = fit(
            [ex[i] for i in inner_idx], [ex[i] for i in val_idx], cfg, fit_progress("pipeline")
        )
    test_ex = [ex[i] for i in test_idx]
    y_test = model.label_indices([e.label for e in test_ex])

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
    logits = model.logits(test_ex)
    cal = model.calibrated(logits)
    temp_only = softmax(logits, model.temperature)
    rng = np.random.default_rng(seed)
    boot = [
        ece(cal[s], y_test[s])
        for s in (rng.integers(0, len(y_test), len(y_test)) for _ in range(200))
    ]
    calib = model.history.get("calibration", {})
    results["pipeline"]["diagnostics"] = {
        "ece_bins": {b: ece(cal, y_test, n_bins=b) for b in (10, 15, 20)},
        "ece_temperature_only": ece(temp_only, y_test),
        "top_calibration": model.top_calibration.to_dict(),
        "ece_bootstrap_90": [float(np.quantile(boot, 0.05)), float(np.quantile(boot, 0.95))],
        "val_calibration": calib,
        "ece_with_part_temperatures": [
            ece(softmax(logits, t), y_test) for t in calib.get("temperature_parts", [])
        ],
        "reliability": reliability(cal, y_test),
        "reliability_temperature_only": reliability(temp_only, y_test),
    }
    results["pipeline"]["ensemble"] = model.history.get("ensemble")
    results["pipeline"]["calibration_split"] = {
        "stop": model.history["n_val_stop"],
        "calibration": model.history["n_val_calibration"],
    }
    log(f"pipeline: { {k: v for k, v in results['pipeline'].items() if k != 'coverage'} }")
    # the network alone, calibrated on the calibration part of the validation set
    val_ex = [ex[i] for i in val_idx]
    _, cal_rows = calibration_split([e.label for e in val_ex], cfg.calibration.share, cfg.seed)
    cal_ex = [val_ex[i] for i in cal_rows]
    neural = copy.copy(model)
    neural.mixture, neural.member_names = None, ()
    cal_logits = neural.neural_logits(cal_ex)
    y_cal = neural.label_indices([e.label for e in cal_ex])
    neural.temperature = fit_temperature(cal_logits, y_cal)
    neural.top_calibration = TopLabelCalibrator.fit(softmax(cal_logits, neural.temperature), y_cal)
    results["pipeline_neural"] = entry(neural, cost.seconds)
    from hscode.recommend import recommend
    from hscode.review import ReviewPolicy
    from model.records import RequestInput

    requests = [RequestInput(str(i), e.title) for i, e in enumerate(test_ex)]
    for name, m in (("pipeline", model), ("pipeline_neural", neural)):
        t1 = time.perf_counter()
        recommend(m, requests, top_k=5, n_precedents=3, policy=ReviewPolicy(0.5))
        results[name]["recommend_per_s"] = len(requests) / (time.perf_counter() - t1)
    log(f"pipeline_neural: top1 {results['pipeline_neural']['top1']:.4f}")

    with measure() as cost:
        svm = TfidfSvm(seed=seed).fit([names[i] for i in inner_idx], y[inner_idx])
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
        f"tfidf_svm: ece {results['tfidf_svm']['ece_before']:.4f} -> "
        f"{results['tfidf_svm']['ece_after']:.4f}"
    )
    return {
        "seed": seed,
        "train": len(inner_idx),
        "val": len(val_idx),
        "test": len(test_idx),
        "results": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[13])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--ensemble", choices=("tfidf+knn", "tfidf", "none"), default="tfidf+knn")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    frame = load_ghko99_names()
    runs = [run_seed(frame, args, seed) for seed in args.seeds]
    report = {
        "command": "python -m benchmarks.bench_calibration " + " ".join(argv or sys.argv[1:]),
        "k": args.k,
        "total_seconds": time.perf_counter() - t0,
        "max_rss_mb": max_rss_mb(),
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_calibration.json").write_text(json.dumps(report, indent=1, default=float))
    lines = [
        f"# Benchmark 4: calibration and review rule, ghko99 names, K={args.k}",
        "",
        f"Command: `{report['command']}`; total {report['total_seconds']:.0f} s",
        "",
        markdown_table(
            [
                "seed",
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
                    run["seed"],
                    n,
                    f"{100 * r['top1']:.2f}",
                    f"{100 * r['top3']:.2f}",
                    f"{r['ece_before']:.4f}",
                    f"{r['ece_after']:.4f}",
                    f"{r['nll_before']:.3f}",
                    f"{r['nll_after']:.3f}",
                    f"{r['temperature']:.3f}",
                ]
                for run in runs
                for n, r in run["results"].items()
            ],
        ),
        "",
        "Diagnostics of `pipeline` (test ECE after calibration):",
        "",
        markdown_table(
            [
                "seed",
                "train/val/test",
                "ECE 10 / 15 / 20 bins",
                "ECE T only",
                "bootstrap 90%",
                "T all val (out-of-fold)",
                "T one part",
                "ECE with T one part",
                "val ECE out-of-fold: raw -> T -> T + top-label (in-sample)",
            ],
            [
                [
                    run["seed"],
                    f"{run['train']}/{run['val']}/{run['test']}",
                    " / ".join(f"{v:.4f}" for v in d["ece_bins"].values()),
                    f"{d['ece_temperature_only']:.4f}",
                    "{:.4f}-{:.4f}".format(*d["ece_bootstrap_90"]),
                    f"{run['results']['pipeline']['temperature']:.3f}",
                    ", ".join(
                        f"{t:.3f}" for t in d["val_calibration"].get("temperature_parts", [])
                    ),
                    ", ".join(f"{v:.4f}" for v in d["ece_with_part_temperatures"]),
                    (
                        f"{d['val_calibration'].get('ece_before', float('nan')):.4f} -> "
                        f"{d['val_calibration'].get('ece_temperature', float('nan')):.4f} -> "
                        f"{d['val_calibration'].get('ece_after', float('nan')):.4f}"
                    ),
                ]
                for run in runs
                for d in [run["results"]["pipeline"]["diagnostics"]]
            ],
        ),
        "",
        (
            "Reliability of `pipeline` on test (10 bins; mean confidence / accuracy), with the "
            "temperature only and with the top-label recalibration:"
        ),
        "",
        markdown_table(
            ["seed", "bin", "T only: n", "conf", "acc", "final: n", "conf", "acc"],
            [row for run in runs for row in _reliability_rows(run)],
        ),
        "",
        (
            "Accuracy versus coverage of the review rule (answer automatically when the calibrated "
            "confidence >= threshold):"
        ),
        "",
    ]
    for run in runs:
        for name, r in run["results"].items():
            lines += [
                f"seed {run['seed']}, {name}:",
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
