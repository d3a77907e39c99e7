"""Goods the model does not know: are they sent to review? (issue 15)

    python -m benchmarks.bench_familiarity --k 100 --seeds 1

Data: ../shared/data/ghko99_hscode/dataset.csv. The names of the K most frequent codes, an
80:20 split with identical names on one side (stratified by code, seeded), the 80% split
again 90:10 into train and validation; ``model.fit`` with the product's recipe (title only).
Then, through the path scoring uses (``HSModel.rank`` -> ``hscode.recommend.recommend`` with
the default ``ReviewPolicy``):

- familiar: the held-out names of the K codes;
- unfamiliar: up to 2,000 names (seeded sample) whose heading (4 digits) is none of the K
  codes' headings: every answer to them is wrong;
- novel: the same from a stable third of those headings that the background lacks too.

The background (``fit(..., background=)``, what ``model.familiarity`` learns from, as
``hscode train`` passes the cases of codes it does not classify): every other name outside
the K codes' headings, minus the unfamiliar sample and the novel headings.
``--no-background`` fits the former model (no familiarity; the nearest-case rule only).

Reported per seed: the review rate on each, why they were flagged, top-1 of the familiar
names answered without review against all of them, and the AUROC (familiar against
unfamiliar) of the confidence, of the nearest-case similarity and of the product's
familiarity score. Per-request features are saved to benchmarks/out/ for analysis.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks.common import (
    OUT_DIR,
    fit_progress,
    group_stratified_split,
    load_ghko99_names,
    log,
    measure,
    top_codes,
)
from hscode.recommend import recommend
from hscode.review import ReviewPolicy
from model.calibrate import top1_ece
from model.config import ModelConfig
from model.fit import fit
from model.records import Example, RequestInput


def _novel(heading: str) -> bool:
    """A stable third of the headings outside the K codes, kept out of the background."""
    import hashlib

    return hashlib.sha256(f"novel:{heading}".encode()).digest()[0] < 86


def _auroc(familiar: np.ndarray, unfamiliar: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    truth = np.r_[np.ones(len(familiar)), np.zeros(len(unfamiliar))]
    return float(roc_auc_score(truth, np.r_[familiar, unfamiliar]))


def _reason(reason: str | None) -> str:
    if reason is None:
        return "answered"
    return reason.split(":")[0].split(" 0")[0].strip()


def run_seed(args: argparse.Namespace, seed: int) -> dict:
    everything = load_ghko99_names()
    frame = top_codes(everything, args.k)
    names, labels = frame["name"].tolist(), frame["hscode"].tolist()
    train_idx, test_idx = group_stratified_split(names, labels, test_size=0.2, seed=seed)
    inner, val = group_stratified_split(
        [names[i] for i in train_idx], [labels[i] for i in train_idx], 0.1, seed=seed + 1
    )
    inner, val = train_idx[inner], train_idx[val]
    headings = {c[:4] for c in labels}
    seen = {names[i] for i in train_idx}
    outside: dict[str, str] = {}
    for n, c in zip(everything["name"], everything["hscode"], strict=True):
        if c[:4] not in headings and n not in seen:
            outside.setdefault(n, c)
    # "novel": headings the training data has nowhere (not even as background)
    novel_heads = {c[:4] for c in outside.values() if _novel(c[:4])}
    pool = sorted(n for n, c in outside.items() if c[:4] not in novel_heads)
    rng = random.Random(seed)
    unfamiliar = rng.sample(pool, min(args.n_unfamiliar, len(pool)))
    novel_pool = sorted(n for n, c in outside.items() if c[:4] in novel_heads)
    novel = rng.sample(novel_pool, min(args.n_unfamiliar, len(novel_pool)))
    held = set(unfamiliar)
    background = (
        [Example(f"b{j}", n, label=outside[n]) for j, n in enumerate(pool) if n not in held]
        if args.background
        else []
    )
    config = ModelConfig.from_flat(
        inputs="title",
        hidden=args.hidden,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=seed,
        device="cpu",
        num_threads=args.threads,
        familiarity_max_flagged=args.max_flagged,
    )
    train = [Example(f"n{i}", names[i], label=labels[i]) for i in inner]
    valid = [Example(f"n{i}", names[i], label=labels[i]) for i in val]
    with measure() as cost:
        model = fit(
            train, valid, config, fit_progress(f"K={args.k} seed {seed}"), background=background
        )
    model.set_precedents(train + valid)
    if args.save_model:  # for analysis without refitting
        model.save(OUT_DIR / f"familiarity_model_k{args.k}_seed{seed}")
        (OUT_DIR / f"familiarity_texts_k{args.k}_seed{seed}.json").write_text(
            json.dumps(
                {
                    "train": [names[i] for i in inner],
                    "train_labels": [labels[i] for i in inner],
                    "familiar": [names[i] for i in test_idx],
                    "familiar_labels": [labels[i] for i in test_idx],
                    "unfamiliar": unfamiliar,
                },
                ensure_ascii=False,
            ),
            "utf-8",
        )
    policy = ReviewPolicy(args.threshold, args.precedent_vote)

    def answer(texts: list[str]) -> tuple[list, list]:
        requests = [RequestInput(f"r{j}", t) for j, t in enumerate(texts)]
        rankings = model.rank(requests, top_k=5, n_precedents=3)
        recs = recommend(model, requests, top_k=5, n_precedents=3, policy=policy)
        return rankings, recs

    known_texts = [names[i] for i in test_idx]
    known_rank, known_recs = answer(known_texts)
    unknown_rank, unknown_recs = answer(unfamiliar)
    novel_rank, novel_recs = answer(novel)
    flagged_novel = np.array([r.review for r in novel_recs])
    truth = [labels[i] for i in test_idx]
    right = np.array([r.candidates[0].hs10 == t for r, t in zip(known_recs, truth, strict=True)])
    flagged_known = np.array([r.review for r in known_recs])
    flagged_unknown = np.array([r.review for r in unknown_recs])

    def feature(rankings: list, name: str) -> np.ndarray:
        if name == "confidence":
            return np.array([r.confidence for r in rankings])
        if name == "nearest_similarity":
            return np.array([r.nearest_similarity or 0.0 for r in rankings])
        if name == "familiarity":
            return np.array([r.familiarity or 0.0 for r in rankings])
        raise KeyError(name)

    aurocs = {
        name: _auroc(feature(known_rank, name), feature(unknown_rank, name))
        for name in ("confidence", "nearest_similarity", "familiarity")
    }
    answered = ~flagged_known
    result = {
        "seed": seed,
        "k": args.k,
        "threshold": args.threshold,
        "precedent_vote": args.precedent_vote,
        "max_flagged": args.max_flagged,
        "n_familiar": len(known_recs),
        "n_unfamiliar": len(unknown_recs),
        "review_familiar": float(flagged_known.mean()),
        "review_unfamiliar": float(flagged_unknown.mean()),
        "review_novel": float(flagged_novel.mean()),
        "n_novel": len(novel_recs),
        "n_background": len(background),
        "auroc_novel": {
            name: _auroc(feature(known_rank, name), feature(novel_rank, name))
            for name in ("confidence", "nearest_similarity", "familiarity")
        },
        "familiarity_fit": model.history.get("familiarity"),
        "top1_familiar_all": float(right.mean()),
        # the served confidence (scaled by familiarity below the floor) on the familiar names
        "ece_familiar": top1_ece(feature(known_rank, "confidence"), right),
        "top1_familiar_answered": float(right[answered].mean()) if answered.any() else None,
        "answered_familiar": float(answered.mean()),
        "auroc": aurocs,
        "reasons_familiar": dict(Counter(_reason(r.review_reason) for r in known_recs)),
        "reasons_unfamiliar": dict(Counter(_reason(r.review_reason) for r in unknown_recs)),
        "reasons_novel": dict(Counter(_reason(r.review_reason) for r in novel_recs)),
        "fit_seconds": cost.seconds,
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(
        OUT_DIR / f"bench_familiarity_seed{seed}.npz",
        **{
            f"{side}_{name}": feature(rank, name)
            for side, rank in (("known", known_rank), ("unknown", unknown_rank))
            for name in ("confidence", "nearest_similarity", "familiarity")
        },
        known_right=right,
        known_flagged=flagged_known,
        unknown_flagged=flagged_unknown,
    )
    log(json.dumps(result, ensure_ascii=False))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--n-unfamiliar", type=int, default=2000)
    parser.add_argument(
        "--threshold", type=float, default=ReviewPolicy().threshold, help="ReviewPolicy threshold"
    )
    parser.add_argument(
        "--precedent-vote", action="store_true", help="the review rule's precedent vote on"
    )
    parser.add_argument(
        "--max-flagged",
        type=float,
        default=ModelConfig().calibration.familiarity_max_flagged,
        help="familiarity floor: this share of validation below it",
    )
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--no-background",
        dest="background",
        action="store_false",
        help="fit without the background (the former model: no familiarity)",
    )
    parser.add_argument("--save-model", action="store_true", help="keep each seed's model")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "bench_familiarity.json")
    args = parser.parse_args(argv)
    results = [run_seed(args, seed) for seed in args.seeds]
    print(
        "| seed | familiar flagged | unfamiliar flagged | novel flagged "
        "| top-1 familiar (all / answered) | AUROC confidence | AUROC nearest "
        "| AUROC familiarity | AUROC familiarity, novel |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        a = r["auroc"]
        print(
            f"| {r['seed']} | {100 * r['review_familiar']:.1f}% of {r['n_familiar']} "
            f"| {100 * r['review_unfamiliar']:.1f}% of {r['n_unfamiliar']} "
            f"| {100 * r['review_novel']:.1f}% of {r['n_novel']} "
            f"| {100 * r['top1_familiar_all']:.2f} / {100 * (r['top1_familiar_answered'] or 0):.2f} "
            f"| {a['confidence']:.3f} | {a['nearest_similarity']:.3f} | {a['familiarity']:.3f} "
            f"| {r['auroc_novel']['familiarity']:.3f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
