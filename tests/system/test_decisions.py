"""Reviewers' decisions (sql/009, hscode.decisions, hscode review): the reviewer role, the
validation in record_decision(), superseding and history, idempotent imports, live
accuracy against a hand computation, and the CLI."""

from __future__ import annotations

import getpass
import json
import uuid
from pathlib import Path

import pytest
from db_rows import empty_tables, insert_scored
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, ProgrammingError

from hscode.db import ANALYST_ROLE, REVIEWER_ROLE, create_reviewer_login
from hscode.decisions import (
    DecisionFileError,
    DecisionRefused,
    import_decisions,
    record_decision,
    review_queue,
)
from hscode.intake import submit_requests
from hscode.rejects import RejectReason
from hscode.tariff import load_tariff_rows, set_current_edition

# one embedded Postgres for the whole session, a fresh database per module
pytest_plugins = ["conftest_db"]

CURRENT = "hsk2026"
OLDER = "hsk2020"
CURRENT_CODES = {
    "33": ("정유·향료·화장품", "Essential oils, perfumery, cosmetics"),
    "3304": ("미용·화장용 제품", "Beauty or make-up preparations"),
    "3304101000": ("립스틱", "Lipstick"),
    "3304102000": ("립글로스", "Lip gloss"),
    "3304200000": ("눈 화장용 제품", "Eye make-up preparations"),
    "3304300000": ("매니큐어용 제품", "Manicure preparations"),
    "9608100000": ("볼펜", "Ball point pens"),
    "6109101000": ("면 티셔츠", "Cotton T-shirts"),
    "8471300000": ("휴대용 컴퓨터", "Portable computers"),
}
REQUESTS = {f"R{i}": f"요청 {i}" for i in range(1, 7)}


@pytest.fixture
def engine(pg_engine):
    """Empty tables, a current edition (and an older one with 3304109000), six requests."""
    empty_tables(pg_engine)
    load_tariff_rows(
        pg_engine,
        [{"code": c, "name_ko": ko, "name_en": en} for c, (ko, en) in CURRENT_CODES.items()],
        CURRENT,
        current=True,
    )
    load_tariff_rows(pg_engine, [{"code": "3304109000", "name_ko": "기타 입술용"}], OLDER)
    submit_requests(pg_engine, [{"request_id": r, "title": t} for r, t in REQUESTS.items()])
    return pg_engine


def _roles_exist(engine) -> None:
    with engine.connect() as conn:
        found = conn.execute(
            text("select count(*) from pg_roles where rolname in (:a, :r)"),
            {"a": ANALYST_ROLE, "r": REVIEWER_ROLE},
        ).scalar()
    if found != 2:
        pytest.skip("no CREATEROLE on this server: analyst / reviewer roles not created")


def _decisions(engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(text("select * from decisions order by decision_id")).mappings()
        return [dict(r) for r in rows]


def _current(engine) -> dict[str, dict]:
    with engine.connect() as conn:
        rows = conn.execute(text("select * from current_decisions")).mappings()
        return {r["request_id"]: dict(r) for r in rows}


def _scores(engine, version: str, champion: bool, ranked: dict[str, list]) -> None:
    """Predictions of ``version``: request -> [(hs10, score, review) by rank]."""
    insert_scored(engine, version, ranked, champion)


def _decide_at(engine, rows: list[tuple[str, str, str]]) -> None:
    """Decisions at chosen times (request, code, decided_at), in this order (ids ascending)."""
    with engine.begin() as conn:
        for rid, code, at in rows:
            conn.execute(
                text(
                    "insert into decisions (request_id, hs10, decided_by, decided_at, source,"
                    " tariff_edition, supersedes) values (:r, :c, 'kim',"
                    " cast(:at as timestamptz), 'review', :e,"
                    " (select max(decision_id) from decisions where request_id = :r))"
                ),
                {"r": rid, "c": code, "at": at, "e": CURRENT},
            )


# ----------------------------------------------------------------------------- roles


def _refused(engine, statement: str, match: str | None = "permission denied") -> None:
    with engine.connect() as conn, pytest.raises(DBAPIError, match=match):
        conn.execute(text(statement))


def test_reviewer_decides_and_reads_views_but_no_table(engine):
    _roles_exist(engine)
    login, password = f"reviewer_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    create_reviewer_login(engine, login, password)
    reviewer = create_engine(engine.url.set(username=login, password=password))
    try:
        with reviewer.begin() as conn:
            first = conn.execute(text("select decide('R1', '3304.10-1000', 'checked')")).scalar()
            again = conn.execute(text("select decide('R1', '3304101000', 'checked')")).scalar()
            assert again == first  # identical: nothing new
            other = conn.execute(text("select decide('R2', '9608 10 0000')")).scalar()
            assert other != first
            mine = conn.execute(
                text("select request_id, hs10, decided_by, source from current_decisions")
            ).all()
        assert sorted(mine) == [
            ("R1", "3304101000", login, "review"),
            ("R2", "9608100000", login, "review"),
        ]
        assert len(_decisions(engine)) == 2

        # every view the analyst reads, and the decision views
        with engine.connect() as conn:
            analyst_views = conn.execute(
                text(
                    "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
                    " where n.nspname = current_schema() and c.relkind in ('v', 'm', 'r')"
                    " and has_table_privilege(:a, c.oid, 'SELECT')"
                ),
                {"a": ANALYST_ROLE},
            ).scalars()
            analyst_views = set(analyst_views)
        new_views = {
            "current_decisions",
            "decision_history",
            "live_accuracy_requests",
            "live_accuracy",
            "live_accuracy_by_chapter",
            "decision_disagreements",
        }
        assert new_views | {"latest_predictions", "review_queue", "tariff_codes"} <= analyst_views
        for view in sorted(analyst_views):
            with reviewer.connect() as conn:
                conn.execute(text(f"select * from {view} limit 1")).all()

        # no table, no write, no way around decide()
        for table in (
            "requests",
            "predictions",
            "precedents",
            "decisions",
            "intake_rejects",
            "model_versions",
            "tariff",
            "tariff_editions",
            "tariff_edition_codes",
            "score_runs",
        ):
            _refused(reviewer, f"select * from {table} limit 1")
        for statement in (
            (
                "insert into decisions (request_id, hs10, decided_by, source, tariff_edition)"
                " values ('R3', '3304101000', 'someone', 'review', 'hsk2026')"
            ),
            "insert into requests (request_id, title) values ('x', 'x')",
            "update model_versions set champion = true",
            "delete from predictions",
            "insert into intake_rejections (request_id, reason) values ('a', 'x')",
            "create table reviewer_scratch (x int)",
            # decided_by is trusted there: a reviewer must not name someone else
            "select * from record_decision('R3', '3304101000', null, 'someone', 'review')",
        ):
            _refused(reviewer, statement)
        _refused(reviewer, "insert into current_decisions (request_id) values ('R3')", None)
        # refusals reach the reviewer with their SQLSTATE
        with reviewer.connect() as conn, pytest.raises(DBAPIError) as info:
            conn.execute(text("select decide('R3', '3304-10')"))
        assert info.value.orig.sqlstate == "HS001"
    finally:
        reviewer.dispose()
        with engine.begin() as conn:
            conn.execute(text(f'drop role "{login}"'))


def test_analyst_reads_the_decision_views_and_cannot_decide(engine):
    _roles_exist(engine)
    record_decision(engine, "R1", "3304101000", decided_by="kim")
    with engine.begin() as conn:
        conn.execute(text(f"set local role {ANALYST_ROLE}"))
        for view in ("current_decisions", "decision_history", "live_accuracy"):
            conn.execute(text(f"select * from {view}")).all()
        conn.execute(text("select * from live_accuracy_by_chapter")).all()
        conn.execute(text("select * from decision_disagreements")).all()
    for statement in (
        "select decide('R2', '3304101000')",
        "select * from record_decision('R2', '3304101000', null, 'ana', 'review')",
        "select * from decisions",
    ):
        with engine.begin() as conn:
            conn.execute(text(f"set local role {ANALYST_ROLE}"))
            with pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text(statement))
    assert len(_decisions(engine)) == 1


# ----------------------------------------------------------------------------- validation


def test_bad_decisions_are_refused_with_their_reason(engine):
    cases = [
        ("R1", "3304.10", RejectReason.MALFORMED_CODE, "6 digits"),
        ("R1", "33O4101000", RejectReason.MALFORMED_CODE, "characters other than digits"),
        ("R1", "", RejectReason.MALFORMED_CODE, "no code given"),
        ("R1", "3304109000", RejectReason.NOT_CURRENT_CODE, f"(it is in {OLDER})"),
        ("R1", "0101000000", RejectReason.NOT_CURRENT_CODE, "no loaded edition has it"),
        ("NOPE", "3304101000", RejectReason.UNKNOWN_REQUEST, "'NOPE'"),
    ]
    for request_id, code, reason, words in cases:
        with pytest.raises(DecisionRefused) as info:
            record_decision(engine, request_id, code, decided_by="kim")
        assert info.value.reason is reason, (code, info.value)
        assert words in info.value.message, info.value.message
    # a code of an older edition: the hint names the current codes beside it
    with pytest.raises(DecisionRefused) as info:
        record_decision(engine, "R1", "3304.10-9000", decided_by="kim")
    assert info.value.hint == "current codes under 3304.10: 3304.10-1000, 3304.10-2000"
    with pytest.raises(DecisionRefused) as info:
        record_decision(engine, "R1", "3304101000", "x" * 4001, decided_by="kim")
    assert info.value.reason is RejectReason.OVERSIZE_TEXT
    with pytest.raises(ValueError, match="source"):
        record_decision(engine, "R1", "3304101000", decided_by="kim", source="guess")
    with pytest.raises(ValueError, match="decided_by"):
        record_decision(engine, "R1", "3304101000", decided_by="  ")
    assert _decisions(engine) == []

    # no current edition: nothing can be checked, and it says how to load one
    with engine.begin() as conn:
        conn.execute(text("update tariff_editions set is_current = false"))
        conn.execute(text("select tariff_refresh()"))
    try:
        with pytest.raises(DecisionRefused) as info:
            record_decision(engine, "R1", "3304101000", decided_by="kim")
        assert info.value.reason is RejectReason.NO_CURRENT_EDITION
        assert "hscode tariff load PATH --edition NAME --current" in str(info.value)
    finally:
        set_current_edition(engine, CURRENT)
    assert record_decision(engine, "R1", "3304101000", decided_by="kim").recorded


def test_a_later_decision_supersedes_and_the_history_stays(engine):
    first = record_decision(engine, "R1", "3304101000", "first look", decided_by="kim")
    assert first.recorded and first.hs10 == "3304101000" and first.tariff_edition == CURRENT
    same = record_decision(engine, "R1", "3304.10-1000", " first look ", decided_by="kim")
    assert not same.recorded and same.decision_id == first.decision_id
    second = record_decision(engine, "R1", "3304102000", "gloss, not stick", decided_by="lee")
    assert second.recorded and second.decision_id > first.decision_id
    current = _current(engine)["R1"]
    assert (current["hs10"], current["hs6"], current["hs4"], current["hs2"]) == (
        "3304102000",
        "330410",
        "3304",
        "33",
    )
    assert current["decided_by"] == "lee" and current["note"] == "gloss, not stick"
    assert current["n_decisions"] == 2 and current["decision_id"] == second.decision_id
    assert current["supersedes"] == first.decision_id
    # the first decision's code again is a new decision (it is not the current one)
    third = record_decision(engine, "R1", "3304101000", "first look", decided_by="kim")
    assert third.recorded and _current(engine)["R1"]["n_decisions"] == 3
    with engine.connect() as conn:
        history = conn.execute(
            text(
                "select decision_id, hs10, is_current, supersedes from decision_history"
                " where request_id = 'R1' order by decision_id"
            )
        ).all()
    assert history == [
        (first.decision_id, "3304101000", False, None),
        (second.decision_id, "3304102000", False, first.decision_id),
        (third.decision_id, "3304101000", True, second.decision_id),
    ]
    # append-only: no update, no delete, and a decided request cannot be deleted
    for statement in (
        "update decisions set hs10 = '9608100000'",
        "delete from decisions",
        "delete from requests where request_id = 'R1'",
    ):
        with engine.begin() as conn, pytest.raises(DBAPIError, match="append-only|foreign key"):
            conn.execute(text(statement))
    assert len(_decisions(engine)) == 3


def test_concurrent_decisions_for_one_request_chain_instead_of_forking(engine):
    """A decision waiting on another one's uncommitted insert retries once that commits:
    it supersedes it (no two decisions superseding the same one)."""
    import threading

    from hscode.decisions import _record

    done: list[object] = []
    with engine.connect() as first:
        trans = first.begin()
        _record(first, "R1", "3304101000", None, "kim", "review")

        def second() -> None:
            try:
                done.append(record_decision(engine, "R1", "3304102000", decided_by="lee"))
            except Exception as exc:  # noqa: BLE001 - asserted below
                done.append(exc)

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(2)
        assert thread.is_alive()  # waiting on the first one's row
        trans.commit()
        thread.join(30)
    assert len(done) == 1 and getattr(done[0], "recorded", False), done
    history = _decisions(engine)
    assert [(d["hs10"], d["decided_by"]) for d in history] == [
        ("3304101000", "kim"),
        ("3304102000", "lee"),
    ]
    assert history[1]["supersedes"] == history[0]["decision_id"]
    assert _current(engine)["R1"]["hs10"] == "3304102000"


# ----------------------------------------------------------------------------- imports


def _write(path: Path, content: str) -> Path:
    path.write_text(content, encoding="utf-8")
    return path


def _counts(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (
            conn.execute(text("select count(*) from decisions")).scalar(),
            conn.execute(text("select count(*) from intake_rejects")).scalar(),
        )


def test_csv_import_records_good_rows_reports_bad_ones_and_reimport_changes_nothing(
    engine, tmp_path
):
    csv_file = _write(
        tmp_path / "decisions.csv",
        "request_id,hs_code,note,decided_by,extra\n"
        "R1,3304.10-1000,checked with the sample,kim,x\n"  # row 1: recorded
        "R2,3304-10,,,\n"  # row 2: malformed
        "R3,3304109000,,,\n"  # row 3: an older edition's code
        "NOPE,3304101000,,,\n"  # row 4: unknown request
        "R4,,,,\n"  # row 5: no code
        ",3304101000,,,\n"  # row 6: no request_id
        "R5,9608100000,,,\n"  # row 7: recorded, decided_by from the default
        "R1,3304102000,,,\n",  # row 8: R1 again
    )
    report = import_decisions(engine, csv_file, decided_by_default="importer")
    assert (report.rows, report.recorded, report.unchanged, report.rejected) == (8, 2, 0, 6)
    assert report.ignored_columns == ["extra"]
    assert [(r.row, r.where, r.request_id, r.reason) for r in report.rejects] == [
        (2, "line 3", "R2", RejectReason.MALFORMED_CODE),
        (3, "line 4", "R3", RejectReason.NOT_CURRENT_CODE),
        (4, "line 5", "NOPE", RejectReason.UNKNOWN_REQUEST),
        (5, "line 6", "R4", RejectReason.EMPTY_HS_CODE),
        (6, "line 7", None, RejectReason.EMPTY_KEY),
        (8, "line 9", "R1", RejectReason.DUPLICATE),
    ]
    assert report.reasons == {
        "malformed_code": 1,
        "not_current_code": 1,
        "unknown_request": 1,
        "empty_hs_code": 1,
        "empty_key": 1,
        "duplicate": 1,
    }
    assert "line 2 of this file" in report.rejects[-1].message
    current = _current(engine)
    assert {rid: (d["hs10"], d["decided_by"], d["source"]) for rid, d in current.items()} == {
        "R1": ("3304101000", "kim", "import"),
        "R5": ("9608100000", "importer", "import"),
    }
    assert current["R1"]["note"] == "checked with the sample"
    with engine.connect() as conn:
        logged = conn.execute(
            text(
                "select request_id, reason_code, reason, record_kind, source"
                " from intake_rejections order by reject_id"
            )
        ).all()
        overview = set(
            conn.execute(text("select request_id from request_overview")).scalars().all()
        )
    assert [(r.request_id, r.reason_code) for r in logged] == [
        ("R2", "malformed_code"),
        ("R3", "not_current_code"),
        ("NOPE", "unknown_request"),
        ("R4", "empty_hs_code"),
        (None, "empty_key"),
        ("R1", "duplicate"),
    ]
    assert {r.record_kind for r in logged} == {"decision"}
    assert {r.source for r in logged} == {"decisions:decisions.csv"}
    assert logged[0].reason.startswith("line 3: code '3304-10' is not a ten-digit HS code")
    # a refused decision naming an unknown request is not a refused request
    assert "NOPE" not in overview and None not in overview

    before = _counts(engine)
    again = import_decisions(engine, csv_file, decided_by_default="importer")
    assert (again.rows, again.recorded, again.unchanged, again.rejected) == (8, 0, 2, 6)
    assert _counts(engine) == before


def test_json_lines_import_reports_unreadable_lines(engine, tmp_path):
    jsonl = _write(
        tmp_path / "decisions.jsonl",
        '{"request_id": "R1", "hs_code": "3304101000", "note": "ok"}\n'
        "{not json\n"
        "\n"
        '["R2", "3304101000"]\n'
        '{"request_id": "R2", "hs_code": 3304200000, "decided_by": "park", "why": "x"}\n'
        '{"request_id": "R3", "hs_code": 101000000}\n',  # a number lost its leading zero
    )
    report = import_decisions(engine, jsonl, decided_by_default="importer")
    assert (report.rows, report.recorded, report.rejected) == (5, 2, 3)
    assert [(r.row, r.reason) for r in report.rejects] == [
        (2, RejectReason.UNREADABLE_ROW),
        (4, RejectReason.UNREADABLE_ROW),
        (6, RejectReason.MALFORMED_CODE),
    ]
    assert "invalid JSON" in report.rejects[0].message
    assert "9 digits" in report.rejects[2].message
    assert report.ignored_columns == ["why"]
    assert _current(engine)["R2"]["decided_by"] == "park"
    before = _counts(engine)
    again = import_decisions(engine, jsonl, decided_by_default="importer")
    assert (again.recorded, again.unchanged, again.rejected) == (0, 2, 3)
    assert _counts(engine) == before


def test_unreadable_decision_files_are_errors(engine, tmp_path):
    with pytest.raises(FileNotFoundError):
        import_decisions(engine, tmp_path / "missing.csv", decided_by_default="x")
    with pytest.raises(DecisionFileError, match="no hs_code column"):
        import_decisions(
            engine, _write(tmp_path / "a.csv", "request_id,code\nR1,1\n"), decided_by_default="x"
        )
    with pytest.raises(DecisionFileError, match="unsupported file type"):
        import_decisions(engine, _write(tmp_path / "a.txt", "x"), decided_by_default="x")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("request_id,hs_code,note\nR1,3304101000,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DecisionFileError, match="not UTF-8"):
        import_decisions(engine, latin, decided_by_default="x")
    with pytest.raises(DecisionFileError, match="empty CSV"):
        import_decisions(engine, _write(tmp_path / "empty.csv", ""), decided_by_default="x")
    # no current edition: the import stops instead of refusing every row
    with engine.begin() as conn:
        conn.execute(text("update tariff_editions set is_current = false"))
    try:
        good = _write(tmp_path / "good.csv", "request_id,hs_code\nR1,3304101000\n")
        with pytest.raises(DecisionRefused) as info:
            import_decisions(engine, good, decided_by_default="x")
        assert info.value.reason is RejectReason.NO_CURRENT_EDITION
    finally:
        set_current_edition(engine, CURRENT)
    assert _counts(engine) == (0, 0)


# ----------------------------------------------------------------------------- live accuracy

WEEK_A, WEEK_B = "2026-01-06 12:00+00", "2026-01-13 12:00+00"  # Tuesdays of two weeks


def _live_fixture(engine) -> None:
    """Two versions' rankings and the decisions they are judged on.

    champion v-champ:
      R1 decided 3304101000 (week A): ranks 3304101000, 3304102000, 3304200000 -> right at 1
         at 10, 6 and 4 digits; confidence 0.9, not flagged
      R2 decided 3304300000 (week A): ranks 3304101000, 3304102000, 3304200000, 3304300000 ->
         10 digits: rank 4 (not top-3); six-digit prefixes in rank order: 330410 (ranks 1
         AND 2), 330420, 330430 -> third DISTINCT prefix: top-3 at 6 digits (the first three
         rows' prefixes alone, 330410 330410 330420, would miss it); 4 digits: 3304 first;
         confidence 0.4, flagged
      R3 decided 9608100000 (week A; an earlier decision 3304101000 was superseded): ranks
         6109101000, 9608100000, 8471300000 -> second at 10, 6 and 4; 0.3, flagged
      R4 decided 6109101000 (week B): ranks 8471300000, 3304101000 -> nowhere; 0.8
      R5 decided 3304102000 (week B): ranks 3304101000, 3304102000 -> second at 10 digits,
         first at 6 (330410) and 4; 0.6
      R6 decided (week B), never scored by the champion
    v-old: R1 ranks 3304200000, 3304101000 (0.5, flagged); R6 decided 3304200000, ranks
      3304200000 (0.7)
    """
    _scores(
        engine,
        "v-champ",
        True,
        {
            "R1": [
                ("3304101000", 0.9, False),
                ("3304102000", 0.05, False),
                ("3304200000", 0.03, False),
            ],
            "R2": [
                ("3304101000", 0.4, True),
                ("3304102000", 0.3, True),
                ("3304200000", 0.2, True),
                ("3304300000", 0.1, True),
            ],
            "R3": [
                ("6109101000", 0.3, True),
                ("9608100000", 0.25, True),
                ("8471300000", 0.2, True),
            ],
            "R4": [("8471300000", 0.8, False), ("3304101000", 0.1, False)],
            "R5": [("3304101000", 0.6, False), ("3304102000", 0.3, False)],
        },
    )
    _scores(
        engine,
        "v-old",
        False,
        {
            "R1": [("3304200000", 0.5, True), ("3304101000", 0.4, True)],
            "R6": [("3304200000", 0.7, False)],
        },
    )
    _decide_at(
        engine,
        [
            ("R3", "3304101000", WEEK_A),  # superseded by the next R3 decision
            ("R1", "3304101000", WEEK_A),
            ("R2", "3304300000", WEEK_A),
            ("R3", "9608100000", WEEK_A),
            ("R4", "6109101000", WEEK_B),
            ("R5", "3304102000", WEEK_B),
            ("R6", "3304200000", WEEK_B),
        ],
    )


LIVE_COLUMNS = [
    "decided",
    "top1_10",
    "top3_10",
    "top1_6",
    "top3_6",
    "top1_4",
    "top3_4",
    "review_rate",
    "mean_confidence",
    "is_champion",
]


def test_live_accuracy_equals_a_hand_computation(engine):
    import datetime as dt

    _live_fixture(engine)
    with engine.connect() as conn:
        rows = conn.execute(text("select * from live_accuracy")).mappings().all()
        by_chapter = conn.execute(text("select * from live_accuracy_by_chapter")).mappings().all()
        disagreements = (
            conn.execute(text("select * from decision_disagreements order by request_id"))
            .mappings()
            .all()
        )
    week_a, week_b = dt.date(2026, 1, 5), dt.date(2026, 1, 12)  # their Mondays
    got = {(r["model_version"], r["week"]): [r[c] for c in LIVE_COLUMNS] for r in rows}
    expected = {
        # R1 R2 R3: top-1 R1; top-3 R1 R3; at 6: top-1 R1, top-3 all three (R2 through the
        # distinct prefixes); at 4: top-1 R1 R2, top-3 all; flagged R2 R3; (0.9+0.4+0.3)/3
        ("v-champ", week_a): [3, 1 / 3, 2 / 3, 1 / 3, 1, 2 / 3, 1, 2 / 3, 1.6 / 3, True],
        # R4 R5: R5 second at 10, first at 6 and 4; none flagged; (0.8+0.6)/2
        ("v-champ", week_b): [2, 0, 1 / 2, 1 / 2, 1 / 2, 1 / 2, 1 / 2, 0, 0.7, True],
        ("v-old", week_a): [1, 0, 1, 0, 1, 1, 1, 1, 0.5, False],  # R1 second at 10 and 6
        ("v-old", week_b): [1, 1, 1, 1, 1, 1, 1, 0, 0.7, False],  # R6
    }
    assert set(got) == set(expected)
    for key, values in expected.items():
        assert got[key] == pytest.approx(values), key

    chapters = {(r["model_version"], r["chapter"]): r for r in by_chapter}
    champion_33 = chapters[("v-champ", "33")]  # R1 R2 R5
    assert [champion_33[c] for c in LIVE_COLUMNS] == pytest.approx(
        [3, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1, 1 / 3, 1.9 / 3, True]
    )
    assert champion_33["chapter_name_ko"] == "정유·향료·화장품"
    assert [chapters[("v-champ", "96")][c] for c in LIVE_COLUMNS[:7]] == pytest.approx(
        [1, 0, 1, 0, 1, 0, 1]
    )
    assert [chapters[("v-champ", "61")][c] for c in LIVE_COLUMNS[:7]] == [1, 0, 0, 0, 0, 0, 0]
    assert sorted(chapters) == [
        ("v-champ", "33"),
        ("v-champ", "61"),
        ("v-champ", "96"),
        ("v-old", "33"),
    ]

    # the champion against the decisions: R2 R3 R4 R5 (R1 agrees, R6 was not scored by it)
    assert [d["request_id"] for d in disagreements] == ["R2", "R3", "R4", "R5"]
    r3 = disagreements[1]
    assert (r3["title"], r3["champion_hs10"], r3["champion_name_ko"], r3["champion_name_en"]) == (
        "요청 3",
        "6109101000",
        "면 티셔츠",
        "Cotton T-shirts",
    )
    assert (r3["decided_hs10"], r3["decided_hs10_display"], r3["decided_name_ko"]) == (
        "9608100000",
        "9608.10-0000",
        "볼펜",
    )
    assert r3["champion_score"] == pytest.approx(0.3) and r3["decided_rank"] == 2
    assert r3["decided_by"] == "kim" and r3["model_version"] == "v-champ"
    assert [d["decided_rank"] for d in disagreements] == [4, 2, None, 2]
    assert [(d["same_hs6"], d["same_hs4"]) for d in disagreements] == [
        (False, True),
        (False, False),
        (False, False),
        (True, True),
    ]


# ----------------------------------------------------------------------------- the queue


def _queue_fixture(engine) -> None:
    """The champion flags R1 (0.3), R2 (0.2), R3 (0.5); R4 is confident (not in the queue)."""
    _scores(
        engine,
        "v-champ",
        True,
        {
            "R1": [("3304101000", 0.3, True), ("3304102000", 0.2, True)],
            "R2": [("9608100000", 0.2, True), ("3304101000", 0.1, True)],
            "R3": [("6109101000", 0.5, True)],
            "R4": [("8471300000", 0.95, False)],
        },
    )
    with engine.begin() as conn:
        conn.execute(
            text(
                "insert into precedents (request_id, model_version, rank, case_key, hs10,"
                " title, similarity) values ('R2', 'v-champ', 1, 'clip:1', '9608100000',"
                " '볼펜 MONAMI', 0.8)"
            )
        )


def test_review_queue_least_confident_first_with_codes_and_precedents(engine):
    _queue_fixture(engine)
    queue = review_queue(engine, 10)
    assert [q.request_id for q in queue] == ["R2", "R1", "R3"]
    r2 = queue[0]
    assert r2.confidence == pytest.approx(0.2) and r2.model_version == "v-champ"
    assert [(c.rank, c.hs10, c.hs10_display, c.name_ko) for c in r2.top_codes] == [
        (1, "9608100000", "9608.10-0000", "볼펜"),
        (2, "3304101000", "3304.10-1000", "립스틱"),
    ]
    assert [(p["case_key"], p["hs10"], p["case_title"]) for p in r2.precedents] == [
        ("clip:1", "9608100000", "볼펜 MONAMI")
    ]
    assert queue[1].precedents == []
    assert [q.request_id for q in review_queue(engine, 1)] == ["R2"]
    record_decision(engine, "R2", "9608100000", decided_by="kim")
    assert [q.request_id for q in review_queue(engine, 10)] == ["R1", "R3"]
    everything = review_queue(engine, 10, include_decided=True)
    assert [(q.request_id, q.decided_hs10) for q in everything] == [
        ("R2", "9608100000"),
        ("R1", None),
        ("R3", None),
    ]
    with pytest.raises(ValueError, match="limit"):
        review_queue(engine, 0)


# ----------------------------------------------------------------------------- the CLI


@pytest.fixture
def cli(engine, tmp_path, monkeypatch, capsys):
    """``hscode --data-dir ... ARGS`` against the module's database: (exit code, out, err)."""
    from app.cli import main

    monkeypatch.setenv("HSCODE_DATABASE_URL", engine.url.render_as_string(hide_password=False))

    def run(*args: str) -> tuple[int, str, str]:
        rc = main(["--data-dir", str(tmp_path / "var"), *args])
        captured = capsys.readouterr()
        return rc, captured.out, captured.err

    return run


def test_cli_review_decide(engine, cli):
    rc, out, _ = cli(
        "review", "decide", "R1", "3304.10-1000", "--note", "sample seen", "--by", "lee"
    )
    assert rc == 0 and "recorded: R1 -> 3304.10-1000 (by lee" in out and CURRENT in out
    rc, out, _ = cli("review", "decide", "R1", "3304101000", "--note", "sample seen", "--by", "lee")
    assert rc == 0 and out.startswith("unchanged: R1 is already decided 3304.10-1000")
    rc, out, _ = cli("review", "decide", "R2", "9608100000")  # decided_by: the OS user
    assert rc == 0
    assert _current(engine)["R2"]["decided_by"] == getpass.getuser()
    assert _current(engine)["R1"]["note"] == "sample seen"
    for args, reason in (
        (("R3", "3304.10"), "malformed_code"),
        (("R3", "3304109000"), "not_current_code"),
        (("NOPE", "3304101000"), "unknown_request"),
    ):
        rc, _, err = cli("review", "decide", *args)
        assert rc == 2 and f"hscode review: {reason}: " in err and "Traceback" not in err
    assert len(_decisions(engine)) == 2


def test_cli_review_import(engine, cli, tmp_path):
    good = _write(
        tmp_path / "batch.csv",
        "request_id,hs_code,note\nR1,3304101000,ok\nR2,33041,\nR3,9608100000,\n",
    )
    rc, out, _ = cli("review", "import", str(good), "--by", "importer")
    assert rc == 0
    assert "recorded: 2" in out and "unchanged: 0" in out and "rejected: 1" in out
    assert "row 2 (line 3) R2: malformed_code: code '33041'" in out
    assert "1 row(s) rejected" in out
    rc, out, _ = cli("review", "import", str(good), "--by", "importer")
    assert rc == 0 and "recorded: 0" in out and "unchanged: 2" in out
    assert {d["decided_by"] for d in _current(engine).values()} == {"importer"}
    assert {d["source"] for d in _current(engine).values()} == {"import"}
    rc, _, err = cli("review", "import", str(tmp_path / "missing.csv"))
    assert rc == 2 and "not found" in err
    bad = _write(tmp_path / "bad.csv", "request,code\nR1,3304101000\n")
    rc, _, err = cli("review", "import", str(bad))
    assert rc == 2 and "no request_id column" in err


def test_cli_review_list(engine, cli):
    _queue_fixture(engine)
    rc, out, _ = cli("review", "list", "--json")
    assert rc == 0
    listed = json.loads(out)
    assert [q["request_id"] for q in listed] == ["R2", "R1", "R3"]
    assert listed[0]["top_codes"][0]["hs10"] == "9608100000"
    assert listed[0]["precedents"][0]["case_key"] == "clip:1"
    rc, out, _ = cli("review", "list", "--limit", "1")
    assert rc == 0 and out.startswith("R2  confidence 0.20") and "1. 9608.10-0000" in out
    assert "precedent 9608.10-0000  similarity 0.80  볼펜 MONAMI" in out
    cli("review", "decide", "R2", "9608100000", "--by", "kim")
    rc, out, _ = cli("review", "list", "--json")
    assert [q["request_id"] for q in json.loads(out)] == ["R1", "R3"]
    rc, out, _ = cli("review", "list", "--all", "--json")
    assert json.loads(out)[0]["decided_hs10"] == "9608100000"
    rc, _, err = cli("review", "list", "--limit", "0")
    assert rc == 2 and "--limit" in err


def test_cli_db_reviewer_login(engine, cli):
    _roles_exist(engine)
    login = f"rev_{uuid.uuid4().hex[:8]}"
    try:
        rc, out, _ = cli("db", "reviewer-login", login, "--password", "pw-rev-1")
        assert rc == 0 and "pw-rev-1" not in out
        assert f"connect with: psql 'postgresql://{login}@" in out
        assert "decide(" in out
        reviewer = create_engine(engine.url.set(username=login, password="pw-rev-1"))
        try:
            with reviewer.begin() as conn:
                conn.execute(text("select decide('R1', '3304101000', 'via psql')")).scalar()
        finally:
            reviewer.dispose()
        assert _current(engine)["R1"]["decided_by"] == login
        rc, out, _ = cli("db", "reviewer-login", login)  # again: a new generated password
        assert rc == 0 and "password (shown once; psql asks for it): " in out
        rc, _, err = cli("db", "reviewer-login", "Robert'); drop")
        assert rc == 2 and "login name" in err
        # analyst-login (the same code path) still says what it always said
        rc, out, _ = cli("db", "analyst-login", f"{login}_a", "--password", "pw-ana-1")
        assert rc == 0 and out.startswith(
            f"login {login}_a can read the analyst views (role hscode_analyst) and nothing else"
        )
        assert "decide(" not in out
        analyst = create_engine(engine.url.set(username=f"{login}_a", password="pw-ana-1"))
        try:
            with analyst.connect() as conn, pytest.raises(ProgrammingError):
                conn.execute(text("select decide('R2', '3304101000')"))
        finally:
            analyst.dispose()
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'drop role if exists "{login}"'))
            conn.execute(text(f'drop role if exists "{login}_a"'))
