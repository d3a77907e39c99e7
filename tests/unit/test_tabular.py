"""The shared table reader and the in-folder image reader (``hscode.tabular``)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hscode.rejects import Rejected, Rejection, RejectReason
from hscode.tabular import (
    TabularFileError,
    open_table,
    read_image_in_folder,
)


def _rows(path: Path, **kwargs) -> list:
    with open_table(path, **kwargs) as table:
        return list(table)


def _write_csv(path: Path, header: list[str], records: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(records)


# ----------------------------------------------------------------------------- CSV


def test_csv_rows_have_number_place_and_none_for_empty_cells(tmp_path):
    path = tmp_path / "t.csv"
    _write_csv(
        path,
        [" request_id", "title ", "description"],
        [["a", "x", ""], ["b", "two\nlines", "d"], ["c", "y"]],
    )
    with open_table(path) as table:
        assert table.columns == ("request_id", "title", "description")  # names stripped
        rows = list(table)
    assert [(r.number, r.where) for r in rows] == [(1, "line 2"), (2, "lines 3-4"), (3, "line 5")]
    assert rows[0].values == {"request_id": "a", "title": "x", "description": None}
    assert rows[1].values["title"] == "two\nlines"
    assert rows[2].values == {"request_id": "c", "title": "y", "description": None}  # missing
    assert all(r.rejection is None for r in rows)


def test_csv_extra_cells_are_dropped_or_reject_their_row(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n3,4,5\n6,7\n", encoding="utf-8")
    dropped = _rows(path)
    assert [r.values for r in dropped] == [
        {"a": "1", "b": "2"},
        {"a": "3", "b": "4"},
        {"a": "6", "b": "7"},
    ]
    refused = _rows(path, extra_cells="reject")
    assert [r.values for r in refused] == [{"a": "1", "b": "2"}, {}, {"a": "6", "b": "7"}]
    bad = refused[1].rejection
    assert isinstance(bad, Rejection) and bad.reason is RejectReason.UNREADABLE_ROW
    assert bad.message == "line 3: 1 cells beyond the header's 2"
    assert refused[1].number == 2  # the rest of the file goes on


def test_csv_long_cell_is_read_whole_and_field_limit_restored(tmp_path):
    path = tmp_path / "big.csv"
    _write_csv(path, ["id", "text"], [["1", "가" * 200_000], ["2", "ok"]])
    limit = csv.field_size_limit()
    rows = _rows(path)
    assert csv.field_size_limit() == limit
    assert len(rows[0].values["text"]) == 200_000 and rows[1].values["text"] == "ok"


def test_csv_runaway_record_empty_file_and_bad_encoding_fail_the_file(tmp_path):
    runaway = tmp_path / "runaway.csv"
    runaway.write_text('a,b\n1,ok\n2,"never closed\n' + "more\n" * 300, encoding="utf-8")
    with open_table(runaway, max_record_chars=500) as table:
        rows = iter(table)
        assert next(rows).values == {"a": "1", "b": "ok"}
        with pytest.raises(TabularFileError, match=r"runaway.csv: the record starting at line 3"):
            next(rows)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(TabularFileError, match="empty CSV file"):
        open_table(tmp_path / "empty.csv")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("a,b\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(TabularFileError, match="not UTF-8"):
        _rows(latin)
    with open_table(latin, decoding="replace") as table:  # replaced and counted instead
        assert [r.values["b"] for r in table] == ["caf\ufffd"]
        assert table.decode_errors == 1


def test_tsv_and_unsupported_suffix(tmp_path):
    (tmp_path / "t.tsv").write_text("a\tb\n1\t2,3\n", encoding="utf-8")
    assert [r.values for r in _rows(tmp_path / "t.tsv")] == [{"a": "1", "b": "2,3"}]
    (tmp_path / "t.xlsx").write_bytes(b"")
    with pytest.raises(TabularFileError, match="unsupported file type .xlsx"):
        open_table(tmp_path / "t.xlsx")


# ----------------------------------------------------------------------------- JSON


def test_jsonl_bad_lines_are_rejections_and_the_rest_goes_on(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(
        '{"id": "a", "title": "x"}\n{not json\n\n[1, 2]\n{"id": "b"}\n', encoding="utf-8"
    )
    with open_table(path) as table:
        assert table.columns is None  # each object names its own keys
        rows = list(table)
    assert [(r.number, r.where) for r in rows] == [
        (1, "line 1"),
        (2, "line 2"),
        (4, "line 4"),
        (5, "line 5"),
    ]
    assert rows[0].values == {"id": "a", "title": "x"} and rows[3].values == {"id": "b"}
    broken, not_object = rows[1].rejection, rows[2].rejection
    assert broken is not None and broken.reason is RejectReason.UNREADABLE_ROW
    assert broken.message.startswith("line 2: invalid JSON (")
    assert not_object is not None and not_object.message == "line 4: not a JSON object"
    assert broken.key is None


def test_json_array_only_when_asked(tmp_path):
    path = tmp_path / "t.json"
    path.write_text("\n\n" + json.dumps([{"id": "a"}, 3, {"id": "b"}]), encoding="utf-8")
    rows = _rows(path, json_arrays=True)
    assert [(r.where, r.values) for r in rows] == [
        ("item 1", {"id": "a"}),
        ("item 2", {}),
        ("item 3", {"id": "b"}),
    ]
    assert (
        rows[1].rejection is not None and rows[1].rejection.message == "item 2: not a JSON object"
    )
    # without json_arrays the array's line is just a line that is not an object
    (only,) = _rows(path)
    assert only.rejection is not None and only.number == 3
    # with json_arrays a JSON-lines file still numbers its lines (leading blanks counted)
    lines = tmp_path / "t.jsonl"
    lines.write_text('\n{"id": "a"}\n{"id": "b"}\n', encoding="utf-8")
    assert [r.number for r in _rows(lines, json_arrays=True)] == [2, 3]
    (tmp_path / "bad.json").write_text("[1, 2", encoding="utf-8")
    with pytest.raises(TabularFileError, match="not a JSON array"):
        _rows(tmp_path / "bad.json", json_arrays=True)


# ----------------------------------------------------------------------------- Parquet


def test_parquet_rows_and_unreadable_file(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(
        pa.table({"id": ["a", "b"], "image": pa.array([b"\x89PNG", None], pa.binary())}), path
    )
    with open_table(path) as table:
        assert table.columns == ("id", "image")
        rows = list(table)
    assert [(r.number, r.where) for r in rows] == [(1, "row 1"), (2, "row 2")]
    assert rows[0].values == {"id": "a", "image": b"\x89PNG"} and rows[1].values["image"] is None
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(TabularFileError, match="bad.parquet: unreadable Parquet"):
        open_table(tmp_path / "bad.parquet")


def test_closing_early_releases_the_file(tmp_path):
    path = tmp_path / "t.csv"
    _write_csv(path, ["a"], [[str(i)] for i in range(100)])
    table = open_table(path)
    first = next(iter(table))
    table.close()
    assert first.values == {"a": "0"}


# ----------------------------------------------------------------------------- named images


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    inside = tmp_path / "in"
    (inside / "sub").mkdir(parents=True)
    (inside / "ok.png").write_bytes(b"inside")
    (inside / "sub" / "deep.png").write_bytes(b"deep")
    (tmp_path / "secret.png").write_bytes(b"outside")
    (inside / "link_out.png").symlink_to(tmp_path / "secret.png")
    return inside


def _refused(spec: str, folder: Path | None, max_bytes: int = 100, **kw) -> Rejected:
    with pytest.raises(Rejected) as info:
        read_image_in_folder(spec, folder, max_bytes, **kw)
    return info.value


def test_image_inside_the_folder_is_read(folder):
    assert read_image_in_folder("ok.png", folder, 100) == b"inside"
    assert read_image_in_folder("sub/../sub/deep.png", folder, 100) == b"deep"


@pytest.mark.parametrize("spec", ["../secret.png", "link_out.png", "sub/../../secret.png"])
def test_a_path_escaping_the_folder_is_refused_with_a_clear_error(folder, spec):
    refused = _refused(spec, folder)
    assert refused.reason is RejectReason.IMAGE_PATH_OUTSIDE
    assert refused.detail == f"image path outside the file's folder: {spec!r}"


def test_absolute_paths_need_trust(folder):
    secret = str(folder.parent / "secret.png")
    refused = _refused(secret, folder)
    assert refused.reason is RejectReason.IMAGE_PATH_OUTSIDE and "absolute" in refused.detail
    assert read_image_in_folder(secret, folder, 100, allow_outside=True) == b"outside"
    assert read_image_in_folder("../secret.png", folder, 100, allow_outside=True) == b"outside"
    assert read_image_in_folder(secret, None, 100) == b"outside"  # no folder: any path


def test_missing_not_a_file_too_large_and_unusable_paths(folder):
    missing = _refused("nope.png", folder)
    assert missing.reason is RejectReason.IMAGE_MISSING
    assert missing.detail == "unreadable image: 'nope.png' not found (or not a file)"
    assert _refused("sub", folder).reason is RejectReason.IMAGE_MISSING  # a folder
    os.mkfifo(folder / "fifo.png")
    assert _refused("fifo.png", folder).reason is RejectReason.IMAGE_MISSING  # never opened
    big = _refused("ok.png", folder, max_bytes=3)
    assert big.reason is RejectReason.IMAGE_TOO_LARGE and "6 bytes > 3" in big.detail
    assert _refused("bad\x00name.png", folder).reason is RejectReason.IMAGE_PATH_BAD
    (folder / "loop.png").symlink_to(folder / "loop.png")
    assert _refused("loop.png", folder).reason in (
        RejectReason.IMAGE_PATH_BAD,
        RejectReason.IMAGE_MISSING,
    )
