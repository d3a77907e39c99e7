"""The portal emulator, over real HTTP on 127.0.0.1 (wire format of docs clip-portal.md)."""

from __future__ import annotations

import datetime as dt
import html
import re
import time
from collections import Counter
from collections.abc import Iterator
from urllib.parse import urljoin

import pytest
import requests
from bs4 import BeautifulSoup

from emulator.corpus import Corpus, EmulatorCase, demo_corpus, kcs_corpus
from emulator.server import LIST_CUT, SPEC_BY_NAME, EmulatorServer

AJAX = {"X-Requested-With": "XMLHttpRequest", "isAjax": "true"}
SCREEN = {
    "ordinary": "prlstclsfsrch/openULS0203002S.do",
    "council": "prlstclsfsrch/cncidtrm/openULS0203005S.do",
    "committee": "prlstclsfsrch/cmitdtrm/openULS0203008S.do",
}


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return demo_corpus(300, seed=0)


@pytest.fixture(scope="module")
def server(corpus: Corpus) -> Iterator[EmulatorServer]:
    with EmulatorServer(corpus, stall_s=0.05) as srv:
        yield srv


def open_session(srv: EmulatorServer, series: str) -> requests.Session:
    session = requests.Session()
    response = session.get(srv.url + SCREEN[series], timeout=5)
    response.raise_for_status()
    return session


def list_url(srv: EmulatorServer, series: str, old_name: bool = False) -> str:
    name = "retrieveDmstPrlstClsfCaseLst" + ("" if old_name else "2") + ".do"
    return srv.url + "prlstclsfsrch/" + SPEC_BY_NAME[series].segment + name


def detail_url(srv: EmulatorServer, series: str) -> str:
    spec = SPEC_BY_NAME[series]
    return srv.url + "prlstclsfsrch/" + spec.segment + spec.detail


def list_form(
    series: str, st: str = "2024-01-01", ed: str = "2024-12-31", page: int = 1, unit: int = 100
) -> dict[str, str]:
    return {
        "prlstClsfCaseTpcd": SPEC_BY_NAME[series].tpcd,
        "srchYn": "Y",
        "scrnTp": "WDTH",
        "stDt": st,
        "edDt": ed,
        "pageIndex": str(page),
        "pageUnit": str(unit),
        "initPageIndex": str(page),
        "pagePerRecord": str(unit),
        "orderColumns": "ENFR_DT desc",
        "srwr": "",
        "reffNo": "",
        "dtrmHsSgn": "",
        "cmdtNm": "",
        "cmdtDesc": "",
        "dtrmRsnCn": "",
    }


def detail_rows(body: bytes) -> dict[str, BeautifulSoup]:
    soup = BeautifulSoup(body, "lxml")
    return {th.get_text(strip=True): th.find_next_sibling("td") for th in soup.select("table th")}


def cell_text(td) -> str:
    """A detail cell back to the original text: <br> -> newline, entities unescaped."""
    inner = td.decode_contents()
    return html.unescape(re.sub(r"<br\s*/?>", "\n", inner))


# ---------------------------------------------------------------------------- corpus


def test_demo_corpus_is_deterministic_and_realistic(corpus: Corpus) -> None:
    again = demo_corpus(300, seed=0)
    assert again.fingerprint() == corpus.fingerprint()
    assert [c.images for c in again] == [c.images for c in corpus]  # byte-identical JPEGs
    assert demo_corpus(300, seed=1).fingerprint() != corpus.fingerprint()

    assert len(corpus) == 300
    assert all(len(c.rrdc_no) == 13 and c.rrdc_no.isdigit() for c in corpus)
    series = Counter(c.series for c in corpus)
    assert set(series) == {"ordinary", "council", "committee"}
    assert series["ordinary"] > len(corpus) / 2
    multi = [c for c in corpus if c.hs_code.startswith("①")]
    assert 2 <= len(multi) <= 3
    single_codes = {c.hs_code for c in corpus} - {c.hs_code for c in multi}
    assert len(single_codes) >= 50  # 75 main codes and a long tail; 300 cases show most
    assert all(re.fullmatch(r"\d{4}\.\d{2}-\d{4}", code) for code in single_codes)
    with_images = sum(1 for c in corpus if c.images) / len(corpus)
    assert 0.6 <= with_images <= 0.9
    assert all(1 <= len(c.images) <= 2 for c in corpus if c.images)
    assert all(img[:2] == b"\xff\xd8" for c in corpus for img in c.images)
    assert sum(len(c.description) > LIST_CUT for c in corpus) > len(corpus) * 0.3
    assert {c.decision_date.year for c in corpus} == {2024}
    assert len({c.decision_date.month for c in corpus}) == 12
    assert all(c.hs_code.split()[-1] in c.reason for c in corpus if c not in multi)


HANGUL = re.compile(r"[\uac00-\ud7a3]")
OLDER_YEARS = (2017, 2018, 2019, 2020, 2021)


@pytest.fixture(scope="module")
def big_corpus() -> Corpus:
    """The demo's own shape: 1,200 cases, rulings of 2023-2024 and of the older edition."""
    return demo_corpus(1200, seed=0, years=(2023, 2024), older_years=OLDER_YEARS)


def _words(text: str) -> set[str]:
    return {w for w in re.split(r"[\s;()/,]+", text.lower()) if len(w) > 1}


def test_demo_corpus_siblings_share_words_and_differ_in_the_description(
    big_corpus: Corpus,
) -> None:
    """Sibling subheadings are named alike; what tells them apart is the state or material."""
    words: dict[str, set[str]] = {}
    materials: dict[str, set[str]] = {}
    for case in big_corpus:
        words.setdefault(case.hs_code, set()).update(_words(case.title))
        line = next((x for x in re.split(r"\n|  ", case.description) if x.startswith("- 재질")), "")
        materials.setdefault(case.hs_code, set()).add(line)
    siblings = [
        ("0201.30-0000", "0202.30-0000"),  # chilled / frozen beef
        ("0203.19-0000", "0203.29-0000"),  # chilled / frozen pork
        ("0202.30-0000", "0203.29-0000"),  # frozen beef / frozen pork
        ("6109.10-1000", "6109.90-3010"),  # cotton / synthetic T-shirts
        ("6203.42-1000", "6203.43-1000"),  # cotton / synthetic trousers
        ("8473.30-1000", "8473.30-9000"),  # computer parts
        ("8542.31-0000", "8542.32-0000"),  # integrated circuits
        ("8708.30-0000", "8708.99-0000"),  # vehicle parts
    ]
    for a, b in siblings:
        assert a in words and b in words, (a, b)
        assert words[a] & words[b], f"{a} and {b} share no title word"
        assert materials[a] != materials[b], f"{a} and {b} have the same material lines"
    # and parts against their whole machines share vocabulary too
    assert {"노트북"} & words["8471.30-0000"] & words["8473.30-9000"]


def test_demo_corpus_has_part_numbers_label_noise_and_a_long_tail(big_corpus: Corpus) -> None:
    from emulator.corpus import NOISE_SHARE, PRODUCTS, TAIL_PRODUCTS

    big = big_corpus
    # names that are only a part number: no Hangul, no space, digits and a hyphen or so
    bare = [
        c
        for c in big
        if not HANGUL.search(c.title) and " " not in c.title and re.search(r"\d", c.title)
    ]
    assert len(bare) >= 0.03 * len(big)
    # Korean and English names mixed
    korean = sum(bool(HANGUL.search(c.title)) for c in big)
    assert 0.3 * len(big) < korean < 0.8 * len(big)
    # label noise: a ruling whose material line belongs to a sibling product, not to its code
    by_hs = {p.hs: p for p in PRODUCTS}
    noisy = 0
    main = [c for c in big if c.hs_code in by_hs]
    for case in main:
        line = next(x for x in re.split(r"\n|  ", case.description) if x.startswith("- 재질"))
        if line.removeprefix("- 재질: ") not in by_hs[case.hs_code].materials:
            noisy += 1
    assert 0.3 * NOISE_SHARE * len(main) <= noisy <= 2 * NOISE_SHARE * len(main)
    # the long tail: codes of one or two rulings, about one case in seven
    counts = Counter(c.hs_code for c in big)
    tail_codes = {p.hs for p in TAIL_PRODUCTS}
    assert all(counts[code] <= 2 for code in tail_codes)
    assert sum(counts[code] for code in tail_codes) >= 0.1 * len(big)
    assert len([code for code, n in counts.items() if n <= 2]) >= 50
    assert len(counts) >= 100


def _demo_tariff(tmp_path):
    """The demo's current edition and correlation rows, read back as the files would be."""
    import csv

    from emulator.corpus import DEMO_CURRENT_EDITION, correlation_rows, current_tariff_rows
    from hscode.code_status import CurrentTariff

    codes, correlations = tmp_path / "codes.csv", tmp_path / "correlations.csv"
    for path, rows in ((codes, current_tariff_rows()), (correlations, correlation_rows())):
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return CurrentTariff.from_files(DEMO_CURRENT_EDITION, codes, correlations)


def test_older_rulings_are_remapped_split_and_moved_by_the_older_edition(tmp_path) -> None:
    from emulator.corpus import OLD_CODES, older_tariff_rows
    from hscode.code_status import CodeStatus, code_statuses
    from hscode.hs import parse_hs

    corpus = demo_corpus(600, seed=0, years=(2023, 2024), older_years=OLDER_YEARS)
    assert demo_corpus(600, seed=0, years=(2023, 2024), older_years=OLDER_YEARS).fingerprint() == (
        corpus.fingerprint()
    )
    years = Counter(c.decision_date.year for c in corpus)
    assert set(years) <= {2016, *OLDER_YEARS, 2022, 2023, 2024}  # 2 January may fall back
    assert sum(n for y, n in years.items() if y <= 2021) >= 0.1 * len(corpus)
    tariff = _demo_tariff(tmp_path)
    single = [c for c in corpus if parse_hs(c.hs_code).hs10]
    results = code_statuses([parse_hs(c.hs_code).hs10 for c in single], tariff)
    by_status = Counter(r.status for r in results)
    for status in (CodeStatus.CURRENT, CodeStatus.REMAPPED, CodeStatus.SPLIT, CodeStatus.MOVED):
        assert by_status[status] >= 10, by_status
    assert by_status[CodeStatus.UNKNOWN] == 0
    old_codes = {o.hs.replace(".", "").replace("-", "") for o in OLD_CODES}
    for case, result in zip(single, results, strict=True):
        code = parse_hs(case.hs_code).hs10
        if result.status != CodeStatus.CURRENT:
            # only old rulings carry codes a later edition replaced, and none stays current
            assert code in old_codes and case.decision_date.year <= 2021, case.rrdc_no
            assert result.candidates and set(result.candidates) <= tariff.codes
        if result.status in (CodeStatus.SPLIT, CodeStatus.MOVED):
            assert len(result.candidates) >= 2
    expected = {
        "0202301000": CodeStatus.REMAPPED,  # HSK renumbering inside 0202.30
        "8539500000": CodeStatus.REMAPPED,  # HS2022: 8539.50 -> 8539.51 / .52 (one current)
        "2106909090": CodeStatus.SPLIT,  # 2106.90-9090 -> 9091 / 9099
        "8473300000": CodeStatus.SPLIT,
        "8517120000": CodeStatus.MOVED,  # HS2022: 8517.12 -> 8517.13 / 8517.14
        "9405409000": CodeStatus.MOVED,  # HS2022: 9405.40 -> 9405.41 / .42 / .49
    }
    got = {parse_hs(c.hs_code).hs10: r.status for c, r in zip(single, results, strict=True)}
    assert {code: got[code] for code in expected} == expected
    # the older edition has the old codes and not what replaced them; today's has neither
    older = {row["hs10"] for row in older_tariff_rows()}
    assert old_codes <= older and not old_codes & tariff.codes
    assert "8517130000" not in older and "0202300000" not in older
    assert {"6109101000", "8471300000"} <= older & tariff.codes  # unchanged codes in both


def test_demo_correlation_rows_have_the_layout_of_the_real_file(shared_data) -> None:
    import csv

    from emulator.corpus import correlation_rows

    path = shared_data / "hs_correlations" / "hs2022_correlations.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with path.open(encoding="utf-8") as f:
        header = next(csv.reader(f))
    rows = correlation_rows()
    assert all(list(row) == header for row in rows)
    assert all(re.fullmatch(r"\d{6}", row["hs2022"]) for row in rows)
    assert all(re.fullmatch(r"\d{6}", row["old_hs6"]) for row in rows)
    assert {row["old_version"] for row in rows} == {"HS2017"}
    assert {row["relationship"] for row in rows} == {"1:1", "1:n"}


def test_demo_requests_mix_known_goods_part_numbers_and_unfamiliar_goods(
    big_corpus: Corpus,
) -> None:
    from app.demo import demo_backlog
    from emulator.corpus import PRODUCTS, TAIL_PRODUCTS, demo_request_goods

    goods = demo_request_goods(50, seed=7919)
    assert goods == demo_request_goods(50, seed=7919)  # deterministic
    kinds = Counter(g.kind for g in goods)
    assert kinds == {"familiar": 35, "part_number": 5, "unfamiliar": 10}
    big = big_corpus
    corpus_codes = {c.hs_code for c in big}
    known = {p.hs for p in (*PRODUCTS, *TAIL_PRODUCTS)}
    unfamiliar = [g for g in goods if g.kind == "unfamiliar"]
    assert len({g.hs_code for g in unfamiliar}) >= 5
    assert not {g.hs_code for g in unfamiliar} & (corpus_codes | known)
    assert all(g.hs_code in corpus_codes for g in goods if g.kind != "unfamiliar")
    for g in goods:
        if g.kind == "part_number":  # a bare part number, sometimes with a short description
            assert not HANGUL.search(g.title) and " " not in g.title
    # the backlog: intake rows only, none with a title the corpus has
    backlog = demo_backlog(50, {c.title for c in big})
    assert len(backlog) == 50
    assert [row["request_id"] for row, _ in backlog] == [f"demo-{i:04d}" for i in range(1, 51)]
    assert all(set(row) == {"request_id", "title", "description", "image"} for row, _ in backlog)
    assert not {row["title"] for row, _ in backlog} & {c.title for c in big}


def test_kcs_corpus_loads_all_real_cases(shared_data) -> None:
    kcs = kcs_corpus(shared_data / "kcs_hs_chatbot")
    assert len(kcs) == 982
    assert Counter(c.series for c in kcs) == {"ordinary": 897, "committee": 76, "council": 9}
    assert len({c.rrdc_no for c in kcs}) == 982
    assert all(len(c.rrdc_no) == 13 and c.rrdc_no.startswith("0072024") for c in kcs)
    assert kcs.n_images == 0
    assert kcs_corpus(shared_data / "kcs_hs_chatbot").fingerprint() == kcs.fingerprint()


def test_kcs_corpus_missing_folder_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="HS분류사례.json"):
        kcs_corpus(tmp_path)


# ---------------------------------------------------------------------------- session and list


def test_screen_sets_session_cookies(server: EmulatorServer) -> None:
    session = requests.Session()
    response = session.get(server.url + SCREEN["council"], timeout=5)
    assert response.status_code == 200
    assert "text/html" in response.headers["Content-Type"]
    assert {"JSESSIONID", "WMONID"} <= set(session.cookies.keys())
    assert requests.get(server.origin + "/robots.txt", timeout=5).text.splitlines() == [
        "User-agent: *",
        "Disallow: /clip/csp/",
    ]


def test_list_requires_session_and_ajax_headers(server: EmulatorServer) -> None:
    url, form = list_url(server, "ordinary"), list_form("ordinary")
    no_session = requests.post(url, data=form, headers=AJAX, timeout=5)
    assert no_session.status_code == 200
    assert no_session.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        no_session.json()

    session = open_session(server, "ordinary")
    no_ajax = session.post(url, data=form, timeout=5)
    assert no_ajax.status_code == 200 and b"<html" in no_ajax.content
    with pytest.raises(ValueError):
        no_ajax.json()

    ok = session.post(url, data=form, headers=AJAX, timeout=5)
    assert ok.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert "uls_dmst" in ok.json()

    missing_code = {k: v for k, v in form.items() if k != "prlstClsfCaseTpcd"}
    assert session.post(url, data=missing_code, headers=AJAX, timeout=5).status_code == 400
    wrong_code = form | {"prlstClsfCaseTpcd": "03"}
    assert session.post(url, data=wrong_code, headers=AJAX, timeout=5).status_code == 400


def test_list_filters_dates_and_pages_stably(server: EmulatorServer, corpus: Corpus) -> None:
    session = open_session(server, "ordinary")
    st, ed = dt.date(2024, 3, 1), dt.date(2024, 8, 31)
    expected = [c for c in corpus.by_series("ordinary") if st <= c.decision_date <= ed]
    assert len(expected) > 50
    unit, seen, page, last = 7, [], 1, None
    while True:
        body = session.post(
            list_url(server, "ordinary"),
            headers=AJAX,
            timeout=5,
            data=list_form("ordinary", st.isoformat(), ed.isoformat(), page, unit),
        ).json()
        assert body["uls_dmst"]["thisTotalCount"] == len(expected)
        last = body["paginationInfo"]["lastPageNo"]
        assert body["paginationInfo"]["currentPageNo"] == page
        seen += body["uls_dmst"]["itemList"]
        if page >= last:
            break
        page += 1
    assert last == -(-len(expected) // unit)
    keys = [item["RRDC_NO"] for item in seen]
    assert len(keys) == len(set(keys)) == len(expected)
    assert set(keys) == {c.rrdc_no for c in expected}
    order = [(item["ENFR_DT"], item["RRDC_NO"]) for item in seen]
    assert order == sorted(order, reverse=True)
    assert all(st.strftime("%Y%m%d") <= d <= ed.strftime("%Y%m%d") for d, _ in order)
    # inclusive bounds: a one-day range returns exactly that day's cases
    day = expected[0].decision_date
    one_day = session.post(
        list_url(server, "ordinary"),
        headers=AJAX,
        timeout=5,
        data=list_form("ordinary", day.isoformat(), day.isoformat()),
    ).json()
    assert one_day["uls_dmst"]["thisTotalCount"] == sum(
        1 for c in corpus.by_series("ordinary") if c.decision_date == day
    )
    # the older endpoint name and the screen-form paging names answer the same
    form = list_form("ordinary", st.isoformat(), ed.isoformat(), 2, unit)
    for key in ("pageIndex", "pageUnit"):
        form.pop(key)
    old = session.post(
        list_url(server, "ordinary", old_name=True), data=form, headers=AJAX, timeout=5
    ).json()
    assert [i["RRDC_NO"] for i in old["uls_dmst"]["itemList"]] == keys[unit : 2 * unit]


def test_list_truncates_text_and_detail_has_it_all(server: EmulatorServer, corpus: Corpus) -> None:
    session = open_session(server, "ordinary")
    items = session.post(
        list_url(server, "ordinary"), data=list_form("ordinary", unit=1000), headers=AJAX, timeout=5
    ).json()["uls_dmst"]["itemList"]
    by_key = {item["RRDC_NO"]: item for item in items}
    long_case = next(
        c
        for c in corpus.by_series("ordinary")
        if len(c.description) > LIST_CUT and "\n" in c.description and c.images
    )
    item = by_key[long_case.rrdc_no]
    assert item["CMDT_DESC"] == long_case.description[:LIST_CUT]
    assert item["DTRM_RSN_CN"] == long_case.reason[:LIST_CUT]
    assert item["ENFR_DT"] == long_case.decision_date.strftime("%Y%m%d")
    assert item["IMGE_CNT"] == len(long_case.images)
    assert re.sub(r"</?em>", "", item["DTRM_HS_SGN"]) == long_case.hs_code
    assert any("<em>" in i["DTRM_HS_SGN"] for i in items)  # highlight tags do occur

    response = session.post(
        detail_url(server, "ordinary"), data={"rrdcNo": long_case.rrdc_no}, timeout=5
    )
    assert response.headers["Content-Type"] == "text/html;charset=UTF-8"
    rows = detail_rows(response.content)
    assert list(rows) == [
        "참조번호",
        "시행일자",
        "시행기관",
        "결정세번",
        "품명",
        "물품설명",
        "결정사유",
        "이미지건수",
        "관련 이미지",
    ]
    assert cell_text(rows["물품설명"]) == long_case.description
    assert rows["물품설명"].find("br") is not None
    assert "<br>" in response.text and "\n" not in cell_text(rows["품명"])
    assert cell_text(rows["결정사유"]) == long_case.reason
    assert rows["시행일자"].get_text(strip=True) == long_case.decision_date.isoformat()
    assert rows["결정세번"].get_text(" ", strip=True).split()[0] == long_case.hs_code
    assert "관세율표 해설서" in rows["결정세번"].get_text()
    srcs = [img["src"] for img in rows["관련 이미지"].find_all("img")]
    assert len(srcs) == len(long_case.images) and all(s.startswith("/clip/") for s in srcs)
    for src, expected in zip(srcs, long_case.images, strict=True):
        image = session.get(urljoin(server.url, src), timeout=5)
        assert image.status_code == 200
        assert image.headers["Content-Type"] == "image/jpeg"
        assert image.content == expected
    missing = session.get(
        server.url + "prlstclsfsrch/imageView.do?atchFileId=nope&fileSn=1", timeout=5
    )
    assert missing.status_code == 404


def test_detail_of_other_series_is_an_empty_table(server: EmulatorServer, corpus: Corpus) -> None:
    council_case = corpus.by_series("council")[0]
    ordinary_session = open_session(server, "ordinary")
    council_session = open_session(server, "council")
    mttr = {"rrdcNo": council_case.rrdc_no, "mttrTpcd": "02"}

    def values(session: requests.Session, url: str, form: dict[str, str]) -> list[str]:
        response = session.post(url, data=form, timeout=5)
        assert response.status_code == 200
        rows = detail_rows(response.content)
        assert "참조번호" in rows  # the table is there ...
        return [td.get_text(strip=True) for td in rows.values()]

    full = values(council_session, detail_url(server, "council"), mttr)
    assert full[0] == council_case.reference_no
    assert not any(values(ordinary_session, detail_url(server, "council"), mttr))  # ... but empty
    assert not any(values(council_session, detail_url(server, "ordinary"), mttr))
    assert not any(
        values(council_session, detail_url(server, "council"), {"rrdcNo": council_case.rrdc_no})
    )
    assert not any(
        values(
            council_session,
            detail_url(server, "council"),
            {"rrdcNo": "0000000000000", "mttrTpcd": "02"},
        )
    )


# ---------------------------------------------------------------------------- failures


def test_unbounded_or_wide_range_stalls(server: EmulatorServer) -> None:
    session = open_session(server, "ordinary")
    before = server.stats["stalls"]
    no_range = list_form("ordinary", st="", ed="")
    too_wide = list_form("ordinary", st="2023-01-01", ed="2024-12-31")
    for form in (no_range, too_wide):
        started = time.monotonic()
        response = session.post(list_url(server, "ordinary"), data=form, headers=AJAX, timeout=5)
        assert response.status_code == 504 and response.content == b""
        assert time.monotonic() - started >= 0.05
    assert server.stats["stalls"] == before + 2
    # a leap year's full range (366 days apart at most) is allowed
    ok = session.post(
        list_url(server, "ordinary"),
        headers=AJAX,
        timeout=5,
        data=list_form("ordinary", st="2024-01-01", ed="2025-01-01"),
    )
    assert ok.status_code == 200 and ok.json()["uls_dmst"]["thisTotalCount"] > 0


def _fault_run(corpus: Corpus, seed: int) -> tuple[list[tuple[str, int, bytes]], dict, list]:
    case = next(c for c in corpus.by_series("ordinary") if c.images)
    with EmulatorServer(corpus, fault_rate=1.0, seed=seed, slow_s=0.01) as srv:
        session = open_session(srv, "ordinary")
        answers = []
        for _ in range(12):
            for name, call in (
                (
                    "list",
                    lambda: session.post(
                        list_url(srv, "ordinary"),
                        data=list_form("ordinary"),
                        headers=AJAX,
                        timeout=5,
                    ),
                ),
                (
                    "detail",
                    lambda: session.post(
                        detail_url(srv, "ordinary"), data={"rrdcNo": case.rrdc_no}, timeout=5
                    ),
                ),
                (
                    "image",
                    lambda: session.get(
                        urljoin(
                            srv.url,
                            f"prlstclsfsrch/imageView.do?atchFileId={case.atch_file_id}&fileSn=1",
                        ),
                        timeout=5,
                    ),
                ),
            ):
                response = call()
                answers.append((name, response.status_code, response.content))
        return answers, srv.stats, srv.request_log


def test_fault_injection_is_counted_and_seeded(corpus: Corpus) -> None:
    answers, stats, log_ = _fault_run(corpus, seed=3)
    assert sum(stats["faults"].values()) == len(answers) == 36
    assert (
        stats["requests"]["list"] == stats["requests"]["detail"] == stats["requests"]["image"] == 12
    )
    assert len(stats["faults"]) >= 5  # several kinds drawn
    status = Counter(code for _, code, _ in answers)
    f = stats["faults"]
    assert (
        status[500] == f["http500"] and status[503] == f["http503"] and status[429] == f["http429"]
    )
    assert status[200] == f["slow"] + f["list_no_uls"] + f["detail_empty"] + f["detail_malformed"]
    no_uls = [
        body
        for name, code, body in answers
        if name == "list" and code == 200 and b"uls_dmst" not in body
    ]
    assert len(no_uls) == f["list_no_uls"]
    details_200 = [body for name, code, body in answers if name == "detail" and code == 200]
    assert sum(1 for b in details_200 if b == b"") == f["detail_empty"]
    assert sum(1 for b in details_200 if b and b"<table" not in b) == f["detail_malformed"]
    log = [r for r in log_ if r.endpoint in ("list", "detail", "image")]
    assert [(r.endpoint, r.status) for r in log] == [(n, c) for n, c, _ in answers]
    assert Counter(r.fault for r in log) == stats["faults"]
    assert {r.key for r in log if r.endpoint == "list"} == {"ordinary:1"}
    # the same seed injects the same faults in the same order
    again, _, _ = _fault_run(corpus, seed=3)
    assert [(n, c) for n, c, _ in again] == [(n, c) for n, c, _ in answers]


def test_faults_are_transient(corpus: Corpus) -> None:
    with EmulatorServer(corpus, fault_rate=0.5, seed=11, slow_s=0.01) as srv:
        session = open_session(srv, "ordinary")
        statuses = []
        for _ in range(30):  # retry the same request until it gets a normal answer
            response = session.post(
                list_url(srv, "ordinary"), data=list_form("ordinary"), headers=AJAX, timeout=5
            )
            statuses.append(response.status_code)
            if response.status_code == 200 and "uls_dmst" in response.json():
                break
        assert response.json()["uls_dmst"]["thisTotalCount"] == len(corpus.by_series("ordinary"))
        assert srv.stats["requests"]["list"] == len(statuses)
        retry_after = None
        for _ in range(60):
            response = session.post(
                list_url(srv, "ordinary"), data=list_form("ordinary"), headers=AJAX, timeout=5
            )
            if response.status_code == 429:
                retry_after = response.headers.get("Retry-After")
                break
        assert retry_after == "1"


def test_slow_fault_makes_short_timeouts_give_up(corpus: Corpus) -> None:
    with EmulatorServer(corpus, fault_rate=1.0, seed=0, slow_s=0.5, fault_kinds=("slow",)) as srv:
        session = open_session(srv, "ordinary")
        with pytest.raises(requests.exceptions.ReadTimeout):
            session.post(
                list_url(srv, "ordinary"), data=list_form("ordinary"), headers=AJAX, timeout=0.1
            )
        patient = session.post(
            list_url(srv, "ordinary"), data=list_form("ordinary"), headers=AJAX, timeout=5
        )
        assert patient.status_code == 200 and "uls_dmst" in patient.json()
        assert srv.stats["faults"]["slow"] == 2


class _BrokenCorpus(Corpus):
    def get(self, rrdc_no: str) -> EmulatorCase | None:
        raise RuntimeError("simulated handler bug")


def test_handler_exception_answers_500_and_server_survives(corpus: Corpus) -> None:
    broken = _BrokenCorpus(corpus.cases[:20])
    with EmulatorServer(broken) as srv:
        session = open_session(srv, "ordinary")
        failed = session.post(
            detail_url(srv, "ordinary"), data={"rrdcNo": broken.cases[0].rrdc_no}, timeout=5
        )
        assert failed.status_code == 500
        assert failed.headers.get("Connection") == "close"  # the client must not reuse it
        assert srv.stats["errors"] == 1
        again = session.post(
            list_url(srv, "ordinary"), data=list_form("ordinary"), headers=AJAX, timeout=5
        )
        assert again.status_code == 200
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(srv.url, timeout=2)


def test_deep_paging_fails_when_limited(corpus: Corpus) -> None:
    with EmulatorServer(corpus, deep_page_limit=50) as srv:
        session = open_session(srv, "ordinary")
        url = list_url(srv, "ordinary")
        shallow = session.post(
            url, data=list_form("ordinary", page=5, unit=10), headers=AJAX, timeout=5
        )
        assert len(shallow.json()["uls_dmst"]["itemList"]) == 10
        for _ in range(2):  # not transient: the same deep page fails every time
            deep = session.post(
                url, data=list_form("ordinary", page=6, unit=10), headers=AJAX, timeout=5
            )
            assert deep.status_code == 200 and "uls_dmst" not in deep.json()
        assert srv.stats["deep_page_failures"] == 2


def test_code_filter_highlights_the_code(server: EmulatorServer, corpus: Corpus) -> None:
    session = open_session(server, "ordinary")
    form = list_form("ordinary") | {"dtrmHsSgn": "8517.13"}
    items = session.post(list_url(server, "ordinary"), data=form, headers=AJAX, timeout=5).json()[
        "uls_dmst"
    ]["itemList"]
    expected = {c.rrdc_no for c in corpus.by_series("ordinary") if "8517.13" in c.hs_code}
    assert expected and {i["RRDC_NO"] for i in items} == expected
    assert all(i["DTRM_HS_SGN"] == "<em>8517.13</em>-0000" for i in items)


def test_multi_year_corpus_and_live_corpus_swap() -> None:
    corpus = demo_corpus(80, seed=2, years=(2023, 2024))
    assert {c.decision_date.year for c in corpus} == {2023, 2024}
    assert all(c.rrdc_no[3:7] == str(c.decision_date.year) for c in corpus)
    cutoff = dt.date(2024, 6, 30)
    early = corpus.filter(lambda c: c.decision_date <= cutoff)
    assert 0 < len(early) < len(corpus)
    with EmulatorServer(early) as srv:
        session = open_session(srv, "ordinary")

        def total(st: str, ed: str) -> int:
            form = list_form("ordinary", st, ed)
            body = session.post(list_url(srv, "ordinary"), data=form, headers=AJAX, timeout=5)
            return body.json()["uls_dmst"]["thisTotalCount"]

        ordinary = corpus.by_series("ordinary")
        assert total("2023-01-01", "2023-12-31") == sum(
            c.decision_date.year == 2023 for c in ordinary
        )
        assert total("2024-01-01", "2024-12-31") == sum(
            c.decision_date.year == 2024 and c.decision_date <= cutoff for c in ordinary
        )
        srv.replace_corpus(corpus)  # later publications appear
        assert total("2024-01-01", "2024-12-31") == sum(
            c.decision_date.year == 2024 for c in ordinary
        )
