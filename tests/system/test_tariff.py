"""Tariff names: our own rows, the real hstable.json and hsk_codes.csv (skipped when absent)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from hscode.tariff import TariffFileError, load_tariff, load_tariff_rows, normalize_code

# one embedded Postgres for the whole session, a fresh database per module
pytest_plugins = ["conftest_db"]


@pytest.fixture
def engine(pg_engine):
    with pg_engine.begin() as conn:
        conn.execute(text("truncate tariff"))
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
    # a later load fills missing names and keeps the others
    load_tariff_rows(engine, [{"code": "9608", "name_en": "Ball point pens; felt tipped pens"}])
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
    assert load_tariff(engine, tmp_path / "t.csv").loaded == 1
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
    first = load_tariff(engine, hstable)
    assert first.rejected == 0 and first.loaded > 17_000 and first.by_level[10] > 12_000
    second = load_tariff(engine, hsk)
    assert second.loaded > 11_000
    names = _names(engine)
    assert names["0101211000"][1] == "농가 사육용"
    assert names["0101211000"][3] is not None  # parent path from hsk_codes.csv
    assert names["0101"][2].startswith("Live horses")
    again = load_tariff(engine, hstable)  # idempotent
    assert len(_names(engine)) == len(names) and again.loaded == first.loaded
