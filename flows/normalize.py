"""Normalize flow: raw zone -> Parquet cases dataset, with a data-quality report."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow

from flows._common import champion_info, resolve_settings, training_due
from hscode.summaries import jsonable
from tasks.cases import (
    announce_normalized,
    case_quality_report,
    count_trainable_cases,
    derive_code_statuses,
    normalize_cases,
    take_decisions,
)


@flow(name="normalize", log_prints=True)
def normalize_flow(
    min_new_cases: int = 200,
    settings_overrides: dict[str, Any] | None = None,
    announce_training_due: bool = True,
) -> dict[str, Any]:
    """Parse every raw response not yet normalized into the cases dataset, take reviewers'
    new decisions as cases, derive code statuses; report quality.

    Emits ``hscode.cases.normalized``; its resource label ``hscode.training.due`` is
    ``true`` once ``min_new_cases`` trainable cases arrived since the champion was
    trained (or there is no champion), which triggers the train deployment.

    Args:
        min_new_cases: new trainable cases since the champion that make training due.
        settings_overrides: other ``Settings`` fields (e.g. ``{"data_dir": "/srv/hscode"}``).
        announce_training_due: say in the event when training is due (which starts the train
            deployment); the nightly chain, which trains itself next, passes False.
    """
    settings = resolve_settings(settings_overrides)
    report = normalize_cases(settings)
    decided = take_decisions(settings)  # reviewers' decisions are cases too
    statuses = derive_code_statuses(settings)
    quality = case_quality_report(settings)
    trainable = count_trainable_cases(settings)
    # age never makes training due here: the weekly schedule covers that
    decision = training_due(
        champion_info(settings),
        trainable,
        dt.datetime.now(dt.UTC),
        min_new_cases,
        10**6,
        current_edition=statuses.edition if statuses is not None else None,
    )
    due, why = decision.due, decision.why
    new_cases = report.new_cases
    announced = due and announce_training_due
    if due and not announce_training_due:
        why = f"{why}; not announced: the caller trains itself"
    announce_normalized(new_cases, trainable, announced, why)
    return {
        "normalize": jsonable(report),
        "decisions": jsonable(decided),
        "code_statuses": jsonable(statuses),
        "quality": jsonable(quality.metrics),
        "new_cases": new_cases,
        "trainable_cases": trainable,
        "training_due": due,
        "announced_training_due": announced,
        "why": why,
    }
