"""Benchmark 2: name + description on the real 2024 rulings (the paper's Tables 4-5 setting).

Data: ../shared/data/kcs_hs_chatbot/HS분류사례.json, HS위원회.json, HS협의회.json (982 cases;
the decision reason states the answer and is never used). Cases with one clean 10-digit
code; labels rolled up to 4 and 6 digits; codes with fewer than --min-cases cases dropped (they
cannot appear in both a training and a test fold). 5-fold CV, stratified by code, identical
names in one fold, seeded (hscode.training.grouped_folds).

Models per fold and level:
  svm_title        TF-IDF + linear SVM on the name
  svm_title_desc   the same on name + description
  bilstm_title     model.fit (the product model: fastText + BiLSTM), name only
  bilstm_title_desc  model.fit, name + description (the paper's Table 5 model)
  ensemble         geometric mixture of svm_title_desc and bilstm_title_desc (weights and
                   temperatures chosen on the validation part of the training folds)

    python -m benchmarks.bench_kcs --levels 4 6 --folds 5

writes benchmarks/out/bench_kcs.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks.common import (
    OUT_DIR,
    SHARED_DATA,
    log,
    markdown_table,
    max_rss_mb,
    measure,
    topk_accuracy,
)

KCS_DIR = SHARED_DATA / "kcs_hs_chatbot"
FILES = ("HS분류사례.json", "HS위원회.json", "HS협의회.json")


def load_kcs(directory: Path = KCS_DIR) -> list[dict]:
    from hscode.hs import parse_hs

    if not directory.is_dir():
        raise FileNotFoundError(f"real data not found at {directory}")
    rows, skipped = [], Counter()
    for name in FILES:
        for rec in json.loads((directory / name).read_text(encoding="utf-8")):
            code = parse_hs(rec.get("hs_code"))
            title = (rec.get("product_name") or "").strip()
            if code.hs10 is None:
                skipped["no_single_hs10"] += 1
                continue
            if not title:
                skipped["no_title"] += 1
                continue
            rows.append(
                {
                    "key": f"{name}:{rec.get('reference_id')}",
                    "title": title,
                    "description": (rec.get("description") or "").strip(),
                    "hs10": code.hs10,
                }
            )
    log(f"kcs: {len(rows)} cases with one 10-digit code; skipped {dict(skipped)}")
    return rows


def run_level(rows: list[dict], level: int, args: argparse.Namespace) -> dict:
    from hscode.training import grouped_folds, grouped_stratified_split
    from model.baseline import TfidfSvm
    from model.calibrate import Ensemble
    from model.config import ModelConfig
    from model.fit import fit
    from model.records import Example

    counts = Counter(r["hs10"][:level] for r in rows)
    keep = [r for r in rows if counts[r["hs10"][:level]] >= args.min_cases]
    labels = [r["hs10"][:level] for r in keep]
    classes = sorted(set(labels))
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[c] for c in labels])
    titles = [r["title"] for r in keep]
    both = [f"{r['title']} . {r['description']}" for r in keep]
    examples = [
        Example(key=r["key"], title=r["title"], description=r["description"], label=lab)
        for r, lab in zip(keep, labels, strict=True)
    ]
    folds = grouped_folds(titles, labels, args.folds, args.seed)
    log(f"level {level}: {len(keep)} cases in {len(classes)} codes with >= {args.min_cases} cases")
    names = ["svm_title", "svm_title_desc", "bilstm_title", "bilstm_title_desc", "ensemble"]
    per_fold: dict[str, list[dict]] = {n: [] for n in names}
    seconds: Counter = Counter()
    for f, test_idx in enumerate(folds):
        test_set = set(test_idx)
        rest = np.array([i for i in range(len(keep)) if i not in test_set])
        tr_pos, val_pos = grouped_stratified_split(
            [titles[i] for i in rest], [labels[i] for i in rest], 0.12, args.seed + f
        )
        tr, va, te = rest[tr_pos], rest[val_pos], np.array(test_idx)
        scores: dict[str, np.ndarray] = {}
        val_scores: dict[str, np.ndarray] = {}
        for name, texts in (("svm_title", titles), ("svm_title_desc", both)):
            with measure() as cost:
                svm = TfidfSvm(seed=args.seed).fit([texts[i] for i in tr], y[tr])
            seconds[name] += cost.seconds
            # columns follow the classes seen in training; map back to all classes
            scores[name] = _full(
                svm.decision_scores([texts[i] for i in te]), svm.classes_, len(classes)
            )
            val_scores[name] = _full(
                svm.decision_scores([texts[i] for i in va]), svm.classes_, len(classes)
            )
        for name, inputs in (("bilstm_title", "title"), ("bilstm_title_desc", "title+description")):
            cfg = ModelConfig.from_flat(
                inputs=inputs,
                epochs=args.epochs,
                device="cpu",
                seed=args.seed,
                embed_dim=args.embed_dim,
                hidden=args.hidden,
                max_len=args.max_len,
                num_threads=args.threads,
                ensemble="none",  # a pure network member: the SVM is its own row
            )
            with measure() as cost:
                model = fit([examples[i] for i in tr], [examples[i] for i in va], cfg)
            seconds[name] += cost.seconds
            col = np.array([index[c] for c in model.labels])
            scores[name] = _full(
                model.logits([examples[i] for i in te]), col, len(classes), idx=True
            )
            val_scores[name] = _full(
                model.logits([examples[i] for i in va]), col, len(classes), idx=True
            )
        seconds["ensemble"] = seconds["svm_title_desc"] + seconds["bilstm_title_desc"]
        ens = Ensemble.fit([val_scores["svm_title_desc"], val_scores["bilstm_title_desc"]], y[va])
        scores["ensemble"] = ens.log_probs([scores["svm_title_desc"], scores["bilstm_title_desc"]])
        for name in names:
            acc = topk_accuracy(scores[name], y[te], (1, 3, 5))
            per_fold[name].append({"top1": acc[1], "top3": acc[3], "top5": acc[5]})
        log(
            f"level {level} fold {f + 1}/{args.folds}: "
            + ", ".join(f"{n} {per_fold[n][-1]['top1']:.3f}" for n in names)
        )
    summary = {
        n: {
            m: {
                "mean": float(np.mean([r[m] for r in per_fold[n]])),
                "std": float(np.std([r[m] for r in per_fold[n]])),
            }
            for m in ("top1", "top3", "top5")
        }
        | {"train_seconds_total": seconds[n]}
        for n in names
    }
    return {
        "level": level,
        "cases": len(keep),
        "classes": len(classes),
        "dropped_cases": len(rows) - len(keep),
        "per_fold": per_fold,
        "summary": summary,
    }


def _full(scores: np.ndarray, classes, n: int, idx: bool = False) -> np.ndarray:
    """Scores over all ``n`` classes (classes unseen in training get a very low score)."""
    out = np.full((scores.shape[0], n), -1e4, dtype=np.float64)
    out[:, np.asarray(classes, dtype=np.int64)] = scores
    return out


def to_markdown(report: dict) -> str:
    rows = []
    for res in report["results"]:
        for name, s in res["summary"].items():
            rows.append(
                [
                    res["level"],
                    name,
                    f"{100 * s['top1']['mean']:.2f} ± {100 * s['top1']['std']:.2f}",
                    f"{100 * s['top3']['mean']:.2f} ± {100 * s['top3']['std']:.2f}",
                    f"{s['train_seconds_total']:.0f}",
                ]
            )
    return (
        "\n".join(
            [
                "# Benchmark 2: name + description, kcs 2024 rulings, 5-fold CV",
                "",
                (
                    f"Command: `{report['command']}`; total {report['total_seconds']:.0f} s; "
                    f"max RSS {report['max_rss_mb']:.0f} MB"
                ),
                "",
                "Cases per level: "
                + "; ".join(
                    f"{r['level']}-digit: {r['cases']} cases, {r['classes']} codes "
                    f"({r['dropped_cases']} cases of rarer codes dropped)"
                    for r in report["results"]
                ),
                "",
                markdown_table(
                    ["digits", "model", "top-1 % (mean ± sd)", "top-3 %", "train s (all folds)"],
                    rows,
                ),
            ]
        )
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[4, 6])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--min-cases", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--embed-dim", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--max-len", type=int, default=96)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows = load_kcs()
    results = [run_level(rows, level, args) for level in args.levels]
    report = {
        "command": "python -m benchmarks.bench_kcs " + " ".join(argv or sys.argv[1:]),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "total_seconds": time.perf_counter() - t0,
        "max_rss_mb": max_rss_mb(),
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_kcs.json").write_text(json.dumps(report, indent=1, default=float))
    md = to_markdown(report)
    (args.out / "bench_kcs.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
