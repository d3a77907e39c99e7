"""Every deployment registers against a Prefect server with its schedules, pool, parameters and triggers."""

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
        "crawl/nightly",
        "normalize/after-crawl",
        "train/weekly",
        "score/nightly",
        "nightly/chain",
    } == set(ids)


def test_pools_and_work_pool_types(registered):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        pools = {p.name: p.type for p in client.read_work_pools()}
    assert pools.get("cpu") == "process" and pools.get("gpu") == "process"
    assert _read("train/weekly").work_pool_name == "gpu"
    for name in ("crawl/nightly", "normalize/after-crawl", "score/nightly", "nightly/chain"):
        assert _read(name).work_pool_name == "cpu", name


def test_schedules_are_korean_time(registered):
    crawl = _read("crawl/nightly")
    assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in crawl.schedules] == [
        ("0 1 * * *", "Asia/Seoul", True)
    ]
    train = _read("train/weekly")
    assert [(s.schedule.cron, s.schedule.timezone) for s in train.schedules] == [
        ("0 3 * * 0", "Asia/Seoul")
    ]
    score = _read("score/nightly")
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
    assert "batch_size" in _read("score/nightly").parameter_openapi_schema["properties"]


def test_concurrency_tags_and_working_dir(registered):
    from deployments.registry import code_version

    workdir, _ = registered
    for name in ("crawl/nightly", "train/weekly", "score/nightly", "nightly/chain"):
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

    score = by_deployment[ids["score/nightly"]]
    assert [sorted(t.expect) for t in score] == [["hscode.model.promoted"]]
    assert score[0].match.root["prefect.resource.id"] == "hscode.model.*"

    train = by_deployment[ids["train/weekly"]]
    assert [sorted(t.expect) for t in train] == [["hscode.cases.normalized"]]
    assert train[0].match.root["hscode.training.due"] == "true"

    normalize = by_deployment[ids["normalize/after-crawl"]]
    assert [sorted(t.expect) for t in normalize] == [["prefect.flow-run.Completed"]]
    related = normalize[0].match_related
    related = related[0] if isinstance(related, list) else related
    assert related.root["prefect.resource.name"] == "nightly"
    assert related.root["prefect.resource.role"] == "deployment"

    assert ids["crawl/nightly"] not in by_deployment


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


def test_tag_concurrency_limits(prefect_harness):
    from prefect.client.orchestration import get_client

    from deployments.registry import TAG_CONCURRENCY, ensure_tag_concurrency

    ensure_tag_concurrency()
    try:
        with get_client(sync_client=True) as client:
            for tag, limit in TAG_CONCURRENCY.items():
                assert client.read_concurrency_limit_by_tag(tag).concurrency_limit == limit
    finally:
        with get_client(sync_client=True) as client:
            for tag in TAG_CONCURRENCY:
                client.delete_concurrency_limit_by_tag(tag)
