"""Every deployment of the project, declared once.

``hscode serve`` registers these against a Prefect server; the deployments test checks
them against a test server. Schedules are in Asia/Seoul because the portal publishes on
Korean business days.

How the steps chain (each link is declared here, nowhere else):

- ``crawl/nightly-crawl`` runs at 01:00 KST on the ``cpu`` pool.
- ``normalize/after-crawl`` is triggered when a ``crawl/nightly-crawl`` run completes.
- ``train/weekly`` runs Sunday 03:00 KST on the ``gpu`` pool, and is triggered by a
  ``hscode.cases.normalized`` event whose resource says training is due (enough new
  cases since the champion), or by an ``hscode.tariff.current-changed`` event (a new current
  tariff edition loaded with ``hscode tariff load --current`` or ``hscode tariff current``).
- ``score/nightly-score`` runs at 06:00 KST (after the crawl chain), and is triggered by a
  ``hscode.model.promoted`` event, so a new champion re-scores the backlog at once.
- ``alert/on-failure`` is triggered when a run of any project flow fails or crashes
  (``flows.alert``).
- ``live-accuracy-alert/live-accuracy`` is triggered by an ``hscode.live-accuracy.measured``
  event (published after each scoring run) whose label says the champion's live top-1 over
  the last decided requests is below the floor.
- ``nightly/chain`` runs the whole chain in one flow run; its schedule is declared but
  inactive (use it instead of the step schedules, or run it by hand).

Deployment names are unique across flows (``check_unique_names``, run at import), because
Prefect's flow-run events name the run's deployment by its bare name
(``prefect.resource.name`` of the related resource with role ``deployment``): a trigger on
"a run of deployment X completed" would otherwise also fire for another flow's X. The
triggers match both the deployment's name and its flow's name.

Two crawls or two trainings never overlap: each deployment has a concurrency limit of
one, and the crawl and train tasks carry tags with a global concurrency limit of one
(``tasks.tags.TAG_CONCURRENCY``), which also covers the same steps run inside ``nightly/chain``.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.schedules import Cron, Schedule

from tasks.events import (
    CASES_RESOURCE,
    FLOW_RUN_COMPLETED,
    FLOW_RUN_CRASHED,
    FLOW_RUN_FAILED,
    LIVE_ACCURACY_EVENT,
    LIVE_LOW_LABEL,
    LIVE_RESOURCE,
    MODEL_RESOURCE,
    NORMALIZED_EVENT,
    PROMOTED_EVENT,
    TARIFF_CHANGED_EVENT,
    TARIFF_RESOURCE,
    TRAINING_DUE_LABEL,
)
from tasks.tags import TAG_CONCURRENCY

TIMEZONE = "Asia/Seoul"
CPU_POOL = "cpu"
GPU_POOL = "gpu"
POOLS = (CPU_POOL, GPU_POOL)


REPO_ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def code_version() -> str:
    """The git SHA of the checkout (``-dirty`` with local changes), else the package version."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
        return f"{sha}-dirty" if dirty else sha
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("hscode")
        except PackageNotFoundError:
            return "unknown"


_WEEKDAYS = ("Sundays", "Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays")


def schedule_label(schedule: Schedule) -> str:
    """A schedule in words with its time zone and the UTC time, e.g. ``01:00 daily, Asia/Seoul
    (UTC+09:00; 16:00 UTC)``; any cron this registry does not spell out is shown as is."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    zone = schedule.timezone or "UTC"
    fields = (schedule.cron or "").split()
    inactive = "" if schedule.active else " (inactive)"
    if len(fields) != 5 or not (fields[0].isdigit() and fields[1].isdigit()):
        return f"cron '{schedule.cron}', {zone}{inactive}"
    minute, hour, dom, month, dow = fields
    if dom != "*" or month != "*" or not (dow == "*" or (dow.isdigit() and int(dow) < 7)):
        return f"cron '{schedule.cron}', {zone}{inactive}"
    local = datetime(2026, 1, 4, int(hour), int(minute), tzinfo=ZoneInfo(zone))  # a Sunday
    offset = local.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    hours, rest = divmod(abs(int(offset.total_seconds())), 3600)
    utc = local.astimezone(ZoneInfo("UTC"))
    day = "daily" if dow == "*" else _WEEKDAYS[int(dow)]
    shift = {-1: " the day before", 1: " the day after"}.get((utc.date() - local.date()).days, "")
    return (
        f"{int(hour):02d}:{int(minute):02d} {day}, {zone} (UTC{sign}{hours:02d}:{rest // 60:02d}; "
        f"{utc:%H:%M} UTC{shift}){inactive}"
    )


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment: which flow, where it runs, when, and with what defaults."""

    name: str
    flow: str  # "module:function"
    work_pool: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: tuple[Schedule, ...] = ()
    triggers: tuple[DeploymentEventTrigger, ...] = ()
    concurrency: int | None = 1
    tags: tuple[str, ...] = ()

    @property
    def flow_name(self) -> str:
        return self.load_flow().name

    @property
    def full_description(self) -> str:
        """The description, with each schedule in words and its time zone (what the UI shows
        beside the deployment)."""
        if not self.schedules:
            return self.description
        return f"{self.description} Schedule: " + "; ".join(map(schedule_label, self.schedules))

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"

    def load_flow(self) -> Any:
        import importlib

        module, _, attr = self.flow.partition(":")
        return getattr(importlib.import_module(module), attr)


def _after_deployment_completed(
    flow_name: str, deployment_name: str, name: str
) -> DeploymentEventTrigger:
    """Fires when a run of ``flow_name/deployment_name`` completes.

    A flow run's state events carry its flow and its deployment as related resources
    (``prefect.server.models.events._as_resource_data``); both must match, so neither a
    same-named deployment of another flow nor a deployment-less run of the flow (a
    subflow of ``nightly/chain``, a run by hand) fires it.
    """
    return DeploymentEventTrigger(
        name=name,
        expect={FLOW_RUN_COMPLETED},
        match_related=[
            {"prefect.resource.role": "deployment", "prefect.resource.name": deployment_name},
            {"prefect.resource.role": "flow", "prefect.resource.name": flow_name},
        ],
    )


CRAWL_DEPLOYMENT = "nightly-crawl"
# the flows whose failed or crashed runs raise the alert (not the alert flow itself: no loop)
ALERTED_FLOWS = (
    "crawl",
    "normalize",
    "train",
    "score",
    "score-partitions",
    "nightly",
    "live-accuracy-alert",
)


DEPLOYMENTS: tuple[DeploymentSpec, ...] = (
    DeploymentSpec(
        name=CRAWL_DEPLOYMENT,
        flow="flows.crawl:crawl_flow",
        work_pool=CPU_POOL,
        description="Crawl the portal's new and recently changed cases into the raw zone.",
        parameters={},
        schedules=(Cron("0 1 * * *", timezone=TIMEZONE),),
        tags=("crawl",),
    ),
    DeploymentSpec(
        name="after-crawl",
        flow="flows.normalize:normalize_flow",
        work_pool=CPU_POOL,
        description="Normalize the raw zone into the cases dataset after each nightly crawl.",
        parameters={"min_new_cases": 200},
        triggers=(
            _after_deployment_completed(
                "crawl", CRAWL_DEPLOYMENT, "normalize after crawl/nightly-crawl completes"
            ),
        ),
        tags=("normalize",),
    ),
    DeploymentSpec(
        name="weekly",
        flow="flows.train:train_flow",
        work_pool=GPU_POOL,
        description="Train a candidate model; promote it only if it is not worse than the champion.",
        parameters={"force": False, "settings_overrides": {"device": "auto"}},
        schedules=(Cron("0 3 * * 0", timezone=TIMEZONE),),
        triggers=(
            DeploymentEventTrigger(
                name="train when enough new cases or a new current tariff edition",
                expect={NORMALIZED_EVENT, TARIFF_CHANGED_EVENT},
                match={
                    "prefect.resource.id": [CASES_RESOURCE, TARIFF_RESOURCE],
                    TRAINING_DUE_LABEL: "true",
                },
            ),
        ),
        tags=("train", "gpu"),
    ),
    DeploymentSpec(
        name="nightly-score",
        flow="flows.score:score_flow",
        work_pool=CPU_POOL,
        description="Import the inbox and score every pending request with the champion.",
        parameters={"batch_size": None},
        schedules=(Cron("0 6 * * *", timezone=TIMEZONE),),
        triggers=(
            DeploymentEventTrigger(
                name="score when a model is promoted",
                expect={PROMOTED_EVENT},
                match={"prefect.resource.id": f"{MODEL_RESOURCE}.*"},
            ),
        ),
        tags=("score",),
    ),
    DeploymentSpec(
        name="on-failure",
        flow="flows.alert:failure_alert_flow",
        work_pool=CPU_POOL,
        description=(
            "Say that a run of a project flow failed or crashed: an artifact, an "
            "hscode.run.failed event, and the notification block in HSCODE_ALERT_BLOCK."
        ),
        parameters={},
        triggers=(
            DeploymentEventTrigger(
                name="alert when a project run fails or crashes",
                expect={FLOW_RUN_FAILED, FLOW_RUN_CRASHED},
                match_related={
                    "prefect.resource.role": "flow",
                    "prefect.resource.name": list(ALERTED_FLOWS),
                },
                parameters={"flow_run_id": "{{ event.resource.id }}"},
            ),
        ),
        concurrency=None,  # every failure gets its alert
        tags=("alert",),
    ),
    DeploymentSpec(
        name="live-accuracy",
        flow="flows.alert:live_accuracy_alert_flow",
        work_pool=CPU_POOL,
        description=(
            "Say that the champion's live top-1 over the last decided requests fell below "
            "the floor (HSCODE_LIVE_ACCURACY_MIN_TOP1 over HSCODE_LIVE_ACCURACY_WINDOW): an "
            "artifact and the notification block in HSCODE_ALERT_BLOCK."
        ),
        parameters={},
        triggers=(
            DeploymentEventTrigger(
                name="alert when live accuracy drops",
                expect={LIVE_ACCURACY_EVENT},
                match={"prefect.resource.id": f"{LIVE_RESOURCE}.*", LIVE_LOW_LABEL: "true"},
                parameters={"version": "{{ event.payload.recent.version }}"},
            ),
        ),
        tags=("alert",),
    ),
    DeploymentSpec(
        name="chain",
        flow="flows.nightly:nightly_flow",
        work_pool=CPU_POOL,
        description=(
            "crawl -> normalize -> train when due -> score, in one run. Its schedule is "
            "inactive: activate it instead of the step schedules, or run it by hand."
        ),
        parameters={"train": "auto", "min_new_cases": 200, "retrain_days": 7},
        schedules=(Cron("0 1 * * *", timezone=TIMEZONE, active=False),),
        tags=("nightly",),
    ),
)


def check_unique_names(specs: Sequence[DeploymentSpec]) -> None:
    """Raise ``ValueError`` when two deployments share a name, whatever their flows."""
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.name in seen:
            raise ValueError(
                f"deployment name {spec.name!r} is used by {seen[spec.name]} and {spec.flow}: "
                "triggers match deployments by name, so every name must be unique"
            )
        seen[spec.name] = spec.flow


check_unique_names(DEPLOYMENTS)


def to_runner_deployment(
    spec: DeploymentSpec, working_dir: Path | None = None, env: dict[str, str] | None = None
) -> RunnerDeployment:
    """The Prefect deployment object of a spec, pointing at the installed code (no storage)."""
    job_variables: dict[str, Any] = {"working_dir": str(working_dir or Path.cwd())}
    if env:
        job_variables["env"] = dict(env)
    version = code_version()
    return spec.load_flow().to_deployment(
        name=spec.name,
        description=spec.full_description,
        parameters=spec.parameters,
        schedules=list(spec.schedules),
        triggers=list(spec.triggers),
        concurrency_limit=(
            ConcurrencyLimitConfig(
                limit=spec.concurrency, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
            )
            if spec.concurrency
            else None
        ),
        tags=[*spec.tags, "hscode", f"code:{version}"],
        version=version,
        work_pool_name=spec.work_pool,
        job_variables=job_variables,
        # the package is installed (pip -e), so workers import flows by module path
        entrypoint_type=EntrypointType.MODULE_PATH,
    )


def ensure_work_pools(pools: Sequence[str] = POOLS) -> list[str]:
    """Create the ``process`` work pools that do not exist yet; return the ones created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    created = []
    with get_client(sync_client=True) as client:
        for pool in pools:
            try:
                client.create_work_pool(
                    WorkPoolCreate(
                        name=pool,
                        type="process",
                        description=f"hscode {pool} workers",
                    )
                )
                created.append(pool)
            except ObjectAlreadyExists:
                pass
    return created


def ensure_tag_concurrency(limits: dict[str, int] | None = None) -> None:
    """Global concurrency limits on the crawl and train task tags (idempotent)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for tag, limit in (limits or TAG_CONCURRENCY).items():
            client.create_concurrency_limit(tag=tag, concurrency_limit=limit)


def register_all(
    working_dir: Path | None = None,
    env: dict[str, str] | None = None,
    specs: Sequence[DeploymentSpec] = DEPLOYMENTS,
    with_tag_limits: bool = True,
) -> dict[str, str]:
    """Create pools, limits and every deployment; return ``{full name: deployment id}``."""
    ensure_work_pools()
    if with_tag_limits:
        ensure_tag_concurrency()
    ids = {}
    for spec in specs:
        deployment = to_runner_deployment(spec, working_dir, env)
        ids[deployment.full_name] = str(deployment.apply(work_pool_name=spec.work_pool))
    return ids
