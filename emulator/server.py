"""A local HTTP server speaking the CLIP portal's wire format (docs: clip-portal.md).

Base URL ``http://127.0.0.1:PORT/clip/``. Series screens set a session, the list
answers JSON (AJAX headers and a bounded date range required), the detail an HTML
fragment, images their bytes. Transient faults (5xx, 429, slow answers, JSON
without ``uls_dmst``, empty or truncated details) are injected with a seeded RNG.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import logging
import random
import secrets
import socket
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, quote, urlsplit

from emulator.corpus import Corpus, EmulatorCase, demo_corpus, kcs_corpus
from hscode.series import Series

log = logging.getLogger(__name__)

BASE = "/clip/"
LIST_CUT = 176  # the list cuts CMDT_DESC and DTRM_RSN_CN at this many characters
MAX_RANGE_DAYS = 366  # wider ranges (or none) stall like the real portal


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One answered request, for tests of politeness (rate), resume (no re-fetch) and retries."""

    at: float  # time.monotonic() when the answer was sent
    method: str
    endpoint: str  # screen | list | detail | image | robots | index | not_found
    key: str | None  # list: 'series:page'; detail: rrdcNo; image: 'atchFileId:fileSn'
    status: int
    fault: str | None


@dataclass(frozen=True)
class SeriesSpec:
    name: str
    label: str
    segment: str  # path segment after prlstclsfsrch/ ('' for ordinary)
    screen: str  # screen file name
    tpcd: str  # list prlstClsfCaseTpcd
    mttr_tpcd: str | None  # detail mttrTpcd (None: not sent)
    detail: str  # detail file name


SERIES_SPECS = (
    SeriesSpec(
        Series.ORDINARY,
        "품목분류사례",
        "",
        "openULS0203002S.do",
        "01",
        None,
        "retrieveDmstPrlstClsfCaseDtl.do",
    ),
    SeriesSpec(
        Series.COUNCIL,
        "품목분류협의회 결정",
        "cncidtrm/",
        "openULS0203005S.do",
        "03",
        "02",
        "retrieveDmstPrlstClsfCaseDtl2.do",
    ),
    SeriesSpec(
        Series.COMMITTEE,
        "관세품목분류위원회 결정",
        "cmitdtrm/",
        "openULS0203008S.do",
        "04",
        "01",
        "retrieveDmstPrlstClsfCaseDtl2.do",
    ),
)
SPEC_BY_NAME = {s.name: s for s in SERIES_SPECS}

_PREFIX = BASE + "prlstclsfsrch/"
_SCREENS = {_PREFIX + s.segment + s.screen: s for s in SERIES_SPECS}
_LISTS = {
    _PREFIX + s.segment + name: s
    for s in SERIES_SPECS
    for name in ("retrieveDmstPrlstClsfCaseLst2.do", "retrieveDmstPrlstClsfCaseLst.do")
}
_DETAILS = {_PREFIX + s.segment + s.detail: s for s in SERIES_SPECS}
_IMAGE = _PREFIX + "imageView.do"

FAULTS_COMMON = ("http500", "http503", "http429", "slow")
FAULTS_BY_ENDPOINT = {
    "list": FAULTS_COMMON + ("list_no_uls",),
    "detail": FAULTS_COMMON + ("detail_empty", "detail_malformed"),
    "image": FAULTS_COMMON,
}
ALL_FAULTS = tuple(dict.fromkeys(k for ks in FAULTS_BY_ENDPOINT.values() for k in ks))

HTML_TYPE = "text/html;charset=UTF-8"
JSON_TYPE = "application/json;charset=UTF-8"
DETAIL_LABELS = (
    "참조번호",
    "시행일자",
    "시행기관",
    "결정세번",
    "품명",
    "물품설명",
    "결정사유",
    "이미지건수",
    "관련 이미지",
)


class _BadRequest(Exception):
    """A client error answered with HTTP 400 and the reason."""


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="ko">\n<head>\n<meta charset="UTF-8">\n'
        f"<title>{html.escape(title)} | 관세법령정보포털 CLIP</title>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def error_page(message: str) -> bytes:
    """The portal's full-page HTML error (what a non-AJAX or sessionless call gets)."""
    return _page(
        "오류",
        '<div class="error_wrap">\n<h2>서비스 이용에 불편을 드려 죄송합니다.</h2>\n'
        f'<p class="msg">{html.escape(message)}</p>\n<a href="/clip/index.do">메인으로</a>\n</div>',
    ).encode()


def _text_cell(text: str) -> str:
    return html.escape(text).replace("\r\n", "\n").replace("\n", "<br>")


def image_src(case: EmulatorCase, file_sn: int) -> str:
    return f"{_IMAGE}?atchFileId={quote(case.atch_file_id)}&fileSn={file_sn}"


def render_detail(case: EmulatorCase | None, spec: SeriesSpec) -> str:
    """The detail fragment; ``case=None`` gives the empty table (unknown key or other series)."""
    if case is None:
        values = [""] * len(DETAIL_LABELS)
    else:
        imgs = "".join(
            f'<li><img src="{html.escape(image_src(case, i))}" alt="관련 이미지 {i}"></li>'
            for i in range(1, len(case.images) + 1)
        )
        values = [
            html.escape(case.reference_no),
            case.decision_date.isoformat(),
            html.escape(case.office),
            (
                f'{html.escape(case.hs_code)} <button type="button" class="btn_s" '
                f'onclick="fn_openHsExpl(this);">관세율표 해설서</button>'
            ),
            _text_cell(case.title),
            _text_cell(case.description),
            _text_cell(case.reason),
            str(len(case.images)),
            f'<ul class="img_list">{imgs}</ul>' if imgs else "",
        ]
    rows = "\n".join(
        f'<tr>\n<th scope="row">{label}</th>\n<td>{value}</td>\n</tr>'
        for label, value in zip(DETAIL_LABELS, values, strict=True)
    )
    return (
        f'<div class="popup_wrap">\n<h3 class="tit">{spec.label} 상세</h3>\n'
        f'<div class="tbl_wrap">\n<table class="tbl_view" summary="{spec.label} 상세정보">\n'
        f'<caption>{spec.label} 상세</caption>\n<colgroup><col style="width:20%"><col></colgroup>\n'
        f"<tbody>\n{rows}\n</tbody>\n</table>\n</div>\n</div>\n"
    )


def _list_item(case: EmulatorCase, rnum: int, highlight: str = "") -> dict[str, Any]:
    hs = case.hs_code
    if highlight and highlight in hs:  # the portal highlights a searched code
        hs = hs.replace(highlight, f"<em>{highlight}</em>", 1)
    elif int(case.rrdc_no) % 7 == 3:  # and its highlighting leaks into some unsearched values
        hs = f"<em>{hs}</em>"
    return {
        "RNUM": rnum,
        "RRDC_NO": case.rrdc_no,
        "REFF_NO": case.reference_no,
        "ENFR_DT": case.decision_date.strftime("%Y%m%d"),
        "CSTM_NM": case.office,
        "DTRM_HS_SGN": hs,
        "CMDT_NM": case.title,
        "CMDT_DESC": case.description[:LIST_CUT],
        "DTRM_RSN_CN": case.reason[:LIST_CUT],
        "IMGE_CNT": len(case.images),
        "DOCID": f"ULS{case.rrdc_no}",
    }


def _pagination(total: int, page: int, unit: int) -> dict[str, int]:
    """eGovFrame PaginationInfo as the portal serialises it (lastPageNo is 1 when empty)."""
    last = max(1, (total - 1) // unit + 1)
    first_on_list = (page - 1) // 10 * 10 + 1
    return {
        "currentPageNo": page,
        "recordCountPerPage": unit,
        "pageSize": 10,
        "totalRecordCount": total,
        "totalPageCount": last,
        "firstPageNoOnPageList": first_on_list,
        "lastPageNoOnPageList": min(last, first_on_list + 9),
        "firstRecordIndex": (page - 1) * unit,
        "lastRecordIndex": page * unit,
        "firstPageNo": 1,
        "lastPageNo": last,
    }


def _int_field(form: dict[str, str], *names: str, default: int) -> int:
    for name in names:
        value = form.get(name, "").strip()
        if value:
            try:
                return int(value)
            except ValueError:
                raise _BadRequest(f"{name} is not an integer: {value!r}") from None
    return default


def _date_field(form: dict[str, str], name: str) -> dt.date | None:
    value = form.get(name, "").strip()
    if not value:
        return None
    for fmt in ("%Y-%m-%d", "%Y%m%d", "%Y.%m.%d"):
        try:
            return dt.datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise _BadRequest(f"{name} is not a date: {value!r}")


_TEXT_FILTERS = {
    "reffNo": lambda c: c.reference_no,
    "dtrmHsSgn": lambda c: c.hs_code,
    "cmdtNm": lambda c: c.title,
    "cmdtDesc": lambda c: c.description,
    "dtrmRsnCn": lambda c: c.reason,
}


def _order(corpus: Corpus) -> dict[str, list[EmulatorCase]]:
    """Each series' cases newest first, RRDC_NO as tie-break so pages are stable."""
    return {
        s.name: sorted(
            corpus.by_series(s.name), key=lambda c: (c.decision_date, c.rrdc_no), reverse=True
        )
        for s in SERIES_SPECS
    }


class EmulatorServer:
    """The portal emulator on a background thread; use as a context manager.

    ``fault_rate`` is the probability that a list/detail/image request gets one
    transient fault; kinds are drawn from ``fault_kinds`` (default: all that apply
    to the endpoint). ``slow_s`` is the delay of the "slow" fault, ``stall_s`` the
    delay before a stalled (unbounded / too wide) list query answers 504.
    ``deep_page_limit`` (off by default) mimics the portal failing deep paging:
    a page starting at or beyond that record index answers JSON without
    ``uls_dmst`` every time (not transient), so crawlers must narrow the range.
    """

    def __init__(
        self,
        corpus: Corpus,
        host: str = "127.0.0.1",
        port: int = 0,
        fault_rate: float = 0.0,
        seed: int = 0,
        slow_s: float = 3.0,
        stall_s: float = 60.0,
        fault_kinds: tuple[str, ...] | None = None,
        deep_page_limit: int | None = None,
        verbose: bool = False,
    ) -> None:
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be within [0, 1], got {fault_rate}")
        unknown = set(fault_kinds or ()) - set(ALL_FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {list(ALL_FAULTS)}")
        if fault_kinds is not None and not fault_kinds:
            raise ValueError("fault_kinds must name at least one kind (or be None for all)")
        self.corpus = corpus
        self.fault_rate = fault_rate
        self.fault_kinds = tuple(fault_kinds) if fault_kinds else None
        self.slow_s = slow_s
        self.stall_s = stall_s
        self.verbose = verbose
        self.deep_page_limit = deep_page_limit
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._status: Counter[int] = Counter()
        self._other: Counter[str] = Counter()
        self._sessions: dict[str, str] = {}  # JSESSIONID -> series name
        self._log: deque[RequestRecord] = deque(maxlen=200_000)
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._ordered = _order(corpus)
        self._httpd = _HTTPServer((host, port), _Handler, self)
        self._thread: threading.Thread | None = None

    def replace_corpus(self, corpus: Corpus) -> None:
        """Serve another corpus from the next request on (e.g. a later day's publications)."""
        ordered = _order(corpus)
        with self._lock:
            self.corpus, self._ordered = corpus, ordered

    # -- lifecycle
    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{BASE}"

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        if self._stopping.is_set():
            raise RuntimeError("a stopped EmulatorServer cannot be restarted; create a new one")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"emulator:{self.port}",
                daemon=True,
            )
            self._thread.start()
            log.info(
                "emulator serving %d cases at %s (fault_rate=%s)",
                len(self.corpus),
                self.url,
                self.fault_rate,
            )
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers and drop kept-alive connections."""
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()

    def serve_forever(self) -> None:
        try:
            self._httpd.serve_forever(poll_interval=0.2)
        finally:
            self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- stats
    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot: requests per endpoint, faults per kind, responses per status, stalls, errors."""
        with self._lock:
            return {
                "requests": Counter(self._requests),
                "faults": Counter(self._faults),
                "status": Counter(self._status),
                "stalls": self._other["stalls"],
                "errors": self._other["errors"],
                "deep_page_failures": self._other["deep_page_failures"],
                "sessions": len(self._sessions),
            }

    @property
    def request_log(self) -> list[RequestRecord]:
        """Answered requests in order (the last 200,000)."""
        with self._lock:
            return list(self._log)

    def _count(self, counter: str, key: Any) -> None:
        with self._lock:
            getattr(self, counter)[key] += 1

    # -- state used by handlers
    def new_session(self, series: str, session_id: str | None) -> tuple[str, bool]:
        """Bind a session to a series; reuse a known id (like a servlet container), else mint one."""
        with self._lock:
            if session_id and session_id in self._sessions:
                self._sessions[session_id] = series
                return session_id, False
            new_id = secrets.token_hex(16).upper() + ".uls_node1"
            self._sessions[new_id] = series
            return new_id, True

    def session_series(self, session_id: str | None) -> str | None:
        with self._lock:
            return self._sessions.get(session_id or "")

    def draw_fault(self, endpoint: str) -> str | None:
        if self.fault_rate <= 0.0:
            return None
        kinds = FAULTS_BY_ENDPOINT[endpoint]
        if self.fault_kinds is not None:
            kinds = tuple(k for k in kinds if k in self.fault_kinds)
            if not kinds:
                return None
        with self._lock:
            if self._rng.random() >= self.fault_rate:
                return None
            kind = self._rng.choice(kinds)
            self._faults[kind] += 1
            return kind

    def sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def query_list(
        self, series: str, start: dt.date, end: dt.date, form: dict[str, str]
    ) -> list[EmulatorCase]:
        """The series' cases decided in [start, end] matching the form's text filters, newest first."""
        with self._lock:
            ordered = self._ordered[series]
        cases = [c for c in ordered if start <= c.decision_date <= end]
        keyword = form.get("srwr", "").strip()
        if keyword:
            cases = [
                c
                for c in cases
                if keyword in c.title
                or keyword in c.description
                or keyword in c.hs_code
                or keyword in c.reason
            ]
        for name, getter in _TEXT_FILTERS.items():
            needle = form.get(name, "").strip()
            if needle:
                cases = [c for c in cases if needle in getter(c)]
        return cases


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type, emulator: EmulatorServer) -> None:
        self.emulator = emulator
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (e.g. timed out on a slow answer) is not a server error.
        log.debug("connection from %s ended with an error", client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the crawler reuses connections
    server_version = "Apache"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body go in separate writes
    timeout = 30  # idle kept-alive connections close
    server: _HTTPServer
    # what the request log records about the request being answered
    _endpoint: str = "not_found"
    _key: str | None = None
    _fault: str | None = None

    # -- plumbing
    @property
    def emu(self) -> EmulatorServer:
        return self.server.emulator

    def setup(self) -> None:
        super().setup()
        with self.emu._lock:
            self.emu._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.emu._lock:
                self.emu._connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        if self.emu.verbose:
            log.info("%s %s", self.address_string(), format % args)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = HTML_TYPE,
        headers: dict[str, str] | None = None,
        cookies: list[str] | None = None,
    ) -> None:
        self.send_response(status)
        if body or content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:  # say so, or a keep-alive client reuses a closed socket
            self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        for cookie in cookies or []:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        record = RequestRecord(
            time.monotonic(), self.command, self._endpoint, self._key, status, self._fault
        )
        with self.emu._lock:
            self.emu._status[status] += 1
            self.emu._log.append(record)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        query = urlsplit(self.path).query
        form: dict[str, str] = {}
        for source in (query, raw.decode("utf-8", errors="replace")):
            for key, values in parse_qs(source, keep_blank_values=True).items():
                form[key] = values[-1]
        return form

    def _session_id(self) -> str | None:
        header = self.headers.get("Cookie")
        if not header:
            return None
        try:
            jar = SimpleCookie(header)
        except CookieError:
            return None
        morsel = jar.get("JSESSIONID")
        return morsel.value if morsel else None

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        self._endpoint, self._key, self._fault = "not_found", None, None
        try:
            form = self._form()
            path = urlsplit(self.path).path
            self._route(path, form)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            self.emu._count("_other", "errors")
            log.exception("emulator handler failed on %s %s", self.command, self.path)
            self.close_connection = True
            try:
                self._send(500, error_page("내부 오류가 발생했습니다."))
            except OSError:
                pass

    def _route(self, path: str, form: dict[str, str]) -> None:
        if path == "/robots.txt":
            self._count_request("robots")
            self._send(200, b"User-agent: *\nDisallow: /clip/csp/\n", "text/plain;charset=UTF-8")
        elif path in _SCREENS:
            self._count_request("screen")
            self._screen(_SCREENS[path])
        elif path in _LISTS:
            self._count_request("list")
            self._list(_LISTS[path], form)
        elif path in _DETAILS:
            self._count_request("detail")
            self._detail(_DETAILS[path], form)
        elif path == _IMAGE:
            self._count_request("image")
            self._image(form)
        elif path in (BASE, BASE.rstrip("/"), BASE + "index.do"):
            self._count_request("index")
            links = "\n".join(
                f'<li><a href="{_PREFIX}{s.segment}{s.screen}">{s.label}</a></li>'
                for s in SERIES_SPECS
            )
            self._send(200, _page("관세법령정보포털", f"<ul>{links}</ul>").encode())
        else:
            self._count_request("not_found")
            self._send(404, error_page("요청하신 페이지를 찾을 수 없습니다."))

    # -- endpoints
    def _screen(self, spec: SeriesSpec) -> None:
        session_id, minted = self.emu.new_session(spec.name, self._session_id())
        cookies = []
        if minted:
            cookies.append(f"JSESSIONID={session_id}; Path=/clip; HttpOnly")
            expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=365)).strftime(
                "%a, %d-%b-%Y %H:%M:%S GMT"
            )
            cookies.append(f"WMONID={secrets.token_urlsafe(8)}; Expires={expires}; Path=/")
        body = _page(
            spec.label,
            f'<h2 class="tit">{spec.label}</h2>\n<form id="searchForm" name="searchForm" method="post">\n'
            f'<input type="hidden" name="prlstClsfCaseTpcd" value="{spec.tpcd}">\n'
            '<input type="hidden" name="pageIndex" value="1">\n'
            '<input type="text" name="stDt" title="시작일"> ~ <input type="text" name="edDt" title="종료일">\n'
            '</form>\n<div id="listArea"></div>\n'
            f'<script>var listUrl = "{_PREFIX}{spec.segment}retrieveDmstPrlstClsfCaseLst2.do";</script>',
        )
        self._send(200, body.encode(), cookies=cookies)

    def _count_request(self, endpoint: str) -> None:
        self._endpoint = endpoint
        self.emu._count("_requests", endpoint)

    def _is_ajax(self) -> bool:
        return (
            self.headers.get("X-Requested-With", "").strip().lower() == "xmlhttprequest"
            and self.headers.get("isAjax", "").strip().lower() == "true"
        )

    def _common_fault(self, fault: str | None) -> bool:
        """Answer the faults shared by all endpoints; True when the request is answered."""
        if fault == "http500":
            self._send(
                500, error_page("일시적인 오류가 발생했습니다. 잠시 후 다시 시도해 주십시오.")
            )
        elif fault == "http503":
            self._send(503, error_page("서비스 점검 중입니다."))
        elif fault == "http429":
            self._send(429, error_page("요청이 너무 많습니다."), headers={"Retry-After": "1"})
        elif fault == "slow":
            self.emu.sleep(self.emu.slow_s)
            return False  # then answer normally
        else:
            return False
        return True

    def _list(self, spec: SeriesSpec, form: dict[str, str]) -> None:
        if self.command != "POST":
            self._send(405, error_page("허용되지 않은 요청 방식입니다."), headers={"Allow": "POST"})
            return
        if self.emu.session_series(self._session_id()) is None:
            self._send(200, error_page("세션이 만료되었습니다. 화면을 다시 열어 주십시오."))
            return
        if not self._is_ajax():
            self._send(200, error_page("잘못된 접근입니다."))
            return
        try:
            tpcd = form.get("prlstClsfCaseTpcd", "").strip()
            if not tpcd:
                raise _BadRequest("prlstClsfCaseTpcd is required")
            if tpcd != spec.tpcd:
                raise _BadRequest(
                    f"prlstClsfCaseTpcd {tpcd!r} does not match this list ({spec.tpcd})"
                )
            start, end = _date_field(form, "stDt"), _date_field(form, "edDt")
            page = max(1, _int_field(form, "pageIndex", "initPageIndex", default=1))
            unit = max(1, _int_field(form, "pageUnit", "pagePerRecord", default=10))
            self._key = f"{spec.name}:{page}"
        except _BadRequest as exc:
            self._send(400, error_page(str(exc)))
            return
        if start is None or end is None or (end - start).days > MAX_RANGE_DAYS:
            self.emu._count("_other", "stalls")
            self.emu.sleep(self.emu.stall_s)
            self.close_connection = True
            self._send(504, b"", "")
            return
        fault = self._fault = self.emu.draw_fault("list")
        if self._common_fault(fault):
            return
        if fault == "list_no_uls":
            self._send(200, b'{"paginationInfo": {}}', JSON_TYPE)
            return
        cases = self.emu.query_list(spec.name, start, end, form)
        first = (page - 1) * unit
        if self.emu.deep_page_limit is not None and first >= self.emu.deep_page_limit:
            self.emu._count("_other", "deep_page_failures")
            self._send(200, b'{"paginationInfo": {}}', JSON_TYPE)
            return
        highlight = form.get("dtrmHsSgn", "").strip() or form.get("srwr", "").strip()
        items = [
            _list_item(c, first + i + 1, highlight)
            for i, c in enumerate(cases[first : first + unit])
        ]
        payload = {
            "uls_dmst": {"thisTotalCount": len(cases), "itemList": items},
            "paginationInfo": _pagination(len(cases), page, unit),
        }
        self._send(200, json.dumps(payload, ensure_ascii=False).encode(), JSON_TYPE)

    def _detail(self, spec: SeriesSpec, form: dict[str, str]) -> None:
        if self.command != "POST":
            self._send(405, error_page("허용되지 않은 요청 방식입니다."), headers={"Allow": "POST"})
            return
        session_series = self.emu.session_series(self._session_id())
        if session_series is None:
            self._send(200, error_page("세션이 만료되었습니다. 화면을 다시 열어 주십시오."))
            return
        rrdc_no = self._key = form.get("rrdcNo", "").strip()
        if not rrdc_no:
            self._send(400, error_page("rrdcNo is required"))
            return
        fault = self._fault = self.emu.draw_fault("detail")
        if self._common_fault(fault):
            return
        if fault == "detail_empty":
            self._send(200, b"", HTML_TYPE)
            return
        case = self.emu.corpus.get(rrdc_no)
        # Another series' case, or a session opened for another series: the empty table.
        if (
            case is None
            or case.series != spec.name
            or session_series != spec.name
            or (spec.mttr_tpcd is not None and form.get("mttrTpcd", "").strip() != spec.mttr_tpcd)
        ):
            case = None
        fragment = render_detail(case, spec)
        if fault == "detail_malformed":
            fragment = fragment[: fragment.index("<table")]  # cut off before the table
        self._send(200, fragment.encode(), HTML_TYPE)

    def _image(self, form: dict[str, str]) -> None:
        atch = form.get("atchFileId", "")
        try:
            file_sn = int(form.get("fileSn", "1") or 1)
            self._key = f"{atch}:{file_sn}"
        except ValueError:
            self._send(400, error_page("fileSn is not an integer"))
            return
        fault = self._fault = self.emu.draw_fault("image")
        if self._common_fault(fault):
            return
        data = self.emu.corpus.image(atch, file_sn)
        if data is None:
            self._send(404, error_page("파일을 찾을 수 없습니다."))
            return
        self._send(
            200,
            data,
            _image_type(data),
            headers={"Content-Disposition": f'inline; filename="{atch}_{file_sn}"'},
        )


def _image_type(data: bytes) -> str:
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return "application/octet-stream"


def serve(
    corpus: Corpus,
    host: str = "127.0.0.1",
    port: int = 8765,
    fault_rate: float = 0.0,
    seed: int = 0,
    **kwargs: Any,
) -> None:
    """Serve until interrupted (the CLI entry point)."""
    server = EmulatorServer(
        corpus, host=host, port=port, fault_rate=fault_rate, seed=seed, **kwargs
    )
    print(
        f"CLIP emulator: {len(corpus)} cases at {server.url} (fault_rate={fault_rate})", flush=True
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m emulator.server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", type=int, default=300, help="demo corpus size")
    parser.add_argument(
        "--kcs", type=Path, help="serve the real cases from this kcs_hs_chatbot folder"
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    corpus = kcs_corpus(args.kcs) if args.kcs else demo_corpus(args.cases, args.seed)
    serve(corpus, args.host, args.port, args.fault_rate, args.seed, verbose=args.verbose)


if __name__ == "__main__":
    main()
