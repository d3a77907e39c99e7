"""Case-dataset tasks: normalize the raw zone, report data quality."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from hscode.settings import Settings
from hscode.summaries import jsonable
from tasks._util import markdown_table, scalar_rows
from tasks.events import CASES_RESOURCE, NORMALIZED_EVENT, TRAINING_DUE_LABEL

if TYPE_CHECKING:
    from hscode.case_report import QualityReport
    from hscode.cases import RestatusReport
    from hscode.normalize import NormalizeReport
    from hscode.review_cases import ReviewCasesReport


# Normalizing upserts by case key, so re-running it never duplicates cases.
@task(
    name="normalize-cases",
    retries=1,
    retry_delay_seconds=30,
    tags=["normalize"],
    cache_policy=NO_CACHE,
)
def normalize_cases(settings: Settings) -> NormalizeReport:
    """The domain's report; its ``new_cases`` is what the normalize flow announces."""
    from hscode.normalize import normalize

    report = normalize(settings)
    create_markdown_artifact(
        key="normalize-report",
        markdown="# Normalize report\n\n" + markdown_table(scalar_rows(jsonable(report))),
        description="Raw responses parsed into the cases dataset",
    )
    return report


@task(
    name="take-decisions",
    retries=1,
    retry_delay_seconds=30,
    tags=["cases", "db"],
    cache_policy=NO_CACHE,
)
def take_decisions(settings: Settings) -> ReviewCasesReport | None:
    """Reviewers' new decisions into the cases dataset (source ``review``), so training
    learns them and they count toward "training is due" (None: no database yet)."""
    from hscode.review_cases import take_decisions as take

    return take(settings)


@task(name="derive-code-statuses", tags=["normalize", "db"], cache_policy=NO_CACHE)
def derive_code_statuses(settings: Settings) -> RestatusReport | None:
    """New and changed cases' code statuses against the current tariff edition (None, and a
    warning, when no edition is current: statuses stay "not derived")."""
    from prefect.logging import get_run_logger

    from hscode.db import get_engine
    from hscode.tariff_editions import derive_code_statuses as derive

    report = derive(settings, get_engine(settings))
    if report is None:
        get_run_logger().warning(
            "no current tariff edition: case code statuses not derived "
            "(hscode tariff load PATH --edition NAME --current)"
        )
    return report


@task(name="case-quality-report", tags=["normalize", "quality"], cache_policy=NO_CACHE)
def case_quality_report(settings: Settings) -> QualityReport:
    from hscode.case_report import quality_report

    report = quality_report(settings)
    create_markdown_artifact(
        key="data-quality-report",
        markdown=report.markdown,
        description="Completeness, code coverage and rejects of the cases dataset",
    )
    return report


@task(name="count-cases", tags=["cases"], cache_policy=NO_CACHE)
def count_trainable_cases(settings: Settings) -> int:
    """Cases with a single 10-digit code: what training can learn from."""
    from hscode.cases import read_cases

    table = read_cases(settings, columns=["case_key", "hs10"])
    return int(table.num_rows - table.column("hs10").null_count)


@task(name="announce-normalized", tags=["normalize", "events"], cache_policy=NO_CACHE)
def announce_normalized(new_cases: int, total_cases: int, training_due: bool, why: str) -> bool:
    """Emit ``hscode.cases.normalized``; the train deployment triggers on ``hscode.training.due``."""
    from prefect.events import emit_event

    event = emit_event(
        event=NORMALIZED_EVENT,
        resource={
            "prefect.resource.id": CASES_RESOURCE,
            TRAINING_DUE_LABEL: "true" if training_due else "false",
        },
        payload={"new_cases": int(new_cases), "total_cases": int(total_cases), "why": why},
    )
    return event is not None
