"""Benchmark 1: the paper's name-only experiment (its Tables 2-3) on real customs rulings.

Data: ../shared/data/ghko99_hscode/dataset.csv (product name -> 10-digit code; codes
left-padded to 10). For each K in --k: the K most frequent codes, a 70:30 split stratified by
code with identical names (case/width/spacing ignored) kept on one side, seeded.

Every row is a model the product code builds, on the same split:
  tfidf_svm          model.baseline.TfidfSvm (char_wb 1-4 + word 1-2 TF-IDF, LinearSVC), trained
                     on the full 70% training part
  w2v_bilstm         model.fit.fit, embedding=word2vec, no subword, ensemble none: the
                     paper's word2vec -> BiLSTM (512-d feature) -> softmax
  ft_subword_bilstm  fastText + subword embedding layer (word + hashed char n-gram vectors,
                     fine-tuned; unseen words get vectors from their n-grams), ensemble none:
                     the companion network of the `best` fit (ModelConfig.companion_config is
                     exactly this config), or its own fit when the mixture weighs it 0 (the
                     fit drops it) or with --models ft_subword_bilstm
  ft_bilstm          the network of the `best` fit alone: fastText-initialised embeddings ->
                     BiLSTM, exactly what ensemble=none trains (the network does not depend on
                     the ensemble; tests/model/test_model_ensemble.py)
  tfidf_knn          the k-NN member of the `best` fit alone (cosine k-NN vote on TF-IDF); no
                     row when the mixture weighs it 0 (the fit drops it)
  best               model.fit.fit with the shipped default ModelConfig (fastText BiLSTM
                     mixed with the fastText-subword companion BiLSTM and the TF-IDF SVM and
                     k-NN members; mixture, temperature and
                     top-label recalibration chosen on validation only), i.e. what `hscode train`
                     ships
The pipeline fits train on 90% of the training part; the other 10% (grouped like the test
split) is their validation set (early stopping, mixture, temperature); the TF-IDF members are
then refitted on the whole training part (ModelConfig.refit_members). The word embeddings are
trained once per kind on the names of every code except the test names (unlabelled text) and
passed to fit (keyed_vectors={kind: vectors}, for the network and the companion).

    python -m benchmarks.bench_names --k 100 200 300

writes benchmarks/out/bench_names.json and benchmarks/out/bench_names.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import (
    OUT_DIR,
    fit_progress,
    group_stratified_split,
    label_noise,
    load_ghko99_names,
    log,
    markdown_table,
    max_rss_mb,
    measure,
    top_codes,
    topk_accuracy,
)
from hscode.text import title_key

MODELS = ("tfidf_svm", "tfidf_knn", "w2v_bilstm", "ft_bilstm", "ft_subword_bilstm", "best")


def config_for(name: str, args: argparse.Namespace):
    """The ModelConfig of a pipeline row: the shipped defaults, sized by the command line."""
    from model.config import ModelConfig

    size = {
        "inputs": "title",
        "embed_dim": args.embed_dim,
        "hidden": args.hidden,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "device": "cpu",
        "num_threads": args.threads,
    }
    if args.lr is not None:
        size["lr"] = args.lr
    if name == "w2v_bilstm":
        return ModelConfig.from_flat(embedding="word2vec", subword=False, ensemble="none", **size)
    if name == "ft_subword_bilstm":
        return ModelConfig.from_flat(embedding="fasttext", subword=True, ensemble="none", **size)
    if name == "best":
        return ModelConfig.from_flat(**size)
    raise ValueError(name)


def run_k(top, k: int, args: argparse.Namespace, kvs: dict) -> dict:
    from model.baseline import TfidfSvm
    from model.encoding import items_of
    from model.fit import fit
    from model.records import Example

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
    ex = [
        Example(key=str(i), title=n, label=lab)
        for i, (n, lab) in enumerate(zip(names, labels, strict=True))
    ]
    pick = lambda idx: [ex[i] for i in idx]
    test_ex = pick(test_idx)
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

    # --- TF-IDF + linear SVM (model.baseline), full training part
    with measure() as cost:
        svm = TfidfSvm(seed=args.seed).fit([names[i] for i in train_idx], y[train_idx])
        scores = svm.decision_scores([names[i] for i in test_idx])
    result["models"]["tfidf_svm"] = _entry(scores, y[test_idx], cost)
    _log_row(k, "tfidf_svm", result["models"]["tfidf_svm"])
    del svm

    # --- pipeline fits
    queue = list(args.models)
    while queue:
        name = queue.pop(0)
        cfg = config_for(name, args)
        with measure() as cost:
            model = fit(
                pick(inner_idx),
                pick(val_idx),
                cfg,
                fit_progress(f"K={k} {name}"),
                keyed_vectors=kvs,
            )
        if list(model.labels) != classes:
            raise RuntimeError(f"K={k} {name}: the model's labels differ from the K codes")
        evaluation = model.evaluate(test_ex)
        entry = _entry(model.logits(test_ex), y[test_idx], cost)
        entry.update(
            {
                "config": cfg.to_dict(),
                "history": model.history,
                "ece_before": evaluation["ece_before"],
                "ece_after": evaluation["ece_after"],
                "temperature": evaluation["temperature"],
                "hs6_top1": evaluation.get("hs6_top1"),
                "hs4_top1": evaluation.get("hs4_top1"),
                "vocab": len(model.network.vocab),
            }
        )
        result["models"][name] = entry
        _log_row(k, name, entry)
        if name == "best":
            # its members alone, on the same test names (same fit, so the same cost)
            neural = _entry(model.neural_logits(test_ex), y[test_idx], cost)
            neural["note"] = "the network of the best fit (what ensemble=none trains)"
            neural["val_top1_history"] = [e.get("val_top1") for e in model.history["epochs"]]
            result["models"]["ft_bilstm"] = neural
            _log_row(k, "ft_bilstm", neural)
            companion = model.member("companion")
            if companion is not None:
                comp = _entry(companion.network.logits(items_of(test_ex)), y[test_idx], cost)
                comp["note"] = "the companion network of the best fit"
                result["models"]["ft_subword_bilstm"] = comp
                _log_row(k, "ft_subword_bilstm", comp)
            elif "ft_subword_bilstm" not in queue:
                queue.append("ft_subword_bilstm")  # weighted 0 and dropped: fit it alone
            knn_member = model.member("knn")
            if knn_member is not None:  # (a k-NN member weighted 0 is dropped: no row)
                texts = [e.title for e in test_ex]
                knn = _entry(knn_member.knn.scores(texts), y[test_idx], cost)
                knn["note"] = "the k-NN member of the best fit (index: full training part)"
                result["models"]["tfidf_knn"] = knn
        del model
    return result


def _log_row(k: int, name: str, entry: dict) -> None:
    log(
        f"K={k} {name} {entry['top1']:.4f} / {entry['top3']:.4f} in "
        f"{entry.get('train_seconds', 0):.0f}s"
    )


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
        "Mixture of `best` (chosen on validation): "
        + "; ".join(
            f"K={r['k']}: "
            + ", ".join(
                f"{m} w {w:.1f} T {t:.3f}"
                for m, w, t in zip(
                    r["models"]["best"]["history"]["ensemble"]["members"],
                    r["models"]["best"]["history"]["ensemble"]["weights"],
                    r["models"]["best"]["history"]["ensemble"]["temperatures"],
                    strict=True,
                )
            )
            + f"; final T {r['models']['best']['temperature']:.3f}, test ECE "
            + f"{r['models']['best']['ece_before']:.4f} -> {r['models']['best']['ece_after']:.4f}"
            for r in report["results"]
            if "best" in r["models"] and "ensemble" in r["models"]["best"]["history"]
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
    parser.add_argument("--lr", type=float, default=None, help="default: ModelConfig's")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--models",
        nargs="+",
        default=["w2v_bilstm", "best"],
        choices=["w2v_bilstm", "ft_subword_bilstm", "best"],
    )
    parser.add_argument(
        "--split-k",
        type=int,
        default=None,
        help="make the split (and the embeddings' test exclusion) on this K (default: the "
        "largest --k), so `--k 100 --split-k 300` gives the K=100 rows of a 100/200/300 run",
    )
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    split_k = max([*args.k, args.split_k or 0])

    import torch

    from model.embeddings import train_embeddings
    from model.tokenize import Tokenizer

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    frame = load_ghko99_names()
    unique = sorted(set(frame["name"]))
    tokenizer = config_for("best", args).network.tokenizer  # the pipeline's tokenizer
    log(f"{len(frame)} rows, {len(unique)} distinct names; tokenizing ({tokenizer})")
    token_of = dict(zip(unique, Tokenizer(tokenizer).tokenize_many(unique), strict=True))
    # One split, made on the largest K: the smaller Ks are its restriction to their codes (still
    # stratified by code, identical names on one side), so every K shares one test set family
    # and the embeddings are trained once, on every name outside that test set.
    top = top_codes(frame, split_k)
    names, labels = top["name"].tolist(), top["hscode"].tolist()
    train_idx, test_idx = group_stratified_split(names, labels, test_size=0.3, seed=args.seed)
    _, val_pos = group_stratified_split(
        [names[i] for i in train_idx], [labels[i] for i in train_idx], 0.1, seed=args.seed + 1
    )
    side = np.full(len(top), "inner", dtype=object)
    side[test_idx] = "test"
    side[train_idx[val_pos]] = "val"
    top["side"] = side
    test_keys = {title_key(names[i]) for i in test_idx}
    corpus = [token_of[n] for n in unique if title_key(n) not in test_keys]
    kinds = {str(config_for(m, args).network.embedding) for m in args.models}
    kvs, embed_cost = {}, {}
    for kind in sorted(kinds):
        with measure() as cost:
            kvs[kind] = train_embeddings(
                corpus, kind=kind, dim=args.embed_dim, epochs=10, seed=args.seed, workers=1
            )
        embed_cost[kind] = {"seconds": cost.seconds, "peak_rss_mb": cost.peak_rss_mb}
        log(f"{kind} embeddings on {len(corpus)} names in {cost.seconds:.0f}s")
    results = []
    for k in sorted(args.k):
        results.append(run_k(top, k, args, kvs))
        _write(args, argv, t0, corpus, embed_cost, results)  # partial results survive a crash
    return 0


def _write(args, argv, t0, corpus, embed_cost, results) -> None:
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
    print(md, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
