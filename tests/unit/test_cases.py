import csv
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from hscode.case_import import export_cases, import_cases, parse_column_map
from hscode.case_records import CaseRejected, make_case
from hscode.case_report import quality_report
from hscode.cases import cases_snapshot_hash, read_cases, upsert_cases
from hscode.rejects import Rejection, RejectReason, read_rejects, record_rejects
from hscode.schema import CASE_SCHEMA, SCHEMA_VERSION
from hscode.storage import image_path, sha256_bytes

DATA = Path(__file__).resolve().parents[1] / "fixtures"
T1 = datetime(2024, 2, 1, tzinfo=UTC)
T2 = datetime(2024, 3, 1, tzinfo=UTC)


def case(
    key="0072024000001",
    *,
    title="우<em>레탄</em> 코팅제",
    hs="3207.20-9000",
    when="2024-01-05",
    fetched=T1,
    **kw,
):
    return make_case(
        case_key=key,
        source="clip",
        title_raw=title,
        hs_raw=hs,
        decision_date=when,
        fetched_at=fetched,
        series=kw.pop("series", "ordinary"),
        **kw,
    )


def partitions(settings):
    return sorted(
        str(p.relative_to(settings.cases_dir)) for p in settings.cases_dir.rglob("*.parquet")
    )


# --------------------------------------------------------------------------- make_case


def test_make_case_cleans_and_derives_codes():
    row = case(
        description_raw="수지&amp;nbsp;<b>혼합물</b>",
        office=" 관세평가분류원 ",
        image_hashes=["a" * 64, "a" * 64],
        image_count="2",
        decision_reason="제3207.20-9000호에 분류함",
    )
    assert set(row) == set(CASE_SCHEMA.names)
    assert row["title"] == "우레탄 코팅제" and row["title_raw"] == "우<em>레탄</em> 코팅제"
    assert (
        row["description"] == "수지 혼합물"
        and row["description_raw"] == "수지&amp;nbsp;<b>혼합물</b>"
    )
    assert (row["hs10"], row["hs6"], row["hs4"], row["hs2"]) == (
        "3207209000",
        "320720",
        "3207",
        "32",
    )
    assert row["decision_date"] == date(2024, 1, 5) and row["decision_year"] == 2024
    assert row["image_hashes"] == ["a" * 64] and row["image_count"] == 2
    assert row["office"] == "관세평가분류원" and row["schema_version"] == SCHEMA_VERSION
    assert not row["multi_code"]
    assert make_case(case_key="k", source="s", title_raw="t", hs_raw="x", decision_date="20240105")[
        "decision_date"
    ] == date(2024, 1, 5)


def test_make_case_keeps_multi_and_unclear_codes():
    multi = case(hs="① 6110.20-0000 ② 6108.91-0000")
    assert multi["multi_code"] and multi["hs10"] is None and multi["hs6"] is None
    assert multi["hs_raw"] == "① 6110.20-0000 ② 6108.91-0000"
    unclear = case(hs="미분류", when=None)
    assert not unclear["multi_code"] and unclear["hs10"] is None and unclear["decision_year"] == 0


@pytest.mark.parametrize(
    "kw, reason",
    [
        ({"key": "  "}, "empty_key"),
        ({"title": "<em></em>&nbsp;"}, "empty_title"),
        ({"hs": ""}, "empty_hs_code"),
        ({"hs": None}, "empty_hs_code"),
        ({"when": "2024-02-30"}, "bad_date"),
        ({"when": "last year"}, "bad_date"),
        ({"description_raw": "가" * 20_001}, "oversize_text"),
        ({"series": "appeal"}, "bad_series"),
        ({"image_hashes": ["not-a-hash"]}, "bad_image_hash"),
        ({"image_count": -1}, "bad_image_count"),
    ],
)
def test_make_case_rejects_with_reason(kw, reason):
    with pytest.raises(CaseRejected) as info:
        case(**kw)
    assert info.value.reason == reason
    assert reason in str(info.value)


# --------------------------------------------------------------------------- upsert / read


def test_round_trip_make_upsert_read(settings):
    rows = [
        case("A"),
        case("B", hs="① 6110.20-0000 ② 6108.91-0000", when="20230101"),
        case("C", when=None),
    ]
    report = upsert_cases(settings, rows)
    assert (report.inserted, report.updated, report.unchanged, report.total) == (3, 0, 0, 3)
    assert partitions(settings) == [
        "decision_year=0/part-0.parquet",
        "decision_year=2023/part-0.parquet",
        "decision_year=2024/part-0.parquet",
    ]
    table = read_cases(settings)
    assert table.schema == CASE_SCHEMA
    got = {r["case_key"]: r for r in table.to_pylist()}
    for row in rows:
        assert got[row["case_key"]] == row
    # Every file on disk carries the full explicit schema.
    for path in settings.cases_dir.rglob("*.parquet"):
        assert pq.read_schema(path).names == CASE_SCHEMA.names
    assert read_cases(settings, columns=["case_key", "hs10"]).column_names == ["case_key", "hs10"]


def test_read_empty_dataset(settings):
    table = read_cases(settings)
    assert table.num_rows == 0 and table.schema == CASE_SCHEMA
    assert len(cases_snapshot_hash(settings)) == 64


def test_dedupe_newest_fetched_at_wins(settings):
    old, new = case("A", title="old name", fetched=T1), case("A", title="new name", fetched=T2)
    # Within one batch, whatever the order.
    assert upsert_cases(settings, [new, old]).inserted == 1
    assert read_cases(settings)["title"].to_pylist() == ["new name"]
    # An older record arriving later does not overwrite.
    report = upsert_cases(settings, [case("A", title="stale name", fetched=T1)])
    assert (report.updated, report.unchanged) == (0, 1) and report.partitions_written == ()
    assert read_cases(settings)["title"].to_pylist() == ["new name"]
    # Equal fetch times: the incoming record wins.
    report = upsert_cases(settings, [case("A", title="same-time fix", fetched=T2)])
    assert report.updated == 1
    assert read_cases(settings)["title"].to_pylist() == ["same-time fix"]


def test_year_change_moves_partition(settings):
    upsert_cases(settings, [case("A", when="2024-01-05"), case("B", when="2024-06-01")])
    report = upsert_cases(settings, [case("A", when="2022-12-31", fetched=T2)])
    assert report.updated == 1 and set(report.partitions_written) == {2022, 2024}
    table = read_cases(settings)
    assert sorted(zip(table["case_key"].to_pylist(), table["decision_year"].to_pylist())) == [
        ("A", 2022),
        ("B", 2024),
    ]
    # The old partition no longer holds A; a partition that empties disappears.
    assert pq.read_table(settings.cases_dir / "decision_year=2024/part-0.parquet")[
        "case_key"
    ].to_pylist() == ["B"]
    upsert_cases(settings, [case("B", when="2022-01-01", fetched=T2)])
    assert partitions(settings) == ["decision_year=2022/part-0.parquet"]


def test_reupsert_is_idempotent_and_rewrites_nothing(settings):
    rows = [case(f"K{i}", when=f"20{20 + i % 3}-01-01") for i in range(9)]
    upsert_cases(settings, rows)
    before = {p: p.stat().st_mtime_ns for p in settings.cases_dir.rglob("*.parquet")}
    digest = cases_snapshot_hash(settings)
    # Same content fetched again later: still unchanged, nothing rewritten.
    refetched = [dict(r, fetched_at=T2, raw_ref="f" * 64) for r in rows]
    report = upsert_cases(settings, refetched)
    assert (report.inserted, report.updated, report.unchanged, report.total) == (0, 0, 9, 9)
    assert report.partitions_written == ()
    assert {p: p.stat().st_mtime_ns for p in settings.cases_dir.rglob("*.parquet")} == before
    assert cases_snapshot_hash(settings) == digest
    # Only the partition that changed is rewritten.
    report = upsert_cases(settings, [dict(rows[0], title="renamed", fetched_at=T2)])
    assert report.partitions_written == (rows[0]["decision_year"],)
    assert cases_snapshot_hash(settings) != digest


def test_interrupted_move_duplicate_is_resolved_and_healed(settings):
    """A crash between writing the gaining and the losing partition leaves a duplicate."""
    upsert_cases(settings, [case("A", when="2024-01-05", fetched=T1), case("B")])
    newer = pa.Table.from_pylist(
        [case("A", when="2021-01-01", fetched=T2, title="moved")], schema=CASE_SCHEMA
    )
    path = settings.cases_dir / "decision_year=2021/part-0.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(newer, path)  # as if the losing partition were never rewritten
    table = read_cases(settings)
    assert sorted(table["case_key"].to_pylist()) == ["A", "B"]
    assert table.filter(pa.compute.equal(table["case_key"], "A"))["title"].to_pylist() == ["moved"]
    # Re-running the same upsert heals the files.
    upsert_cases(settings, [case("A", when="2021-01-01", fetched=T2, title="moved")])
    assert pq.read_table(settings.cases_dir / "decision_year=2024/part-0.parquet")[
        "case_key"
    ].to_pylist() == ["B"]


def test_upsert_rejects_malformed_records(settings):
    with pytest.raises(ValueError, match="required fields"):
        upsert_cases(settings, [dict(case("A"), title=None)])
    with pytest.raises(ValueError, match="unknown fields"):
        upsert_cases(settings, [dict(case("A"), colour="red")])
    assert not list(settings.cases_dir.rglob("*.parquet"))


def test_no_temp_files_left(settings):
    upsert_cases(settings, [case("A"), case("B", when="2020-01-01")])
    assert [p.name for p in settings.cases_dir.rglob(".tmp-*")] == []


# --------------------------------------------------------------------------- rejects


def test_record_and_read_rejects(settings):
    rejects = [
        Rejection("0072024000009", RejectReason.EMPTY_TITLE, "no title", "clip", "ab" * 32),
        Rejection("x:1", RejectReason.BAD_DATE, "impossible date", "import:x"),
    ]
    assert record_rejects(settings, rejects) == 2
    record_rejects(settings, rejects[:1])  # a re-run rejecting the same record again
    files = list(settings.rejects_dir.glob("*.jsonl"))
    assert len(files) == 1 and files[0].stem == datetime.now(UTC).date().isoformat()
    assert len(files[0].read_text().splitlines()) == 3
    got = read_rejects(settings)
    assert sorted((r.key, r.reason) for r in got) == [
        ("0072024000009", "empty_title"),
        ("x:1", "bad_date"),
    ]
    assert len(read_rejects(settings, dedupe=False)) == 3


# --------------------------------------------------------------------------- import


def test_import_csv_keeps_good_rows_and_rejects_bad_ones(settings):
    report = import_cases(settings, DATA / "cases_small.csv")
    assert (report.read, report.imported, report.rejected) == (7, 4, 3)
    assert report.reasons == {"empty_title": 1, "empty_hs_code": 1, "bad_date": 1}
    rows = {r["case_key"]: r for r in read_cases(settings).to_pylist()}
    assert set(rows) == {
        "import:cases_small:c1",
        "import:cases_small:c2",
        "import:cases_small:c6",
        "import:cases_small:c7",
    }
    c1 = rows["import:cases_small:c1"]
    assert (c1["title"], c1["description"], c1["hs10"]) == (
        "우레탄 코팅제",
        "수지혼합물",
        "3207209000",
    )
    assert c1["source"] == "import:cases_small" and c1["decision_date"] == date(2024, 3, 5)
    assert rows["import:cases_small:c2"]["hs10"] == "0201300000"
    assert rows["import:cases_small:c6"]["multi_code"]
    assert (
        rows["import:cases_small:c7"]["hs6"] == "847130"
        and rows["import:cases_small:c7"]["hs10"] is None
    )
    recorded = read_rejects(settings)
    assert sorted(r.key for r in recorded) == [
        "import:cases_small:c3",
        "import:cases_small:c4",
        "import:cases_small:c5",
    ]
    assert all(r.where.startswith("cases_small.csv#") and r.message for r in recorded)
    # Re-importing changes nothing.
    again = import_cases(settings, DATA / "cases_small.csv")
    assert again.upsert.unchanged == 4 and again.upsert.inserted == again.upsert.updated == 0


def test_import_jsonl_with_broken_lines(settings):
    report = import_cases(settings, DATA / "cases_small.jsonl", source="partner")
    assert (report.read, report.imported, report.rejected) == (6, 2, 4)
    assert report.reasons == {"empty_title": 1, "unreadable_row": 2, "bad_date": 1}
    rows = {r["case_key"]: r for r in read_cases(settings).to_pylist()}
    assert set(rows) == {"partner:j1", "partner:j3"}
    assert (
        rows["partner:j3"]["title"] == "Toy & puzzle"
        and rows["partner:j3"]["description"] == "wooden puzzle"
    )


def test_import_parquet_and_content_keys(settings, tmp_path):
    # No case_id column: the key is a stable hash of (title, hs_code, description).
    table = pa.table(
        {
            "hs_code": ["8471.30-1000", "8471.30-1000", "", "3926.90-9000"],
            "title": ["Laptop", "Laptop", "No code", "Hook"],
        }
    )
    path = tmp_path / "partner.parquet"
    pq.write_table(table, path)
    report = import_cases(settings, path)
    assert (report.read, report.imported, report.rejected) == (4, 3, 1)
    keys = read_cases(settings)["case_key"].to_pylist()
    assert len(keys) == 2 and all(
        k.startswith("import:partner:") for k in keys
    )  # duplicate row collapsed
    assert report.upsert.inserted == 2
    assert import_cases(settings, path).upsert.unchanged == 2  # same keys on re-import


def test_import_column_map_and_missing_columns(settings, tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("hscode,name\n201300000,Beef\n", encoding="utf-8-sig")
    with pytest.raises(ValueError, match="missing required columns"):
        import_cases(settings, path)
    report = import_cases(settings, path, column_map=parse_column_map("hs_code=hscode, title=name"))
    assert report.imported == 1
    assert read_cases(settings)["hs10"].to_pylist() == ["0201300000"]
    with pytest.raises(ValueError, match="OURS=THEIRS"):
        parse_column_map("hs_code")
    with pytest.raises(ValueError, match="unsupported"):
        (tmp_path / "x.xlsx").write_bytes(b"")
        import_cases(settings, tmp_path / "x.xlsx")


def _png(size=(8, 6), color=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_import_images(settings, tmp_path):
    folder = tmp_path / "drop"
    (folder / "img").mkdir(parents=True)
    good = _png()
    (folder / "img" / "ok.png").write_bytes(good)
    (folder / "img" / "copy.png").write_bytes(good)
    (folder / "img" / "corrupt.png").write_bytes(good[:40])  # truncated
    (folder / "img" / "text.png").write_bytes(b"not an image at all")
    outside = tmp_path / "secret.png"
    outside.write_bytes(_png(color=(0, 0, 0)))
    rows = [
        ("i1", "img/ok.png"),
        ("i2", "img/copy.png"),
        ("i3", "img/corrupt.png"),
        ("i4", "img/text.png"),
        ("i5", "img/missing.png"),
        ("i6", "../secret.png"),
        ("i7", str(outside)),
        ("i8", ""),
    ]
    path = folder / "with_images.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case_id", "hs_code", "title", "image_path"])
        for case_id, image in rows:
            writer.writerow([case_id, "9503.00-3900", f"Toy {case_id}", image])
    report = import_cases(settings, path)
    assert (report.read, report.imported, report.rejected) == (8, 3, 5)
    assert report.reasons == {"image_corrupt": 2, "image_missing": 1, "image_path_outside": 2}
    by_key = {r["case_key"]: r for r in read_cases(settings).to_pylist()}
    digest = sha256_bytes(good)
    assert by_key["import:with_images:i1"]["image_hashes"] == [digest]
    assert by_key["import:with_images:i2"]["image_hashes"] == [digest]
    assert by_key["import:with_images:i8"]["image_hashes"] == []
    assert image_path(settings.images_dir, digest).read_bytes() == good
    stored = [p for p in settings.images_dir.rglob("*") if p.is_file()]
    assert len(stored) == 1  # the same bytes are stored once; rejected images not at all
    # A trusted file may point anywhere.
    trusted = import_cases(settings, path, source="trusted", allow_absolute=True)
    assert trusted.reasons == {"image_corrupt": 2, "image_missing": 1}


def test_import_rejects_decompression_bomb(settings, tmp_path):
    buffer = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buffer, format="PNG")  # 100 Mpx, a few KB on disk
    (tmp_path / "bomb.png").write_bytes(buffer.getvalue())
    path = tmp_path / "bomb.jsonl"
    path.write_text(
        json.dumps({"hs_code": "9503.00-3900", "title": "Toy", "image_path": "bomb.png"}) + "\n"
    )
    report = import_cases(settings, path)
    assert report.reasons == {"image_too_large": 1} and report.imported == 0


# --------------------------------------------------------------------------- export


def test_export_csv_and_parquet(settings, tmp_path):
    upsert_cases(
        settings,
        [
            case("A", description_raw="설명"),
            case("B", hs="① 6110.20-0000 ② 6108.91-0000", when=None, series="council"),
        ],
    )
    out = tmp_path / "out.csv"
    assert export_cases(settings, out) == 2
    with open(out, encoding="utf-8-sig", newline="") as fh:
        rows = {r["case_id"]: r for r in csv.DictReader(fh)}
    first = next(iter(rows.values()))
    for column in (
        "case_id",
        "hs_code",
        "title",
        "description",
        "decision_date",
        "hs6",
        "hs4",
        "source",
        "series",
    ):
        assert column in first
    assert rows["A"]["hs_code"] == "3207.20-9000" and rows["A"]["decision_date"] == "2024-01-05"
    assert (
        rows["A"]["title"] == "우레탄 코팅제"
        and rows["A"]["description"] == "설명"
        and rows["A"]["hs6"] == "320720"
    )
    assert (
        rows["B"]["hs_code"] == "① 6110.20-0000 ② 6108.91-0000" and rows["B"]["decision_date"] == ""
    )
    assert rows["B"]["series"] == "council" and rows["B"]["multi_code"] == "True"
    parquet = tmp_path / "out.parquet"
    assert export_cases(settings, parquet) == 2
    table = pq.read_table(parquet)
    assert table.schema.field("decision_date").type == pa.date32()
    assert sorted(table["hs_code"].to_pylist()) == sorted(r["hs_code"] for r in rows.values())
    # The export reads back in through import (analysts' round trip).
    assert import_cases(settings, out, source="roundtrip").imported == 2


# --------------------------------------------------------------------------- quality report


def test_quality_report_numbers(settings):
    rows = [
        case("A", title="Toy", hs="9503.00-3900", when="2024-01-01"),
        case(
            "B", title="toy ", hs="9503.00-9000", when="2024-02-01", image_hashes=["b" * 64]
        ),  # label noise
        case("C", title="Hook", hs="3926.90-9000", when="2023-01-01", description_raw="plastic"),
        case("D", title="Set", hs="① 6110.20-0000 ② 6108.91-0000", when=None, series="council"),
        case("E", title="Toy", hs="9503.00-3900", when="2024-03-01"),
    ]
    upsert_cases(settings, rows)
    record_rejects(
        settings,
        [
            Rejection("X", RejectReason.EMPTY_TITLE, "no title", "clip"),
            Rejection("Y", RejectReason.EMPTY_TITLE, "no title", "clip"),
            Rejection("Z", RejectReason.BAD_DATE, "impossible date", "clip"),
        ],
    )
    report = quality_report(settings, min_cases=(1, 2, 3))
    m = report.metrics
    assert m["cases"] == 5 and m["multi_code"] == 1 and m["with_hs10"] == 4
    assert m["by_source"] == {"clip": 5} and m["by_series"] == {"ordinary": 4, "council": 1}
    assert m["by_year"] == {"0": 1, "2023": 1, "2024": 3}
    assert m["with_description"] == 1 and m["with_images"] == 1
    assert m["rejects"] == 3 and m["rejects_by_reason"] == {"empty_title": 2, "bad_date": 1}
    assert m["top_codes"][0] == {"hs10": "9503003900", "cases": 2}
    assert m["codes_with_at_least"] == {"1": 3, "2": 1, "3": 0}
    assert m["by_chapter"] == {"39": 1, "95": 3}
    assert m["conflicting_titles"] == 1 and m["conflicting_title_cases"] == 3
    assert m["conflict_examples"][0]["codes"] == ["9503003900", "9503009000"]
    assert "# Cases data quality" in report.markdown and "| empty_title | 2 |" in report.markdown
    assert "| 9503.00-3900 | 2 |" in report.markdown
    json.dumps(m)  # publishable as an artifact as is
    # An explicit table and reject list are used instead of the stored ones.
    small = quality_report(settings, table=read_cases(settings).slice(0, 1), rejects=[])
    assert small.metrics["cases"] == 1 and small.metrics["rejects"] == 0


# --------------------------------------------------------------------------- real data


def test_import_real_ghko99_slice(settings, shared_data, tmp_path):
    source = shared_data / "ghko99_hscode" / "dataset.csv"
    if not source.is_file():
        pytest.skip(f"{source} not found")
    with open(source, encoding="utf-8-sig", newline="") as fh:
        lines = [next(fh) for _ in range(2001)]  # header + first 2,000 rows
    head = tmp_path / "ghko99_head.csv"
    head.write_text("".join(lines), encoding="utf-8")
    expected = list(csv.DictReader(io.StringIO("".join(lines))))
    report = import_cases(
        settings, head, source="ghko99", column_map={"hs_code": "hscode", "title": "name"}
    )
    assert report.read == 2000 and report.imported + report.rejected == 2000
    table = read_cases(settings)
    distinct = {(r["name"], r["hscode"]) for r in expected if r["name"].strip()}
    assert table.num_rows <= len(distinct)
    codes = {r["hscode"].zfill(10) for r in expected if r["hscode"].strip()}
    assert set(table["hs10"].to_pylist()) <= codes
    assert "0201300000" in set(table["hs10"].to_pylist())  # '201300000' lost its leading zero
    assert all(len(c) == 10 for c in table["hs10"].to_pylist())
    assert all(k.startswith("ghko99:") for k in table["case_key"].to_pylist())


def test_import_csv_survives_unreadable_and_oversize_rows(settings, tmp_path):
    path = tmp_path / "messy.csv"
    huge = "x" * 200_000  # beyond the csv module's field limit
    big = "가" * 25_000  # readable, but beyond max_text_chars
    path.write_bytes(
        (
            "case_id,hs_code,title,description\n"
            f"m1,3926.90-9000,Hook,{huge}\n"
            f"m2,3926.90-9000,Hook two,{big}\n"
            "m3,3926.90-9000,Hook three,fine,extra cell\n"
        ).encode()
        + b"m4,3926.90-9000,Caf\xe9 hook,ok\n"  # one Latin-1 byte: replaced and counted, row kept
    )
    report = import_cases(settings, path)
    assert report.read == 4 and report.imported == 1
    # the 200,000-character cell is read whole and judged as text, like the 25,000 one
    assert report.reasons == {"unreadable_row": 1, "oversize_text": 2}
    assert report.decode_errors == 1
    assert read_cases(settings)["title"].to_pylist() == ["Caf\ufffd hook"]


def test_import_csv_oversize_quoted_cell_spanning_lines_is_one_rejected_row(settings, tmp_path):
    # the csv module's field limit used to stop inside the quoted cell: its row was rejected
    # and the rest of the cell ("second, line, x") was read as a row and imported
    path = tmp_path / "quoted.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case_id", "hs_code", "title", "description"])
        writer.writerow(["q1", "8517.13-0000", "smartphone", ""])
        writer.writerow(["q2", "8517.13-0000", "phone", "y" * 200_000 + "\nsecond, line, x"])
        writer.writerow(["q3", "4202.92-0000", "backpack", "two\nlines"])
    report = import_cases(settings, path)
    assert (report.read, report.imported, report.rejected) == (3, 2, 1)
    assert report.reasons == {"oversize_text": 1}
    assert sorted(read_cases(settings)["title"].to_pylist()) == ["backpack", "smartphone"]
    (reject,) = read_rejects(settings)
    assert reject.where == "quoted.csv#2"


def test_upsert_records_rejects_and_removes_orphan_temp_files(settings):
    upsert_cases(settings, [case("A")])
    orphan = settings.cases_dir / "decision_year=2024" / ".tmp-crashed"
    orphan.write_bytes(b"half a parquet file")
    report = upsert_cases(
        settings,
        [case("B")],
        rejects=[Rejection("C", RejectReason.EMPTY_TITLE, "no title", "clip")],
    )
    assert report.inserted == 1 and not orphan.exists()
    assert [r.key for r in read_rejects(settings)] == ["C"]
    assert sorted(read_cases(settings)["case_key"].to_pylist()) == ["A", "B"]


def test_crash_between_partition_writes_loses_nothing(settings, monkeypatch):
    """Injected crash after the gaining partition is written, before the losing one."""
    import hscode.cases as cases_module

    upsert_cases(settings, [case("A", when="2024-01-05"), case("B", when="2024-02-01")])
    real_write = cases_module._write_partition
    calls = []

    def crash_on_second(cases_dir, year, table):
        calls.append(year)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated crash")
        real_write(cases_dir, year, table)

    monkeypatch.setattr(cases_module, "_write_partition", crash_on_second)
    moved = case("A", when="2020-01-01", fetched=T2, title="moved")
    with pytest.raises(KeyboardInterrupt):
        upsert_cases(settings, [moved])
    assert calls == [2020, 2024]
    table = read_cases(settings)  # the duplicate left behind is resolved, newest wins
    assert sorted(zip(table["case_key"].to_pylist(), table["title"].to_pylist())) == [
        ("A", "moved"),
        ("B", "우레탄 코팅제"),
    ]
    monkeypatch.setattr(cases_module, "_write_partition", real_write)
    upsert_cases(settings, [moved])  # the re-run completes the move
    on_disk = pa.concat_tables(pq.read_table(p) for p in settings.cases_dir.rglob("*.parquet"))
    assert sorted(on_disk["case_key"].to_pylist()) == ["A", "B"]


_KILL_SCRIPT = """
import sys
from pathlib import Path
from hscode.case_import import import_cases
from hscode.settings import Settings
settings = Settings(data_dir=Path(sys.argv[1]), _env_file=None)
print("start", flush=True)
import_cases(settings, Path(sys.argv[2]), chunk_rows=300)
"""


def test_sigkill_midway_then_rerun_gives_exact_dataset(settings, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "many.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case_id", "hs_code", "title", "decision_date"])
        for i in range(3000):
            writer.writerow([f"k{i}", "3926.90-9000", f"Hook {i}", f"{2000 + i % 25}-01-01"])
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(settings.data_dir), str(path)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stdout.readline().strip() == b"start"
    deadline = time.monotonic() + 30
    # Kill once some partitions exist: mid-import, while chunks are being upserted.
    while time.monotonic() < deadline and len(list(settings.cases_dir.rglob("*.parquet"))) < 5:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = read_cases(settings)  # every file on disk is whole
    assert pa.compute.count_distinct(partial["case_key"]).as_py() == partial.num_rows
    assert partial.num_rows < 3000, "the import finished before the kill: nothing was tested"
    report = import_cases(settings, path, chunk_rows=300)
    assert report.imported == 3000
    final = read_cases(settings)
    assert sorted(final["case_key"].to_pylist()) == sorted(f"import:many:k{i}" for i in range(3000))
    on_disk = sum(pq.read_metadata(p).num_rows for p in settings.cases_dir.rglob("*.parquet"))
    assert on_disk == 3000  # no duplicates left in the files either


def test_import_json_array_file(settings, tmp_path):
    """A plain JSON array (the shape of the kcs_hs_chatbot files) with a column map."""
    path = tmp_path / "kcs_like.json"
    items = [
        {
            "reference_id": "품목분류2과-1",
            "hs_code": "3809.91-0000",
            "product_name": "섬유유연제 시트",
            "description": "부직포 시트",
            "decision_date": "2024-11-29",
        },
        {"reference_id": "품목분류2과-2", "hs_code": "3809.91-0000", "product_name": None},
    ]
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    report = import_cases(
        settings,
        path,
        source="kcs",
        column_map={"title": "product_name", "case_id": "reference_id"},
    )
    assert (report.read, report.imported, report.reasons) == (2, 1, {"empty_title": 1})
    row = read_cases(settings).to_pylist()[0]
    assert row["case_key"] == "kcs:품목분류2과-1" and row["decision_year"] == 2024
    assert row["description"] == "부직포 시트" and row["hs4"] == "3809"
