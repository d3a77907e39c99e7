"""Benchmark 1: the paper's name-only experiment (its Tables 2-3) on real customs rulings.

Data: ../shared/data/ghko99_hscode/dataset.csv (product name -> 10-digit code; codes
left-padded to 10). For each K in --k: the K most frequent codes, a 70:30 split stratified by
code with identical names (case/width/spacing ignored) kept on one side, seeded.

Models, side by side in one run, all on the same split:
  tfidf_svm    char_wb 1-4 + word 1-2 TF-IDF, LinearSVC (model.baseline.TfidfSvm), full 70% train
  w2v_bilstm   the paper: word2vec (gensim, skip-gram) -> BiLSTM (2x256 = 512-d) -> softmax
  ft_bilstm    the paper: fastText (gensim, char 2-5-grams) -> BiLSTM; unseen words get a vector
               from their n-grams (fastText's OOV rule) instead of <unk>
  best         ensemble: geometric mixture of the temperature-calibrated distributions of the
               members named by --ensemble; temperatures and weights chosen on a validation
               split carved from the training part (never on test)
The BiLSTMs train on 90% of the training part; the other 10% (grouped like the test split) is
their validation set (learning curve) and the ensemble's. Embeddings are trained on the
training names plus the names of the codes outside the top K (unlabelled text; no test row).

    python -m benchmarks.bench_names --k 100 200 300

writes benchmarks/out/bench_names.json and benchmarks/out/bench_names.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import (
    OUT_DIR,
    group_stratified_split,
    label_noise,
    load_ghko99_names,
    markdown_table,
    max_rss_mb,
    measure,
    name_key,
    top_codes,
    topk_accuracy,
)

MODELS = ("tfidf_svm", "tfidf_knn", "w2v_bilstm", "ft_bilstm", "ft_subword_bilstm", "best")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_k(top, k: int, args: argparse.Namespace, token_of: dict, kvs: dict) -> dict:
    from benchmarks.text_models import BiLstmClassifier, Ensemble, LstmConfig, knn_scores
    from model.baseline import TfidfSvm

    data = top_codes(top, k)  # the K most frequent codes; rows keep their side of the split
    names = data["name"].tolist()
    labels = data["hscode"].tolist()
    side = data["side"].to_numpy()
    classes = sorted(set(labels))
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[c] for c in labels])
    test_idx = np.flatnonzero(side == "test")
    inner_idx = np.flatnonzero(side == "inner")
    val_idx = np.flatnonzero(side == "val")
    train_idx = np.sort(np.concatenate([inner_idx, val_idx]))
    tr_names = [names[i] for i in train_idx]
    toks = [token_of[n] for n in names]
    pick = lambda idx: [toks[i] for i in idx]
    result: dict = {
        "k": k,
        "rows": len(data),
        "train": len(train_idx),
        "test": len(test_idx),
        "inner_train": len(inner_idx),
        "val": len(val_idx),
        "label_noise": label_noise(names, labels),
        "models": {},
    }
    log(
        f"K={k}: {len(data)} rows, train {len(train_idx)} (inner {len(inner_idx)} + val "
        f"{len(val_idx)}), test {len(test_idx)}"
    )
    test_scores: dict[str, np.ndarray] = {}
    val_scores: dict[str, np.ndarray] = {}

    # --- TF-IDF + linear SVM (full training part), and on the inner part for the ensemble
    with measure() as cost:
        svm = TfidfSvm(seed=args.seed).fit(tr_names, y[train_idx])
        test_scores["tfidf_svm"] = svm.decision_scores([names[i] for i in test_idx])
    with measure() as inner_cost:
        svm_inner = TfidfSvm(seed=args.seed).fit([names[i] for i in inner_idx], y[inner_idx])
        val_scores["tfidf_svm"] = svm_inner.decision_scores([names[i] for i in val_idx])
    with measure() as knn_cost:
        test_scores["tfidf_knn"] = knn_scores(
            svm._features(tr_names),
            y[train_idx],
            svm._features([names[i] for i in test_idx]),
            len(classes),
        )
        val_scores["tfidf_knn"] = knn_scores(
            svm_inner._features([names[i] for i in inner_idx]),
            y[inner_idx],
            svm_inner._features([names[i] for i in val_idx]),
            len(classes),
        )
    result["models"]["tfidf_knn"] = _entry(test_scores["tfidf_knn"], y[test_idx], knn_cost)
    result["models"]["tfidf_svm"] = _entry(test_scores["tfidf_svm"], y[test_idx], cost)
    log(
        f"K={k} tfidf_svm {result['models']['tfidf_svm']['top1']:.4f} / "
        f"{result['models']['tfidf_svm']['top3']:.4f} in {cost.seconds:.0f}s"
    )

    # --- the paper's BiLSTMs
    variants = {
        "w2v_bilstm": ("word2vec", False),
        "ft_bilstm": ("fasttext", False),
        "ft_subword_bilstm": ("fasttext", True),
    }
    for name in args.lstms:
        embedding, subword = variants[name]
        cfg = LstmConfig(
            embedding=embedding,
            subword=subword,
            embed_dim=args.embed_dim,
            hidden=args.hidden,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
        )
        with measure() as cost:
            model = BiLstmClassifier(cfg).fit(
                pick(inner_idx),
                y[inner_idx],
                len(classes),
                keyed_vectors=kvs[embedding],
                inference_tokens=pick(np.concatenate([val_idx, test_idx])),
                val=(pick(val_idx), y[val_idx]),
                log=lambda m, n=name: log(f"K={k} {n}{m}"),
            )
            test_scores[name] = model.logits(pick(test_idx))
        val_scores[name] = model.logits(pick(val_idx))
        entry = _entry(test_scores[name], y[test_idx], cost)
        entry["config"] = dataclasses.asdict(cfg)
        entry["history"] = model.history
        entry["vocab"] = len(model.vocab)
        result["models"][name] = entry
        log(f"K={k} {name} {entry['top1']:.4f} / {entry['top3']:.4f} in {cost.seconds:.0f}s")
        del model

    # --- the ensemble (weights on validation only)
    members = [m for m in args.ensemble if m in val_scores]
    ens = Ensemble.fit([val_scores[m] for m in members], y[val_idx])
    lp = ens.log_probs([test_scores[m] for m in members])
    member_cost = {
        "seconds": sum(result["models"][m]["train_seconds"] for m in members) + inner_cost.seconds,
        "peak_rss_mb": max(result["models"][m]["peak_rss_mb"] for m in members),
    }
    best = _entry(lp, y[test_idx], None)
    best.update(
        {
            "train_seconds": member_cost["seconds"],
            "peak_rss_mb": member_cost["peak_rss_mb"],
            "members": members,
            "weights": dict(zip(members, ens.weights, strict=True)),
            "temperatures": dict(zip(members, ens.temperatures, strict=True)),
        }
    )
    val_lp = ens.log_probs([val_scores[m] for m in members])
    best["val_top1"] = float(np.mean(val_lp.argmax(1) == y[val_idx]))
    result["models"]["best"] = best
    log(f"K={k} best {best['top1']:.4f} / {best['top3']:.4f} weights {best['weights']}")
    return result


def _entry(scores: np.ndarray, y: np.ndarray, cost) -> dict:
    acc = topk_accuracy(scores, y, (1, 3, 5))
    out = {"top1": acc[1], "top3": acc[3], "top5": acc[5]}
    if cost is not None:
        out.update(
            {
                "train_seconds": cost.seconds,
                "peak_rss_mb": cost.peak_rss_mb,
                "rss_growth_mb": cost.rss_growth_mb,
            }
        )
    return out


def to_markdown(report: dict) -> str:
    rows = []
    for res in report["results"]:
        for name in MODELS:
            m = res["models"].get(name)
            if m is None:
                continue
            rows.append(
                [
                    res["k"],
                    name,
                    f"{100 * m['top1']:.2f}",
                    f"{100 * m['top3']:.2f}",
                    f"{100 * m['top5']:.2f}",
                    f"{m['train_seconds']:.0f}",
                    f"{m['peak_rss_mb']:.0f}",
                ]
            )
    header = ["K", "model", "top-1 %", "top-3 %", "top-5 %", "train s", "peak RSS MB"]
    lines = [
        "# Benchmark 1: name-only, ghko99 (paper Tables 2-3)",
        "",
        f"Command: `{report['command']}`  ",
        (
            f"Machine: {report['machine']}; torch threads {report['threads']}; "
            f"total {report['total_seconds']:.0f} s; process max RSS {report['max_rss_mb']:.0f} MB"
        ),
        "",
        markdown_table(header, rows),
        "",
        "Splits and label noise:",
        "",
        markdown_table(
            ["K", "rows", "train", "test", "inner train", "val", "top-1 ceiling (label noise)"],
            [
                [
                    r["k"],
                    r["rows"],
                    r["train"],
                    r["test"],
                    r["inner_train"],
                    r["val"],
                    f"{100 * r['label_noise']['top1_ceiling']:.2f}",
                ]
                for r in report["results"]
            ],
        ),
        "",
        "Ensemble weights (chosen on validation): "
        + "; ".join(
            f"K={r['k']}: "
            + ", ".join(f"{m} {w:.1f}" for m, w in r["models"]["best"]["weights"].items())
            for r in report["results"]
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, nargs="+", default=[100, 200, 300])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--embed-dim", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--lstms",
        nargs="+",
        default=["w2v_bilstm", "ft_subword_bilstm"],
        choices=["w2v_bilstm", "ft_bilstm", "ft_subword_bilstm"],
    )
    parser.add_argument(
        "--ensemble",
        nargs="+",
        default=["tfidf_svm", "tfidf_knn", "w2v_bilstm", "ft_bilstm", "ft_subword_bilstm"],
    )
    parser.add_argument("--tokenizer", default="morph+subword")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)

    import torch

    from model.embeddings import train_embeddings
    from model.tokenize import Tokenizer

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    frame = load_ghko99_names()
    unique = sorted(set(frame["name"]))
    log(f"{len(frame)} rows, {len(unique)} distinct names; tokenizing ({args.tokenizer})")
    token_of = dict(zip(unique, Tokenizer(args.tokenizer).tokenize_many(unique), strict=True))
    # One split, made on the largest K: the smaller Ks are its restriction to their codes (still
    # stratified by code, identical names on one side), so every K shares one test set family
    # and the embeddings are trained once, on every name outside that test set.
    top = top_codes(frame, max(args.k))
    names, labels = top["name"].tolist(), top["hscode"].tolist()
    train_idx, test_idx = group_stratified_split(names, labels, test_size=0.3, seed=args.seed)
    _, val_pos = group_stratified_split(
        [names[i] for i in train_idx], [labels[i] for i in train_idx], 0.1, seed=args.seed + 1
    )
    side = np.full(len(top), "inner", dtype=object)
    side[test_idx] = "test"
    side[train_idx[val_pos]] = "val"
    top["side"] = side
    test_keys = {name_key(names[i]) for i in test_idx}
    corpus = [token_of[n] for n in unique if name_key(n) not in test_keys]
    kinds = {"word2vec" if m == "w2v_bilstm" else "fasttext" for m in args.lstms}
    kvs, embed_cost = {}, {}
    for kind in sorted(kinds):
        with measure() as cost:
            kvs[kind] = train_embeddings(
                corpus, kind=kind, dim=args.embed_dim, epochs=10, seed=args.seed, workers=1
            )
        embed_cost[kind] = {"seconds": cost.seconds, "peak_rss_mb": cost.peak_rss_mb}
        log(f"{kind} embeddings on {len(corpus)} names in {cost.seconds:.0f}s")
    results = [run_k(top, k, args, token_of, kvs) for k in sorted(args.k)]
    for res in results:
        for name, entry in res["models"].items():
            kind = {"w2v_bilstm": "word2vec"}.get(name, "fasttext")
            if "bilstm" in name:
                entry["embedding_seconds"] = embed_cost[kind]["seconds"]
    report = {
        "command": "python -m benchmarks.bench_names " + " ".join(argv or sys.argv[1:]),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip()
        + f", {__import__('os').cpu_count()} cores",
        "threads": args.threads,
        "total_seconds": time.perf_counter() - t0,
        "max_rss_mb": max_rss_mb(),
        "embeddings": {"corpus_names": len(corpus), **embed_cost},
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_names.json").write_text(json.dumps(report, indent=1, default=float))
    md = to_markdown(report)
    (args.out / "bench_names.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
