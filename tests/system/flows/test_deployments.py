"""Every deployment registers against a Prefect server with its schedules, pool, parameters and triggers.

The trigger-matching tests at the end need no server: they build the flow-run event the
Prefect 3.8 server emits and evaluate each declared trigger with the server's own matcher.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.flow


@pytest.fixture(scope="module")
def registered(prefect_harness, tmp_path_factory):
    from deployments.registry import DEPLOYMENTS, register_all

    workdir = tmp_path_factory.mktemp("workdir")
    # tag limits are checked separately: left in the shared test server they would
    # throttle the flow tests' crawl and train tasks
    ids = register_all(working_dir=workdir, specs=DEPLOYMENTS, with_tag_limits=False)
    return workdir, ids


def _read(full_name: str):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_deployment_by_name(full_name)


def test_every_deployment_registered_once(registered):
    from deployments.registry import DEPLOYMENTS

    _, ids = registered
    assert sorted(ids) == sorted(spec.full_name for spec in DEPLOYMENTS)
    assert len(set(ids.values())) == len(DEPLOYMENTS)
    assert {
        "crawl/nightly-crawl",
        "normalize/after-crawl",
        "train/weekly",
        "score/nightly-score",
        "alert/on-failure",
        "live-accuracy-alert/live-accuracy",
        "nightly/chain",
    } == set(ids)


def test_pools_and_work_pool_types(registered):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        pools = {p.name: p.type for p in client.read_work_pools()}
    assert pools.get("cpu") == "process" and pools.get("gpu") == "process"
    assert _read("train/weekly").work_pool_name == "gpu"
    for name in (
        "crawl/nightly-crawl",
        "normalize/after-crawl",
        "score/nightly-score",
        "alert/on-failure",
        "nightly/chain",
    ):
        assert _read(name).work_pool_name == "cpu", name


def test_schedules_are_korean_time(registered):
    crawl = _read("crawl/nightly-crawl")
    assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in crawl.schedules] == [
        ("0 1 * * *", "Asia/Seoul", True)
    ]
    train = _read("train/weekly")
    assert [(s.schedule.cron, s.schedule.timezone) for s in train.schedules] == [
        ("0 3 * * 0", "Asia/Seoul")
    ]
    score = _read("score/nightly-score")
    # scoring runs after the crawl chain (01:00 crawl) in the same night
    assert [(s.schedule.cron, s.schedule.timezone) for s in score.schedules] == [
        ("0 6 * * *", "Asia/Seoul")
    ]
    chain = _read("nightly/chain")
    assert [s.active for s in chain.schedules] == [False]
    assert _read("normalize/after-crawl").schedules == []


def test_parameters_match_flow_signatures(registered):
    train = _read("train/weekly")
    assert train.parameters["force"] is False
    props = train.parameter_openapi_schema["properties"]
    assert {"top_codes", "inputs", "epochs", "force", "settings_overrides"} <= set(props)
    chain = _read("nightly/chain")
    assert chain.parameters == {"train": "auto", "min_new_cases": 200, "retrain_days": 7}
    assert {"since", "until", "portal_url", "train"} <= set(
        chain.parameter_openapi_schema["properties"]
    )
    assert "batch_size" in _read("score/nightly-score").parameter_openapi_schema["properties"]


def test_concurrency_tags_and_working_dir(registered):
    from deployments.registry import code_version

    workdir, _ = registered
    for name in ("crawl/nightly-crawl", "train/weekly", "score/nightly-score", "nightly/chain"):
        deployment = _read(name)
        assert deployment.global_concurrency_limit is not None, name
        assert deployment.global_concurrency_limit.limit == 1, name
        assert f"code:{code_version()}" in deployment.tags, name
        assert deployment.version == code_version()
        assert deployment.job_variables["working_dir"] == str(workdir)
        assert deployment.entrypoint.startswith("flows."), deployment.entrypoint


def test_triggers_as_automations(registered):
    from prefect.client.orchestration import get_client

    _, ids = registered
    with get_client(sync_client=True) as client:
        automations = client.read_automations()
    by_deployment: dict[str, list] = {}
    for automation in automations:
        for action in automation.actions:
            target = str(getattr(action, "deployment_id", ""))
            by_deployment.setdefault(target, []).append(automation.trigger)

    score = by_deployment[ids["score/nightly-score"]]
    assert [sorted(t.expect) for t in score] == [["hscode.model.promoted"]]
    assert score[0].match.root["prefect.resource.id"] == "hscode.model.*"

    train = by_deployment[ids["train/weekly"]]
    assert [sorted(t.expect) for t in train] == [
        ["hscode.cases.normalized", "hscode.tariff.current-changed"]
    ]
    assert train[0].match.root["hscode.training.due"] == "true"
    assert train[0].match.root["prefect.resource.id"] == ["hscode.cases", "hscode.tariff"]

    normalize = by_deployment[ids["normalize/after-crawl"]]
    assert [sorted(t.expect) for t in normalize] == [["prefect.flow-run.Completed"]]
    related = normalize[0].match_related
    related = related if isinstance(related, list) else [related]
    assert sorted(
        (r.root["prefect.resource.role"], r.root["prefect.resource.name"]) for r in related
    ) == [
        ("deployment", "nightly-crawl"),
        ("flow", "crawl"),
    ]

    assert ids["crawl/nightly-crawl"] not in by_deployment


def _normalize_runs(client, deployment_id: str) -> list:
    from uuid import UUID

    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    return client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[UUID(deployment_id)]))
    )


def test_a_crawl_completion_starts_normalize_and_a_score_completion_does_not(registered):
    """Against the test server: runs of the deployments are forced to Completed, the server
    emits its ``prefect.flow-run.Completed`` events, the automations act on them."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.states import Completed

    _, ids = registered
    normalize_id = ids["normalize/after-crawl"]
    with get_client(sync_client=True) as client:
        before = {run.id for run in _normalize_runs(client, normalize_id)}
        # the score completion's event comes first: had it fired, its run would be there too
        for name in ("score/nightly-score", "crawl/nightly-crawl"):
            run = client.create_flow_run_from_deployment(ids[name])
            client.set_flow_run_state(run.id, Completed(), force=True)
        deadline = time.monotonic() + 60
        started: list = []
        while time.monotonic() < deadline and not started:
            time.sleep(1)
            started = [r for r in _normalize_runs(client, normalize_id) if r.id not in before]
        assert len(started) == 1, "the crawl completion did not start normalize within 60 s"
        assert started[0].created_by is not None
        assert started[0].created_by.type == "AUTOMATION"
        time.sleep(3)  # nothing else arrives
        after = [r for r in _normalize_runs(client, normalize_id) if r.id not in before]
        assert [r.id for r in after] == [started[0].id]


def test_registration_is_idempotent(registered):
    from deployments.registry import DEPLOYMENTS, register_all

    workdir, ids = registered
    again = register_all(working_dir=workdir, specs=DEPLOYMENTS, with_tag_limits=False)
    assert again == ids
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        automations = client.read_automations()
    # one automation per declared trigger: re-registering replaces, never duplicates
    assert len(automations) == sum(len(spec.triggers) for spec in DEPLOYMENTS)


def test_slot_tags_are_the_ones_the_tasks_carry():
    """One definition (tasks.tags): the limited tags are exactly those the crawl and train
    tasks carry, so a limit created on the server always holds a task back."""
    from tasks.crawl import crawl_portal
    from tasks.tags import CRAWL_SLOT_TAG, TAG_CONCURRENCY, TRAIN_SLOT_TAG
    from tasks.train import train_model

    assert CRAWL_SLOT_TAG in crawl_portal.tags and TRAIN_SLOT_TAG in train_model.tags
    assert set(TAG_CONCURRENCY) == {CRAWL_SLOT_TAG, TRAIN_SLOT_TAG}


def test_tag_concurrency_limits(prefect_harness):
    from prefect.client.orchestration import get_client

    from deployments.registry import ensure_tag_concurrency
    from tasks.tags import TAG_CONCURRENCY

    ensure_tag_concurrency()
    try:
        with get_client(sync_client=True) as client:
            for tag, limit in TAG_CONCURRENCY.items():
                assert client.read_concurrency_limit_by_tag(tag).concurrency_limit == limit
    finally:
        with get_client(sync_client=True) as client:
            for tag in TAG_CONCURRENCY:
                client.delete_concurrency_limit_by_tag(tag)


# --- trigger matching, no server -----------------------------------------------------------


def _flow_run_completed(
    flow_name: str, deployment_name: str | None, tags=("hscode",), state: str = "Completed"
):
    """The ``prefect.flow-run.<state>`` event the server emits for such a run.

    Built with the functions ``prefect.server.models.events.flow_run_state_change_event``
    uses for its related resources (flow, deployment, work queue, work pool, tags).
    """
    from datetime import UTC, datetime
    from types import SimpleNamespace
    from uuid import uuid4

    from prefect.server.events.schemas.events import Event
    from prefect.server.models.events import (
        _as_resource_data,
        _resource_data_as_related_resources,
    )

    run = SimpleNamespace(id=uuid4(), name="brave-otter", tags=[])
    flow = SimpleNamespace(id=uuid4(), name=flow_name, tags=[])
    deployment = (
        SimpleNamespace(id=uuid4(), name=deployment_name, tags=list(tags))
        if deployment_name
        else None
    )
    queue = SimpleNamespace(id=uuid4(), name="default")
    pool = SimpleNamespace(id=uuid4(), name="cpu", type="process")
    data = _as_resource_data(run, flow, deployment, queue, pool)
    return Event(
        id=uuid4(),
        occurred=datetime.now(UTC),
        event=f"prefect.flow-run.{state}",
        resource={
            "prefect.resource.id": f"prefect.flow-run.{run.id}",
            "prefect.resource.name": run.name,
            "prefect.state-name": state,
            "prefect.state-type": state.upper(),
        },
        related=_resource_data_as_related_resources(data, excluded_kinds=["flow-run"]),
    ).receive()


def _server_triggers(spec_name: str):
    """The declared triggers of a deployment, as the server's automation triggers."""
    from prefect.server.events.schemas.automations import EventTrigger

    from deployments.registry import DEPLOYMENTS

    (spec,) = [s for s in DEPLOYMENTS if s.name == spec_name]
    return [
        EventTrigger.model_validate(t.trigger_type(**t.model_dump()).model_dump(mode="json"))
        for t in spec.triggers
    ]


def _fires(spec_name: str, event) -> bool:
    return any(trigger.covers(event) for trigger in _server_triggers(spec_name))


def _spec(full_name: str):
    from deployments.registry import DEPLOYMENTS

    (spec,) = [s for s in DEPLOYMENTS if s.full_name == full_name]
    return spec


def test_deployment_names_are_unique():
    from deployments.registry import DEPLOYMENTS

    names = [spec.name for spec in DEPLOYMENTS]
    assert len(set(names)) == len(names), names


def test_every_schedule_is_labelled_with_its_time_zone():
    from prefect.schedules import Cron

    from deployments.registry import DEPLOYMENTS, TIMEZONE, schedule_label

    for spec in DEPLOYMENTS:
        for schedule in spec.schedules:
            label = schedule_label(schedule)
            assert TIMEZONE in label and "UTC" in label and label in spec.full_description
    assert schedule_label(Cron("0 1 * * *", timezone="Asia/Seoul")) == (
        "01:00 daily, Asia/Seoul (UTC+09:00; 16:00 UTC the day before)"
    )
    assert schedule_label(Cron("30 3 * * 0", timezone="Asia/Seoul", active=False)) == (
        "03:30 Sundays, Asia/Seoul (UTC+09:00; 18:30 UTC the day before) (inactive)"
    )
    assert (
        schedule_label(Cron("0 12 * * *", timezone="UTC"))
        == "12:00 daily, UTC (UTC+00:00; 12:00 UTC)"
    )
    assert (
        schedule_label(Cron("*/5 * * * *", timezone="Asia/Seoul"))
        == "cron '*/5 * * * *', Asia/Seoul"
    )


def test_every_deployment_parameter_is_described_for_the_ui():
    from prefect.utilities.callables import parameter_schema

    from deployments.registry import DEPLOYMENTS

    for spec in DEPLOYMENTS:
        schema = parameter_schema(spec.load_flow().fn)
        undescribed = [n for n, p in schema.properties.items() if not p.get("description")]
        assert not undescribed, f"{spec.full_name}: no description for {undescribed}"


def test_a_duplicate_deployment_name_is_refused():
    from dataclasses import replace

    from deployments.registry import DEPLOYMENTS, check_unique_names

    crawl, score = _spec("crawl/nightly-crawl"), _spec("score/nightly-score")
    with pytest.raises(ValueError, match="nightly-crawl"):
        check_unique_names([*DEPLOYMENTS, replace(score, name=crawl.name)])


def test_normalize_fires_when_the_crawl_deployment_completes():
    crawl = _spec("crawl/nightly-crawl")
    assert _fires("after-crawl", _flow_run_completed(crawl.flow_name, crawl.name))


def test_normalize_does_not_fire_when_scoring_or_anything_else_completes():
    for full_name in (
        "score/nightly-score",
        "train/weekly",
        "nightly/chain",
        "normalize/after-crawl",
    ):
        spec = _spec(full_name)
        assert not _fires("after-crawl", _flow_run_completed(spec.flow_name, spec.name)), full_name
    # the old clash: a score deployment carrying the crawl deployment's name
    assert not _fires("after-crawl", _flow_run_completed("score", "nightly-crawl"))
    # a crawl that is no deployment's run (nightly/chain's subflow, ``hscode crawl``)
    assert not _fires("after-crawl", _flow_run_completed("crawl", None))


def test_normalize_fires_only_on_completion():
    from prefect.server.events.schemas.automations import EventTrigger

    crawl = _spec("crawl/nightly-crawl")
    failed = _flow_run_completed(crawl.flow_name, crawl.name).model_copy(
        update={"event": "prefect.flow-run.Failed"}
    )
    assert not _fires("after-crawl", failed)
    assert all(isinstance(t, EventTrigger) for t in _server_triggers("after-crawl"))


def test_flow_run_completions_start_no_other_deployment():
    # train and score are triggered by hscode's own events, never by a flow run completing
    for spec_name in ("weekly", "nightly-score"):
        for full_name in ("crawl/nightly-crawl", "normalize/after-crawl", "score/nightly-score"):
            spec = _spec(full_name)
            event = _flow_run_completed(spec.flow_name, spec.name)
            assert not _fires(spec_name, event), (spec_name, full_name)


def test_a_failed_or_crashed_run_of_any_project_flow_raises_the_alert():
    from deployments.registry import DEPLOYMENTS

    for spec in DEPLOYMENTS:
        if spec.name == "on-failure":
            continue
        for state in ("Failed", "Crashed"):
            event = _flow_run_completed(spec.flow_name, spec.name, state=state)
            assert _fires("on-failure", event), (spec.full_name, state)
        assert not _fires("on-failure", _flow_run_completed(spec.flow_name, spec.name))
    # a run by hand (no deployment) of a project flow too; the alert's own failure does not
    # raise another alert (no loop)
    assert _fires("on-failure", _flow_run_completed("train", None, state="Failed"))
    assert not _fires("on-failure", _flow_run_completed("alert", "on-failure", state="Failed"))
    (trigger,) = _spec("alert/on-failure").triggers
    assert trigger.parameters == {"flow_run_id": "{{ event.resource.id }}"}


def _live_accuracy_measured(version: str, low: bool):
    from datetime import UTC, datetime
    from uuid import uuid4

    from prefect.server.events.schemas.events import Event

    return Event(
        id=uuid4(),
        occurred=datetime.now(UTC),
        event="hscode.live-accuracy.measured",
        resource={
            "prefect.resource.id": f"hscode.live-accuracy.{version}",
            "hscode.live-accuracy.low": "true" if low else "false",
        },
        payload={"low": low, "recent": {"version": version, "top1": 0.4 if low else 0.9}},
    ).receive()


def test_a_live_accuracy_drop_fires_its_alert_and_nothing_else():
    assert _fires("live-accuracy", _live_accuracy_measured("v7", low=True))
    assert not _fires("live-accuracy", _live_accuracy_measured("v7", low=False))
    for other in ("weekly", "nightly-score", "on-failure", "after-crawl"):
        assert not _fires(other, _live_accuracy_measured("v7", low=True)), other
    (trigger,) = _spec("live-accuracy-alert/live-accuracy").triggers
    assert trigger.parameters == {"version": "{{ event.payload.recent.version }}"}


def test_the_live_accuracy_alert_says_what_dropped_and_where_to_look():
    from flows.alert import live_accuracy_text

    text = live_accuracy_text(
        {
            "low": True,
            "why": "live top-1 of v7 over its last 200 decisions is 41.0%, below the floor",
            "recent": {
                "version": "v7",
                "decided": 200,
                "since": "2026-11-20T09:00:00+00:00",
                "top1": 0.41,
                "top3": 0.62,
                "mean_confidence": 0.83,
                "review_rate": 0.2,
            },
        }
    )
    assert text.startswith("# Live accuracy of v7 dropped")
    assert "top-1 41.0%, top-3 62.0%, mean confidence 83.0%" in text
    assert "decision_disagreements" in text and "live_accuracy_by_chapter" in text


def test_the_alert_says_which_run_failed_where_and_why():
    from flows.alert import failure_text

    text = failure_text(
        {
            "id": "0f3c",
            "name": "brave-otter",
            "flow": "train",
            "deployment": "train/weekly",
            "state": "Crashed",
            "message": "Flow run infrastructure exited with non-zero status code -9.",
            "start_time": "2026-12-01T03:00:02+00:00",
            "end_time": None,
        }
    )
    assert text.startswith("# Crashed: train run brave-otter")
    assert "deployment: train/weekly" in text and "non-zero status code -9" in text
    assert "prefect flow-run logs 0f3c" in text
    assert "no deployment" in failure_text({"id": "x", "flow": "score"})


def test_the_alert_flow_reads_the_failed_run_and_writes_its_artifact(prefect_harness):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.alert import failure_alert_flow

    @flow(name="crawl")
    def broken_crawl() -> None:
        raise RuntimeError("portal answered 503 for an hour")

    state = broken_crawl(return_state=True)
    assert state.is_failed()
    run_id = state.state_details.flow_run_id
    out = failure_alert_flow(f"prefect.flow-run.{run_id}")
    assert out["run"]["flow"] == "crawl" and out["run"]["state"] == "Failed"
    assert "portal answered 503" in out["run"]["message"] and out["notified"] is False
    with get_client(sync_client=True) as client:
        (artifact, *_) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["failed-run"]))
        )
    assert f"`{run_id}`" in artifact.data and "portal answered 503" in artifact.data


def test_the_domain_log_lines_reach_the_run_log(prefect_harness):
    """Training and scoring run inside ``relay_logs``: what ``model`` and ``hscode`` log (each
    epoch, early stopping, the verdict) shows in the run's log in the UI."""
    import logging
    import time

    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    from tasks._logs import relay_logs

    # the tests' PREFECT_LOGGING_LEVEL is WARNING: relay a warning
    @flow(name="relay-check")
    def noisy() -> None:
        with relay_logs():
            logging.getLogger("model.train_loop").warning("epoch %s", {"epoch": 1})
            logging.getLogger("hscode.training").warning("model v0002 registered (kept): why")
        logging.getLogger("model.train_loop").warning("outside: not relayed")

    state = noisy(return_state=True)
    run_id = state.state_details.flow_run_id
    lines: list[tuple[str, str]] = []
    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline and len(lines) < 2:
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=200
            )
            lines = [(entry.name, entry.message) for entry in logs]
            time.sleep(0.5)
    assert ("model.train_loop", "epoch {'epoch': 1}") in lines
    assert ("hscode.training", "model v0002 registered (kept): why") in lines
    assert not any("outside" in m for _, m in lines)
    assert logging.getLogger("model").handlers == []  # the relay is removed afterwards
