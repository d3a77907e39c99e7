"""Live accuracy: how good the champion is on real requests, judged by reviewers' decisions.

Read from Postgres (``sql/009_decisions.sql``): ``current_decisions`` (the latest decision
per request) against each model version's ``predictions`` of that request. The analyst
views ``live_accuracy`` (per version and week) and ``live_accuracy_by_chapter`` hold the
figures for SQL users; this module gives the nightly run what it publishes and judges:

- :func:`recent_accuracy`: top-1 / top-3 (ten digits) and mean confidence of one version
  over its last ``window`` decided requests (newest decisions first);
- :func:`live_check`: the verdict against a floor: ``low`` when at least ``min_decisions``
  were decided and top-1 over the window is below ``min_top1``;
- :func:`live_report`: the verdict and (confidence, right) per decided request, for the plot
  of accuracy against confidence, from one read.

The scoring side's flow publishes these as an artifact and emits the event an automation
(``deployments.registry``: ``alert/live-accuracy``) fires on.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

# the decided requests a version scored (the view live_accuracy also counts), newest
# decision first, with its rank-1 answer and whether the decided code is among its first three
_DECIDED = """
    select request_id, decided_hs10 as decided, decided_at, top_hs10 as top1, confidence,
           review, coalesce(rank_hs10 <= 3, false) as in_top3
      from live_accuracy_requests
     where model_version = :version
     order by decided_at desc, request_id
     limit :limit
"""


@dataclass(frozen=True, slots=True)
class RecentAccuracy:
    version: str
    window: int  # the last N decisions asked for
    decided: int  # decided requests the version scored, at most ``window``
    top1: float | None  # None when nothing was decided
    top3: float | None
    mean_confidence: float | None
    review_rate: float | None
    since: dt.datetime | None  # the oldest decision counted


@dataclass(frozen=True, slots=True)
class LiveCheck:
    recent: RecentAccuracy
    min_top1: float
    min_decisions: int
    low: bool  # top-1 over the window is below the floor, with enough decisions to judge
    why: str


def _decided(engine: Engine, version: str, limit: int | None) -> list[Any]:
    """``limit`` None: all (a SQL ``limit null``)."""
    with engine.connect() as conn:
        return conn.execute(
            text(_DECIDED), {"version": version, "limit": None if limit is None else int(limit)}
        ).all()


def _summarise(version: str, window: int, rows: list[Any]) -> RecentAccuracy:
    """The accuracy of ``rows`` (a version's newest decided requests, at most ``window``)."""
    n = len(rows)
    if not n:
        return RecentAccuracy(version, window, 0, None, None, None, None, None)
    return RecentAccuracy(
        version=version,
        window=window,
        decided=n,
        top1=sum(r.top1 == r.decided for r in rows) / n,
        top3=sum(bool(r.in_top3) for r in rows) / n,
        mean_confidence=sum(float(r.confidence) for r in rows) / n,
        review_rate=sum(bool(r.review) for r in rows) / n,
        since=min(r.decided_at for r in rows),
    )


def _verdict(recent: RecentAccuracy, min_top1: float, min_decisions: int) -> LiveCheck:
    version = recent.version
    if recent.decided < min_decisions or recent.top1 is None:
        why = (
            f"{recent.decided} decided requests scored by {version}: fewer than "
            f"{min_decisions}, too few to judge"
        )
        return LiveCheck(recent, min_top1, min_decisions, False, why)
    low = recent.top1 < min_top1
    why = (
        f"live top-1 of {version} over its last {recent.decided} decisions is "
        f"{recent.top1:.1%}, {'below' if low else 'at or above'} the floor of {min_top1:.1%}"
    )
    return LiveCheck(recent, min_top1, min_decisions, low, why)


def recent_accuracy(engine: Engine, version: str, window: int) -> RecentAccuracy:
    """``version``'s accuracy on its last ``window`` decided requests."""
    return _summarise(version, window, _decided(engine, version, window))


def live_check(
    engine: Engine, version: str, *, window: int, min_top1: float, min_decisions: int
) -> LiveCheck:
    """Is ``version``'s live top-1 over its last ``window`` decisions below ``min_top1``?"""
    return _verdict(recent_accuracy(engine, version, window), min_top1, min_decisions)


def live_report(
    engine: Engine, version: str, *, window: int, min_top1: float, min_decisions: int
) -> tuple[LiveCheck, list[float], list[bool]]:
    """:func:`live_check` and, for the plot of accuracy against confidence, (rank-1
    confidence, rank-1 code is the decided one) per decided request, from one read."""
    rows = _decided(engine, version, None)
    check = _verdict(_summarise(version, window, rows[:window]), min_top1, min_decisions)
    return check, [float(r.confidence) for r in rows], [r.top1 == r.decided for r in rows]


def live_accuracy_rows(engine: Engine, version: str | None = None) -> list[dict[str, Any]]:
    """The ``live_accuracy`` view's rows (one version's, or all), newest week first."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "select * from live_accuracy"
                " where cast(:version as text) is null or model_version = :version"
                " order by week desc, model_version"
            ),
            {"version": version},
        ).mappings()
        return [dict(r) for r in rows]
