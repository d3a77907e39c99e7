"""Parsers for the portal's list (JSON) and detail (HTML fragment) answers.

They take the body as bytes: JSON is decoded as UTF-8 per RFC 8259 and HTML is
handed to BeautifulSoup as bytes so the charset the page declares wins. Any
answer that does not have the documented shape raises ``PortalFormatError``
naming the URL and what was missing; the raw bytes are already in the raw zone
by then, so a changed format can be re-parsed later without a re-crawl.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import urljoin

from bs4 import BeautifulSoup, Tag


class PortalFormatError(ValueError):
    """The portal answered in a shape we do not understand."""

    def __init__(self, url: str, missing: str) -> None:
        super().__init__(f"unexpected portal answer from {url}: missing {missing}")
        self.url = url
        self.missing = missing


class PortalErrorPage(PortalFormatError):
    """The HTML error page the portal serves for a lost session or missing AJAX headers."""


@dataclass(frozen=True, slots=True)
class ListItem:
    rrdc_no: str
    reference_no: str | None
    decision_date: date | None
    office: str | None
    hs_raw: str | None
    title: str | None
    description: str | None  # cut at 176 characters by the portal: never the full text
    reason: str | None
    image_count: int | None
    docid: str | None


@dataclass(frozen=True, slots=True)
class ListPage:
    total: int
    last_page: int
    items: list[ListItem] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DetailRecord:
    reference_no: str | None
    decision_date: date | None
    office: str | None
    hs_raw: str
    title: str
    description: str
    reason: str | None
    image_count: int | None
    image_urls: tuple[str, ...]


_DATE = re.compile(r"(\d{4})\D{0,3}(\d{1,2})\D{0,3}(\d{1,2})")
_INT = re.compile(r"\d+")
_MAX_INT_DIGITS = 18  # counts and page numbers; longer digit runs are junk, not numbers
# Button / link captions the portal puts after the code in the 결정세번 cell.
_BUTTON_TEXT = re.compile(r"(관세율표\s*)?해설서|관세율표|해설서\s*보기|바로가기")


def parse_date(value: object) -> date | None:
    """``20240105``, ``2024-01-05``, ``2024.01.05`` or ``2024. 1. 5.``; None when absent or invalid."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    m = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", text) or _DATE.search(text)
    if not m:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def _int_or_none(value: object) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if len(str(abs(value))) <= _MAX_INT_DIGITS else None
    if not isinstance(value, str | float):
        return None
    m = _INT.search(str(value))
    if not m or len(m.group()) > _MAX_INT_DIGITS:
        return None
    return int(m.group())


def _str_or_none(value: object) -> str | None:
    """Text of a JSON scalar; None for null, blanks and values that are not scalars."""
    if value is None or isinstance(value, bool | dict | list):
        return None
    text = str(value)
    return text if text.strip() else None


def _looks_like_html(body: bytes) -> bool:
    head = body[:2048].lstrip().lower()
    return (
        head.startswith((b"<!doctype", b"<html", b"<head", b"<body", b"<?xml")) or b"<html" in head
    )


def parse_list(body: bytes, url: str) -> ListPage:
    """Parse the JSON list answer; see the "List" section of docs/clip-portal.md."""
    try:
        doc = json.loads(body)
    except RecursionError:
        raise PortalFormatError(url, "a JSON body (nested too deeply)") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        if _looks_like_html(body):
            raise PortalErrorPage(url, "JSON body (got an HTML error page)") from None
        raise PortalFormatError(url, "a JSON body") from None
    except ValueError as exc:  # e.g. an integer longer than Python converts
        raise PortalFormatError(url, f"a JSON body ({exc})") from None
    if not isinstance(doc, dict):
        raise PortalFormatError(url, "a JSON object")
    dmst = doc.get("uls_dmst")
    if not isinstance(dmst, dict):
        raise PortalFormatError(url, "uls_dmst")
    raw_items = dmst.get("itemList")
    if not isinstance(raw_items, list):
        raise PortalFormatError(url, "uls_dmst.itemList")
    total = _int_or_none(dmst.get("thisTotalCount"))
    if total is None:
        raise PortalFormatError(url, "uls_dmst.thisTotalCount")
    pagination = doc.get("paginationInfo")
    last_page = _int_or_none(pagination.get("lastPageNo")) if isinstance(pagination, dict) else None
    if last_page is None:
        raise PortalFormatError(url, "paginationInfo.lastPageNo")
    items: list[ListItem] = []
    for i, raw in enumerate(raw_items):
        if not isinstance(raw, dict):
            raise PortalFormatError(url, f"itemList[{i}] as an object")
        rrdc = _str_or_none(raw.get("RRDC_NO"))
        if rrdc is None:
            raise PortalFormatError(url, f"itemList[{i}].RRDC_NO")
        items.append(
            ListItem(
                rrdc_no=rrdc.strip(),
                reference_no=_str_or_none(raw.get("REFF_NO")),
                decision_date=parse_date(raw.get("ENFR_DT")),
                office=_str_or_none(raw.get("CSTM_NM")),
                hs_raw=_str_or_none(raw.get("DTRM_HS_SGN")),
                title=_str_or_none(raw.get("CMDT_NM")),
                description=_str_or_none(raw.get("CMDT_DESC")),
                reason=_str_or_none(raw.get("DTRM_RSN_CN")),
                image_count=_int_or_none(raw.get("IMGE_CNT")),
                docid=_str_or_none(raw.get("DOCID")),
            )
        )
    return ListPage(total=total, last_page=max(last_page, 0), items=items)


def _label(th: Tag) -> str:
    return "".join(th.get_text().split())


def _cell_text(td: Tag) -> str:
    # <br> keeps the line structure (descriptions use 'ㅇ' bullets on new lines); inline
    # tags such as <em> must not split words, so no separator otherwise. hscode.cases cleans.
    for br in td.find_all("br"):
        br.replace_with("\n")
    return td.get_text().strip()


def _code_text(td: Tag) -> str:
    """The decided-code cell without its button captions; the raw value otherwise untouched."""
    cell = BeautifulSoup(str(td), "lxml")
    for el in cell.find_all(["button", "input", "script", "img"]):
        el.decompose()
    for a in cell.find_all("a"):
        if not re.search(r"\d", a.get_text()):
            a.decompose()
    text = " ".join(cell.get_text(" ").split())
    return " ".join(_BUTTON_TEXT.sub(" ", text).split())


_REQUIRED = ("결정세번", "품명", "물품설명")


def _images_in(cells: dict[str, Tag]) -> list[str]:
    """The ``src`` of every ``<img>`` in the 관련 이미지 row, as written."""
    cell = cells.get("관련이미지")
    if cell is None:
        return []
    found = []
    for img in cell.find_all("img"):
        src = img.get("src")
        if isinstance(src, str) and src.strip():
            found.append(src.strip())
    return found


def parse_detail(body: bytes, url: str) -> DetailRecord:
    """Parse the detail HTML fragment: a table of ``<th>label</th><td>value</td>`` rows."""
    try:
        return _parse_detail(body, url)
    except RecursionError:  # pathologically nested markup
        raise PortalFormatError(url, "a detail fragment (markup nested too deeply)") from None


def _parse_detail(body: bytes, url: str) -> DetailRecord:
    soup = BeautifulSoup(body, "lxml")
    cells: dict[str, Tag] = {}
    for th in soup.find_all("th"):
        td = th.find_next_sibling("td")
        if td is not None:
            cells.setdefault(_label(th), td)
    if not cells:
        if _looks_like_html(body) and soup.find("table") is None:
            raise PortalErrorPage(url, "the detail table (got an HTML error page)")
        raise PortalFormatError(url, "the detail table rows (<th>/<td>)")
    missing = [label for label in _REQUIRED if label not in cells]
    if missing:
        raise PortalFormatError(url, "detail rows " + ", ".join(missing))
    hs_raw = _code_text(cells["결정세번"])
    title = _cell_text(cells["품명"])
    description = _cell_text(cells["물품설명"])
    identity = [hs_raw, title, description] + [
        _cell_text(cells[label]) for label in ("참조번호", "시행일자") if label in cells
    ]
    if not any(identity) and not _images_in(cells):
        # What the portal answers for a key it does not know, or for a case asked from
        # another series' session: the table with every value empty. Not a case.
        raise PortalFormatError(url, "values in every detail row (got the empty table)")
    # A real record may still lack some values (the portal has cases without a product
    # name or a decided code). It is returned as it is: normalizing rejects it with the
    # reason, and re-asking the portal would only return the same record.
    image_urls: list[str] = []
    for src in _images_in(cells):
        resolved = urljoin(url, src)
        if resolved not in image_urls:
            image_urls.append(resolved)

    def text(label: str) -> str | None:
        cell = cells.get(label)
        return _str_or_none(_cell_text(cell)) if cell is not None else None

    return DetailRecord(
        reference_no=text("참조번호"),
        decision_date=parse_date(text("시행일자")),
        office=text("시행기관"),
        hs_raw=hs_raw,
        title=title,
        description=description,
        reason=text("결정사유"),
        image_count=_int_or_none(text("이미지건수")),
        image_urls=tuple(image_urls),
    )
