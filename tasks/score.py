"""Scoring tasks: intake of the inbox, champion resolution, scoring pending requests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from hscode.settings import Settings
from hscode.summaries import jsonable
from tasks._logs import relay_logs
from tasks._progress import ArtifactProgress
from tasks._util import markdown_table, scalar_rows

if TYPE_CHECKING:
    from hscode.intake import IntakeSummary
    from hscode.scoring import ScoreSummary


# Importing is keyed by request id, so a retry after a half-read inbox adds no duplicates.
# It is the score flow's first task, so it is also the one that brings the schema up to date;
# the tasks after it (champion flag, every scoring partition) rely on that.
@task(
    name="import-inbox",
    retries=2,
    retry_delay_seconds=10,
    tags=["score", "intake", "db"],
    cache_policy=NO_CACHE,
)
def import_inbox(settings: Settings) -> IntakeSummary:
    from hscode.db import get_engine, migrate
    from hscode.intake import import_inbox as _import_inbox

    engine = get_engine(settings)
    migrate(engine)
    summary = _import_inbox(settings, engine)
    logger = get_run_logger()
    for name, reason in summary.files_failed.items():
        logger.warning("inbox file %s refused (moved to inbox/failed): %s", name, reason)
    if summary.duplicates:
        logger.warning(
            "%d request id(s) already known or repeated, not imported again: %s",
            summary.duplicates,
            ", ".join(summary.duplicate_ids),
        )
    if summary.files:
        create_markdown_artifact(key="inbox-intake", markdown=intake_markdown(summary))
    return summary


def intake_markdown(summary: IntakeSummary) -> str:
    """What one inbox import did, for people: the files imported and refused (with why), the
    rows rejected and the duplicate request ids."""
    lines = [
        "# Inbox intake",
        "",
        (
            f"{summary.files} file(s): {len(summary.files_done)} imported, "
            f"{len(summary.files_failed)} refused; {summary.received} rows, "
            f"{summary.inserted} new requests, {summary.rejected} rows rejected, "
            f"{summary.duplicates} duplicate ids."
        ),
    ]
    if summary.files_failed:
        lines += ["", "## Refused files (in `inbox/failed/`, each with a `.reason.txt`)", ""]
        lines += ["| file | reason |", "|---|---|"]
        lines += [f"| {_cell(n)} | {_cell(r)} |" for n, r in summary.files_failed.items()]
    if summary.rejects:
        lines += ["", "## Rejected rows (first few; all in `intake_rejects`)", ""]
        lines += ["| request_id | reason |", "|---|---|"]
        lines += [f"| {_cell(r.key or '')} | {_cell(r.located_message)} |" for r in summary.rejects]
    if summary.duplicate_ids:
        lines += ["", "## Duplicate request ids (first few)", "", ", ".join(summary.duplicate_ids)]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


@task(name="resolve-champion", tags=["score", "model"], cache_policy=NO_CACHE)
def resolve_champion(settings: Settings) -> str | None:
    """The champion's version, resolved once per flow run so every batch uses the same model."""
    from hscode.registry import Registry

    champion = Registry.from_settings(settings).champion()
    return None if champion is None else champion.version


# Predictions are keyed (request id, model version, rank): re-scoring after a crash is idempotent.
@task(
    name="score-pending",
    retries=2,
    retry_delay_seconds=30,
    tags=["score", "db"],
    cache_policy=NO_CACHE,
)
def score_pending_requests(
    settings: Settings,
    version: str,
    batch_size: int | None = None,
    flow_run_id: str | None = None,
    partition: tuple[int, int] | None = None,
) -> ScoreSummary:
    """Score the pending requests (of one backlog partition ``(i, n)`` when given)."""
    from hscode.db import get_engine
    from hscode.registry import Registry
    from hscode.scoring import score_pending

    engine = get_engine(settings)
    recommender = Registry.from_settings(settings).load(version)
    suffix = "" if partition is None else f"-{partition[0]}-of-{partition[1]}"
    with relay_logs():
        summary = score_pending(
            settings,
            engine,
            recommender,
            batch_size=batch_size,
            flow_run_id=flow_run_id,
            progress=ArtifactProgress(f"score-progress{suffix}", "requests scored"),
            partition=partition,
        )
    where = "" if partition is None else f", partition {partition[0] + 1} of {partition[1]}"
    create_table_artifact(
        key=f"scoring-summary{suffix}",
        table=scalar_rows(jsonable(summary)),
        description=f"Scoring with model {version}{where}",
    )
    create_markdown_artifact(
        key=f"scoring-drift{suffix}",
        markdown=drift_markdown(summary.drift(), f"Drift of scoring with model {version}{where}"),
        description="this run's requests against the model's test cases",
    )
    return summary


DRIFT_ROWS = (
    ("mean rank-1 confidence", "mean_confidence"),
    ("review rate", "review_rate"),
    ("share of tokens unseen in training", "unseen_token_share"),
)


def drift_markdown(figures: dict[str, float | None], title: str) -> str:
    """A run's drift figures (``hscode.scoring.drift_figures``) beside the model version's
    test figures, for people."""
    lines = [
        f"# {title}",
        "",
        "| figure | this run | model's test cases | difference |",
        "|---|---|---|---|",
    ]
    for label, name in DRIFT_ROWS:
        run, test = figures.get(name), figures.get(f"test_{name}")
        diff = run - test if run is not None and test is not None else None
        lines.append(f"| {label} | {_figure(run)} | {_figure(test)} | {_figure(diff, sign=True)} |")
    if all(figures.get(f"test_{name}") is None for _, name in DRIFT_ROWS):
        lines += ["", "The model version has no recorded test figures (trained before they were)."]
    return "\n".join(lines) + "\n"


def _figure(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if sign else f"{value:.3f}"


@task(name="record-champion", tags=["score", "db"], cache_policy=NO_CACHE)
def record_champion(settings: Settings, version: str) -> bool:
    """Record every registered version in ``model_versions`` (the leaderboard lists those not
    promoted too) with the registry's champion flagged; True when ``version`` is it.

    Keeps the analysts' views on the registry's champion, also after a rollback.
    """
    from hscode.db import get_engine
    from hscode.model_versions import sync_registry_versions
    from hscode.registry import Registry

    registry = Registry.from_settings(settings)
    recorded = sync_registry_versions(get_engine(settings), registry)
    champion = registry.champion()
    get_run_logger().info(
        "%d model versions recorded for the leaderboard; champion %s",
        recorded,
        champion.version if champion else "none",
    )
    return champion is not None and champion.version == version


@task(name="publish-run-summary", tags=["report"], cache_policy=NO_CACHE)
def publish_run_summary(key: str, title: str, summary: dict[str, Any]) -> None:
    create_markdown_artifact(
        key=key, markdown=f"# {title}\n\n" + markdown_table(scalar_rows(summary))
    )
