"""Training tasks: train + evaluate + register (+ promote), publish the report, announce it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.logging import get_run_logger

from hscode.settings import Settings
from hscode.summaries import jsonable
from tasks._logs import relay_logs
from tasks._progress import ArtifactProgress
from tasks.events import MODEL_RESOURCE, MODEL_VERSION_LABEL, PROMOTED_EVENT
from tasks.tags import TRAIN_SLOT_TAG


@dataclass(frozen=True)
class TrainResult:
    """What the train flow needs of a training: the version, the gate's verdict and why, and
    the evaluated model's metrics (JSON-able). The full report is in the registry."""

    version: str
    promoted: bool
    reason: str
    metrics: dict[str, Any]


# No retries: a failed training is worth a human look, and a retry would burn the GPU
# slot for as long again. Registration is atomic, so a crash leaves no half version.
@task(name="train-and-register", tags=["train", "model", TRAIN_SLOT_TAG], cache_policy=NO_CACHE)
def train_model(settings: Settings, config_overrides: dict[str, Any]) -> TrainResult:
    from hscode import reports
    from hscode.training import TrainConfig, train_and_register

    config = TrainConfig(**{k: v for k, v in config_overrides.items() if v is not None})
    # in the run's log: each epoch of each network, early stopping, the refit, the verdict
    with relay_logs():
        outcome = train_and_register(
            settings, config, progress=ArtifactProgress("train-progress", "training epochs done")
        )
    report = jsonable(outcome.report) if outcome.report is not None else None
    metrics = jsonable(outcome.metrics)
    markdown = reports.training_report_markdown(
        version=outcome.version,
        metrics=metrics,
        promoted=outcome.promoted,
        reason=outcome.reason,
        report=report,
        image_dir=settings.data_dir / "reports" / "plots",
    )
    create_markdown_artifact(
        key="training-report", markdown=markdown, description=f"Model {outcome.version}"
    )
    rows = reports.metric_rows(metrics)
    if rows:
        create_table_artifact(
            key="training-metrics", table=rows, description=f"Metrics of model {outcome.version}"
        )
    return TrainResult(
        version=outcome.version,
        promoted=bool(outcome.promoted),
        reason=outcome.reason,
        metrics=metrics,
    )


@task(name="announce-promotion", tags=["train", "events"], cache_policy=NO_CACHE)
def announce_promotion(version: str, metrics: dict[str, Any] | None = None) -> bool:
    """Emit ``hscode.model.promoted`` so the score deployment's trigger re-scores the backlog."""
    scalar = {k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float, str))}
    event = emit_event(
        event=PROMOTED_EVENT,
        resource={
            "prefect.resource.id": f"{MODEL_RESOURCE}.{version}",
            MODEL_VERSION_LABEL: version,
        },
        payload={"version": version, "metrics": scalar},
    )
    get_run_logger().info("model %s promoted; event emitted: %s", version, event is not None)
    return event is not None
