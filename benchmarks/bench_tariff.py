"""Training on today's codes: decided codes against the current tariff (issue 14).

    python -m benchmarks.bench_tariff --k 300 --epochs 6 --hidden 128 --batch-size 128

Data: ../shared/data/ghko99_hscode/dataset.csv (names and their decided codes), the current
edition ../shared/data/arang0105_hskcodechecker/hsk_codes.csv and the correlations
../shared/data/hs_correlations/hs2022_correlations.csv. The K most frequent decided codes; a
70:30 split stratified by code with identical names on one side (seeded). Every test name is
judged against today's codes: right when the code is its current code, or any code of its
set when its decided code was split or moved (``hscode.code_status``).

- ``before``: ``model.fit`` on the decided codes, as the product trained until now;
- ``before + check``: the same model with scoring's tariff check (``hscode.recommend``'s
  ``CodeCheck``: codes outside the current edition are skipped, the next ones move up);
- ``after``: ``model.fit`` on today's codes: remapped names as their successor, split and
  moved ones as partial labels (their set), names with no current code dropped.

Reported per model: top-1 / top-3 at 10, 6 and 4 digits on all test names, top-1 on the
names whose code was split or moved, and the share of recommended codes (every rank of the
top 5) that are current. Writes benchmarks/out/bench_tariff.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.common import (
    OUT_DIR,
    SHARED_DATA,
    fit_progress,
    group_stratified_split,
    load_ghko99_names,
    log,
    measure,
    top_codes,
)
from hscode.code_status import CodeStatus, CurrentTariff, code_statuses
from model.config import ModelConfig
from model.fit import fit
from model.records import Example


def current_tariff() -> CurrentTariff:
    return CurrentTariff.from_files(
        "hsk-2026",
        SHARED_DATA / "arang0105_hskcodechecker" / "hsk_codes.csv",
        SHARED_DATA / "hs_correlations" / "hs2022_correlations.csv",
    )


def judge(probs: np.ndarray, labels: list[str], accepted: list[tuple[str, ...]], current) -> dict:
    """Accuracy against today's codes (10/6/4 digits), and the share of current codes."""
    ranked = np.argsort(-probs, axis=1, kind="stable")
    top = [[labels[j] for j in row[:5]] for row in ranked]
    out: dict[str, float] = {}
    for digits in (10, 6, 4):
        sets = [{c[:digits] for c in acc} for acc in accepted]
        for k in (1, 3):
            hits = [any(c[:digits] in s for c in t[:k]) for t, s in zip(top, sets, strict=True)]
            out[f"top{k}@{digits}"] = float(np.mean(hits))
    out["share_current_top5"] = float(np.mean([c in current for t in top for c in t]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--k", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT_DIR / "bench_tariff.json")
    args = parser.parse_args(argv)
    tariff = current_tariff()
    data = top_codes(load_ghko99_names(), args.k)
    names, decided = data["name"].tolist(), data["hscode"].tolist()
    statuses = code_statuses(decided, tariff)
    train_idx, test_idx = group_stratified_split(names, decided, 0.3, seed=args.seed)
    inner, val = group_stratified_split(
        [names[i] for i in train_idx], [decided[i] for i in train_idx], 0.1, seed=args.seed + 1
    )
    inner, val = train_idx[inner], train_idx[val]
    count = lambda idx, s: sum(statuses[i].status == s for i in idx)
    log(
        f"K={args.k}: {len(names)} names; test {len(test_idx)}, of which "
        + ", ".join(f"{s} {count(test_idx, s)}" for s in CodeStatus)
    )

    def decided_example(i: int) -> Example:
        return Example(f"n{i}", names[i], label=decided[i])

    def today_example(i: int) -> Example | None:
        st = statuses[i]
        if st.status == CodeStatus.UNKNOWN:
            return None
        if len(st.candidates) == 1:
            return Example(f"n{i}", names[i], label=st.candidates[0])
        return Example(f"n{i}", names[i], label=decided[i], candidates=st.candidates)

    accepted = [statuses[i].candidates or (decided[i],) for i in test_idx]
    judged = [j for j, i in enumerate(test_idx) if statuses[i].status != CodeStatus.UNKNOWN]
    changed = [
        j for j in judged if statuses[test_idx[j]].status in (CodeStatus.SPLIT, CodeStatus.MOVED)
    ]
    config = ModelConfig.from_flat(
        inputs="title",
        hidden=args.hidden,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        device="cpu",
        num_threads=args.threads,
    )
    test_ex = [Example(f"n{i}", names[i]) for i in test_idx]
    results: dict[str, dict] = {}
    runs = {
        "before": ([decided_example(i) for i in inner], [decided_example(i) for i in val]),
        "after": (
            [e for e in (today_example(i) for i in inner) if e is not None],
            [e for e in (today_example(i) for i in val) if e is not None and not e.candidates],
        ),
    }
    for name, (train, valid) in runs.items():
        with measure() as cost:
            model = fit(train, valid, config, fit_progress(f"K={args.k} {name}"))
        probs = model.predict_proba(test_ex)
        variants = {name: probs}
        if name == "before":  # scoring's check: codes outside the edition skipped
            keep = np.array([c in tariff.codes for c in model.labels])
            variants["before + check"] = np.where(keep[None, :], probs, -1.0)
        for label, p in variants.items():

            def sub(rows: list[int], p: np.ndarray = p, classes: list[str] = model.labels):
                return judge(p[rows], classes, [accepted[j] for j in rows], tariff.codes)

            results[label] = sub(judged) | {
                "split_or_moved_n": len(changed),
                "split_or_moved_top1@10": sub(changed)["top1@10"] if changed else None,
                "train_seconds": round(cost.seconds, 1),
                "classes": len(model.labels),
            }
            log(f"{label}: {json.dumps(results[label])}")
    out = {
        "command": " ".join(["python -m benchmarks.bench_tariff", *(argv or sys.argv[1:])]),
        "k": args.k,
        "test_names_judged": len(judged),
        "test_names_without_a_current_code": len(test_idx) - len(judged),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
