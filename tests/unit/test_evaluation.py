"""Stable roles, the paired comparison and the promotion gate (hscode.evaluation)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from hscode.evaluation import (
    Comparison,
    accuracy_by_month,
    assign_roles,
    gate,
    hash_fraction,
    paired_bootstrap,
)
from hscode.text import title_key


def _roles(titles, labels, dates=None, recent_days=0):
    return assign_roles(
        titles,
        labels,
        dates or [None] * len(titles),
        test_fraction=0.2,
        val_fraction=0.1,
        recent_days=recent_days,
    )


def test_roles_follow_the_title_hash_and_keep_identical_titles_together() -> None:
    titles = [f"Item {i // 2}" if i % 2 else f"item  {i // 2}" for i in range(400)]
    labels = [str(i % 5) for i in range(400)]
    roles = _roles(titles, labels)
    assert sorted(roles.train + roles.val + roles.test) == list(range(400))
    side = {}
    for name in ("train", "val", "test"):
        for i in getattr(roles, name):
            side.setdefault(title_key(titles[i]), set()).add(name)
    assert all(len(s) == 1 for s in side.values())  # "Item 3" and "item  3" together
    assert 0.12 < len(roles.test) / 400 < 0.28 and 0.04 < len(roles.val) / 400 < 0.17
    assert hash_fraction("item 3") == hash_fraction("item 3")  # no seed, no snapshot


def test_roles_do_not_change_when_the_dataset_grows() -> None:
    titles = [f"product {i}" for i in range(300)]
    labels = [str(i % 6) for i in range(300)]
    before = _roles(titles, labels)
    grown = _roles(titles + [f"new product {i}" for i in range(50)], labels + ["0"] * 50)
    for name in ("train", "val", "test"):
        assert set(getattr(before, name)) == {i for i in getattr(grown, name) if i < 300}


def test_newest_decisions_are_the_out_of_time_test_and_undated_cases_are_counted() -> None:
    n = 200
    titles = [f"thing {i}" for i in range(n)]
    labels = [str(i % 4) for i in range(n)]
    start = dt.date(2024, 1, 1)
    dates = [start + dt.timedelta(days=i) for i in range(n - 10)] + [None] * 10
    roles = _roles(titles, labels, dates, recent_days=30)
    newest = max(d for d in dates if d)
    assert roles.window == ((newest - dt.timedelta(days=29)).isoformat(), newest.isoformat())
    recent = set(roles.recent)
    assert recent == {i for i, d in enumerate(dates) if d and d > newest - dt.timedelta(days=30)}
    assert recent <= set(roles.test)
    assert roles.undated == 10
    # one decision day for everything: no history to look forward from
    same_day = _roles(titles, labels, [start] * n, recent_days=30)
    assert same_day.window is None and not same_day.recent and "no out-of-time" in same_day.note


def test_a_code_with_every_case_held_out_trains_on_them() -> None:
    titles = [f"a {i}" for i in range(100)]
    labels = ["x"] * 100
    held = next(t for t in (f"lonely {j}" for j in range(1000)) if hash_fraction(t) < 0.2)
    roles = _roles([*titles, held], [*labels, "y"])
    assert 100 in roles.train and roles.kept_for_training == 1


def test_paired_bootstrap_interval() -> None:
    rng = np.random.default_rng(0)
    a = rng.random(2000) < 0.8
    same = paired_bootstrap(a, a)
    assert same == (0.0, 0.0, 0.0)
    b = a.copy()
    flip = rng.choice(2000, 200, replace=False)
    b[flip[:150]] = False  # b loses 150 cases and gains 50: a is 5 points better
    b[flip[150:]] = True
    diff, lo, hi = paired_bootstrap(a, b)
    assert diff == pytest.approx(float(a.mean() - b.mean()))
    assert lo < diff < hi and lo > 0
    with pytest.raises(ValueError):
        paired_bootstrap(a, b[:10])


def _comparison(n: int, diff: float, lo: float, hi: float) -> Comparison:
    return Comparison(
        champion="v0001",
        keys=[str(i) for i in range(n)],
        n=n,
        excluded_champion_used=0,
        candidate_top1=0.8 + diff,
        candidate_top3=0.9,
        champion_top1=0.8,
        champion_top3=0.9,
        diff_top1=diff,
        diff_top1_low=lo,
        diff_top1_high=hi,
        diff_top3=0.0,
        diff_top3_low=0.0,
        diff_top3_high=0.0,
    )


def test_gate_promotes_only_when_not_worse_with_confidence() -> None:
    ok, why = gate(_comparison(500, 0.0, -0.01, 0.01), margin=0.02)
    assert ok and why.startswith("promoted: not worse") and "500 test cases" in why
    ok, why = gate(_comparison(500, -0.01, -0.04, 0.02), margin=0.02)
    assert not ok and "could be worse" in why
    ok, why = gate(_comparison(0, float("nan"), float("nan"), float("nan")), margin=0.02)
    assert not ok and "no fair comparison" in why


def test_accuracy_by_month() -> None:
    dates = [dt.date(2024, 1, 3), dt.date(2024, 1, 20), dt.date(2024, 2, 1), None]
    rows = accuracy_by_month(dates, [True, False, True, True], [True, True, True, True])
    assert rows == [
        {"month": "2024-01", "n": 2, "top1": 0.5, "top3": 1.0},
        {"month": "2024-02", "n": 1, "top1": 1.0, "top3": 1.0},
        {"month": "undated", "n": 1, "top1": 1.0, "top3": 1.0},
    ]
