"""Scoring pending requests into Postgres, and the analyst views over the results.

The recommender here is a test double at the ``hscode.recommend.Recommender`` protocol
boundary: deterministic from the title (a hash orders a fixed code list), so every
expected row can be computed independently. Scoring with a real trained model is covered
by the nightly flow test and ``benchmarks/bench_score.py``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence

import pytest
from sqlalchemy import text

from hscode.hs import format_hs10
from hscode.intake import submit_requests
from hscode.model_versions import record_model_version
from hscode.scoring import ScoringError, count_pending, score_pending
from hscode.settings import Settings
from hscode.tariff import load_tariff_rows
from model.records import Candidate, Precedent, Ranking, RequestInput

# one embedded Postgres for the whole session, a fresh database per module
pytest_plugins = ["conftest_db"]

CODES = ["9608100000", "6109101000", "0202300000", "8471300000", "3207209000", "6110200000"]


def _rank_codes(title: str) -> list[str]:
    return sorted(CODES, key=lambda c: hashlib.sha256(f"{title}|{c}".encode()).hexdigest())


class TitleHashRecommender:
    """Deterministic from the title: codes ordered by sha256(title|code), scores halving."""

    def __init__(
        self, version: str = "v-test", fail_on: str | None = None, crash_after: int | None = None
    ):
        self.version = version
        self.fail_on = fail_on
        self.crash_after = crash_after
        self.calls = 0
        self.seen: list[str] = []

    def rank(
        self, requests: Sequence[RequestInput], *, top_k: int, n_precedents: int
    ) -> list[Ranking]:
        self.calls += 1
        if self.crash_after is not None and self.calls > self.crash_after:
            raise KeyboardInterrupt("simulated crash")  # not an Exception: nothing is retried
        out = []
        for req in requests:
            if self.fail_on and self.fail_on in req.title:
                raise ValueError(f"cannot encode {req.title!r}")
            self.seen.append(req.request_id)
            codes = _rank_codes(req.title)[:top_k]
            scores = [0.6 / 2**i for i in range(len(codes))]
            # past cases of the top code (the review policy's precedent vote agrees with it)
            precedents = [
                Precedent(f"case-{c}", codes[0], f"past case for {c}", 0.9 - 0.1 * i)
                for i, c in enumerate(_rank_codes(req.title + "#p")[:n_precedents])
            ]
            out.append(
                Ranking(
                    req.request_id,
                    [Candidate(c, s) for c, s in zip(codes, scores, strict=True)],
                    precedents,
                )
            )
        return out


@pytest.fixture
def engine(pg_engine):
    with pg_engine.begin() as conn:
        conn.execute(
            text(
                "truncate requests, predictions, precedents, score_runs, model_versions, "
                "intake_rejects, tariff, tariff_edition_codes, tariff_editions cascade"
            )
        )
    return pg_engine


@pytest.fixture
def settings(tmp_path):
    return Settings(
        data_dir=tmp_path / "var", top_k=3, n_precedents=2, review_threshold=0.5, _env_file=None
    )


def _submit(engine, n: int, prefix: str = "r") -> list[str]:
    rows = [{"request_id": f"{prefix}{i:04d}", "title": f"물품 {i} 제품"} for i in range(n)]
    submit_requests(engine, rows)
    return [r["request_id"] for r in rows]


def _count(engine, sql: str, **params) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar())


def test_scores_every_pending_request_with_k_ranked_codes(engine, settings):
    ids = _submit(engine, 25)
    calls: list[tuple[int, int]] = []
    rec = TitleHashRecommender()
    summary = score_pending(
        settings,
        engine,
        rec,
        batch_size=10,
        flow_run_id="flow-1",
        progress=lambda d, t: calls.append((d, t)),
    )
    assert (summary.scored, summary.rejected, summary.batches) == (25, 0, 3)
    assert summary.model_version == "v-test" and summary.run_id is not None
    assert 0 < summary.model_seconds + summary.db_seconds <= summary.seconds
    assert calls[0] == (0, 25) and calls[-1] == (25, 25)

    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "select p.request_id, p.rank, p.hs10, p.hs6, p.hs4, p.hs2, p.score, p.review, "
                "p.review_reason, p.run_id, p.flow_run_id, r.title from predictions p join requests r using (request_id) "
                "order by p.request_id, p.rank"
            )
        ).all()
        statuses = set(conn.execute(text("select status from requests")).scalars())
        run = conn.execute(text("select * from score_runs")).mappings().one()
        precedents = conn.execute(
            text("select request_id, rank, case_key, hs10 from precedents order by 1, 2")
        ).all()
    assert len(rows) == 25 * 3
    for row in rows:
        expected = _rank_codes(row.title)[row.rank - 1]
        assert row.hs10 == expected
        assert (row.hs6, row.hs4, row.hs2) == (expected[:6], expected[:4], expected[:2])
        assert row.score == pytest.approx(0.6 / 2 ** (row.rank - 1))
        assert row.review is False and row.review_reason is None
        assert row.run_id == summary.run_id and row.flow_run_id == "flow-1"
    assert statuses == {"scored"}
    assert (run["status"], run["scored"], run["batches"], run["flow_run_id"]) == (
        "finished",
        25,
        3,
        "flow-1",
    )
    assert run["pending_at_start"] == 25 and run["model_seconds"] is not None
    assert len(precedents) == 25 * 2
    assert precedents[0].case_key == f"case-{_rank_codes('물품 0 제품#p')[0]}"
    assert sorted(set(rec.seen)) == ids


def test_second_run_scores_nothing_new(engine, settings):
    _submit(engine, 12)
    rec = TitleHashRecommender()
    score_pending(settings, engine, rec, batch_size=5)
    before = _count(engine, "select count(*) from predictions")
    again = score_pending(settings, engine, rec, batch_size=5)
    assert (again.scored, again.rejected, again.batches, again.pending_at_start) == (0, 0, 0, 0)
    assert _count(engine, "select count(*) from predictions") == before == 36
    assert _count(engine, "select count(*) from score_runs where status = 'finished'") == 2
    # new requests arriving later are the only ones scored next time
    _submit(engine, 3, prefix="late")
    third = score_pending(settings, engine, rec, batch_size=5)
    assert third.scored == 3 and _count(engine, "select count(*) from predictions") == 45


def test_a_new_model_version_scores_everything_again(engine, settings):
    _submit(engine, 6)
    score_pending(settings, engine, TitleHashRecommender("v1"))
    assert count_pending(engine, "v2") == 6
    summary = score_pending(settings, engine, TitleHashRecommender("v2"))
    assert summary.scored == 6
    assert _count(engine, "select count(distinct model_version) from predictions") == 2


def test_bad_requests_are_rejected_and_the_batch_goes_on(engine, settings):
    settings = Settings(
        data_dir=settings.data_dir,
        top_k=3,
        n_precedents=2,
        max_text_chars=100,
        max_image_bytes=2000,
        _env_file=None,
    )
    _submit(engine, 5)
    # rows put straight into the table by SQL skip intake validation: the scorer checks them
    with engine.begin() as conn:
        conn.execute(
            text(
                "insert into requests (request_id, title, description, image) values "
                "('bad-empty', '  ', null, null), ('bad-long', :long, null, null), "
                "('bad-image', 'a photo', null, :junk), ('bad-big', 'big photo', null, :big), "
                "('poison-1', 'poison pill', null, null)"
            ),
            {"long": "x" * 101, "junk": b"\x89PNG broken", "big": b"\0" * 2001},
        )
    rec = TitleHashRecommender(fail_on="poison")
    summary = score_pending(settings, engine, rec, batch_size=4)
    assert (summary.scored, summary.rejected) == (5, 5)
    assert summary.reasons == {  # counted by code (the message is for people)
        "empty_title": 1,
        "oversize_text": 1,
        "image_corrupt": 1,
        "image_too_large": 1,
        "model_error": 1,
    }
    with engine.connect() as conn:
        reasons = dict(
            conn.execute(
                text("select request_id, reject_reason from requests where status = 'rejected'")
            ).all()
        )
    assert reasons["bad-empty"] == "empty title"
    assert reasons["bad-long"].startswith("text too long")
    assert reasons["bad-image"].startswith("unreadable image")
    assert reasons["bad-big"].startswith("image too large")
    assert "cannot encode" in reasons["poison-1"]
    with engine.connect() as conn:
        codes = dict(
            conn.execute(
                text("select request_id, reject_code from requests where status = 'rejected'")
            ).all()
        )
    assert codes == {
        "bad-empty": "empty_title",
        "bad-long": "oversize_text",
        "bad-image": "image_corrupt",
        "bad-big": "image_too_large",
        "poison-1": "model_error",
    }
    assert _count(engine, "select count(*) from predictions") == 5 * 3
    # rejected requests are not pending any more, for any version
    assert count_pending(engine, "another-version") == 5


def test_crash_midway_then_rerun_leaves_no_duplicates_and_no_gaps(engine, settings):
    _submit(engine, 47)
    crashing = TitleHashRecommender(crash_after=2)
    with pytest.raises(KeyboardInterrupt):
        score_pending(settings, engine, crashing, batch_size=10)
    assert _count(engine, "select count(*) from predictions") == 20 * 3  # two whole batches
    assert _count(engine, "select count(*) from requests where status = 'pending'") == 27
    with engine.connect() as conn:
        run = conn.execute(text("select status, error from score_runs")).one()
    assert run.status == "failed" and "simulated crash" in run.error

    summary = score_pending(settings, engine, TitleHashRecommender(), batch_size=10)
    assert summary.scored == 27
    assert _count(engine, "select count(*) from predictions") == 47 * 3
    assert _count(engine, "select count(distinct (request_id, rank)) from predictions") == 47 * 3
    assert _count(engine, "select count(*) from precedents") == 47 * 2
    assert _count(engine, "select count(*) from requests where status <> 'scored'") == 0


def test_interrupted_run_left_running_is_marked_failed(engine, settings):
    record_model_version(engine, "v-test", {})
    with engine.begin() as conn:  # as if a process was killed -9 mid-run
        conn.execute(text("insert into score_runs (model_version) values ('v-test')"))
    _submit(engine, 2)
    score_pending(settings, engine, TitleHashRecommender())
    with engine.connect() as conn:
        statuses = conn.execute(text("select status, error from score_runs order by run_id")).all()
    assert statuses[0].status == "failed" and "interrupted" in statuses[0].error
    assert statuses[1].status == "finished"


def test_model_breaking_its_contract_fails_the_run(engine, settings):
    class Short(TitleHashRecommender):
        def rank(self, requests, **kw):
            return super().rank(requests, **kw)[:-1]

    _submit(engine, 3)
    with pytest.raises(ScoringError, match="2 recommendations for 3 requests"):
        score_pending(settings, engine, Short("v-short"))
    assert _count(engine, "select count(*) from predictions") == 0
    assert _count(engine, "select count(*) from score_runs where status = 'failed'") == 1


def test_concurrent_runs_of_one_version_write_each_row_once(engine, settings):
    _submit(engine, 300)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            score_pending(settings, engine, TitleHashRecommender(), batch_size=50)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert _count(engine, "select count(*) from predictions") == 300 * 3
    assert _count(engine, "select coalesce(sum(scored), 0) from score_runs") == 300


def test_large_batches_go_through_copy_and_match_small_batches(engine, settings):
    _submit(engine, 120)
    big = score_pending(
        settings, engine, TitleHashRecommender("v-big"), batch_size=120
    )  # 360 rows: COPY
    small = score_pending(
        settings, engine, TitleHashRecommender("v-small"), batch_size=7
    )  # executemany
    assert big.scored == small.scored == 120
    with engine.connect() as conn:
        diff = conn.execute(
            text(
                "select count(*) from (select request_id, rank, hs10, score from predictions where model_version = 'v-big' "
                "except select request_id, rank, hs10, score from predictions where model_version = 'v-small') d"
            )
        ).scalar()
    assert diff == 0


def test_analyst_views_show_the_champions_answers_with_names(engine, settings):
    _submit(engine, 4)
    low = Settings(
        data_dir=settings.data_dir, top_k=3, n_precedents=2, review_threshold=0.7, _env_file=None
    )
    score_pending(settings, engine, TitleHashRecommender("v-old"))
    score_pending(low, engine, TitleHashRecommender("v-new"))  # every answer flagged
    load_tariff_rows(
        engine,
        [{"hs10": c, "name_ko": f"품목 {c}", "name_en": f"item {c}"} for c in CODES]
        + [{"code": c[:6], "name_ko": f"소호 {c[:6]}"} for c in CODES]
        + [{"code": c[:4], "name_ko": f"호 {c[:4]}"} for c in CODES],
    )

    def latest():
        with engine.connect() as conn:
            return (
                conn.execute(text("select * from latest_predictions order by request_id, rank"))
                .mappings()
                .all()
            )

    rows = latest()  # no champion flagged: the latest version scored
    assert {r["model_version"] for r in rows} == {"v-new"} and len(rows) == 4 * 3
    first = rows[0]
    assert (
        first["hs10_name_ko"] == f"품목 {first['hs10']}"
        and first["hs10_name_en"] == f"item {first['hs10']}"
    )
    assert (
        first["hs6_name_ko"] == f"소호 {first['hs6']}"
        and first["hs4_name_ko"] == f"호 {first['hs4']}"
    )
    assert first["title"].startswith("물품") and first["review"] is True

    with engine.connect() as conn:
        queue = (
            conn.execute(text("select * from review_queue order by request_id")).mappings().all()
        )
        volumes = conn.execute(text("select * from daily_chapter_volumes")).mappings().all()
    assert len(queue) == 4
    assert all(len(q["candidates"]) == 3 and len(q["precedent_codes"]) == 2 for q in queue)
    assert queue[0]["candidates"][0] == queue[0]["top_hs10"]
    # the English names latest_predictions has, beside the Korean ones
    top = queue[0]
    assert top["top_hs10_name_en"] == f"item {top['top_hs10']}"
    assert top["top_hs10_name_ko"] == f"품목 {top['top_hs10']}"
    assert (top["top_hs6"], top["top_hs6_name_ko"]) == (
        top["top_hs10"][:6],
        f"소호 {top['top_hs10'][:6]}",
    )
    assert top["top_hs4_name_en"] is None and top["top_hs6_name_en"] is None  # none loaded
    # one code format: ten digits in data, the portal's spelling (format_hs10) for people
    assert top["top_hs10_display"] == format_hs10(top["top_hs10"])
    assert top["candidates_display"] == [format_hs10(c) for c in top["candidates"]]
    assert first["hs10_display"] == format_hs10(first["hs10"])
    assert first["hs6_display"] == f"{first['hs6'][:4]}.{first['hs6'][4:]}"
    with engine.connect() as conn:
        shown = conn.execute(
            text("select hs_display('3304101000'), hs_display('330410'), hs_display('3304')")
        ).one()
    assert tuple(shown) == ("3304.10-1000", "3304.10", "3304")
    assert (
        sum(v["requests"] for v in volumes) == 4
        and sum(v["flagged_for_review"] for v in volumes) == 4
    )

    record_model_version(engine, "v-old", {"top1": 0.81}, champion=True)
    rows = latest()
    assert {r["model_version"] for r in rows} == {"v-old"} and not any(r["review"] for r in rows)
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from review_queue")).scalar() == 0
        board = {
            r["version"]: r
            for r in conn.execute(text("select * from model_leaderboard")).mappings()
        }
    assert board["v-old"]["champion"] and board["v-old"]["top1"] == pytest.approx(0.81)
    assert board["v-new"]["requests_scored"] == 4 and board["v-new"]["review_rate"] == 1.0
    assert board["v-old"]["runs"] == 1
    assert (board["v-old"]["standing"], board["v-old"]["ever_promoted"]) == ("champion", True)
    assert (board["v-new"]["standing"], board["v-new"]["ever_promoted"]) == (
        "never promoted",
        False,
    )


def test_request_overview_shows_intake_and_scoring_rejections(engine, settings):
    tight = Settings(
        data_dir=settings.data_dir, top_k=3, n_precedents=2, max_text_chars=100, _env_file=None
    )
    submit_requests(
        engine,
        [
            {"request_id": "ok-1", "title": "볼펜"},
            {"request_id": "ok-2", "title": "면 티셔츠", "description": "반팔"},
            {"request_id": "bad-long", "title": "x" * 101},  # refused at intake
            {"request_id": "bad-image", "title": "사진", "image": b"not an image"},
            {"request_id": "", "title": "no id"},
        ],
        settings=tight,
        source="file:today.csv",
    )
    with engine.begin() as conn:  # rows put in by SQL: the scorer rejects the bad one
        conn.execute(text("insert into requests (request_id, title) values ('bad-empty', '  ')"))
    score_pending(tight, engine, TitleHashRecommender())

    with engine.connect() as conn:
        rows = conn.execute(text("select * from request_overview")).mappings().all()
    by_id = {r["request_id"]: r for r in rows}
    assert len(rows) == 6 and sorted(by_id, key=str) == sorted(
        ["ok-1", "ok-2", "bad-long", "bad-image", "bad-empty", None], key=str
    )
    assert by_id["ok-1"]["status"] == "scored" and by_id["ok-1"]["rejected_by"] is None
    empty = by_id["bad-empty"]
    assert (empty["status"], empty["rejected_by"], empty["reject_reason"]) == (
        "rejected",
        "scorer",
        "empty title",
    )
    long = by_id["bad-long"]
    assert (long["status"], long["rejected_by"], long["source"]) == (
        "rejected",
        "intake",
        "file:today.csv",
    )
    assert long["reject_reason"].startswith("text too long (101 chars > 100)")
    assert long["title"] == "x" * 101 and long["received_at"] is not None
    image = by_id["bad-image"]
    assert image["has_image"] is True and image["reject_reason"].startswith("unreadable image")
    assert by_id[None]["reject_reason"] == "missing request_id"

    # a request accepted after its rejection shows once, as the request it became; a second
    # rejection of the same id shows the latest reason only
    submit_requests(engine, [{"request_id": "bad-long", "title": "shorter now"}], settings=tight)
    submit_requests(
        engine, [{"request_id": "bad-image", "title": ""}], settings=tight, source="again"
    )
    with engine.connect() as conn:
        rows = conn.execute(text("select * from request_overview")).mappings().all()
    assert len(rows) == 6
    by_id = {r["request_id"]: r for r in rows}
    assert (by_id["bad-long"]["status"], by_id["bad-long"]["rejected_by"]) == ("pending", None)
    assert (by_id["bad-image"]["reject_reason"], by_id["bad-image"]["source"]) == (
        "empty title",
        "again",
    )


def test_partitions_split_the_backlog_exactly_and_run_in_parallel(engine, settings):
    ids = _submit(engine, 240)
    n_parts = 3
    errors: list[BaseException] = []
    summaries = []

    def run(part: int) -> None:
        try:
            summaries.append(
                score_pending(
                    settings, engine, TitleHashRecommender("v-part"), 40, partition=(part, n_parts)
                )
            )
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_parts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    # every partition got work, and together they scored each request exactly once
    assert min(s.scored for s in summaries) > 0
    assert sum(s.scored for s in summaries) == len(ids)
    assert _count(engine, "select count(*) from predictions where model_version = 'v-part'") == (
        len(ids) * 3
    )
    # no partition marked another's run as failed
    assert _count(engine, "select count(*) from score_runs where status = 'finished'") == n_parts
    # the same answers as one unpartitioned run of the same model
    score_pending(settings, engine, TitleHashRecommender("v-whole"), 40)
    with engine.connect() as conn:
        diff = conn.execute(
            text(
                "select count(*) from (select request_id, rank, hs10, score from predictions "
                "where model_version = 'v-part' except select request_id, rank, hs10, score "
                "from predictions where model_version = 'v-whole') d"
            )
        ).scalar()
    assert diff == 0
    with pytest.raises(ValueError, match="partition"):
        score_pending(settings, engine, TitleHashRecommender("v-x"), 40, partition=(3, 3))


def test_only_codes_of_the_current_edition_are_written(engine, settings):
    """With a current edition, no prediction carries a code outside it: obsolete codes are
    skipped (the next current one takes their rank), a request with no current code left is
    rejected with its reason, and every prediction records the edition."""
    current = CODES[:3]
    load_tariff_rows(engine, [{"hs10": c} for c in current], "hsk-2026", current=True)
    load_tariff_rows(engine, [{"hs10": c} for c in CODES], "hsk-2012")  # older: not current
    ids = _submit(engine, 12)
    summary = score_pending(settings, engine, TitleHashRecommender())
    assert summary.tariff_edition == "hsk-2026" and summary.as_dict()["codes_checked"]
    with engine.connect() as conn:
        rows = conn.execute(
            text("select request_id, rank, hs10, tariff_edition from predictions order by 1, 2")
        ).all()
    assert rows and {r.hs10 for r in rows} <= set(current)
    assert {r.tariff_edition for r in rows} == {"hsk-2026"}
    for request_id in ids:  # ranks stay 1..k over the current codes, in the model's order
        ranks = [r for r in rows if r.request_id == request_id]
        want = [c for c in _rank_codes(f"물품 {int(request_id[1:])} 제품") if c in current][:3]
        assert [r.hs10 for r in ranks] == want and [r.rank for r in ranks] == [1, 2, 3]
    # a model whose every code is obsolete: the request is rejected, not answered wrongly
    late = _submit(engine, 1, prefix="x")
    load_tariff_rows(engine, [{"hs10": "9999999999"}], "hsk-2027", current=True)
    # every answer checked against hsk-2026 is obsolete now, and the analysts can see it
    with engine.connect() as conn:
        stale = conn.execute(
            text(
                "select checked_against, current_edition, count(*) from obsolete_predictions "
                "group by 1, 2"
            )
        ).all()
    assert stale == [("hsk-2026", "hsk-2027", len(rows))]
    summary = score_pending(settings, engine, TitleHashRecommender())
    assert summary.reasons == {"no_current_code": 1} and summary.tariff_edition == "hsk-2027"
    with engine.connect() as conn:
        code = conn.execute(
            text("select reject_code from requests where request_id = :r"), {"r": late[0]}
        ).scalar()
    assert code == "no_current_code"


def test_without_a_current_edition_scoring_runs_unchecked_and_says_so(engine, settings):
    _submit(engine, 3)
    summary = score_pending(settings, engine, TitleHashRecommender())
    assert summary.scored == 3 and summary.tariff_edition is None
    assert summary.as_dict()["codes_checked"] is False
    with engine.connect() as conn:
        editions = conn.execute(text("select distinct tariff_edition from predictions")).all()
        run = conn.execute(text("select tariff_edition from score_runs")).scalar()
    assert editions == [(None,)] and run is None
