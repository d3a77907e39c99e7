"""Crawl + normalize against the portal emulator over real HTTP on 127.0.0.1.

The portal's wire format and quirks are in /work/shared/docs/clip-portal.md. Faults are
the emulator's (5xx, 429 with Retry-After, slow answers past the timeout, JSON without
``uls_dmst``, empty or cut detail pages), drawn with a seeded RNG.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emulator.corpus import Corpus, demo_corpus, kcs_corpus
from emulator.server import EmulatorServer
from hscode.cases import read_cases
from hscode.crawl import crawl, read_watermarks, year_windows
from hscode.normalize import normalize
from hscode.portal.client import PortalClient
from hscode.portal.errors import ImageRefused
from hscode.portal.parse import PortalFormatError, parse_detail
from hscode.portal.politeness import CrawlBusy, crawl_slot
from hscode.rawzone import RawZone
from hscode.rejects import read_rejects
from hscode.settings import Settings
from hscode.storage import image_path
from hscode.text import clean_text

ROOT = Path(__file__).resolve().parents[2]
KCS = ROOT.parent / "shared" / "data" / "kcs_hs_chatbot"
Y2024 = (dt.date(2024, 1, 1), dt.date(2024, 12, 31))

# Fast but honest politeness for a local emulator: the real defaults are 1 req/s, 2..60 s.
FAST = {
    "request_rate": 200.0,
    "backoff_base_s": 0.05,
    "backoff_max_s": 0.5,
    "request_timeout_s": 0.4,  # the emulator's "slow" fault answers after 0.8 s
    "page_size": 10,  # several list pages per series
}


def fast_settings(data_dir: Path, url: str, **over: object) -> Settings:
    return Settings(data_dir=data_dir, portal_url=url, **{**FAST, **over}, _env_file=None)


def served_slice() -> Corpus:
    """About 50 of the 982 real 2024 cases (all three series), or the demo corpus without them."""
    if (KCS / "HS분류사례.json").is_file():
        full = kcs_corpus(KCS)
        return full.filter(
            lambda c: c.series == "council" or int(c.rrdc_no[-6:]) % 25 == 0, name="kcs-slice"
        )
    return demo_corpus(50, seed=3)


def assert_dataset_matches(settings: Settings, corpus: Corpus) -> dict[str, str]:
    """Exactly the served cases: each in Parquet once, complete, or rejected with a reason.

    Returns the rejects (case key -> reason). A case is only allowed to be rejected when
    the served record itself lacks a product name or a decided code.
    """
    table = read_cases(settings)
    keys = table["case_key"].to_pylist()
    assert len(keys) == len(set(keys)), "duplicated cases"
    rejects = {r.key: r.reason for r in read_rejects(settings) if r.source == "clip"}
    served = {c.rrdc_no: c for c in corpus}
    assert set(keys) | set(rejects) == set(served), "cases missing (neither stored nor rejected)"
    assert not set(keys) & set(rejects)
    for key, reason in rejects.items():
        case = served[key]
        no_code = not re.search(r"\d", case.hs_code)
        assert (reason == "empty_title" and not clean_text(case.title)) or (
            reason == "empty_hs_code" and no_code
        ), (key, reason, case.title, case.hs_code)

    longest = 0
    for row in table.to_pylist():
        case = served[row["case_key"]]
        assert row["source"] == "clip"
        assert row["series"] == case.series
        assert row["decision_date"] == case.decision_date
        assert row["reference_no"] == clean_text(case.reference_no)
        assert row["hs_raw"] == " ".join(case.hs_code.split())
        assert row["title"] == clean_text(case.title)
        # Full text from the detail page, not the list's 176-character cut.
        assert (row["description_raw"] or "") == case.description.replace("\r\n", "\n").strip()
        assert (row["description"] or "") == clean_text(case.description)
        assert row["image_hashes"] == [hashlib.sha256(b).hexdigest() for b in case.images]
        for digest in row["image_hashes"]:
            assert image_path(settings.images_dir, digest).is_file()
        longest = max(longest, len(row["description"] or ""))
    assert longest > 176, "no description longer than the list's cut: the check proves nothing"
    return rejects


def test_crawl_then_normalize_at_20pct_faults_gives_exactly_the_served_cases(tmp_path: Path):
    corpus = served_slice()
    with EmulatorServer(corpus, fault_rate=0.2, seed=11, slow_s=0.8) as emu:
        settings = fast_settings(tmp_path / "var", emu.url)
        summary = crawl(settings, *Y2024)
        stats = emu.stats
    assert summary.ok, summary.failures
    assert summary.cases_listed == len(corpus)
    assert summary.details_fetched == len(corpus)
    assert summary.faults_seen > 0 and sum(stats["faults"].values()) > 0
    assert stats["stalls"] == 0, "an unbounded or too wide list query was sent"
    assert {"http429", "http500"} & set(stats["faults"])

    report = normalize(settings)
    rejects = assert_dataset_matches(settings, corpus)
    assert report.new_cases + report.rejected == len(corpus)
    assert report.rejected == len(rejects)
    assert report.total_cases == len(corpus) - len(rejects)

    # Re-running normalize changes nothing and records nothing twice.
    again = normalize(settings)
    assert (again.new_cases, again.updated_cases, again.rejected) == (0, 0, 0)
    assert again.total_cases == report.total_cases
    # A forced full re-parse finds every case unchanged.
    full = normalize(settings, full=True)
    assert (full.new_cases, full.updated_cases) == (0, 0)
    assert full.unchanged_cases == report.new_cases


_KILLABLE = """
import datetime as dt, json, sys
from hscode.crawl import crawl
from hscode.settings import Settings
args = json.loads(sys.argv[1])
settings = Settings(data_dir=args["data_dir"], portal_url=args["url"], _env_file=None,
                    **args["fast"])
crawl(settings, dt.date(2024, 1, 1), dt.date(2024, 12, 31))
print("FINISHED", flush=True)
"""


def _good_details(raw_dir: Path) -> set[str]:
    raw = RawZone(raw_dir)
    good = set()
    for entry in raw.details():
        try:
            parse_detail(raw.body(entry), entry.url)
        except PortalFormatError:
            continue
        good.add(entry.rrdc_no)
    return good


def test_crawl_killed_midway_resumes_without_refetching_or_gaps(tmp_path: Path):
    corpus = served_slice()
    data_dir = tmp_path / "var"
    manifest = data_dir / "raw" / "manifest.jsonl"
    with EmulatorServer(corpus, fault_rate=0.2, seed=5, slow_s=0.8) as emu:
        args = {"data_dir": str(data_dir), "url": emu.url, "fast": FAST}
        proc = subprocess.Popen(
            [sys.executable, "-c", _KILLABLE, json.dumps(args)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                if manifest.exists() and manifest.read_bytes().count(b'"kind": "detail"') >= 15:
                    break
                time.sleep(0.01)
            assert proc.poll() is None, "the crawl ended before it could be killed"
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            out, _ = proc.communicate(timeout=10)
        assert b"FINISHED" not in out
        assert proc.returncode == -signal.SIGKILL
        stored_before = _good_details(data_dir / "raw")
        assert 0 < len(stored_before) < len(corpus)
        assert read_watermarks(Settings(data_dir=data_dir, _env_file=None)) == {}
        seen_before = len(emu.request_log)

        settings = fast_settings(data_dir, emu.url)
        summary = crawl(settings, *Y2024)
        after = emu.request_log[seen_before:]
    assert summary.ok, summary.failures
    assert summary.details_skipped_stored >= len(stored_before)
    refetched = {r.key for r in after if r.endpoint == "detail"} & stored_before
    assert not refetched, f"re-downloaded details already stored: {sorted(refetched)}"
    assert {d.isoformat() for d in read_watermarks(settings).values()} == {"2024-12-31"}

    normalize(settings)
    assert_dataset_matches(settings, corpus)


def test_incremental_watermark_and_recrawl_window(tmp_path: Path):
    full = demo_corpus(40, seed=2)
    late = max(full, key=lambda c: c.decision_date)  # published after the first crawl
    first = full.filter(lambda c: c.rrdc_no != late.rrdc_no)
    until = dt.date(2024, 12, 31)
    with EmulatorServer(first, fault_rate=0.0) as emu:
        settings = fast_settings(tmp_path / "var", emu.url, recrawl_days=30)
        s1 = crawl(settings, None, until)  # no watermark yet: from 1988, one year at a time
        assert s1.ok and s1.details_fetched == len(first)
        # the summary says what it crawled and why, never "window None .. None"
        assert s1.window == (
            "1988-01-01 .. 2024-12-31, everything: no earlier crawl, so from the portal's "
            "oldest decisions"
        )
        assert set(s1.series_windows) == {"ordinary", "council", "committee"}
        assert s1.windows_total == 3 * len(year_windows(dt.date(1988, 1, 1), until))
        marks = read_watermarks(settings)
        assert marks == {s: until for s in ("ordinary", "council", "committee")}
        n1 = len(emu.request_log)

        emu.replace_corpus(full)
        s2 = crawl(settings, None, until)
        log2 = emu.request_log[n1:]
    assert s2.ok
    # Only the trailing 30 days before the watermark were listed again ...
    assert s2.windows_total == 3
    assert s2.window == (
        "2024-12-01 .. 2024-12-31, since the last crawl: its watermark 2024-12-31 less the "
        "30 re-crawl days for late publications"
    )
    assert s2.details_fetched == 1 and s2.cases_listed >= 1
    # ... and only the late publication's detail was fetched.
    assert [r.key for r in log2 if r.endpoint == "detail"] == [late.rrdc_no]
    normalize(settings)
    assert_dataset_matches(settings, full)


def test_politeness_rate_and_retry_after(tmp_path: Path):
    corpus = demo_corpus(5, seed=4)
    rate = 40.0
    with EmulatorServer(corpus, fault_rate=0.12, seed=9, fault_kinds=("http429",)) as emu:
        settings = fast_settings(tmp_path / "var", emu.url, request_rate=rate)
        summary = crawl(settings, *Y2024)
        log = emu.request_log
    assert summary.ok, summary.failures
    assert any(r.status == 429 for r in log)
    # Answers are logged when sent, so one gap carries the scheduling jitter of two answers
    # (tens of ms on a loaded machine, more than the 25 ms the limiter leaves). Over ten
    # requests the jitter stays that size while the time the limiter must leave is nine
    # intervals: a client at twice the rate fails this by far.
    times = [r.at for r in log]
    assert len(times) >= 10, len(times)
    spans = [b - a for a, b in zip(times, times[9:], strict=False)]
    assert min(spans) >= 9 / rate - 0.05, min(spans)
    for a, b in itertools.pairwise(log):
        if a.status == 429:  # the emulator says Retry-After: 1
            assert b.at - a.at >= 0.95, "Retry-After not honoured"
    assert summary.backoff_wait_s >= sum(r.status == 429 for r in log) * 0.95


def test_robots_images_off_host_and_concurrency_cap(tmp_path: Path):
    with EmulatorServer(demo_corpus(3, seed=1)) as emu:
        settings = fast_settings(tmp_path / "var", emu.url)
        with PortalClient(settings) as client:
            assert client.allowed(emu.url + "prlstclsfsrch/openULS0203002S.do")
            assert not client.allowed(emu.url + "csp/anything.do")  # robots.txt: /clip/csp/
            client.check_image_url(emu.origin + "/clip/prlstclsfsrch/imageView.do?fileSn=1")
            for url in (
                "http://images.example.com/a.png",
                f"http://127.0.0.1:{emu.port + 1}/a.png",
                "file:///etc/passwd",
            ):
                with pytest.raises(ImageRefused):
                    client.image("ordinary", url)
            with pytest.raises(ValueError, match="wider than a year"):
                client.list_page("ordinary", dt.date(2023, 1, 1), dt.date(2024, 6, 30), 1)
        # A bare origin means the portal's /clip/ application, as on the real host.
        bare = fast_settings(tmp_path / "var", emu.origin)
        assert PortalClient(bare).list_url("council") == (
            emu.url + "prlstclsfsrch/cncidtrm/retrieveDmstPrlstClsfCaseLst2.do"
        )
        with pytest.raises(ValueError, match="not an http"):
            PortalClient(fast_settings(tmp_path / "var", "127.0.0.1:80"))
        # One crawl at a time across processes (flock): a second one is refused.
        with crawl_slot(settings), pytest.raises(CrawlBusy):
            crawl(settings, *Y2024)
        assert emu.stats["requests"]["list"] == 0


def test_crawl_window_is_described_in_words():
    from hscode.crawl import describe_window

    day = dt.date
    kwargs = {"until_given": False, "recrawl_days": 30}
    assert describe_window(
        day(2024, 5, 3), day(2024, 6, 10), since=None, watermark=day(2024, 6, 2), **kwargs
    ) == (
        "2024-05-03 .. 2024-06-10 (today, UTC), since the last crawl: its watermark "
        "2024-06-02 less the 30 re-crawl days for late publications"
    )
    assert (
        describe_window(
            day(2010, 1, 1),
            day(2014, 12, 31),
            since=day(2010, 1, 1),
            watermark=None,
            until_given=True,
            recrawl_days=30,
        )
        == "2010-01-01 .. 2014-12-31, as asked"
    )
    assert describe_window(
        day(1988, 1, 1), day(2024, 6, 10), since=None, watermark=None, **kwargs
    ).startswith("1988-01-01 .. 2024-06-10 (today, UTC), everything: no earlier crawl")
    assert describe_window(
        day(2024, 6, 1),
        day(2024, 5, 1),
        since=day(2024, 6, 1),
        watermark=None,
        until_given=True,
        recrawl_days=30,
    ).startswith("nothing to crawl: 2024-06-01 is after 2024-05-01")


def test_year_windows_never_exceed_a_year():
    windows = year_windows(dt.date(1988, 1, 1), dt.date(2024, 3, 5))
    assert windows[0].start == dt.date(1988, 1, 1) and windows[-1].end == dt.date(2024, 3, 5)
    assert all(w.start.year == w.end.year for w in windows)
    assert all((b.start - a.end).days == 1 for a, b in itertools.pairwise(windows))
    with pytest.raises(ValueError):
        year_windows(dt.date(2024, 2, 1), dt.date(2024, 1, 1))
    with pytest.raises(ValueError, match="1988"):
        crawl(Settings(_env_file=None), dt.date(1980, 1, 1), dt.date(1981, 1, 1))
