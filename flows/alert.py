"""The failure alert: what a team sees when a run of any hscode deployment fails or crashes.

The ``alert/on-failure`` deployment (``deployments.registry``) is triggered by the server's
``prefect.flow-run.Failed`` and ``prefect.flow-run.Crashed`` events of the project's flows.
It writes a Prefect artifact that says which run failed, where and why, emits an
``hscode.run.failed`` event (for further automations), and, when ``settings.alert_block``
names a notification block, sends the same text through it.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from flows._common import resolve_settings
from tasks.events import FAILED_EVENT, RUN_RESOURCE


def failure_text(run: dict[str, Any]) -> str:
    """The alert for one failed run, in markdown (artifact and notification alike)."""
    where = run.get("deployment") or "no deployment (run by hand or as a subflow)"
    lines = [
        f"# {run.get('state', 'Failed')}: {run.get('flow', '?')} run {run.get('name', '?')}",
        "",
        f"- deployment: {where}",
        f"- flow run id: `{run.get('id', '?')}`",
        f"- started: {run.get('start_time') or 'never'}; ended: {run.get('end_time') or '?'}",
        f"- state message: {run.get('message') or '(none)'}",
        "",
        (
            "Logs: open the run in the Prefect UI (Runs, then this id), or "
            f"`prefect flow-run logs {run.get('id', '?')}`."
        ),
    ]
    return "\n".join(lines) + "\n"


def _describe(flow_run_id: str) -> dict[str, Any]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        flow_ = client.read_flow(run.flow_id)
        deployment = client.read_deployment(run.deployment_id) if run.deployment_id else None
    return {
        "id": str(run.id),
        "name": run.name,
        "flow": flow_.name,
        "deployment": f"{flow_.name}/{deployment.name}" if deployment else None,
        "state": run.state.name if run.state else "Failed",
        "message": run.state.message if run.state else None,
        "start_time": run.start_time.isoformat() if run.start_time else None,
        "end_time": run.end_time.isoformat() if run.end_time else None,
    }


@flow(name="alert", log_prints=True)
def failure_alert_flow(
    flow_run_id: str, settings_overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Say that a run failed: an artifact, an ``hscode.run.failed`` event, and the configured
    notification block when there is one.

    Args:
        flow_run_id: the failed or crashed flow run's id, or its event resource id
            (``prefect.flow-run.<id>``, as the trigger fills it in).
        settings_overrides: other ``Settings`` fields (e.g. ``{"alert_block": "ops-slack"}``).
    """
    settings = resolve_settings(settings_overrides)
    logger = get_run_logger()
    flow_run_id = flow_run_id.rsplit(".", 1)[-1]  # the trigger passes "prefect.flow-run.<id>"
    try:
        run = _describe(flow_run_id)
    except Exception as exc:  # noqa: BLE001 - the alert must not fail: say what is known
        run = {"id": flow_run_id, "message": f"(could not read the run: {exc})"}
    text = failure_text(run)
    logger.error("%s run %s failed: %s", run.get("flow", "?"), flow_run_id, run.get("message"))
    create_markdown_artifact(key="failed-run", markdown=text, description="a run that failed")
    emit_event(
        event=FAILED_EVENT,
        resource={"prefect.resource.id": f"{RUN_RESOURCE}.{flow_run_id}"},
        payload=run,
    )
    notified = _notify(settings, text, f"hscode: {run.get('flow')} failed")
    return {"run": run, "notified": notified}


def _notify(settings: Any, text: str, subject: str) -> bool:
    """Send ``text`` through ``settings.alert_block`` when one is configured."""
    if not settings.alert_block:
        return False
    try:
        from prefect.blocks.core import Block

        Block.load(settings.alert_block).notify(text, subject=subject)
        return True
    except Exception as exc:  # noqa: BLE001 - a broken block must not hide the artifact
        get_run_logger().error("notification block %r failed: %s", settings.alert_block, exc)
        return False


def live_accuracy_text(measured: dict[str, Any]) -> str:
    """The alert for a live-accuracy drop, in markdown (artifact and notification alike)."""
    recent = measured.get("recent") or {}
    version = recent.get("version", "?")

    def pct(value: Any) -> str:
        return f"{value:.1%}" if isinstance(value, (int, float)) else "?"

    state = "dropped" if measured.get("low") else "is at or above its floor again"
    lines = [
        f"# Live accuracy of {version} {state}",
        "",
        f"- {measured.get('why', '')}",
        f"- decided requests counted: {recent.get('decided', '?')} (since {recent.get('since')})",
        (
            f"- top-1 {pct(recent.get('top1'))}, top-3 {pct(recent.get('top3'))}, mean "
            f"confidence {pct(recent.get('mean_confidence'))}, flagged for review "
            f"{pct(recent.get('review_rate'))}"
        ),
        "",
        (
            "What to look at: `select * from decision_disagreements` (the champion's answers "
            "the reviewers overruled), `select * from live_accuracy_by_chapter` (where it is "
            "wrong), the training report of the champion; a retrain learns the decisions "
            "(`hscode train`, or the train deployment)."
        ),
    ]
    return "\n".join(lines) + "\n"


@flow(name="live-accuracy-alert", log_prints=True)
def live_accuracy_alert_flow(
    version: str, settings_overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Say that a model's live top-1 over the last decisions fell below the floor: an
    artifact, and the configured notification block when there is one. The figures are read
    again from the database (the trigger passes the version only), so the alert says what
    holds when it runs.

    Args:
        version: the model version measured (the trigger passes the event's).
        settings_overrides: other ``Settings`` fields (e.g. ``{"alert_block": "ops-slack"}``).
    """
    from hscode.db import get_engine
    from hscode.live_accuracy import live_check
    from hscode.summaries import jsonable

    settings = resolve_settings(settings_overrides)
    check = live_check(
        get_engine(settings),
        version,
        window=settings.live_accuracy_window,
        min_top1=settings.live_accuracy_min_top1,
        min_decisions=settings.live_accuracy_min_decisions,
    )
    measured = jsonable(check)
    text = live_accuracy_text(measured)
    get_run_logger().warning("%s", check.why)
    create_markdown_artifact(
        key="live-accuracy-alert", markdown=text, description="live accuracy below the floor"
    )
    notified = _notify(settings, text, f"hscode: live accuracy of {version} dropped")
    return {"low": check.low, "why": check.why, "text": text, "notified": notified}
