"""Request intake: rows, CSV / JSON-lines / Parquet files and the inbox folder."""

from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from sqlalchemy import text

from hscode.intake import import_inbox, import_requests, submit_requests
from hscode.request_rows import IntakeFileError
from hscode.settings import Settings

# one embedded Postgres for the whole session, a fresh database per module
pytest_plugins = ["conftest_db"]


def _png(size: int = 16, color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def engine(pg_engine):
    with pg_engine.begin() as conn:
        conn.execute(text("truncate requests, intake_rejects cascade"))
    return pg_engine


def _requests(engine) -> dict[str, dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("select request_id, title, description, image, status, source from requests")
        ).mappings()
        return {r["request_id"]: dict(r) for r in rows}


def _reject_reasons(engine) -> dict[str | None, str]:
    with engine.connect() as conn:
        return dict(conn.execute(text("select request_id, reason from intake_rejects")).all())


def test_rows_are_validated_and_bad_ones_recorded_with_reasons(engine, tmp_path):
    settings = Settings(data_dir=tmp_path, max_text_chars=100, max_image_bytes=5000, _env_file=None)
    good_png = _png()
    big_png = _png(size=400, color="blue") + b"\0" * 6000
    rows = [
        {"request_id": "r1", "title": "볼펜", "description": "플라스틱 몸체"},
        {"request_id": "r2", "title": "면 티셔츠", "image": good_png},
        {"request_id": "r3", "title": "   "},
        {"request_id": "r4", "title": "x" * 60, "description": "y" * 60},
        {"request_id": "r5", "title": "사진 깨짐", "image": b"not an image at all"},
        {"request_id": "r6", "title": "큰 사진", "image": big_png},
        {"request_id": "", "title": "no id"},
        {"request_id": "r1", "title": "same id again in the batch"},
        {"request_id": "r7", "title": "NUL\x00 in text"},
    ]
    summary = submit_requests(engine, rows, settings=settings, source="test")
    assert (summary.received, summary.inserted, summary.duplicates, summary.rejected) == (
        9,
        3,
        1,
        5,
    )
    assert summary.duplicate_ids == ["r1"]  # repeated in the batch: listed, not only counted
    stored = _requests(engine)
    assert sorted(stored) == ["r1", "r2", "r7"]
    assert stored["r1"]["description"] == "플라스틱 몸체" and stored["r1"]["status"] == "pending"
    assert bytes(stored["r2"]["image"]) == good_png
    assert stored["r7"]["title"] == "NUL in text"
    reasons = _reject_reasons(engine)
    assert reasons["r3"] == "empty title"
    assert reasons["r4"].startswith("text too long (120 chars > 100)")
    assert reasons["r5"].startswith("unreadable image")
    assert reasons["r6"].startswith("image too large")
    assert reasons[None] == "missing request_id"
    assert summary.reasons == {
        "empty_title": 1,
        "oversize_text": 1,
        "image_corrupt": 1,
        "image_too_large": 1,
        "empty_key": 1,
    }


def test_resubmitting_is_idempotent(engine):
    rows = [{"request_id": f"q{i}", "title": f"물품 {i}"} for i in range(50)] + [
        {"request_id": "bad", "title": ""}
    ]
    first = submit_requests(engine, rows)
    again = submit_requests(engine, rows)
    assert (first.inserted, first.duplicates, first.rejected) == (50, 0, 1)
    assert (again.inserted, again.duplicates, again.rejected) == (0, 50, 1)
    assert first.duplicate_ids == [] and again.duplicate_ids == [f"q{i}" for i in range(20)]
    assert again.as_dict()["duplicate_ids"] == again.duplicate_ids
    assert len(_requests(engine)) == 50
    with engine.connect() as conn:  # the same bad row is recorded once
        assert conn.execute(text("select count(*) from intake_rejects")).scalar() == 1


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_import_csv_jsonl_parquet(engine, tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(_png())
    _write_csv(
        tmp_path / "req.csv",
        [
            {
                "request_id": "c1",
                "title": "냉동 쇠고기",
                "description": "",
                "image_path": "img/a.png",
            },
            {
                "request_id": "c2",
                "title": "볼펜",
                "description": "잉크",
                "image_path": "img/missing.png",
            },
        ],
    )
    lines = [
        json.dumps(
            {
                "request_id": "j1",
                "title": "면 티셔츠",
                "image_base64": base64.b64encode(_png()).decode(),
            }
        ),
        "{not json",
        json.dumps({"request_id": "j2", "title": ""}, ensure_ascii=False),
        json.dumps({"request_id": "j3", "title": "우레탄 코팅제", "description": None}),
    ]
    (tmp_path / "req.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    pq.write_table(
        pa.table(
            {
                "request_id": ["p1", "p2"],
                "title": ["Meat of bovine animals; frozen", "Ball point pens"],
                "image": pa.array([_png(), None], type=pa.binary()),
            }
        ),
        tmp_path / "req.parquet",
    )
    csv_s = import_requests(engine, tmp_path / "req.csv")
    jsonl_s = import_requests(engine, tmp_path / "req.jsonl")
    parquet_s = import_requests(engine, tmp_path / "req.parquet")
    assert (csv_s.inserted, csv_s.rejected) == (1, 1)
    assert "missing.png" in csv_s.rejects[0].message
    assert (jsonl_s.inserted, jsonl_s.rejected) == (2, 2)
    assert any("line 2: invalid JSON" in r.message for r in jsonl_s.rejects)
    assert (parquet_s.inserted, parquet_s.rejected) == (2, 0)
    stored = _requests(engine)
    assert sorted(stored) == ["c1", "j1", "j3", "p1", "p2"]
    assert stored["c1"]["image"] is not None and stored["c1"]["description"] is None
    assert stored["j1"]["image"] is not None and stored["p2"]["image"] is None
    assert stored["p1"]["source"] == "file:req.parquet"
    # importing again adds nothing
    assert import_requests(engine, tmp_path / "req.parquet").duplicates == 2


def test_unreadable_files_raise_clear_errors(engine, tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(IntakeFileError, match="unsupported file type"):
        import_requests(engine, tmp_path / "x.txt")
    _write_csv(tmp_path / "nocol.csv", [{"id_": "1", "name_": "x"}])
    with pytest.raises(IntakeFileError, match="no request_id column"):
        import_requests(engine, tmp_path / "nocol.csv")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(IntakeFileError, match="unreadable Parquet"):
        import_requests(engine, tmp_path / "bad.parquet")
    (tmp_path / "latin.csv").write_bytes("request_id,title\nr,caf\xe9\n".encode("latin-1"))
    with pytest.raises(IntakeFileError, match="not UTF-8"):
        import_requests(engine, tmp_path / "latin.csv")
    with pytest.raises(FileNotFoundError):
        import_requests(engine, tmp_path / "nope.csv")


def test_inbox_moves_files_to_done_or_failed(engine, tmp_path):
    settings = Settings(data_dir=tmp_path / "var", _env_file=None)
    inbox = settings.inbox_dir
    inbox.mkdir(parents=True)
    _write_csv(
        inbox / "monday.csv",
        [{"request_id": "i1", "title": "볼펜"}, {"request_id": "i2", "title": ""}],
    )
    (inbox / "tuesday.jsonl").write_text(json.dumps({"request_id": "i3", "title": "티셔츠"}) + "\n")
    _write_csv(inbox / "broken.csv", [{"foo": "1"}])
    (inbox / "notes.txt").write_text("not requests")
    (inbox / "wednesday.csv.part").write_text("request_id,title\ni9,half-written\n")

    summary = import_inbox(settings, engine)
    assert (summary.files, summary.inserted, summary.rejected) == (4, 2, 1)
    assert sorted(summary.files_done) == ["monday.csv", "tuesday.jsonl"]
    assert sorted(summary.files_failed) == ["broken.csv", "notes.txt"]
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["monday.csv", "tuesday.jsonl"]
    failed = sorted(p.name for p in (inbox / "failed").iterdir())
    assert failed == ["broken.csv", "broken.csv.reason.txt", "notes.txt", "notes.txt.reason.txt"]
    assert "no request_id column" in (inbox / "failed" / "broken.csv.reason.txt").read_text()
    assert (inbox / "wednesday.csv.part").exists()  # still being written: left alone
    assert sorted(_requests(engine)) == ["i1", "i3"]

    # the same file name arriving again is kept beside the first, not overwritten
    _write_csv(inbox / "monday.csv", [{"request_id": "i1", "title": "볼펜"}])
    again = import_inbox(settings, engine)
    assert (again.files, again.inserted, again.duplicates) == (1, 0, 1)
    assert len(list((inbox / "done").glob("monday*.csv"))) == 2

    # what the score run's `inbox-intake` artifact says: refused files with why, duplicates
    from tasks.score import intake_markdown

    report = intake_markdown(summary)
    assert "4 file(s): 2 imported, 2 refused" in report
    assert "| broken.csv |" in report and "no request_id column" in report
    assert "| notes.txt |" in report
    assert "i1" in intake_markdown(again) and "1 duplicate ids" in intake_markdown(again)


def test_empty_inbox_is_fine(engine, tmp_path):
    settings = Settings(data_dir=tmp_path / "var", _env_file=None)
    assert import_inbox(settings, engine).files == 0


# ----------------------------------------------------------------- one oversize CSV field


def _write_csv_text(path: Path, header: list[str], records: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(records)


def test_an_oversize_csv_field_rejects_its_row_only_with_its_line(engine, tmp_path):
    settings = Settings(data_dir=tmp_path / "var", _env_file=None)
    huge = "가" * 200_000  # beyond the csv module's 131,072-character field limit
    _write_csv_text(
        tmp_path / "big.csv",
        ["request_id", "title", "description", "notes"],
        [
            ["b1", "볼펜", "", ""],  # line 2
            ["b2", huge, "", ""],  # line 3: the bad row
            ["b3", "면 티셔츠", "two\nlines", ""],  # lines 4-5
            ["b4", "냉동 쇠고기", "", huge],  # lines 6: a long cell in a column we ignore
            ["b5", "", "", ""],  # line 7: an ordinary bad row after it
            ["b6", "travel backpack", "", ""],  # line 8
        ],
    )
    limit_before = csv.field_size_limit()
    summary = import_requests(engine, tmp_path / "big.csv", settings=settings)
    assert csv.field_size_limit() == limit_before  # the process-wide limit is left as it was
    assert (summary.received, summary.inserted, summary.rejected) == (6, 4, 2)
    assert sorted(_requests(engine)) == ["b1", "b3", "b4", "b6"]
    assert _requests(engine)["b3"]["description"] == "two\nlines"
    reasons = _reject_reasons(engine)
    assert reasons["b2"] == "line 3: text too long (200000 chars > 20000)"
    assert reasons["b5"] == "line 7: empty title"
    assert summary.reasons == {"oversize_text": 1, "empty_title": 1}
    assert [r.located_message for r in summary.rejects] == [reasons["b2"], reasons["b5"]]


def test_rows_from_files_carry_their_place_in_the_file(tmp_path):
    from hscode.request_rows import WHERE_KEY, read_request_file

    _write_csv_text(
        tmp_path / "r.csv", ["request_id", "title"], [["a", "x"], ["b", "two\nlines"], ["c", "y"]]
    )
    assert [r[WHERE_KEY] for r in read_request_file(tmp_path / "r.csv")] == [
        "line 2",
        "lines 3-4",
        "line 5",
    ]
    (tmp_path / "r.jsonl").write_text(
        '{"request_id": "a", "title": "x"}\n\n{"request_id": "b", "title": "y"}\n'
    )
    assert [r[WHERE_KEY] for r in read_request_file(tmp_path / "r.jsonl")] == ["line 1", "line 3"]
    pq.write_table(
        pa.table({"request_id": ["a", "b"], "title": ["x", "y"]}), tmp_path / "r.parquet"
    )
    assert [r[WHERE_KEY] for r in read_request_file(tmp_path / "r.parquet")] == ["row 1", "row 2"]


def test_a_csv_record_beyond_any_good_row_fails_the_file_with_its_line(tmp_path):
    from hscode.request_rows import read_request_file

    # an unclosed quote on line 3 would swallow the rest of the file into one cell
    (tmp_path / "runaway.csv").write_text(
        'request_id,title\na,ok\nb,"never closed\n' + "more text\n" * 200, encoding="utf-8"
    )
    rows = read_request_file(tmp_path / "runaway.csv", max_record_chars=1000)
    assert next(rows)["request_id"] == "a"
    with pytest.raises(IntakeFileError, match=r"record starting at line 3 is longer than 1000"):
        next(rows)


def test_an_inbox_file_with_an_oversize_field_is_imported_not_failed(engine, tmp_path):
    settings = Settings(data_dir=tmp_path / "var", _env_file=None)
    inbox = settings.inbox_dir
    inbox.mkdir(parents=True)
    _write_csv_text(
        inbox / "night.csv", ["request_id", "title"], [["n1", "x" * 200_000], ["n2", "볼펜"]]
    )
    summary = import_inbox(settings, engine)
    assert (summary.files_done, summary.files_failed) == (["night.csv"], {})
    assert (summary.inserted, summary.rejected) == (1, 1)
    assert _reject_reasons(engine)["n1"].startswith("line 2: text too long (200000 chars")
