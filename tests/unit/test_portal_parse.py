"""Parsing the portal's list (JSON) and detail (HTML fragment) answers, as bytes."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from emulator.corpus import demo_corpus
from emulator.server import SPEC_BY_NAME, error_page, render_detail
from hscode.portal.parse import PortalErrorPage, PortalFormatError, parse_detail, parse_list

URL = "https://unipass.customs.go.kr/clip/prlstclsfsrch/retrieveDmstPrlstClsfCaseDtl.do"
LIST_URL = "https://unipass.customs.go.kr/clip/prlstclsfsrch/retrieveDmstPrlstClsfCaseLst2.do"


def _list_body(items: list[dict], total: int | None = None, last: int = 1) -> bytes:
    doc = {
        "uls_dmst": {"thisTotalCount": len(items) if total is None else total, "itemList": items},
        "paginationInfo": {"lastPageNo": last},
    }
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


ITEM = {
    "RRDC_NO": "0072026002409",
    "REFF_NO": "품목분류2과-4187",
    "ENFR_DT": "20260105",
    "CSTM_NM": "관세평가분류원",
    "DTRM_HS_SGN": "<em>3207.20</em>-9000",
    "CMDT_NM": "유약 조제품",
    "CMDT_DESC": "ㅇ" * 176,
    "DTRM_RSN_CN": "관세율표 해석에 관한 통칙 제1호",
    "IMGE_CNT": "2",
    "DOCID": "ULS0072026002409",
}


def test_parse_list_reads_items_and_paging():
    page = parse_list(_list_body([ITEM], total=123, last=13), LIST_URL)
    assert (page.total, page.last_page) == (123, 13)
    (item,) = page.items
    assert item.rrdc_no == "0072026002409"
    assert item.decision_date == dt.date(2026, 1, 5)
    assert item.hs_raw == "<em>3207.20</em>-9000"  # raw, cleaned later
    assert item.image_count == 2


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        (b'{"paginationInfo": {}}', "uls_dmst"),
        (b'{"uls_dmst": {"thisTotalCount": 1}, "paginationInfo": {"lastPageNo": 1}}', "itemList"),
        (_list_body([{"REFF_NO": "x"}]), "RRDC_NO"),
        (_list_body([ITEM]).replace(b'"lastPageNo": 1', b'"x": 1'), "lastPageNo"),
        (b"\x00\xff not json", "JSON"),
    ],
)
def test_parse_list_names_url_and_what_is_missing(body: bytes, missing: str):
    with pytest.raises(PortalFormatError) as info:
        parse_list(body, LIST_URL)
    assert LIST_URL in str(info.value) and missing in str(info.value)


def test_parse_list_recognises_the_html_error_page():
    with pytest.raises(PortalErrorPage):
        parse_list(error_page("잘못된 접근입니다."), LIST_URL)


def test_parse_detail_full_text_code_token_and_images():
    corpus = demo_corpus(30, seed=0)
    case = next(c for c in corpus if len(c.images) == 2 and len(c.description) > 176)
    body = render_detail(case, SPEC_BY_NAME[case.series]).encode("utf-8")
    record = parse_detail(body, URL)
    assert record.hs_raw == case.hs_code  # without the "관세율표 해설서" button caption
    assert record.title == case.title
    assert record.description == case.description.strip()
    assert len(record.description) > 176
    assert record.decision_date == case.decision_date
    assert record.reference_no == case.reference_no
    assert record.image_count == 2
    assert len(record.image_urls) == 2
    assert all(
        u.startswith("https://unipass.customs.go.kr/clip/prlstclsfsrch/imageView.do?")
        for u in record.image_urls
    )


def test_parse_detail_declared_charset_wins():
    html = (
        '<meta charset="euc-kr"><table><tr><th>결정세번</th><td>8471.30-0000 '
        "<button>관세율표 해설서</button></td></tr><tr><th>품명</th><td>노트북 컴퓨터</td></tr>"
        "<tr><th>물품설명</th><td>ㅇ 휴대용<br>ㅇ 무게 1.2kg</td></tr></table>"
    )
    record = parse_detail(html.encode("euc-kr"), URL)
    assert record.title == "노트북 컴퓨터"
    assert record.hs_raw == "8471.30-0000"
    assert record.description == "ㅇ 휴대용\nㅇ 무게 1.2kg"


def test_parse_detail_faults_raise_with_url_and_reason():
    spec = SPEC_BY_NAME["ordinary"]
    empty_table = render_detail(None, spec).encode()  # unknown key / other series' session
    cut = render_detail(demo_corpus(1).cases[0], spec)
    cut = cut[: cut.index("<table")].encode()
    for body, missing in ((b"", "table"), (empty_table, "empty table"), (cut, "table")):
        with pytest.raises(PortalFormatError) as info:
            parse_detail(body, URL)
        assert URL in str(info.value) and missing in str(info.value)
    with pytest.raises(PortalErrorPage):
        parse_detail(error_page("세션이 만료되었습니다."), URL)


def test_parse_detail_keeps_a_real_record_that_lacks_its_code():
    """The portal has cases without a decided code: parsed as they are, rejected later."""
    case = demo_corpus(1).cases[0]
    from dataclasses import replace

    no_code = replace(case, hs_code="")
    record = parse_detail(render_detail(no_code, SPEC_BY_NAME[case.series]).encode(), URL)
    assert record.hs_raw == "" and record.title == case.title
