"""Reviewers' decisions teach the model (hscode.review_cases) and say how it does live
(hscode.live_accuracy): decided requests become cases of source "review", incrementally and
idempotently; the next training counts and learns them and indexes them as precedents; the
recent live accuracy and its floor equal a hand computation."""

from __future__ import annotations

import pytest
from db_rows import empty_tables, insert_scored
from sqlalchemy import text

from hscode.cases import read_cases
from hscode.decisions import record_decision
from hscode.intake import submit_requests
from hscode.live_accuracy import live_check, live_report, recent_accuracy
from hscode.review_cases import CASE_SOURCE, cases_from_decisions, take_decisions
from hscode.settings import Settings
from hscode.tariff import load_tariff_rows
from model.synthetic import PRODUCTS

pytest_plugins = ["conftest_db"]

CODES = sorted(PRODUCTS)


@pytest.fixture
def engine(pg_engine):
    empty_tables(pg_engine)
    load_tariff_rows(pg_engine, [{"hs10": c, "name_ko": "x"} for c in CODES], "e26", current=True)
    submit_requests(
        pg_engine,
        [
            {"request_id": "REQ-1", "title": "스마트폰 Acme QX-1", "description": "무선 통신"},
            {"request_id": "REQ-2", "title": "travel backpack Boxlight B7"},
            {"request_id": "REQ-3", "title": "LCD monitor 27 inch"},
        ],
    )
    return pg_engine


@pytest.fixture
def settings(engine, tmp_path):
    url = engine.url.render_as_string(hide_password=False)
    return Settings(data_dir=tmp_path / "var", database_url=url, _env_file=None)


def _review_cases(settings) -> dict[str, dict]:
    rows = read_cases(settings).to_pylist()
    return {r["case_key"]: r for r in rows if r["source"] == CASE_SOURCE}


def test_decisions_become_cases_incrementally_and_a_later_one_replaces_its_case(engine, settings):
    phone, bag, other = CODES[CODES.index("8517130000")], "4202920000", CODES[0]
    record_decision(engine, "REQ-1", phone, "checked the spec sheet", decided_by="kim")
    record_decision(engine, "REQ-2", bag, decided_by="lee")

    first = take_decisions(settings)
    assert (first.decisions, first.cases, first.inserted, first.rejected) == (2, 2, 2, 0)
    cases = _review_cases(settings)
    assert set(cases) == {"review:REQ-1", "review:REQ-2"}
    one = cases["review:REQ-1"]
    assert one["hs10"] == phone and one["title"] == "스마트폰 Acme QX-1"
    assert one["description"] == "무선 통신" and one["decision_reason"] == "checked the spec sheet"
    assert one["reference_no"] == "REQ-1" and one["decision_date"] is not None
    assert one["code_status"] == "current"  # derived against the current edition

    again = take_decisions(settings)  # nothing new above the checkpoint
    assert (again.decisions, again.inserted, again.updated) == (0, 0, 0)

    record_decision(engine, "REQ-1", other, "second look: not a phone", decided_by="park")
    later = take_decisions(settings)
    assert (later.decisions, later.inserted, later.updated) == (1, 0, 1)
    cases = _review_cases(settings)
    assert len(cases) == 2 and cases["review:REQ-1"]["hs10"] == other
    assert cases["review:REQ-1"]["decision_reason"] == "second look: not a phone"

    full = cases_from_decisions(settings, engine, full=True)  # a full re-read rewrites nothing
    assert (full.decisions, full.inserted, full.updated, full.unchanged) == (2, 0, 0, 2)


def test_without_a_database_there_is_nothing_to_take(tmp_path):
    assert take_decisions(Settings(data_dir=tmp_path / "var", _env_file=None)) is None


def test_the_next_training_learns_the_decisions_counts_them_and_cites_them(engine, settings):
    from hscode.case_records import synthetic_case_records
    from hscode.cases import upsert_cases
    from hscode.registry import Registry
    from hscode.training import TrainConfig, train_and_register

    upsert_cases(settings, synthetic_case_records(100, seed=4, prefix="s", decision_date=None))
    record_decision(engine, "REQ-1", "8517130000", decided_by="kim")
    record_decision(engine, "REQ-2", "4202920000", decided_by="kim")
    record_decision(engine, "REQ-3", "8528520000", decided_by="kim")
    assert take_decisions(settings).inserted == 3
    outcome = train_and_register(
        settings,
        TrainConfig(inputs="title", epochs=3, embed_dim=16, embed_epochs=2, hidden=16,
                    batch_size=16, device="cpu", num_threads=1),
    )  # fmt: skip
    assert outcome.metrics["n_review_cases"] == 3
    assert outcome.report["selection"]["sources"][CASE_SOURCE] == 3
    served = Registry.from_settings(settings).load(outcome.version)
    assert {"review:REQ-1", "review:REQ-2", "review:REQ-3"} <= set(served.precedents.keys)


def test_recent_live_accuracy_and_its_floor_equal_a_hand_computation(engine):
    phone, bag, monitor = "8517130000", "4202920000", "8528520000"
    insert_scored(
        engine,
        "v1",
        {
            "REQ-1": [(phone, 0.9, False), (bag, 0.05, False)],  # right at 1
            "REQ-2": [(phone, 0.6, False), (bag, 0.3, False)],  # right at 2
            "REQ-3": [(phone, 0.4, True), (bag, 0.3, True), (phone[:8] + "99", 0.1, True)],
        },
    )
    for rid, code in (("REQ-1", phone), ("REQ-2", bag), ("REQ-3", monitor)):
        record_decision(engine, rid, code, decided_by="kim")

    recent = recent_accuracy(engine, "v1", window=10)
    assert recent.decided == 3
    assert recent.top1 == pytest.approx(1 / 3) and recent.top3 == pytest.approx(2 / 3)
    assert recent.mean_confidence == pytest.approx((0.9 + 0.6 + 0.4) / 3)
    assert recent.review_rate == pytest.approx(1 / 3)
    # the window keeps the newest decisions: REQ-3 then REQ-2
    newest = recent_accuracy(engine, "v1", window=2)
    assert newest.decided == 2 and newest.top1 == 0.0 and newest.top3 == pytest.approx(0.5)

    low = live_check(engine, "v1", window=10, min_top1=0.5, min_decisions=3)
    assert low.low and "33.3%" in low.why and "below" in low.why
    ok = live_check(engine, "v1", window=10, min_top1=0.3, min_decisions=3)
    assert not ok.low
    few = live_check(engine, "v1", window=10, min_top1=0.5, min_decisions=4)
    assert not few.low and "too few to judge" in few.why
    assert recent_accuracy(engine, "v-none", window=10).decided == 0
    # one read gives the same verdict, and (confidence, right) for every decided request
    check, confidences, right = live_report(engine, "v1", window=2, min_top1=0.5, min_decisions=1)
    assert check == live_check(engine, "v1", window=2, min_top1=0.5, min_decisions=1)
    assert sorted(confidences) == pytest.approx([0.4, 0.6, 0.9]) and sum(right) == 1


def test_the_demo_reviewer_decides_flagged_answers_first_and_shows_live_accuracy(engine):
    from app.demo_review import decide_some, live_accuracy_lines

    phone, bag, monitor = "8517130000", "4202920000", "8528520000"
    insert_scored(
        engine,
        "v1",
        {
            "REQ-1": [(phone, 0.95, False)],
            "REQ-2": [(phone, 0.40, True)],  # flagged: decided first
            "REQ-3": [(monitor, 0.70, False)],
        },
        champion=True,
    )
    assert live_accuracy_lines(engine)[0].endswith(
        "no decided request was scored by the champion yet"
    )
    truth = {"REQ-1": "8517.13-0000", "REQ-2": bag, "REQ-3": "9999999999"}  # not current
    assert decide_some(engine, truth, limit=2) == {"recorded": 2, "unchanged": 0, "refused": 1}
    with engine.connect() as conn:
        decided = dict(conn.execute(text("select request_id, hs10 from current_decisions")).all())
    assert decided == {"REQ-2": bag, "REQ-1": phone}
    assert decide_some(engine, truth, limit=2) == {"recorded": 0, "unchanged": 2, "refused": 1}
    lines = live_accuracy_lines(engine)
    assert "2 decided, top-1 50%" in lines[1]
    assert "1 decisions differ from the champion's top code" in lines[2]
