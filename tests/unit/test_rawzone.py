"""The raw zone: responses as received, content-addressed, with an append-only manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hscode.rawzone import RawZone, list_page_key
from hscode.storage import blob_path, sha256_bytes

URL = "http://127.0.0.1:1/clip/prlstclsfsrch/retrieveDmstPrlstClsfCaseDtl.do"


def _put(raw: RawZone, body: bytes, rrdc: str = "0072024000001", status: int = 200, **kw):
    return raw.put(
        url=URL,
        method="post",
        params={"rrdcNo": rrdc},
        status=status,
        body=body,
        content_type="text/html;charset=UTF-8",
        series="ordinary",
        kind=kw.pop("kind", "detail"),
        rrdc_no=rrdc,
        **kw,
    )


def test_bodies_stored_once_and_manifest_describes_each_response(tmp_path: Path):
    raw = RawZone(tmp_path / "raw")
    a = _put(raw, b"<table>same</table>")
    b = _put(raw, b"<table>same</table>")
    assert a.sha256 == b.sha256 == sha256_bytes(b"<table>same</table>")
    assert len([p for p in (tmp_path / "raw" / "blobs").rglob("*") if p.is_file()]) == 1
    assert blob_path(raw.blobs, a.sha256).read_bytes() == b"<table>same</table>"
    lines = [json.loads(x) for x in raw.manifest_path.read_text().splitlines()]
    assert len(lines) == 2
    for line in lines:
        assert {"url", "params", "status", "fetched_at", "sha256", "kind", "method"} <= set(line)
        assert line["method"] == "POST" and line["params"] == {"rrdcNo": "0072024000001"}
    with pytest.raises(ValueError, match="unknown raw-zone kind"):
        _put(raw, b"x", kind="bogus")


def test_reopen_skips_a_torn_last_line_and_keeps_appending(tmp_path: Path):
    raw = RawZone(tmp_path / "raw")
    good = _put(raw, b"<table>1</table>")
    raw.mark(good.sha256, True)
    with raw.manifest_path.open("ab") as fh:  # what a SIGKILL mid-write leaves
        fh.write(b'{"url": "http://x", "sta')
    again = RawZone(tmp_path / "raw")
    assert again.torn_lines == 1
    assert again.latest_good_detail("0072024000001") == good
    newer = _put(again, b"<table>2</table>")
    third = RawZone(tmp_path / "raw")
    assert third.torn_lines == 1  # the torn line was terminated, ours stayed whole
    assert [e.sha256 for e in third.details("0072024000001")] == [newer.sha256, good.sha256]


def test_verdicts_and_resume_lookups(tmp_path: Path):
    raw = RawZone(tmp_path / "raw")
    ok = _put(raw, b"<table>ok</table>")
    bad = _put(raw, b"")
    _put(raw, b"oops", status=503)
    raw.mark(ok.sha256, True)
    raw.mark(bad.sha256, False, "the detail table")
    reopened = RawZone(tmp_path / "raw")
    assert reopened.verdict(bad.sha256) == (False, "the detail table")
    assert reopened.latest_good_detail("0072024000001") == ok  # newest *good* one
    assert len(reopened.details("0072024000001")) == 2  # 200s only

    form = {"stDt": "2024-01-01", "edDt": "2024-12-31", "pageIndex": "1", "pageUnit": "10"}
    page = reopened.put(
        url=URL,
        method="POST",
        params=form,
        status=200,
        body=b"{}",
        content_type=None,
        series="ordinary",
        kind="list",
    )
    assert reopened.good_list_pages() == {}  # not judged yet
    reopened.mark(page.sha256, True)
    assert list(reopened.good_list_pages()) == [list_page_key("ordinary", form)]
