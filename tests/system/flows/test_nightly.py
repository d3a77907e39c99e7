"""End to end: the nightly flow against the emulator and an embedded Postgres.

A tiny corpus (60 cases over 4 codes) keeps training to seconds; everything else is the
real thing: HTTP on 127.0.0.1 with injected faults, raw zone, Parquet, training,
registry, Postgres rows.
"""

from __future__ import annotations

import pytest

# the whole nightly chain, several times: about 70 s of the suite, so kept for `make test-slow`
pytestmark = [pytest.mark.flow, pytest.mark.slow]

N_CODES = 4
N_CASES = 60
N_REQUESTS = 6


@pytest.fixture(scope="module")
def tiny_corpus():
    from collections import Counter

    from emulator.corpus import Corpus, demo_corpus
    from hscode.hs import parse_hs

    pool = demo_corpus(n_cases=800, seed=3)
    # the pool's most frequent codes (it has 75 and a long tail), up to 15 cases each
    frequent = Counter(parse_hs(c.hs_code).hs10 for c in pool if parse_hs(c.hs_code).hs10)
    codes = [code for code, _ in frequent.most_common(N_CODES)]
    chosen = []
    for case in pool:
        code = parse_hs(case.hs_code).hs10
        if (
            code in codes
            and sum(parse_hs(c.hs_code).hs10 == code for c in chosen) < N_CASES // N_CODES
        ):
            chosen.append(case)
    assert len(chosen) == N_CASES
    return Corpus(chosen, name="tiny"), set(codes)


@pytest.fixture(scope="module")
def nightly_run(prefect_harness, tiny_corpus):
    from conftest_db import embedded_data_dir, stop_embedded

    from app.demo import DEMO_SETTINGS, demo_requests
    from emulator.server import EmulatorServer
    from flows.nightly import nightly_flow
    from hscode.db import get_engine, migrate
    from hscode.intake import submit_requests
    from hscode.settings import Settings

    corpus, codes = tiny_corpus
    # outside pytest's temp tree: see conftest_db.embedded_data_dir
    settings = Settings(data_dir=embedded_data_dir(), _env_file=None)
    overrides = {"data_dir": str(settings.data_dir), **DEMO_SETTINGS}
    engine = get_engine(settings)
    migrate(engine)
    requests = demo_requests(N_REQUESTS, {c.title for c in corpus})
    submit_requests(engine, requests)
    dates = [c.decision_date for c in corpus]
    with EmulatorServer(corpus, fault_rate=0.05, seed=1, slow_s=0.2) as emulator:
        summary = nightly_flow(
            since=min(dates),
            until=max(dates),
            portal_url=emulator.url,
            train="auto",
            epochs=2,
            settings_overrides=overrides,
        )
        faults = sum(emulator.stats["faults"].values())
    yield settings, engine, summary, requests, codes, faults
    from hscode.db import dispose_engine

    dispose_engine(engine)
    stop_embedded(settings.data_dir)


def _predictions(engine):
    from sqlalchemy import text

    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "select request_id, rank, hs10, score from latest_predictions order by request_id, rank"
            )
        ).all()
    by_request: dict[str, list] = {}
    for row in rows:
        by_request.setdefault(row.request_id, []).append(row)
    return by_request


def test_every_request_gets_k_ranked_codes_from_the_corpus(nightly_run):
    settings, engine, summary, requests, codes, _ = nightly_run
    assert summary["train"]["trained"] is True
    by_request = _predictions(engine)
    assert sorted(by_request) == sorted(r["request_id"] for r in requests)
    k = min(settings.top_k, len(codes))
    for request_id, rows in by_request.items():
        assert [r.rank for r in rows] == list(range(1, k + 1)), request_id
        assert {r.hs10 for r in rows} <= codes, request_id
        scores = [float(r.score) for r in rows]
        assert all(0.0 <= s <= 1.0 for s in scores), scores
        assert scores == sorted(scores, reverse=True), scores


def test_crawl_survived_faults_and_normalized_every_case(nightly_run, tiny_corpus):
    _, _, summary, _, _codes, faults = nightly_run
    corpus, _ = tiny_corpus
    assert faults > 0  # the crawl really was exercised against failures
    assert summary["normalize"]["trainable_cases"] == len(corpus)
    # the chain trains and scores itself: it announces neither a due training nor the
    # promotion, so the train and score deployments' triggers do not run them a second time
    assert summary["normalize"]["training_due"] is True
    assert summary["normalize"]["announced_training_due"] is False
    assert summary["train"]["promoted"] is True and summary["train"]["announced"] is False
    assert summary["score"]["model_version"] == summary["train"]["version"]


def test_second_run_skips_training_and_adds_no_rows(nightly_run, tiny_corpus):
    from sqlalchemy import text

    from app.demo import DEMO_SETTINGS
    from emulator.server import EmulatorServer
    from flows.nightly import nightly_flow

    settings, engine, first, _, _, _ = nightly_run
    corpus, _ = tiny_corpus
    with engine.connect() as conn:
        before = conn.execute(text("select count(*) from predictions")).scalar()
    dates = [c.decision_date for c in corpus]
    with EmulatorServer(corpus, fault_rate=0.0) as emulator:
        again = nightly_flow(
            since=min(dates),
            until=max(dates),
            portal_url=emulator.url,
            settings_overrides={"data_dir": str(settings.data_dir), **DEMO_SETTINGS},
        )
    assert again["train"]["trained"] is False
    assert again["score"]["model_version"] == first["train"]["version"]
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from predictions")).scalar() == before


def test_artifacts_published(nightly_run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    keys = ["crawl-summary", "data-quality-report", "training-report", "scoring-summary"]
    with get_client(sync_client=True) as client:
        found = {
            key: client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
            )
            for key in keys
        }
    assert all(found[key] for key in keys), {k: len(v) for k, v in found.items()}
    training = found["training-report"][0].data
    assert "data:image/png;base64," in training and "Learning curves" in training


def test_dask_partitions_give_the_same_predictions_as_the_default_runner(nightly_run):
    """Re-score the backlog on a local two-worker Dask cluster: identical rows."""
    from sqlalchemy import text

    from flows.score import score_flow

    settings, engine, first, _, _, _ = nightly_run
    version = first["score"]["model_version"]
    query = text(
        "select request_id, rank, hs10, score, review from predictions "
        "where model_version = :v order by request_id, rank"
    )
    prec_query = text(
        "select request_id, rank, case_key, similarity from precedents "
        "where model_version = :v order by request_id, rank"
    )
    with engine.begin() as conn:
        default_rows = conn.execute(query, {"v": version}).all()
        default_prec = conn.execute(prec_query, {"v": version}).all()
        # forget this version's answers so the cluster scores the same backlog again
        conn.execute(text("delete from precedents where model_version = :v"), {"v": version})
        conn.execute(text("delete from predictions where model_version = :v"), {"v": version})
        conn.execute(text("update requests set status = 'pending' where status = 'scored'"))
    assert default_rows
    summary = score_flow(
        partitions=2,
        settings_overrides={"data_dir": str(settings.data_dir), "dask_address": "local:2"},
    )
    assert summary["runner"] == "DaskTaskRunner"
    assert summary["partitions"] == 2
    assert summary["scored"] == len({r.request_id for r in default_rows})
    with engine.connect() as conn:
        dask_rows = conn.execute(query, {"v": version}).all()
        dask_prec = conn.execute(prec_query, {"v": version}).all()
    # the same codes in the same order with the same review flags; scores agree to float32
    # rounding (a partition encodes and multiplies other batches, so BLAS adds in another order)
    key = lambda r: (r.request_id, r.rank, r.hs10, r.review)
    assert [key(r) for r in dask_rows] == [key(r) for r in default_rows]
    assert all(
        abs(a.score - b.score) <= 1e-5 * max(abs(b.score), 1e-6)
        for a, b in zip(dask_rows, default_rows, strict=True)
    )
    # precedents: the same cases in the same order; similarities agree to float32 rounding
    # (a worker runs torch on one thread, so sums are added in another order)
    assert [tuple(r)[:3] for r in dask_prec] == [tuple(r)[:3] for r in default_prec]
    assert all(
        abs(a.similarity - b.similarity) < 1e-5
        for a, b in zip(dask_prec, default_prec, strict=True)
    )
