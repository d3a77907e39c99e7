"""Rejections and their reason codes: one type, codes from one enum, stored in their own field."""

from __future__ import annotations

import io
import json
import re
import shutil
import uuid
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import make_url, text

from hscode.case_import import import_cases
from hscode.rejects import Rejection, RejectReason, read_rejects, record_rejects
from hscode.request_rows import validate_request_row
from hscode.settings import Settings
from hscode.tariff import load_tariff_rows

# one embedded Postgres for the whole session, a fresh database per module
pytest_plugins = ["conftest_db"]


def _png(size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), "red").save(buf, format="PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------- the type


def test_codes_are_stable_snake_case_and_unique():
    values = [r.value for r in RejectReason]
    assert len(values) == len(set(values))
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", v) for v in values)
    # the codes the case reject logs have always held read back as the same members
    for old in ("empty_title", "empty_hs_code", "bad_date", "unreadable_row", "image_corrupt"):
        assert RejectReason.parse(old).value == old
    assert RejectReason.parse("some_future_code") is RejectReason.UNKNOWN


def test_a_rejection_always_carries_an_enum_code():
    r = Rejection("r1", "empty_title", "empty title", "file:x.csv", "line 3")  # type: ignore[arg-type]
    assert r.reason is RejectReason.EMPTY_TITLE
    assert r.located_message == "line 3: empty title"
    assert r.as_dict() == {
        "key": "r1",
        "reason": "empty_title",
        "message": "empty title",
        "source": "file:x.csv",
        "where": "line 3",
    }
    with pytest.raises(ValueError):
        Rejection("r1", "title is empty", "x")  # type: ignore[arg-type]
    assert Rejection(None, RejectReason.EMPTY_KEY, "missing request_id").located_message == (
        "missing request_id"
    )


def test_reject_log_stores_code_beside_message_and_reads_old_lines(settings):
    record_rejects(
        settings,
        [Rejection("k1", RejectReason.BAD_DATE, "case k1: impossible date", "clip", "ab" * 32)],
    )
    (path,) = settings.rejects_dir.glob("*.jsonl")
    line = json.loads(path.read_text().splitlines()[0])
    assert (line["reason"], line["message"], line["where"]) == (
        "bad_date",
        "case k1: impossible date",
        "ab" * 32,
    )
    # a line written before the type existed: detail and raw_ref
    old = {"source": "clip", "key": "k2", "reason": "empty_title", "raw_ref": "cd" * 32}
    old_unknown = {"source": "clip", "key": "k3", "reason": "gone_code", "detail": "why"}
    with path.open("a") as fh:
        fh.write(json.dumps({**old, "detail": "no title"}) + "\n" + json.dumps(old_unknown) + "\n")
    got = {r.key: r for r in read_rejects(settings)}
    assert got["k1"].reason is RejectReason.BAD_DATE
    assert (got["k2"].reason, got["k2"].message, got["k2"].where) == (
        RejectReason.EMPTY_TITLE,
        "no title",
        "cd" * 32,
    )
    assert got["k3"].reason is RejectReason.UNKNOWN and got["k3"].message == "why"


# ----------------------------------------------------------------------------- importers


def test_every_case_import_reject_has_its_code(settings, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "ok.png").write_bytes(_png())
    (folder / "broken.png").write_bytes(b"not an image")
    (folder / "big.png").write_bytes(_png() + b"\0" * 2000)
    (tmp_path / "outside.png").write_bytes(_png())
    lines = [
        "case_id,hs_code,title,description,decision_date,image_path",
        "ok,9608.10-1000,볼펜,,2024-01-01,ok.png",
        "c_title,9608.10-1000,,,2024-01-01,",
        "c_code,,볼펜,,2024-01-01,",
        "c_date,9608.10-1000,볼펜,,2024-13-45,",
        f"c_long,9608.10-1000,{'x' * 200},,2024-01-01,",
        "c_missing,9608.10-1000,볼펜,,2024-01-01,nope.png",
        "c_outside,9608.10-1000,볼펜,,2024-01-01,../outside.png",
        "c_corrupt,9608.10-1000,볼펜,,2024-01-01,broken.png",
        "c_big,9608.10-1000,볼펜,,2024-01-01,big.png",
        "c_extra,9608.10-1000,볼펜,,2024-01-01,,one too many",
    ]
    path = folder / "cases.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tight = Settings(
        data_dir=settings.data_dir, max_text_chars=100, max_image_bytes=1000, _env_file=None
    )
    report = import_cases(tight, path)
    expected = {
        "import:cases:c_title": RejectReason.EMPTY_TITLE,
        "import:cases:c_code": RejectReason.EMPTY_HS_CODE,
        "import:cases:c_date": RejectReason.BAD_DATE,
        "import:cases:c_long": RejectReason.OVERSIZE_TEXT,
        "import:cases:c_missing": RejectReason.IMAGE_MISSING,
        "import:cases:c_outside": RejectReason.IMAGE_PATH_OUTSIDE,
        "import:cases:c_corrupt": RejectReason.IMAGE_CORRUPT,
        "import:cases:c_big": RejectReason.IMAGE_TOO_LARGE,
        "import:cases:row10": RejectReason.UNREADABLE_ROW,
    }
    assert (report.read, report.imported, report.rejected) == (10, 1, 9)
    assert all(isinstance(code, RejectReason) for code in report.reasons)
    recorded = {r.key: r for r in read_rejects(tight)}
    assert {k: r.reason for k, r in recorded.items()} == expected
    assert all(r.message and r.where.startswith("cases.csv#") for r in recorded.values())
    on_disk = [
        json.loads(x)
        for p in tight.rejects_dir.glob("*.jsonl")
        for x in p.read_text().split("\n")
        if x
    ]
    assert {row["reason"] for row in on_disk} == {str(c) for c in expected.values()}
    assert all(row["message"] for row in on_disk)


def test_every_request_row_reject_has_its_code(tmp_path):
    (tmp_path / "secret.png").write_bytes(_png())
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "broken.png").write_bytes(b"nope")
    cases = {
        "missing": ({"title": "x"}, RejectReason.EMPTY_KEY),
        "long_id": ({"request_id": "x" * 500, "title": "x"}, RejectReason.KEY_TOO_LONG),
        "empty": ({"request_id": "e", "title": "  "}, RejectReason.EMPTY_TITLE),
        "text": ({"request_id": "t", "title": "x" * 200}, RejectReason.OVERSIZE_TEXT),
        "type": ({"request_id": "i", "title": "x", "image": 12}, RejectReason.IMAGE_CORRUPT),
        "b64": (
            {"request_id": "b", "title": "x", "image_base64": "!!"},
            RejectReason.IMAGE_CORRUPT,
        ),
        "bytes": ({"request_id": "c", "title": "x", "image": b"junk"}, RejectReason.IMAGE_CORRUPT),
        "big": (
            {"request_id": "g", "title": "x", "image": b"\0" * 5000},
            RejectReason.IMAGE_TOO_LARGE,
        ),
        "path_missing": (
            {"request_id": "m", "title": "x", "image_path": "nope.png"},
            RejectReason.IMAGE_MISSING,
        ),
        "path_out": (
            {"request_id": "o", "title": "x", "image_path": "../secret.png"},
            RejectReason.IMAGE_PATH_OUTSIDE,
        ),
        "path_broken": (
            {"request_id": "p", "title": "x", "image_path": "broken.png"},
            RejectReason.IMAGE_CORRUPT,
        ),
    }
    for name, (row, code) in cases.items():
        checked = validate_request_row(row, folder, 100, 4000)
        assert isinstance(checked, Rejection), name
        assert checked.reason is code, (name, checked)
        assert checked.message and checked.row is not None


def test_tariff_rejects_have_a_code(pg_engine):
    summary = load_tariff_rows(
        pg_engine, [{"code": "9608"}, {"code": "각각 분류"}, {"name_ko": "x"}]
    )
    assert [(r.key, r.reason) for r in summary.rejects] == [
        ("각각 분류", RejectReason.BAD_CODE),
        (None, RejectReason.BAD_CODE),
    ]


# ----------------------------------------------------------------------------- Postgres


@pytest.fixture
def engine(pg_engine):
    with pg_engine.begin() as conn:
        conn.execute(text("truncate requests, intake_rejects cascade"))
    return pg_engine


def test_intake_rejects_store_the_code_in_its_own_column(engine, tmp_path):
    from hscode.intake import import_requests, submit_requests

    settings = Settings(data_dir=tmp_path, max_text_chars=100, _env_file=None)
    summary = submit_requests(
        engine,
        [
            {"request_id": "ok", "title": "볼펜"},
            {"request_id": "", "title": "no id"},
            {"request_id": "e", "title": " "},
            {"request_id": "t", "title": "x" * 101},
            {"request_id": "i", "title": "x", "image": b"not an image"},
            "not a mapping",
        ],
        settings=settings,
        source="test",
    )
    (tmp_path / "r.jsonl").write_text('{"request_id": "j", "title": "x"}\n{broken\n')
    import_requests(engine, tmp_path / "r.jsonl", settings=settings)
    with engine.connect() as conn:
        rows = conn.execute(
            text("select request_id, reason, reason_code from intake_rejects order by reject_id")
        ).all()
        view = conn.execute(
            text("select request_id, reason_code from intake_rejections order by reject_id")
        ).all()
        overview = dict(
            conn.execute(
                text(
                    "select request_id, reject_code from request_overview where status = 'rejected'"
                )
            ).all()
        )
    assert [(rid, code) for rid, _, code in rows] == [
        (None, "empty_key"),
        ("e", "empty_title"),
        ("t", "oversize_text"),
        ("i", "image_corrupt"),
        (None, "unreadable_row"),
        (None, "unreadable_row"),
    ]
    assert [m for _, m, _ in rows][-1].startswith("line 2: invalid JSON")  # message unchanged
    assert view == [(rid, code) for rid, _, code in rows]
    assert overview["t"] == "oversize_text" and overview["e"] == "empty_title"
    assert summary.reasons == {
        "empty_key": 1,
        "empty_title": 1,
        "oversize_text": 1,
        "image_corrupt": 1,
        "unreadable_row": 1,
    }
    with engine.begin() as conn:  # a row put in by hand without a code
        conn.execute(text("insert into intake_rejects (reason) values ('typed by hand')"))
        assert (
            conn.execute(
                text("select reason_code from intake_rejects where reason = 'typed by hand'")
            ).scalar()
            == "unknown"
        )


def test_migration_codes_rows_written_before_it(pg_server_url, tmp_path):
    from conftest_db import _admin_execute

    from hscode.db import dispose_engine, get_engine, migrate, sql_dir

    before = tmp_path / "sql"
    before.mkdir()
    for path in sorted(sql_dir().glob("*.sql")):
        if path.name < "006_":
            shutil.copy(path, before / path.name)
    name = f"hscode_t_rejmig_{uuid.uuid4().hex[:8]}"
    _admin_execute(pg_server_url, f'create database "{name}"')
    url = make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    engine = get_engine(Settings(database_url=url, _env_file=None))
    try:
        migrate(engine, before)
        old = {
            "a": "missing request_id",
            "b": "line 3: empty title",
            "c": "lines 4-5: text too long (120 chars > 100)",
            "d": "row 7: unreadable image: 'x.png' not found (or not a file)",
            "e": "unreadable image: cannot identify image file",
            "f": "line 2: invalid JSON (Expecting value)",
            "g": "image path outside the request file's folder: '../x.png'",
            "h": "image too large (5000 bytes > 100)",
            "i": "request_id too long",
            "j": "row is not a record",
            "k": "unreadable image: path 'a\\x00b' unusable (embedded null byte)",
            "l": "something else entirely",
        }
        with engine.begin() as conn:
            for rid, reason in old.items():
                conn.execute(
                    text("insert into intake_rejects (request_id, reason) values (:r, :m)"),
                    {"r": rid, "m": reason},
                )
            for rid, reason in (("s1", "empty title"), ("s2", "model error: boom"), ("s3", "??")):
                conn.execute(
                    text(
                        "insert into requests (request_id, title, status, reject_reason) "
                        "values (:r, 't', 'rejected', :m)"
                    ),
                    {"r": rid, "m": reason},
                )
            conn.execute(text("insert into requests (request_id, title) values ('p1', 't')"))
        assert "006_reject_reasons" in migrate(engine)
        with engine.connect() as conn:
            codes = dict(
                conn.execute(text("select request_id, reason_code from intake_rejects")).all()
            )
            scorer = dict(conn.execute(text("select request_id, reject_code from requests")).all())
        assert codes == {
            "a": "empty_key",
            "b": "empty_title",
            "c": "oversize_text",
            "d": "image_missing",
            "e": "image_corrupt",
            "f": "unreadable_row",
            "g": "image_path_outside",
            "h": "image_too_large",
            "i": "key_too_long",
            "j": "unreadable_row",
            "k": "image_path_bad",
            "l": "unknown",
        }
        assert set(codes.values()) <= {r.value for r in RejectReason}
        assert scorer == {"s1": "empty_title", "s2": "model_error", "s3": "unknown", "p1": None}
    finally:
        dispose_engine(engine)
        _admin_execute(pg_server_url, f'drop database if exists "{name}" with (force)')


def test_rejects_module_imports_nothing_of_the_core_at_runtime():
    source = Path(__file__).resolve().parents[2] / "hscode" / "rejects.py"
    runtime = [
        line
        for line in source.read_text().splitlines()
        if line.startswith(("from hscode", "import hscode"))
    ]
    assert runtime == []  # hscode.settings only under TYPE_CHECKING (settings imports storage)
