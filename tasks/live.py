"""Live-accuracy task: after scoring, publish how the champion does on decided requests and
say when it drops (the event the ``alert/live-accuracy`` automation fires on)."""

from __future__ import annotations

from typing import Any

import numpy as np
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from hscode.settings import Settings
from hscode.summaries import jsonable
from tasks._util import markdown_table
from tasks.events import LIVE_ACCURACY_EVENT, LIVE_LOW_LABEL, LIVE_RESOURCE

WEEK_COLUMNS = [
    "week",
    "decided",
    "top1_10",
    "top3_10",
    "top1_6",
    "top1_4",
    "review_rate",
    "mean_confidence",
]


def live_accuracy_markdown(
    version: str, check: Any, weeks: list[dict[str, Any]], plot: bytes | None
) -> str:
    """The artifact: the verdict, the weekly table of ``live_accuracy`` and the plot."""
    from hscode.reports import data_uri

    recent = check.recent
    parts = [
        f"# Live accuracy of `{version}`\n",
        f"**{'LOW' if check.low else 'ok'}**: {check.why}\n",
    ]
    if recent.decided:
        parts.append(
            f"Last {recent.decided} decided requests (since {recent.since:%Y-%m-%d}): top-1 "
            f"{recent.top1:.1%}, top-3 {recent.top3:.1%}, mean confidence "
            f"{recent.mean_confidence:.1%}, flagged for review {recent.review_rate:.1%}.\n"
        )
    if weeks:
        parts += [
            "## By week of decision (view `live_accuracy`)\n",
            markdown_table(weeks, WEEK_COLUMNS),
        ]
    else:
        parts.append("_No decided request was scored by this version yet._\n")
    if plot is not None:
        parts.append(
            f"## Accuracy against confidence on decided requests\n\n![reliability]({data_uri(plot)})\n"
        )
    return "\n".join(parts)


@task(name="publish-live-accuracy", tags=["score", "db", "events"], cache_policy=NO_CACHE)
def publish_live_accuracy(settings: Settings, version: str) -> dict[str, Any]:
    """The champion's live accuracy as an artifact, and ``hscode.live-accuracy.measured``
    (label ``hscode.live-accuracy.low``) for the alert automation."""
    from hscode.db import get_engine
    from hscode.live_accuracy import live_accuracy_rows, live_report
    from hscode.reports import plot_reliability

    engine = get_engine(settings)
    check, confidences, right = live_report(
        engine,
        version,
        window=settings.live_accuracy_window,
        min_top1=settings.live_accuracy_min_top1,
        min_decisions=settings.live_accuracy_min_decisions,
    )
    weeks = jsonable(live_accuracy_rows(engine, version))
    plot = (
        plot_reliability(np.asarray(confidences), np.asarray(right))
        if len(confidences) >= 2
        else None
    )
    create_markdown_artifact(
        key="live-accuracy",
        markdown=live_accuracy_markdown(version, check, weeks, plot),
        description=f"Model {version} on reviewers' decisions",
    )
    payload = jsonable(check)
    emit_event(
        event=LIVE_ACCURACY_EVENT,
        resource={
            "prefect.resource.id": f"{LIVE_RESOURCE}.{version}",
            LIVE_LOW_LABEL: "true" if check.low else "false",
        },
        payload=payload,
    )
    print(check.why)
    return payload
