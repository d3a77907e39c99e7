"""The score flow publishes each run's drift (issue 16): per partition and for the backlog.

A small real model; the backlog holds requests of words never seen in training and requests
of training titles, scored in two partitions (the default task runner, no Dask).
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

pytest_plugins = ["conftest_db"]
pytestmark = pytest.mark.flow


def _artifact(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    assert found, f"no artifact {key!r}"
    return str(found[0].data)


def test_the_score_flow_publishes_the_drift_of_each_run(prefect_harness, pg_engine, tmp_path):
    from flows.score import score_flow
    from hscode.case_records import synthetic_case_records
    from hscode.cases import read_cases, upsert_cases
    from hscode.intake import submit_requests
    from hscode.settings import Settings
    from hscode.training import SMOKE_TRAIN, TrainConfig, train_and_register

    url = pg_engine.url.render_as_string(hide_password=False)
    overrides = {"data_dir": str(tmp_path / "var"), "database_url": url}
    settings = Settings(**overrides, _env_file=None)
    upsert_cases(settings, synthetic_case_records(120, seed=5, prefix="d", decision_date=None))
    outcome = train_and_register(settings, TrainConfig(**SMOKE_TRAIN))
    titles = [r["title"] for r in read_cases(settings).to_pylist()[:6]]
    rows = [{"request_id": f"k{i}", "title": t} for i, t in enumerate(titles)]
    rows += [{"request_id": f"u{i}", "title": f"zorblax{i} quimvet fnargh"} for i in range(6)]
    submit_requests(pg_engine, rows)

    summary = score_flow(partitions=2, settings_overrides=overrides)
    assert summary["scored"] == 12 and summary["partitions"] == 2
    with pg_engine.connect() as conn:
        runs = conn.execute(
            text(
                "select request_tokens, unseen_tokens, test_review_rate from score_run_history "
                "where model_version = :v"
            ),
            {"v": outcome.version},
        ).all()
    assert len(runs) == 2
    pooled = sum(r.unseen_tokens for r in runs) / sum(r.request_tokens for r in runs)
    assert summary["unseen_token_share"] == pytest.approx(pooled)
    assert 0.3 < pooled < 0.9  # half the requests are all unseen words, half all known ones
    assert runs[0].test_review_rate == pytest.approx(outcome.metrics["test_review_rate"])
    assert summary["test_review_rate"] == pytest.approx(outcome.metrics["test_review_rate"])

    backlog = _artifact("scoring-drift")
    assert "2 partitions" in backlog and "| review rate |" in backlog
    assert f"| {pooled:.3f} |" in backlog.split("share of tokens unseen in training")[1]
    part = _artifact("scoring-drift-0-of-2")
    assert "partition 1 of 2" in part and "model's test cases" in part
