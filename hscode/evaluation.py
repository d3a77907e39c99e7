"""Honest evaluation: stable case roles, a leak-free champion comparison, out-of-time figures.

Roles (``assign_roles``) derive from properties of a case that do not change as the dataset
grows, never from a shuffle of today's snapshot:

- a case's title group (identical normalised titles, ``title_key``) gets a fixed number in
  [0, 1) from a hash of the normalised title; below ``test_fraction`` the group is held out
  for test, below ``test_fraction + val_fraction`` for validation, else it trains. A case keeps
  its role as other cases arrive, so a candidate's test cases are test cases of every earlier
  model trained with the same fractions;
- out of time: a group with a case decided within ``recent_days`` of the newest decision date
  is held out for test (the forward-looking test); cases without a decision date are assigned
  by their hash alone, and are counted (``Roles.undated``). When the window would hold more
  than ``MAX_RECENT_SHARE`` of the cases (e.g. every case decided on the same day) there is
  no history to look forward from: the window is not used, and ``Roles.note`` says so;
- a code whose every case would be held out trains on all of them (a model cannot learn a
  code it never sees; counted in ``Roles.kept_for_training``).

The comparison (``compare``) scores champion and candidate only on cases NEITHER used: the
candidate's test cases minus every case the champion learned from (its training, validation,
calibration and precedent cases: the keys of its precedent index). The difference of top-1
hits is paired per case; its 95% interval comes from a paired bootstrap. ``gate`` promotes a
candidate that is not worse with confidence: the interval's lower end at or above
``-margin``.

Inside a role, ``grouped_stratified_split`` (the validation part of each cross-validation
fold) and ``grouped_folds`` (``TrainConfig.folds``) keep identical titles on one side
and every code on both.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from hscode.text import title_key
from model.records import accepted_matrix

ROLE_SALT = "hscode-role-v1"
BOOTSTRAP_RESAMPLES = 2000
MAX_RECENT_SHARE = 0.5


def title_strata(
    titles: Sequence[str], labels: Sequence[str]
) -> tuple[dict[str, list[int]], dict[str, list[str]]]:
    """Rows grouped by normalised title, and each group's key filed under its majority label
    (ties: the smallest label), so a split can keep identical titles on one side."""
    groups: dict[str, list[int]] = defaultdict(list)
    for idx, title in enumerate(titles):
        groups[title_key(title)].append(idx)
    strata: dict[str, list[str]] = defaultdict(list)
    for key, members in groups.items():
        votes = Counter(labels[i] for i in members).most_common()
        strata[min(label for label, n in votes if n == votes[0][1])].append(key)
    return groups, strata


def grouped_stratified_split(
    titles: Sequence[str], labels: Sequence[str], fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """(keep, held_out) indices: ~``fraction`` of each label held out, stratified by label,
    every group of identical titles entirely on one side, and never a label's last group."""
    groups, strata = title_strata(titles, labels)
    rng = random.Random(seed)
    held: list[int] = []
    for label in sorted(strata):
        keys = sorted(strata[label])
        rng.shuffle(keys)
        total = sum(len(groups[k]) for k in keys)
        target, taken = fraction * total, 0
        for key in keys[:-1]:  # the last group always stays: every label keeps training data
            size = len(groups[key])
            if taken + size / 2 > target:
                continue
            held.extend(groups[key])
            taken += size
    held_set = set(held)
    keep = [i for i in range(len(titles)) if i not in held_set]
    return keep, sorted(held_set)


def grouped_folds(
    titles: Sequence[str], labels: Sequence[str], folds: int, seed: int
) -> list[list[int]]:
    """``folds`` disjoint test folds, stratified by label, identical titles in one fold."""
    groups, strata = title_strata(titles, labels)
    rng = random.Random(seed)
    out: list[list[int]] = [[] for _ in range(folds)]
    offset = 0
    for label in sorted(strata):
        keys = sorted(strata[label])
        rng.shuffle(keys)
        for j, key in enumerate(keys):
            out[(offset + j) % folds].extend(groups[key])
        offset += len(keys)  # rotate so small classes do not all start in fold 0
    return [sorted(f) for f in out]


def hash_fraction(key: str) -> float:
    """A fixed number in [0, 1) for a normalised title (the same on every machine and run)."""
    digest = hashlib.sha256(f"{ROLE_SALT}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass
class Roles:
    """Row indices per role, and how they were decided."""

    train: list[int]
    val: list[int]
    test: list[int]
    recent: list[int] = field(default_factory=list)  # test rows held out by decision date
    window: tuple[str, str] | None = None  # the out-of-time window (ISO dates), when used
    undated: int = 0  # rows without a decision date (assigned by hash alone)
    kept_for_training: int = 0  # held-out rows of codes that had no training row
    note: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "train": len(self.train),
            "val": len(self.val),
            "test": len(self.test),
            "test_recent": len(self.recent),
            "recent_window": list(self.window) if self.window else None,
            "undated": self.undated,
            "kept_for_training": self.kept_for_training,
            "note": self.note,
            "rule": (
                "hash of the normalised title (identical titles together); the newest "
                "decisions out of time; codes with no training case keep all theirs"
            ),
        }


def assign_roles(
    titles: Sequence[str],
    labels: Sequence[str],
    dates: Sequence[dt.date | None],
    *,
    test_fraction: float,
    val_fraction: float,
    recent_days: int | None = None,
) -> Roles:
    """Stable train / validation / test roles for rows (see the module docstring)."""
    n = len(titles)
    if not (len(labels) == len(dates) == n):
        raise ValueError("titles, labels and dates must have the same length")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, title in enumerate(titles):
        groups[title_key(title)].append(i)
    dated = [d for d in dates if d is not None]
    window: tuple[dt.date, dt.date] | None = None
    if recent_days and recent_days > 0 and dated:
        newest = max(dated)
        window = (newest - dt.timedelta(days=recent_days - 1), newest)
    note = ""
    if window is not None:
        in_window = sum(1 for d in dated if d >= window[0])
        if in_window > MAX_RECENT_SHARE * n:
            note = (
                f"no out-of-time test: {in_window} of {n} cases fall in the newest "
                f"{recent_days} days of decisions, too few older ones to learn from"
            )
            window = None
    elif recent_days and not dated:
        note = "no out-of-time test: no case has a decision date"
    role = [""] * n
    recent: set[int] = set()
    for key, rows in groups.items():
        u = hash_fraction(key)
        is_recent = window is not None and any(
            dates[i] is not None and dates[i] >= window[0] for i in rows
        )
        if is_recent:
            name = "test"
            recent.update(rows)
        elif u < test_fraction:
            name = "test"
        elif u < test_fraction + val_fraction:
            name = "val"
        else:
            name = "train"
        for i in rows:
            role[i] = name
    trained = {labels[i] for i in range(n) if role[i] == "train"}
    kept = 0
    for i in range(n):
        if role[i] != "train" and labels[i] not in trained:
            role[i] = "train"
            recent.discard(i)
            kept += 1
    return Roles(
        train=[i for i in range(n) if role[i] == "train"],
        val=[i for i in range(n) if role[i] == "val"],
        test=[i for i in range(n) if role[i] == "test"],
        recent=sorted(recent),
        window=(window[0].isoformat(), window[1].isoformat()) if window else None,
        undated=sum(1 for d in dates if d is None),
        kept_for_training=kept,
        note=note,
    )


# ------------------------------------------------------------------ per-case hits


class Scorer(Protocol):
    labels: list[str]

    def predict_proba(self, examples: Sequence[Any]) -> np.ndarray: ...


def topk_hits(model: Scorer, examples: Sequence[Any], k: int) -> np.ndarray:
    """Per example: is its label among the model's top ``k`` codes (False for a code the
    model does not know)."""
    return topk_hits_many(model, examples, (k,))[k]


def topk_hits_many(
    model: Scorer, examples: Sequence[Any], ks: Sequence[int]
) -> dict[int, np.ndarray]:
    """:func:`topk_hits` for several ``k`` from one prediction pass."""
    if not examples:
        return {k: np.zeros(0, dtype=bool) for k in ks}
    probs = model.predict_proba(examples)
    accepted = accepted_matrix(examples, model.labels)  # a partial label: any of its set
    ranked = np.argsort(-probs, axis=1, kind="stable")
    rows = np.arange(len(examples))[:, None]
    return {k: accepted[rows, ranked[:, :k]].any(axis=1) for k in ks}


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> tuple[float, float, float]:
    """(mean(a - b), 2.5% and 97.5% quantiles) of the paired difference of per-case scores,
    resampling cases with replacement."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("paired_bootstrap needs two 1-d arrays of the same length")
    if len(a) == 0:
        return float("nan"), float("nan"), float("nan")
    diff = a - b
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 256):  # bounded memory for large test sets
        stop = min(resamples, start + 256)
        idx = rng.integers(0, len(diff), size=(stop - start, len(diff)))
        means[start:stop] = diff[idx].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(diff.mean()), float(lo), float(hi)


# ------------------------------------------------------------------ the comparison


@dataclass
class Comparison:
    """Champion against candidate on the cases neither used (``report.json``'s ``comparison``)."""

    champion: str
    keys: list[str]
    n: int
    excluded_champion_used: int  # candidate test cases the champion had learned from
    candidate_top1: float
    candidate_top3: float
    champion_top1: float
    champion_top3: float
    diff_top1: float
    diff_top1_low: float
    diff_top1_high: float
    diff_top3: float
    diff_top3_low: float
    diff_top3_high: float
    method: str = f"paired bootstrap over cases, {BOOTSTRAP_RESAMPLES} resamples, 95% interval"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(
    candidate: Scorer,
    champion: Scorer,
    champion_name: str,
    test: Sequence[Any],
    champion_used: set[str],
    *,
    seed: int = 0,
) -> Comparison:
    """Both models on the candidate's ``test`` examples the champion never used."""
    compared = [e for e in test if e.key not in champion_used]
    c = topk_hits_many(candidate, compared, (1, 3))
    h = topk_hits_many(champion, compared, (1, 3))
    c1, c3, h1, h3 = c[1], c[3], h[1], h[3]
    d1 = paired_bootstrap(c1, h1, seed=seed)
    d3 = paired_bootstrap(c3, h3, seed=seed + 1)
    mean = lambda x: float(x.mean()) if len(x) else float("nan")
    return Comparison(
        champion=champion_name,
        keys=[e.key for e in compared],
        n=len(compared),
        excluded_champion_used=len(test) - len(compared),
        candidate_top1=mean(c1),
        candidate_top3=mean(c3),
        champion_top1=mean(h1),
        champion_top3=mean(h3),
        diff_top1=d1[0],
        diff_top1_low=d1[1],
        diff_top1_high=d1[2],
        diff_top3=d3[0],
        diff_top3_low=d3[1],
        diff_top3_high=d3[2],
    )


def gate(comparison: Comparison, margin: float, min_cases: int = 1) -> tuple[bool, str]:
    """(promote?, the reason in plain words): promoted when the candidate is not worse than
    the champion with confidence, i.e. the 95% interval of its top-1 difference lies above
    ``-margin``."""
    c = comparison
    if c.n < min_cases:
        return False, (
            f"not promoted: only {c.n} test cases that champion {c.champion} never used "
            f"(need {min_cases}); {c.excluded_champion_used} of the candidate's test cases "
            "were in the champion's data, so no fair comparison is possible"
        )
    figures = (
        f"on {c.n} test cases neither model used, candidate top-1 {c.candidate_top1:.4f} / "
        f"top-3 {c.candidate_top3:.4f}, champion {c.champion} top-1 {c.champion_top1:.4f} / "
        f"top-3 {c.champion_top3:.4f}; top-1 difference {c.diff_top1:+.4f} "
        f"(95% interval {c.diff_top1_low:+.4f} .. {c.diff_top1_high:+.4f})"
    )
    if c.diff_top1_low >= -margin - 1e-12:
        return True, (
            f"promoted: not worse than the champion with 95% confidence (margin {margin:.3f}) "
            + figures
        )
    return False, (
        f"not promoted: could be worse than the champion by more than the margin "
        f"{margin:.3f} " + figures
    )


def accuracy_by_month(
    dates: Sequence[dt.date | None], top1: Sequence[bool], top3: Sequence[bool]
) -> list[dict[str, Any]]:
    """Test accuracy per decision month (``YYYY-MM``; ``undated`` for cases without a date)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, d in enumerate(dates):
        groups[d.strftime("%Y-%m") if d is not None else "undated"].append(i)
    rows = []
    for month in sorted(groups, key=lambda m: (m == "undated", m)):
        idx = groups[month]
        rows.append(
            {
                "month": month,
                "n": len(idx),
                "top1": float(np.mean([top1[i] for i in idx])),
                "top3": float(np.mean([top3[i] for i in idx])),
            }
        )
    return rows
