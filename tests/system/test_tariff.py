"""Tariff editions and names: our own rows, the real hstable.json and hsk_codes.csv, the
HS2022 correlations (the real files skipped when absent); the analyst views over them."""

from __future__ import annotations

import json
import shutil
import uuid

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import ProgrammingError

from hscode.db import ANALYST_ROLE, dispose_engine, get_engine, migrate, migrations
from hscode.rejects import RejectReason
from hscode.settings import Settings
from hscode.tariff import (
    DEFAULT_ROWS_EDITION,
    TariffFileError,
    UnknownEditionError,
    edition_from_path,
    load_correlation_rows,
    load_correlations,
    load_tariff,
    load_tariff_rows,
    normalize_code,
    set_current_edition,
)
from hscode.tariff_editions import (
    Correlation,
    correlations,
    current_codes,
    current_edition,
    current_edition_codes,
    edition_codes,
    editions,
)

# one embedded Postgres for the whole session, a fresh database per module
pytest_plugins = ["conftest_db"]


@pytest.fixture
def engine(pg_engine):
    with pg_engine.begin() as conn:
        conn.execute(text("truncate tariff, tariff_editions, tariff_correlations cascade"))
    return pg_engine


def _names(engine) -> dict[str, tuple]:
    with engine.connect() as conn:
        rows = conn.execute(text("select code, level, name_ko, name_en, parent_path from tariff"))
        return {r.code: tuple(r[1:]) for r in rows}


def test_normalize_code():
    assert normalize_code("3207.20-9000") == "3207209000"
    assert normalize_code("0101") == "0101"
    assert normalize_code("12345678901") is None
    assert normalize_code("각각 분류") is None
    assert normalize_code(None) is None


def test_rows_upsert_and_reject_bad_codes(engine):
    summary = load_tariff_rows(
        engine,
        [
            {"hs10": "9608.10-0000", "name_ko": "볼펜", "name_en": "Ball point pens"},
            {"code": "9608", "name_ko": "볼펜ㆍ펠트펜", "name_en": None},
            {"code": "각각 분류", "name_ko": "x"},
        ],
    )
    assert (summary.received, summary.loaded, summary.rejected) == (3, 2, 1)
    assert summary.by_level == {4: 1, 10: 1}
    assert summary.edition == DEFAULT_ROWS_EDITION and not summary.is_current
    # a later (older, non-current) edition fills missing names and keeps the others
    load_tariff_rows(
        engine, [{"code": "9608", "name_en": "Ball point pens; felt tipped pens"}], "patch"
    )
    names = _names(engine)
    assert names["9608100000"] == (10, "볼펜", "Ball point pens", None)
    assert names["9608"] == (4, "볼펜ㆍ펠트펜", "Ball point pens; felt tipped pens", None)


def test_file_formats_and_errors(engine, tmp_path):
    (tmp_path / "t.json").write_text(
        json.dumps(
            [{"품목번호": "0101", "영문품명": "Live horses", "한글품명": "살아 있는 말"}],
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    (tmp_path / "t.csv").write_text(
        "hs10,hs6,품목명,상위설명,영문품목명\n0101211000,010121,농가 사육용,말 > 번식용,For farm breeding\n",
        encoding="utf-8",
    )
    assert load_tariff(engine, tmp_path / "t.json").loaded == 1
    # the same stem would be the same edition (replaced): name this one
    assert load_tariff(engine, tmp_path / "t.csv", "t_csv").loaded == 1
    names = _names(engine)
    assert names["0101"] == (4, "살아 있는 말", "Live horses", None)
    assert names["0101211000"] == (10, "농가 사육용", "For farm breeding", "말 > 번식용")
    (tmp_path / "bad.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(TariffFileError, match="invalid JSON"):
        load_tariff(engine, tmp_path / "bad.json")
    (tmp_path / "nocode.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(TariffFileError, match="no code column"):
        load_tariff(engine, tmp_path / "nocode.csv")
    (tmp_path / "t.xlsx").write_bytes(b"PK")
    with pytest.raises(TariffFileError, match="unsupported"):
        load_tariff(engine, tmp_path / "t.xlsx")
    with pytest.raises(FileNotFoundError):
        load_tariff(engine, tmp_path / "missing.json")


def test_real_tariff_files_load(engine, shared_data):
    hstable = shared_data / "kcs_hs_chatbot" / "hstable.json"
    hsk = shared_data / "arang0105_hskcodechecker" / "hsk_codes.csv"
    if not hstable.is_file() or not hsk.is_file():
        pytest.skip("tariff files absent")
    # without --edition: editions named after the files, neither current (as loading was)
    first = load_tariff(engine, hstable)
    assert first.edition == "hstable" and not first.is_current
    assert first.rejected == 0 and first.loaded > 17_000 and first.by_level[10] > 12_000
    second = load_tariff(engine, hsk)
    assert second.edition == "hsk_codes" and second.loaded > 11_000
    names = _names(engine)
    assert names["0101211000"][1] == "농가 사육용"
    assert names["0101211000"][3] is not None  # parent path from hsk_codes.csv
    assert names["0101"][2].startswith("Live horses")
    again = load_tariff(engine, hstable)  # idempotent
    assert again.unchanged and again.loaded == first.loaded
    assert _names(engine) == names
    assert current_edition(engine) is None and current_codes(engine) == frozenset()


def test_real_current_edition_has_11327_ten_digit_codes(engine, shared_data):
    hstable = shared_data / "kcs_hs_chatbot" / "hstable.json"
    hsk = shared_data / "arang0105_hskcodechecker" / "hsk_codes.csv"
    if not hstable.is_file() or not hsk.is_file():
        pytest.skip("tariff files absent")
    current = load_tariff(engine, hsk, "hsk2026", current=True)
    assert current.is_current and current.previous_current is None
    older = load_tariff(engine, hstable, "hs2012")  # an older edition, loaded after
    assert not older.is_current
    assert current_edition(engine) == "hsk2026"
    codes = current_codes(engine)
    assert len(codes) == 11_327 and all(len(c) == 10 and c.isdigit() for c in codes)
    assert edition_codes(engine, "hsk2026") == codes
    old_ten = edition_codes(engine, "hs2012", level=10)
    assert len(old_ten - codes) > 0  # codes the current tariff no longer has
    with engine.connect() as conn:
        counts = conn.execute(
            text(
                "select count(*) filter (where is_current and level = 10) as current10, "
                "count(*) filter (where level = 10) as all10, "
                "count(*) filter (where is_current and level = 6) as current6 "
                "from tariff_codes"
            )
        ).one()
        # 0101301000 is gone from the current tariff: an old code, with its old names
        split = (
            conn.execute(text("select * from tariff_codes where code = '0101301000'"))
            .mappings()
            .one()
        )
        # HS2022 deleted subheading 8517.12 (now 8517.13 / 8517.14): not current
        deleted6 = conn.execute(
            text("select is_current from tariff_codes where code = '851712'")
        ).scalar_one()
        survivor = (
            conn.execute(text("select * from tariff_codes where code = '0101211000'"))
            .mappings()
            .one()
        )
    assert counts.current10 == 11_327 and counts.all10 > 11_327 and counts.current6 > 2_000
    assert split["is_current"] is False and split["editions"] == ["hs2012"]
    assert split["name_ko"] and split["last_edition"] == "hs2012"
    assert deleted6 is False
    assert survivor["is_current"] is True and survivor["editions"] == ["hsk2026", "hs2012"]
    assert survivor["parent_path"] is not None  # the current edition's (hsk_codes.csv) names
    # reloading either edition changes nothing
    assert load_tariff(engine, hstable, "hs2012").unchanged
    assert load_tariff(engine, hsk, "hsk2026", current=True).unchanged
    assert len(current_codes(engine)) == 11_327


def test_real_correlations_load(engine, shared_data):
    path = shared_data / "hs_correlations" / "hs2022_correlations.csv"
    if not path.is_file():
        pytest.skip("correlation file absent")
    summary = load_correlations(engine, path)
    assert (summary.received, summary.loaded, summary.rejected) == (85_511, 85_511, 0)
    assert summary.added == 85_511
    assert summary.by_editions["HS2017->HS2022"] == 15_657
    pairs = correlations(engine, from_edition="HS2017")
    assert len(pairs) == 15_657
    assert Correlation("HS2017", "851712", "HS2022", "851713", "n:1") in pairs
    again = load_correlations(engine, path)
    assert (again.added, again.changed, again.removed) == (0, 0, 0)


# ----------------------------------------------------------------------------- editions


def _rows(names: dict[str, str]) -> list[dict[str, str]]:
    return [
        {"code": code, "name_ko": name, "name_en": f"en {name}"} for code, name in names.items()
    ]


OLD = {"9608100000": "볼펜(옛)", "9608109000": "기타 볼펜(옛)", "9608": "볼펜류(옛)"}
NEW = {"9608100000": "볼펜", "9608101000": "유성 볼펜"}


def _editions_table(engine) -> dict[str, bool]:
    with engine.connect() as conn:
        rows = conn.execute(text("select name, is_current from tariff_editions"))
        return {row.name: row.is_current for row in rows}


def _code(engine, code: str) -> dict:
    with engine.connect() as conn:
        return dict(
            conn.execute(text("select * from tariff_codes where code = :c"), {"c": code})
            .mappings()
            .one()
        )


def test_editions_and_the_current_switch(engine):
    old = load_tariff_rows(engine, _rows(OLD), "hs2012")
    assert (old.edition, old.is_current, old.loaded) == ("hs2012", False, 3)
    # nothing current yet: unchecked, not obsolete
    assert current_edition(engine) is None and current_codes(engine) == frozenset()
    assert current_edition_codes(engine) == (None, frozenset())
    assert _code(engine, "9608100000")["is_current"] is None

    new = load_tariff_rows(engine, _rows(NEW), "hsk2026", current=True)
    assert new.is_current and new.previous_current is None
    assert _editions_table(engine) == {"hs2012": False, "hsk2026": True}
    assert current_edition(engine) == "hsk2026"
    assert current_codes(engine) == frozenset(NEW)
    assert current_edition_codes(engine) == ("hsk2026", frozenset(NEW))
    assert edition_codes(engine, "hs2012") == frozenset(OLD)
    assert edition_codes(engine, "hs2012", level=4) == {"9608"}
    # the current edition's names for its codes; older names only for codes it lacks
    kept = _code(engine, "9608100000")
    assert (kept["is_current"], kept["name_ko"], kept["name_en"]) == (True, "볼펜", "en 볼펜")
    assert kept["editions"] == ["hsk2026", "hs2012"] and kept["last_edition"] == "hsk2026"
    gone = _code(engine, "9608109000")
    assert (gone["is_current"], gone["name_ko"], gone["editions"]) == (
        False,
        "기타 볼펜(옛)",
        ["hs2012"],
    )
    heading = _code(engine, "9608")  # only the old edition has it, but current codes lie under it
    assert heading["is_current"] is True and heading["name_ko"] == "볼펜류(옛)"
    assert heading["code_display"] == "9608" and kept["code_display"] == "9608.10-0000"

    # an older edition loaded later never wins over the current one's names
    load_tariff_rows(engine, [{"code": "9608100000", "name_ko": "더 옛 이름"}], "hs2007")
    assert _code(engine, "9608100000")["name_ko"] == "볼펜"
    assert _code(engine, "9608100000")["editions"] == ["hsk2026", "hs2007", "hs2012"]

    # a new current edition: exactly one current, the previous one an older edition now
    switched = load_tariff_rows(engine, _rows({"9608109000": "기타 볼펜"}), "hsk2027", current=True)
    assert switched.previous_current == "hsk2026"
    assert [e for e, cur in _editions_table(engine).items() if cur] == ["hsk2027"]
    assert current_codes(engine) == {"9608109000"}
    assert _code(engine, "9608109000")["name_ko"] == "기타 볼펜"
    assert _code(engine, "9608100000")["is_current"] is False
    # back again, without reloading
    assert set_current_edition(engine, "hsk2026") == "hsk2027"
    assert set_current_edition(engine, "hsk2026") is None  # already current
    assert current_codes(engine) == frozenset(NEW)
    assert editions(engine)[0].name == "hsk2026"
    with pytest.raises(UnknownEditionError):
        set_current_edition(engine, "hs1988")
    with pytest.raises(UnknownEditionError):
        edition_codes(engine, "hs1988")
    with pytest.raises(ValueError, match="edition name"):
        load_tariff_rows(engine, _rows(NEW), "bad name; drop")
    # a reload without current keeps the current edition current
    assert load_tariff_rows(engine, _rows({"9608101000": "유성 볼펜"}), "hsk2026").is_current
    assert current_edition(engine) == "hsk2026"


def test_reloading_an_edition_is_idempotent_and_replaces_its_codes(engine, tmp_path):
    path = tmp_path / "hsk 2026.csv"
    path.write_text(
        "hs10,품목명,영문품목명\n9608100000,볼펜,Ball point pens\n9608101000,유성 볼펜,Oil\n",
        encoding="utf-8",
    )
    assert edition_from_path(path) == "hsk_2026"
    first = load_tariff(engine, path, current=True)
    assert (first.edition, first.is_current, first.unchanged) == ("hsk_2026", True, False)
    before = editions(engine)
    with engine.connect() as conn:
        rows_before = conn.execute(text("select * from tariff order by code")).all()
    again = load_tariff(engine, path, current=True)
    assert again.unchanged and again.is_current and again.previous_current is None
    assert editions(engine) == before  # loaded_at kept: nothing changed
    with engine.connect() as conn:
        assert conn.execute(text("select * from tariff order by code")).all() == rows_before
    assert before[0].source_file == "hsk 2026.csv" and before[0].hs10_count == 2
    # a corrected file replaces the edition's codes: a code it dropped is gone
    path.write_text("hs10,품목명\n9608100000,볼펜\n", encoding="utf-8")
    fixed = load_tariff(engine, path)
    assert not fixed.unchanged and fixed.is_current
    assert current_codes(engine) == {"9608100000"}
    assert "9608101000" not in _names(engine)
    # a file without a single code loads nothing (and switches nothing)
    (tmp_path / "empty.csv").write_text("hs10,품목명\nx,y\n", encoding="utf-8")
    with pytest.raises(TariffFileError, match="nothing loaded"):
        load_tariff(engine, tmp_path / "empty.csv", current=True)
    assert current_edition(engine) == "hsk_2026"


def test_existing_tariff_rows_become_the_legacy_edition(pg_server_url, tmp_path):
    from conftest_db import _admin_execute

    before = tmp_path / "sql"
    before.mkdir()
    for migration in migrations():
        if migration.version < "007":
            shutil.copy(migration.path, before / migration.path.name)
    name = f"hscode_t_legacy_{uuid.uuid4().hex[:8]}"
    _admin_execute(pg_server_url, f'create database "{name}"')
    url = make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    engine = get_engine(Settings(database_url=url, _env_file=None))
    try:
        migrate(engine, before)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "insert into tariff (code, name_ko, name_en) values "
                    "('9608100000', '볼펜', 'Ball point pens'), ('9608', '볼펜류', null)"
                )
            )
        assert [m for m in migrate(engine) if m.startswith("007")] == ["007_tariff_editions"]
        assert _editions_table(engine) == {"legacy": False}
        assert edition_codes(engine, "legacy") == {"9608100000", "9608"}
        assert current_edition(engine) is None
        row = _code(engine, "9608100000")
        assert (row["name_ko"], row["editions"], row["is_current"]) == ("볼펜", ["legacy"], None)
    finally:
        dispose_engine(engine)
        _admin_execute(pg_server_url, f'drop database if exists "{name}" with (force)')


# ----------------------------------------------------------------------------- views


def test_analyst_views_show_current_names_first_and_is_current(engine):
    with engine.begin() as conn:
        conn.execute(text("truncate requests, predictions, precedents, model_versions cascade"))
        conn.execute(text("insert into model_versions (version, champion) values ('v1', true)"))
        conn.execute(text("insert into requests (request_id, title) values ('r1', '볼펜')"))
        conn.execute(
            text(
                "insert into predictions (request_id, model_version, rank, hs10, hs6, hs4, hs2, "
                "score, review, review_reason) values "
                "('r1', 'v1', 1, '9608100000', '960810', '9608', '96', 0.4, true, 'low'), "
                "('r1', 'v1', 2, '9608109000', '960810', '9608', '96', 0.3, true, 'low')"
            )
        )
        conn.execute(
            text(
                "insert into precedents (request_id, model_version, rank, case_key, hs10, "
                "similarity) values ('r1', 'v1', 1, 'c1', '9608109000', 0.9)"
            )
        )

    def view(name: str) -> list[dict]:
        with engine.connect() as conn:
            result = conn.execute(text(f"select * from {name} order by 1, 2"))
            # appended by 007 (later migrations append after it: sql/010 to latest_precedents)
            assert "is_current" in list(result.keys())
            return [dict(r) for r in result.mappings()]

    load_tariff_rows(engine, _rows(OLD), "hs2012")
    assert [r["is_current"] for r in view("latest_predictions")] == [None, None]  # unchecked
    load_tariff_rows(engine, _rows(NEW), "hsk2026", current=True)
    predictions = view("latest_predictions")
    assert [(r["hs10"], r["is_current"]) for r in predictions] == [
        ("9608100000", True),
        ("9608109000", False),
    ]
    assert predictions[0]["hs10_name_ko"] == "볼펜"  # the current edition's name
    assert predictions[1]["hs10_name_ko"] == "기타 볼펜(옛)"  # an old code keeps its old name
    assert predictions[0]["hs4_name_ko"] == "볼펜류(옛)"
    queue = view("review_queue")
    assert [(r["top_hs10"], r["is_current"]) for r in queue] == [("9608100000", True)]
    precedents = view("latest_precedents")
    assert [(r["hs10"], r["is_current"]) for r in precedents] == [("9608109000", False)]


def test_analyst_reads_the_tariff_views_not_the_tables(engine):
    with engine.connect() as conn:
        if not conn.execute(
            text("select 1 from pg_roles where rolname = :r"), {"r": ANALYST_ROLE}
        ).first():
            pytest.skip("no CREATEROLE on this server: analyst role not created")
    load_tariff_rows(engine, _rows(NEW), "hsk2026", current=True)
    load_correlation_rows(
        engine,
        [
            {
                "from_edition": "HS2017",
                "from_code": "851712",
                "to_edition": "HS2022",
                "to_code": "851713",
            }
        ],
    )
    for view, expected in (
        ("tariff_codes", len(NEW)),
        ("tariff_edition_overview", 1),
        ("tariff_correlation_pairs", 1),
    ):
        with engine.begin() as conn:
            conn.execute(text(f"set local role {ANALYST_ROLE}"))
            assert len(conn.execute(text(f"select * from {view}")).all()) == expected, view
    for table in ("tariff", "tariff_editions", "tariff_edition_codes", "tariff_correlations"):
        with engine.begin() as conn:
            conn.execute(text(f"set local role {ANALYST_ROLE}"))
            with pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text(f"select * from {table} limit 1"))
    with engine.begin() as conn:
        conn.execute(text(f"set local role {ANALYST_ROLE}"))
        with pytest.raises(ProgrammingError, match="permission denied"):
            conn.execute(text("select tariff_refresh()"))


# ----------------------------------------------------------------------------- correlations


def test_correlations_load_with_a_bad_row(engine, tmp_path):
    path = tmp_path / "corr.csv"
    path.write_text(
        "hs2022,old_version,old_hs6,relationship\r\n"
        "851713,HS2017,851712,n:1\r\n"
        "851714,HS2017,8517.12,n:1\r\n"  # a dotted code is still six digits
        "85171,HS2017,851712,n:1\r\n"  # five digits: refused
        "010121,,010121,1:1\r\n"  # no edition: refused
        "010121,HS2012,010121,1:1\r\n"
        "010121,HS2012,010121,1:1\r\n",  # a repeated pair counts once
        encoding="utf-8",
    )
    summary = load_correlations(engine, path)
    assert (summary.received, summary.loaded, summary.rejected) == (6, 3, 2)
    assert (summary.duplicates, summary.added) == (1, 3)
    assert summary.by_editions == {"HS2012->HS2022": 1, "HS2017->HS2022": 2}
    assert [(r.reason, r.where) for r in summary.rejects] == [
        (RejectReason.BAD_CODE, "line 4"),
        (RejectReason.EMPTY_KEY, "line 5"),
    ]
    assert "not six digits" in summary.rejects[0].message
    assert [c.pair for c in correlations(engine, to_edition="HS2022")] == [
        ("010121", "010121"),
        ("851712", "851713"),
        ("851712", "851714"),
    ]
    again = load_correlations(engine, path)  # idempotent
    assert (again.added, again.changed, again.removed) == (0, 0, 0)
    assert len(correlations(engine)) == 3
    # a corrected HS2017 file: a pair it lost goes, a changed relationship is updated;
    # HS2012's pairs (not in this file) stay
    path.write_text(
        "hs2022,old_version,old_hs6,relationship\n851713,HS2017,851712,1:1\n", encoding="utf-8"
    )
    fixed = load_correlations(engine, path)
    assert (fixed.added, fixed.changed, fixed.removed) == (0, 1, 1)
    assert correlations(engine) == [
        Correlation("HS2012", "010121", "HS2022", "010121", "1:1"),
        Correlation("HS2017", "851712", "HS2022", "851713", "1:1"),
    ]
    # our own columns, as JSON lines, with an unreadable line
    own = tmp_path / "own.jsonl"
    own.write_text(
        '{"from_edition": "HS2017", "from_code": "240110", "to_edition": "HS2022", '
        '"to_code": "240110"}\nnot json\n',
        encoding="utf-8",
    )
    mine = load_correlations(engine, own)
    assert (mine.loaded, mine.rejected) == (1, 1)
    assert mine.rejects[0].reason is RejectReason.UNREADABLE_ROW
    (tmp_path / "none.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(TariffFileError, match="no correlation columns"):
        load_correlations(engine, tmp_path / "none.csv")
    with pytest.raises(FileNotFoundError):
        load_correlations(engine, tmp_path / "missing.csv")


# ----------------------------------------------------------------------------- CLI


def test_cli_tariff_load_editions_and_correlations(engine, tmp_path, monkeypatch, capsys):
    from app.cli import main
    from app.cli_common import EXIT_BAD_INPUT, EXIT_OK

    url = engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("HSCODE_DATABASE_URL", url)
    base = ["--data-dir", str(tmp_path / "var"), "tariff"]
    old = tmp_path / "hstable.json"
    old.write_text(json.dumps([{"품목번호": "9608109000", "한글품명": "기타"}]), encoding="utf-8")
    new = tmp_path / "hsk_codes.csv"
    new.write_text("hs10,품목명\n9608100000,볼펜\n", encoding="utf-8")
    assert main([*base, "load", str(new), "--edition", "hsk2026", "--current"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "tariff edition hsk2026:" in out and "is_current: True" in out
    assert main([*base, "load", str(old)]) == EXIT_OK  # edition named after the file
    assert "tariff edition hstable:" in capsys.readouterr().out
    assert current_edition(engine) == "hsk2026" and current_codes(engine) == {"9608100000"}
    assert main([*base, "editions"]) == EXIT_OK
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].startswith("* hsk2026") and listed[1].startswith("  hstable")
    assert main([*base, "current", "hstable"]) == EXIT_OK
    assert "current tariff edition: hstable (was hsk2026)" in capsys.readouterr().out
    assert main([*base, "current", "nope"]) == EXIT_BAD_INPUT
    assert "no tariff edition named 'nope'" in capsys.readouterr().err
    corr = tmp_path / "corr.csv"
    corr.write_text("hs2022,old_version,old_hs6\n851713,HS2017,851712\nx,HS2017,1\n")
    assert main([*base, "correlations", "load", str(corr)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "loaded: 1" in out and "rejected: 1" in out and "bad_code" in out
    assert main([*base, "load", str(tmp_path / "missing.csv")]) == EXIT_BAD_INPUT
    assert "not found" in capsys.readouterr().err


def test_cli_derives_code_statuses_when_the_current_edition_changes(
    engine, tmp_path, monkeypatch, capsys
):
    """Loading a current edition re-derives every case's status; `cases report` counts them."""
    from app.cli import main
    from app.cli_common import EXIT_BAD_INPUT, EXIT_OK

    monkeypatch.setenv("HSCODE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    data = ["--data-dir", str(tmp_path / "var")]
    cases = tmp_path / "cases.csv"
    cases.write_text(
        "case_id,hs_code,title,decision_date\n"
        "a,9608100000,볼펜,2024-03-05\n"
        "b,2106909090,건강기능식품,2019-01-10\n"
        "c,2106909090,홍삼 정,2018-06-01\n",
        encoding="utf-8",
    )
    assert main([*data, "cases", "import", str(cases)]) == EXIT_OK
    assert main([*data, "cases", "restatus"]) == EXIT_BAD_INPUT  # no current edition yet
    assert "no current tariff edition" in capsys.readouterr().err
    tariff = tmp_path / "hsk.csv"
    tariff.write_text("hs10,품목명\n9608100000,볼펜\n2106909091,a\n2106909099,b\n", "utf-8")
    assert main([*data, "tariff", "load", str(tariff), "--edition", "hsk2026", "--current"]) == 0
    out = capsys.readouterr().out
    assert "code statuses against hsk2026:" in out
    assert '"current": 1' in out and '"split": 2' in out
    assert main([*data, "cases", "report"]) == EXIT_OK
    report = capsys.readouterr().out
    assert "## Decided codes against the current tariff" in report
    assert "| split | 2 |" in report and "| 2106.90-9090 | split | 2 |" in report


def test_cli_a_new_current_edition_makes_training_due_at_once(
    engine, tmp_path, monkeypatch, capsys
):
    """Switching the current edition says training is due and, with a Prefect server
    configured, emits the event the train deployment triggers on; reloading the same
    current edition says nothing."""
    import prefect.events

    from app.cli import main
    from deployments.registry import DEPLOYMENTS
    from tasks.events import TARIFF_CHANGED_EVENT, TARIFF_RESOURCE, TRAINING_DUE_LABEL

    monkeypatch.setenv("HSCODE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    base = ["--data-dir", str(tmp_path / "var"), "tariff"]
    first = tmp_path / "a.csv"
    first.write_text("hs10,품목명\n9608100000,볼펜\n", encoding="utf-8")
    second = tmp_path / "b.csv"
    second.write_text("hs10,품목명\n9608100000,볼펜\n9608109000,기타\n", encoding="utf-8")

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert main([*base, "load", str(first), "--edition", "e2025", "--current"]) == 0
    out = capsys.readouterr().out
    assert "training is due: the current tariff edition is now e2025" in out
    assert "no Prefect server configured" in out

    emitted: list[dict] = []
    monkeypatch.setattr(prefect.events, "emit_event", lambda **kw: emitted.append(kw) or kw)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # never contacted
    assert main([*base, "load", str(first), "--edition", "e2025", "--current"]) == 0
    assert "training is due" not in capsys.readouterr().out and emitted == []
    assert main([*base, "load", str(second), "--edition", "e2026"]) == 0  # older: not current
    assert emitted == []
    assert main([*base, "current", "e2026"]) == 0
    assert "training is due: the current tariff edition is now e2026 (was e2025)" in (
        capsys.readouterr().out
    )
    assert [e["event"] for e in emitted] == [TARIFF_CHANGED_EVENT]
    assert emitted[0]["resource"] == {
        "prefect.resource.id": TARIFF_RESOURCE,
        TRAINING_DUE_LABEL: "true",
    }
    assert emitted[0]["payload"] == {"edition": "e2026", "previous": "e2025"}
    # ... and that is an event the train deployment's trigger matches
    (train,) = [spec for spec in DEPLOYMENTS if spec.flow == "flows.train:train_flow"]
    (trigger,) = train.triggers
    assert TARIFF_CHANGED_EVENT in trigger.expect
    assert TARIFF_RESOURCE in trigger.match.root["prefect.resource.id"]
    assert trigger.match.root[TRAINING_DUE_LABEL] == "true"


def test_predict_recommends_only_current_codes_and_says_against_which_edition(
    engine, tmp_path, monkeypatch
):
    """`hscode predict` checks codes as scoring does: only codes of the current edition, the
    edition written with every row; a request with no current code left is a reject."""
    import csv

    from hscode.case_records import synthetic_case_records
    from hscode.cases import upsert_cases
    from hscode.predict import predict_file, rejects_path
    from hscode.training import TrainConfig, train_and_register
    from model.synthetic import PRODUCTS

    url = engine.url.render_as_string(hide_password=False)
    settings = Settings(data_dir=tmp_path / "var", database_url=url, _env_file=None)
    upsert_cases(settings, synthetic_case_records(100, seed=3, prefix="t", decision_date=None))
    train_and_register(
        settings,
        TrainConfig(inputs="title", epochs=3, embed_dim=16, embed_epochs=2, hidden=16,
                    batch_size=16, device="cpu", num_threads=1),
    )  # fmt: skip
    codes = sorted(PRODUCTS)
    current, dropped = codes[: len(codes) // 2], codes[len(codes) // 2 :]
    load_tariff_rows(engine, [{"hs10": c, "name_ko": "x"} for c in current], "e26", current=True)
    requests = tmp_path / "requests.csv"
    requests.write_text(
        "request_id,title\n" + "".join(f"r{i},{PRODUCTS[c][0][0]}\n" for i, c in enumerate(codes)),
        encoding="utf-8",
    )
    out = tmp_path / "out.csv"
    summary = predict_file(settings, requests, out, top_k=3)
    assert summary["tariff_edition"] == "e26" and summary["codes_checked"] is True
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and {r["hs_code"] for r in rows} <= set(current)
    assert {r["tariff_edition"] for r in rows} == {"e26"}
    # no current code at all: every request is set aside with its reason
    load_tariff_rows(engine, [{"hs10": "9999999999", "name_ko": "y"}], "e27", current=True)
    summary = predict_file(settings, requests, out, top_k=3)
    assert summary["predicted"] == 0 and summary["rejected"] == len(codes)
    with open(rejects_path(out), newline="", encoding="utf-8") as fh:
        rejected = list(csv.DictReader(fh))
    assert [r["line"] for r in rejected] == [str(i + 1) for i in range(len(codes))]
    assert {r["reason_code"] for r in rejected} == {RejectReason.NO_CURRENT_CODE}
    assert dropped  # (both halves were used)
