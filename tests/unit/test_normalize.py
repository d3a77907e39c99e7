"""Normalize: raw zone -> Parquet cases (newest wins, rejects with reasons, images once).

The raw zone is filled with the emulator's own renderings of the portal's answers, as the
crawl stores them (no HTTP needed: normalize only reads the raw zone).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import replace
from pathlib import Path

from PIL import Image

from emulator.corpus import EmulatorCase, demo_corpus
from emulator.server import SPEC_BY_NAME, _list_item, image_src, render_detail
from hscode.cases import cases_snapshot_hash, read_cases
from hscode.normalize import normalize
from hscode.rawzone import RawZone
from hscode.rejects import read_rejects
from hscode.settings import Settings
from hscode.storage import image_path

BASE = "http://127.0.0.1:9/clip/"


def _png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="PNG")
    return buf.getvalue()


def store_case(raw: RawZone, case: EmulatorCase, body: bytes | None = None) -> str:
    """Store a case's detail (and images) the way the crawl does; returns the detail sha."""
    spec = SPEC_BY_NAME[case.series]
    if body is None:
        body = render_detail(case, spec).encode()
    entry = raw.put(
        url=BASE + "prlstclsfsrch/" + spec.segment + spec.detail,
        method="POST",
        params={"rrdcNo": case.rrdc_no},
        status=200,
        body=body,
        content_type="text/html;charset=UTF-8",
        series=case.series,
        kind="detail",
        rrdc_no=case.rrdc_no,
    )
    for sn, img in enumerate(case.images, start=1):
        raw.put(
            url=BASE.removesuffix("/clip/") + image_src(case, sn),
            method="GET",
            params={},
            status=200,
            body=img,
            content_type="image/png",
            series=case.series,
            kind="image",
            rrdc_no=case.rrdc_no,
        )
    time.sleep(0.001)  # distinct fetch times
    return entry.sha256


def store_list(raw: RawZone, cases: list[EmulatorCase], series: str = "ordinary") -> None:
    body = json.dumps(
        {
            "uls_dmst": {
                "thisTotalCount": len(cases),
                "itemList": [_list_item(c, i + 1) for i, c in enumerate(cases)],
            },
            "paginationInfo": {"lastPageNo": 1},
        },
        ensure_ascii=False,
    ).encode()
    form = {"stDt": "2024-01-01", "edDt": "2024-12-31", "pageIndex": "1", "pageUnit": "100"}
    entry = raw.put(
        url=BASE + "prlstclsfsrch/retrieveDmstPrlstClsfCaseLst2.do",
        method="POST",
        params=form,
        status=200,
        body=body,
        content_type="application/json",
        series=series,
        kind="list",
    )
    raw.mark(entry.sha256, True)


def test_normalize_is_idempotent_and_keeps_full_text(settings: Settings):
    corpus = demo_corpus(20, seed=1)
    raw = RawZone(settings.raw_dir)
    for case in corpus:
        store_case(raw, case)
    report = normalize(settings)
    assert report.new_cases == report.total_cases == len(corpus)
    assert report.trainable_cases == sum(1 for c in corpus if "①" not in c.hs_code)
    table = read_cases(settings)
    by_key = {c.rrdc_no: c for c in corpus}
    for row in table.to_pylist():
        case = by_key[row["case_key"]]
        assert row["description_raw"] == case.description.strip()
        assert row["image_hashes"] == [hashlib.sha256(b).hexdigest() for b in case.images]
        assert row["raw_ref"] is not None and row["fetched_at"] is not None
        assert row["decision_year"] == case.decision_date.year
    snapshot = cases_snapshot_hash(settings)

    again = normalize(settings)
    assert again.skipped_unchanged == len(corpus)
    assert (again.new_cases, again.updated_cases, again.rejected) == (0, 0, 0)
    full = normalize(settings, full=True)
    assert (full.new_cases, full.updated_cases, full.unchanged_cases) == (0, 0, len(corpus))
    assert cases_snapshot_hash(settings) == snapshot


def test_newest_detail_wins_and_a_later_fault_page_changes_nothing(settings: Settings):
    case = demo_corpus(3, seed=2).cases[0]
    raw = RawZone(settings.raw_dir)
    store_case(raw, case)
    normalize(settings)
    corrected = replace(case, title=case.title + " (정정)", hs_code="8471.30-0000")
    newest = store_case(raw, corrected)
    report = normalize(settings)
    assert (report.updated_cases, report.new_cases) == (1, 0)
    (row,) = read_cases(settings).to_pylist()
    assert row["title"].endswith("(정정)") and row["hs10"] == "8471300000"
    assert row["raw_ref"] == newest

    # A later empty answer (a fault) does not replace the good record.
    store_case(raw, case, body=b"")
    report = normalize(settings)
    assert report.older_detail_used == 1 and report.updated_cases == 0
    assert read_cases(settings).to_pylist()[0]["raw_ref"] == newest


def test_bad_records_are_rejected_with_reasons_rest_goes_on(settings: Settings):
    cases = list(demo_corpus(4, seed=3))
    raw = RawZone(settings.raw_dir)
    no_title = replace(cases[0], title="")
    no_code = replace(cases[1], hs_code="")
    multi = replace(cases[2], hs_code="① 6110.20-0000 ② 6108.91-0000")
    for case in (no_title, no_code, multi, cases[3]):
        store_case(raw, case)
    only_fault = replace(cases[3], rrdc_no="0072024999999")
    store_case(raw, only_fault, body=b"<html><body>error</body></html>")
    report = normalize(settings)
    assert report.reject_reasons == {
        "empty_title": 1,
        "empty_hs_code": 1,
        "detail_unparseable": 1,
    }
    reasons = {r.key: r.reason for r in read_rejects(settings)}
    assert reasons == {
        no_title.rrdc_no: "empty_title",
        no_code.rrdc_no: "empty_hs_code",
        only_fault.rrdc_no: "detail_unparseable",
    }
    rows = {r["case_key"]: r for r in read_cases(settings).to_pylist()}
    assert set(rows) == {multi.rrdc_no, cases[3].rrdc_no}
    m = rows[multi.rrdc_no]
    assert m["multi_code"] and m["hs10"] is None and m["hs_raw"] == multi.hs_code
    # Rejects are not recorded again by a re-run.
    normalize(settings)
    assert len(read_rejects(settings, dedupe=False)) == 3


def test_images_stored_once_by_content_and_bad_ones_skipped(settings: Settings):
    base = demo_corpus(3, seed=4).cases
    shared = _png((200, 10, 10))
    a = replace(base[0], images=[shared])
    b = replace(base[1], images=[shared, b"not an image at all"])
    c = replace(base[2], images=[_png((0, 0, 200))])
    raw = RawZone(settings.raw_dir)
    for case in (a, b, c):
        store_case(raw, case)
    missing = replace(base[2], rrdc_no="0072024999998", images=[_png((1, 2, 3))])
    spec = SPEC_BY_NAME[missing.series]
    store_case(raw, replace(missing, images=[]), body=render_detail(missing, spec).encode())
    report = normalize(settings)
    assert (report.images_stored, report.images_bad, report.images_missing) == (3, 1, 1)
    files = [p for p in settings.images_dir.rglob("*") if p.is_file()]
    assert len(files) == 2  # the shared image once, the other once
    rows = {r["case_key"]: r for r in read_cases(settings).to_pylist()}
    digest = hashlib.sha256(shared).hexdigest()
    assert rows[a.rrdc_no]["image_hashes"] == rows[b.rrdc_no]["image_hashes"] == [digest]
    assert image_path(settings.images_dir, digest).read_bytes() == shared
    assert rows[b.rrdc_no]["image_count"] == 2  # as declared by the portal
    assert rows[missing.rrdc_no]["image_hashes"] == []

    # The image arrives with a later crawl: the case picks it up on the next run.
    store_case(raw, missing)
    report = normalize(settings)
    assert report.updated_cases == 1
    row = read_cases(settings).to_pylist()
    got = {r["case_key"]: r for r in row}[missing.rrdc_no]
    assert got["image_hashes"] == [hashlib.sha256(missing.images[0]).hexdigest()]


def test_listed_without_detail_counted_and_lost_dataset_rebuilt(settings: Settings, tmp_path: Path):
    cases = list(demo_corpus(5, seed=5))
    cases = [replace(c, series="ordinary") for c in cases]
    raw = RawZone(settings.raw_dir)
    store_list(raw, cases)
    for case in cases[:3]:
        store_case(raw, case)
    report = normalize(settings)
    assert report.listed_without_detail == 2 and report.total_cases == 3

    # The checkpoint never hides cases the dataset lost (e.g. a restored backup).
    for path in settings.cases_dir.rglob("*.parquet"):
        path.unlink()
    report = normalize(settings)
    assert report.new_cases == 3 and report.total_cases == 3
