"""The demo's reviewer: after scoring, a customs specialist decides some of the flagged
requests (the demo knows what each request's goods really are), and the demo prints the
champion's live accuracy on them (``live_accuracy``): the loop of issue 16, end to end.

Decisions go through :func:`hscode.decisions.record_decision`, validated in SQL as ``decide()``
validates them (a code of the current edition only). Re-running the demo records nothing new
(the same decision again is a no-op).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text

DEMO_REVIEWER = "demo-reviewer"
DEMO_DECISIONS = 12  # at most this many requests decided, least confident first


def decide_some(engine: Engine, truth: dict[str, str], limit: int = DEMO_DECISIONS) -> dict:
    """Decide up to ``limit`` requests of the review queue (then answered ones) whose true
    code (``truth``: request id -> ten-digit code) is current; returns the counts."""
    from hscode.decisions import DecisionRefused, record_decision
    from hscode.hs import parse_hs

    with engine.connect() as conn:
        ranked = conn.execute(
            text(
                "select request_id from latest_predictions where rank = 1"
                " order by review desc, score, request_id"
            )
        ).scalars()
        order = list(ranked)
    recorded = unchanged = refused = 0
    for request_id in order:
        if recorded + unchanged >= limit:
            break
        code = parse_hs(truth.get(request_id) or "").hs10
        if code is None:
            continue
        try:
            result = record_decision(
                engine, request_id, code, "demo: the goods' code", decided_by=DEMO_REVIEWER
            )
        except DecisionRefused:  # e.g. goods of a code that is no longer current
            refused += 1
            continue
        recorded += bool(result.recorded)
        unchanged += not result.recorded
    return {"recorded": recorded, "unchanged": unchanged, "refused": refused}


def live_accuracy_lines(engine: Engine) -> list[str]:
    """The champion's rows of ``live_accuracy`` (and the disagreements count), printed."""
    with engine.connect() as conn:
        rows = (
            conn.execute(
                text(
                    "select week, decided, top1_10, top3_10, top1_4, review_rate,"
                    " mean_confidence from live_accuracy where is_champion order by week"
                )
            )
            .mappings()
            .all()
        )
        disagreements = conn.execute(text("select count(*) from decision_disagreements")).scalar()
    if not rows:
        return ["live accuracy:      no decided request was scored by the champion yet"]
    header = (
        "live accuracy (select * from live_accuracy where is_champion; the reviewer decided "
        "flagged answers first, so these are the doubtful ones):"
    )
    lines = [header]
    for r in rows:
        lines.append(
            f"  week of {r['week']}: {r['decided']} decided, top-1 {_pct(r['top1_10'])}, "
            f"top-3 {_pct(r['top3_10'])}, top-1 at 4 digits {_pct(r['top1_4'])}, "
            f"flagged {_pct(r['review_rate'])}, mean confidence {_pct(r['mean_confidence'])}"
        )
    lines.append(f"  {disagreements} decisions differ from the champion's top code")
    lines.append("  (select * from decision_disagreements)")
    return lines


def _pct(value: Any) -> str:
    return "?" if value is None else f"{100 * float(value):.0f}%"
