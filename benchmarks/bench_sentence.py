"""Benchmark 10: the SVM member with and without the frozen sentence encoder (issue 19).

    python -m benchmarks.bench_sentence --k 100 --seeds 0 1
    python -m benchmarks.bench_sentence --k 100 300 --seeds 1 2 --members

``--members --nearest`` adds the k-NN vote (the former default member) and the nearest case
of each code (``model.nearest``) at sentence weights 0 (TF-IDF only), 0.3, 0.5 and 0.7, each
alone and mixed with the SVM and the sentence head (docs/benchmarks.md section 14).

``--members``: the product's text members on the same split instead of the weights: the
n-gram SVM alone, the former design (the sentence vector appended to the SVM's features,
weight 0.5; skipped for K > 300, where it takes over 19 minutes; so is the min_df 2 row, which
the coefficient budget makes the shipped one there), the sentence head
(``model.sentence.SentenceHead`` with ``ModelConfig``'s defaults) alone, and the SVM and the
head mixed as ``hscode train`` mixes them (``model.calibrate.choose_mixture`` on the
validation part, cross-fitted on its two stratified halves); top-1 / top-3 at 10, 6 and 4
digits on test, and the fit seconds. ``--k 0`` is every code with >= 3 names.

On the ghko99 names of the K most frequent codes: a title-grouped, label-stratified split
(20% test, then 12.5% of the rest as validation: 70 / 10 / 20), per seed. The product's SVM
member (``model.baseline.TfidfSvm`` with the product's ``min_df`` 2) is fitted on the training
part with n-grams only and with the ``use-m3`` sentence vector at several weights; top-1 /
top-3 on validation and test, fit seconds, and the encoder's speed on every distinct name
(cold cache, 2 threads). Then what the precedent threshold does: the share of held-out
names of the K codes and of names of other headings whose nearest training name is below
``ModelConfig.calibration.precedent_min_similarity`` (flagged "unlike any known case"), and
the AUROC of that similarity for known against unknown. Writes
benchmarks/out/bench_sentence.json.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from benchmarks.common import (
    OUT_DIR,
    group_stratified_split,
    load_ghko99_names,
    log,
    markdown_table,
    top_codes,
)

WEIGHTS = (0.25, 0.5, 0.75, 1.0)


def _accuracy(scores: np.ndarray, y: np.ndarray, k: int) -> float:
    top = np.argsort(-scores, axis=1)[:, :k]
    return float(np.mean((top == y[:, None]).any(axis=1)))


def _split(frame, seed: int):
    """(names, labels, classes, class index per name, train, val, test): the title-grouped,
    label-stratified 70 / 10 / 20 split every part of this benchmark uses."""
    names, labels = frame["name"].tolist(), frame["hscode"].tolist()
    rest, test = group_stratified_split(names, labels, test_size=0.2, seed=seed)
    sub_train, sub_val = group_stratified_split(
        [names[i] for i in rest], [labels[i] for i in rest], test_size=0.125, seed=seed
    )
    classes = sorted(set(labels))
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[c] for c in labels])
    return names, labels, classes, y, rest[sub_train], rest[sub_val], test


def run_seed(frame, seed: int, weights: tuple[float, ...]) -> list[dict]:
    from model.baseline import TfidfSvm

    names, _, _, y, train, val, test = _split(frame, seed)
    rows = []
    for encoder, weight in [("none", None), *(("use-m3", w) for w in weights)]:
        t0 = time.perf_counter()
        model = TfidfSvm(
            min_df=2, seed=13, sentence_encoder=encoder, sentence_weight=weight or 0.5
        ).fit([names[i] for i in train], y[train])
        fit_s = time.perf_counter() - t0
        row = {"seed": seed, "encoder": encoder, "weight": weight, "fit_s": fit_s}
        for part, idx in (("val", val), ("test", test)):
            scores = model.decision_scores([names[i] for i in idx])
            row[f"{part}_top1"] = _accuracy(scores, y[idx], 1)
            row[f"{part}_top3"] = _accuracy(scores, y[idx], 3)
        row["n"] = {"train": len(train), "val": len(val), "test": len(test)}
        log(f"seed {seed} {encoder} {weight}: {row}")
        rows.append(row)
    return rows


def _hits(scores: np.ndarray, y: np.ndarray, classes: list[str], k: int, digits: int) -> float:
    top = np.argsort(-scores, axis=1)[:, :k]
    prefix = np.array([c[:digits] for c in classes])
    return float(np.mean((prefix[top] == prefix[y][:, None]).any(axis=1)))


def _nearest_members(scored, svm, text, train, val, test, y, n_classes, labels, cfg) -> None:
    """The k-NN vote (the former default) and the nearest case of each code at several
    sentence weights, alone and mixed with the SVM and the sentence head (on ``svm``'s
    features)."""
    from model.baseline import TfidfKnn
    from model.calibrate import choose_mixture
    from model.nearest import NearestCases
    from model.validation import calibration_split

    t0 = time.perf_counter()
    knn = TfidfKnn(k=cfg.ensemble.knn_k).fit(svm, text(train), y[train], n_classes)
    scored["k-NN vote (former)"] = (
        knn.scores(text(val)), knn.scores(text(test)), time.perf_counter() - t0
    )  # fmt: skip
    shipped = cfg.ensemble.nearest_sentence_weight
    for weight in sorted({0.0, 0.3, 0.5, 0.7, shipped}):
        t0 = time.perf_counter()
        near = NearestCases(str(cfg.ensemble.sentence_encoder), sentence_weight=weight).fit(
            svm, text(train), y[train], n_classes
        )
        what = "TF-IDF only" if weight == 0 else f"sentence weight {weight}"
        scored[f"nearest case, {what}"] = (
            near.scores(text(val)), near.scores(text(test)), time.perf_counter() - t0
        )  # fmt: skip
    parts = calibration_split([labels[i] for i in val], cfg.calibration.share, cfg.seed)
    base = ["n-gram SVM", "sentence head"]
    for third in [k for k in scored if k.startswith(("k-NN", "nearest case"))]:
        names = [*base, third]
        choice = choose_mixture([scored[n][0] for n in names], y[val], parts)
        mark = " (shipped)" if third == f"nearest case, sentence weight {shipped}" else ""
        scored[f"SVM + head + {third}, mixed {choice.mixture.weights}{mark}"] = (
            choice.mixture.log_probs([scored[n][0] for n in names]),
            choice.mixture.log_probs([scored[n][1] for n in names]),
            sum(scored[n][2] for n in names),
        )


def run_members(frame, seed: int, k: int, nearest: bool = False) -> dict:
    """The product's text members and their mixture on one title-grouped 70/10/20 split."""
    from model.baseline import TfidfSvm
    from model.calibrate import choose_mixture
    from model.config import ModelConfig
    from model.sentence import SentenceHead
    from model.validation import calibration_split

    cfg = ModelConfig()
    names, labels, classes, y, train, val, test = _split(frame, seed)
    text = lambda idx: [names[i] for i in idx]
    scored: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}

    def timed(name, fit, score):
        t0 = time.perf_counter()
        model = fit()
        seconds = time.perf_counter() - t0
        scored[name] = (score(model, text(val)), score(model, text(test)), seconds)
        log(f"seed {seed} K={k}: {name} fitted in {seconds:.0f} s")
        return model

    svm_args = {
        "C": cfg.ensemble.c,
        "seed": cfg.seed,
        "min_df": cfg.ensemble.min_df,
        "max_coef_mb": cfg.ensemble.max_coef_mb,
    }
    if 0 < k <= 300:  # at every code the budget makes the shipped SVM min_df 2 anyway
        timed(
            "n-gram SVM, min_df 2 (former)",
            lambda: TfidfSvm(**{**svm_args, "min_df": 2}).fit(text(train), y[train]),
            lambda m, t: m.decision_scores(t),
        )
    svm = timed(
        "n-gram SVM",
        lambda: TfidfSvm(**svm_args).fit(text(train), y[train]),
        lambda m, t: m.decision_scores(t),
    )
    if 0 < k <= 300:
        timed(
            "SVM + appended sentence vector x 0.5 (former)",
            lambda: TfidfSvm(
                **{**svm_args, "min_df": 2}, sentence_encoder="use-m3", sentence_weight=0.5
            ).fit(text(train), y[train]),
            lambda m, t: m.decision_scores(t),
        )
    head_args = {
        "hidden": cfg.ensemble.sentence_hidden,
        "epochs": cfg.ensemble.sentence_epochs,
        "seed": cfg.seed,
    }
    timed(
        "sentence head",
        lambda: SentenceHead(cfg.ensemble.sentence_encoder, **head_args).fit(
            text(train), y[train], len(classes)
        ),
        lambda m, t: m.scores(t),
    )
    svm_val, svm_test, svm_s = scored["n-gram SVM"]
    head_val, head_test, head_s = scored["sentence head"]
    parts = calibration_split([labels[i] for i in val], cfg.calibration.share, cfg.seed)
    choice = choose_mixture([svm_val, head_val], y[val], parts)
    mixed = (
        choice.mixture.log_probs([svm_val, head_val]),
        choice.mixture.log_probs([svm_test, head_test]),
        svm_s + head_s,
    )
    scored[f"SVM + sentence head, mixed {choice.mixture.weights}"] = mixed
    if nearest:
        _nearest_members(scored, svm, text, train, val, test, y, len(classes), labels, cfg)
    rows = []
    for name, (val_scores, test_scores, seconds) in scored.items():
        row = {"seed": seed, "k": k, "model": name, "fit_s": seconds}
        row["val_top1"] = _hits(val_scores, y[val], classes, 1, 10)
        for digits in (10, 6, 4):
            for top in (1, 3):
                row[f"test_top{top}_{digits}"] = _hits(test_scores, y[test], classes, top, digits)
        rows.append(row)
    return {
        "seed": seed,
        "k": k,
        "n": {"train": len(train), "val": len(val), "test": len(test), "codes": len(classes)},
        "single_member": choice.single,
        "rows": rows,
    }


def members_main(args) -> int:
    all_names = load_ghko99_names()
    results = []
    for k in args.k:
        if k > 0:
            frame = top_codes(all_names, k)
        else:
            counts = all_names["hscode"].value_counts()
            frame = all_names[all_names["hscode"].isin(counts[counts >= 3].index)]
        results += [run_members(frame, seed, k, args.nearest) for seed in args.seeds]
    table = []
    for result in results:
        base = next(r for r in result["rows"] if r["model"] == "n-gram SVM")
        for r in result["rows"]:
            table.append(
                [
                    result["k"] or "all",
                    r["seed"],
                    r["model"],
                    f"{100 * r['val_top1']:.2f}",
                    f"{100 * r['test_top1_10']:.2f}",
                    f"{100 * (r['test_top1_10'] - base['test_top1_10']):+.2f}",
                    f"{100 * r['test_top3_10']:.2f}",
                    f"{100 * r['test_top1_6']:.2f}",
                    f"{100 * r['test_top1_4']:.2f}",
                    f"{r['fit_s']:.0f}",
                ]
            )
    print(
        markdown_table(
            [
                "K",
                "seed",
                "members",
                "val top-1",
                "test top-1",
                "vs SVM",
                "test top-3",
                "top-1 @6",
                "top-1 @4",
                "fit s",
            ],
            table,
        )
    )
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "bench_sentence_members.json").write_text(json.dumps(results, indent=2), "utf-8")
    return 0


def familiarity(all_names, frame, seed: int, threshold: float, n_unfamiliar: int = 2000) -> dict:
    """Nearest-training-name similarity in the encoder's space for held-out names of the K
    codes (familiar) and names whose heading is none of theirs (unfamiliar): the share below
    ``threshold`` (what recommend flags "unlike any known case") and the AUROC."""
    import random

    from sklearn.metrics import roc_auc_score

    from model.sentence import get_encoder

    names, labels = frame["name"].tolist(), frame["hscode"].tolist()
    train, test = group_stratified_split(names, labels, test_size=0.2, seed=seed)
    headings = {c[:4] for c in labels}
    outside = sorted(
        {
            n
            for n, c in zip(all_names["name"], all_names["hscode"], strict=True)
            if c[:4] not in headings
        }
    )
    unfamiliar = random.Random(seed).sample(outside, min(n_unfamiliar, len(outside)))
    encoder = get_encoder("use-m3")
    base = encoder.encode([names[i] for i in train])
    near_known = (encoder.encode([names[i] for i in test]) @ base.T).max(axis=1)
    near_unknown = (encoder.encode(unfamiliar) @ base.T).max(axis=1)
    truth = np.r_[np.ones(len(near_known)), np.zeros(len(near_unknown))]
    return {
        "seed": seed,
        "threshold": threshold,
        "familiar_below": float(np.mean(near_known < threshold)),
        "unfamiliar_below": float(np.mean(near_unknown < threshold)),
        "auroc": float(roc_auc_score(truth, np.r_[near_known, near_unknown])),
        "n_familiar": len(near_known),
        "n_unfamiliar": len(near_unknown),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, nargs="+", default=[100])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--weights", type=float, nargs="+", default=list(WEIGHTS))
    parser.add_argument("--familiarity-only", action="store_true", help="skip the SVM fits")
    parser.add_argument(
        "--members", action="store_true", help="the product's text members and their mixture"
    )
    parser.add_argument(
        "--nearest",
        action="store_true",
        help="with --members: also the k-NN vote and the nearest case of each code",
    )
    args = parser.parse_args(argv)
    if args.members:
        return members_main(args)
    if len(args.k) != 1:
        parser.error("--k takes one value without --members")
    args.k = args.k[0]

    from model.sentence import SentenceEncoder

    all_names = load_ghko99_names()
    frame = top_codes(all_names, args.k)
    distinct = sorted(set(frame["name"]))
    t0 = time.perf_counter()
    SentenceEncoder("use-m3").encode(distinct)  # a fresh instance: nothing cached
    encode_s = time.perf_counter() - t0
    rows = (
        []
        if args.familiarity_only
        else [r for seed in args.seeds for r in run_seed(frame, seed, tuple(args.weights))]
    )
    base = {r["seed"]: r for r in rows if r["encoder"] == "none"}
    table = [
        [
            r["seed"],
            r["encoder"] if r["weight"] is None else f"{r['encoder']} x {r['weight']}",
            f"{100 * r['val_top1']:.2f}",
            f"{100 * r['test_top1']:.2f}",
            f"{100 * (r['test_top1'] - base[r['seed']]['test_top1']):+.2f}",
            f"{100 * r['test_top3']:.2f}",
            f"{r['fit_s']:.0f}",
        ]
        for r in rows
    ]
    if table:
        print(
            markdown_table(
                [
                    "seed",
                    "SVM features",
                    "val top-1",
                    "test top-1",
                    "vs n-grams",
                    "test top-3",
                    "fit s",
                ],
                table,
            )
        )
    print(
        f"\nsentence encoder: {len(distinct)} distinct names in {encode_s:.1f} s "
        f"({len(distinct) / encode_s:.0f} names/s, 2 threads, cold cache)"
    )
    from model.config import ModelConfig

    threshold = ModelConfig().calibration.precedent_min_similarity
    familiar = [familiarity(all_names, frame, seed, threshold) for seed in args.seeds]
    print(
        markdown_table(
            ["seed", "known codes: nearest < t", "unknown headings: nearest < t", "AUROC"],
            [
                [
                    f["seed"],
                    f"{100 * f['familiar_below']:.1f}% of {f['n_familiar']}",
                    f"{100 * f['unfamiliar_below']:.1f}% of {f['n_unfamiliar']}",
                    f"{f['auroc']:.3f}",
                ]
                for f in familiar
            ],
        )
        + f"\n(t = precedent_min_similarity = {threshold})"
    )
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = {
        "k": args.k,
        "rows": rows,
        "encode_names_per_s": len(distinct) / encode_s,
        "familiarity": familiar,
    }
    (OUT_DIR / "bench_sentence.json").write_text(json.dumps(out, indent=2), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
