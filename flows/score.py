"""Score flow: inbox -> requests table; pending requests -> predictions with the champion.

The backlog can be split into partitions by request-id hash (``partitions`` or
``settings.score_partitions``); with ``settings.dask_address`` set, the partitions are
mapped over a Dask cluster (``local:N`` starts a local N-worker cluster). Each partition
writes its own batches idempotently, so the result is the same as one in-process run.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext
from prefect.runtime import flow_run

from flows._common import resolve_settings
from hscode.settings import Settings
from hscode.summaries import jsonable
from tasks.live import publish_live_accuracy
from tasks.score import (
    drift_markdown,
    import_inbox,
    record_champion,
    resolve_champion,
    score_pending_requests,
)

SUMMED = ("scored", "rejected", "batches", "pending_at_start")


@flow(name="score", log_prints=True)
def score_flow(
    batch_size: int | None = None,
    model_version: str | None = None,
    partitions: int | None = None,
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Import new request files from the inbox, then score every pending request; publish
    the model's live accuracy on reviewers' decisions (the ``live-accuracy`` artifact and the
    ``hscode.live-accuracy.measured`` event).

    The champion is resolved once, so a promotion during the run cannot mix two models
    in one backlog.

    Args:
        batch_size: requests per scoring batch (None: ``settings.score_batch_size``).
        model_version: score with this registered version instead of the champion.
        partitions: backlog slices scored in parallel (None: ``settings.score_partitions``).
        settings_overrides: other ``Settings`` fields (e.g. ``{"dask_address": "local:2"}``).
    """
    settings = resolve_settings(settings_overrides)
    intake = jsonable(import_inbox(settings))
    version = model_version or resolve_champion(settings)
    if version is None:
        print("no champion model yet: requests stay pending until one is trained")
        return {"intake": intake, "model_version": None, "scored": 0, "reason": "no champion"}
    record_champion(settings, version)
    run_id = flow_run.get_id()
    run_id = str(run_id) if run_id else None
    n_parts = partitions or settings.score_partitions
    if n_parts <= 1 and not settings.dask_address:
        summary = jsonable(score_pending_requests(settings, version, batch_size, run_id))
    else:
        runner = dask_task_runner(settings.dask_address) if settings.dask_address else None
        partitioned = score_partitions_flow.with_options(
            **({"task_runner": runner} if runner is not None else {})
        )
        summary = partitioned(settings, version, max(n_parts, 1), batch_size, run_id)
    # how the model does on reviewers' decisions; a drop fires the live-accuracy alert
    live = publish_live_accuracy(settings, version)
    return {"intake": intake, "model_version": version, **summary, "live_accuracy": live}


@flow(name="score-partitions", log_prints=True)
def score_partitions_flow(
    settings: Settings,
    version: str,
    n_parts: int,
    batch_size: int | None,
    flow_run_id: str | None,
) -> dict[str, Any]:
    """Map the scoring task over the backlog partitions (on whatever task runner is set)."""
    from hscode.scoring import drift_figures

    futures = [
        score_pending_requests.submit(settings, version, batch_size, flow_run_id, (i, n_parts))
        for i in range(n_parts)
    ]
    parts = [f.result() for f in futures]
    total: dict[str, Any] = {key: sum(int(getattr(p, key)) for p in parts) for key in SUMMED}
    total["partitions"] = n_parts
    total["partition_seconds"] = [round(p.seconds, 3) for p in parts]  # as ScoreSummary.as_dict
    context = FlowRunContext.get()
    total["runner"] = type(context.task_runner).__name__ if context else None
    # the backlog's drift, pooled over the partitions' requests and tokens
    total.update(drift_figures(parts))
    create_markdown_artifact(
        key="scoring-drift",
        markdown=drift_markdown(
            total, f"Drift of scoring with model {version}, {n_parts} partitions"
        ),
        description="the whole backlog's requests against the model's test cases",
    )
    print(f"scored {total['scored']} requests in {n_parts} partitions")
    return total


def dask_task_runner(address: str) -> Any:
    """A ``DaskTaskRunner`` for ``tcp://host:port`` or ``local:N`` (a local N-worker cluster)."""
    from prefect_dask import DaskTaskRunner

    if address.startswith("local"):
        _, _, n = address.partition(":")
        workers = int(n or 2)
        return DaskTaskRunner(
            cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True}
        )
    return DaskTaskRunner(address=address)
