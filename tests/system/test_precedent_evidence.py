"""Evidence a reviewer can use, and drift per scoring run (issue 16), with a small real model.

Half the training cases come from the portal (source ``clip``, a series, a 13-digit key),
half from an import; every case has a reference number, a decision date and a long decision
reason. The model's precedent index keeps them (``precedent_evidence.json`` in the
artifact); scoring writes them with each precedent, with a link to the ruling for the
portal's cases only, and records per run the share of request tokens unseen in training,
the mean rank-1 confidence and the review rate beside the model's test figures.
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text

from hscode.case_records import make_case
from hscode.cases import read_cases, upsert_cases
from hscode.evidence import ELLIPSIS, REASON_CHARS, ruling_url, shorten
from hscode.intake import submit_requests
from hscode.model_versions import sync_registry_versions
from hscode.predict import precedents_path, predict_file
from hscode.registry import Registry
from hscode.scoring import COPY_MIN_ROWS, ScoreSummary, drift_figures, score_pending
from hscode.settings import Settings
from hscode.training import SMOKE_TRAIN, TrainConfig, train_and_register
from model.hsmodel import HSModel
from model.precedents import EVIDENCE_FILE
from model.records import Precedent, RequestInput
from model.synthetic import make_cases
from tasks.score import drift_markdown

pytest_plugins = ["conftest_db"]

PORTAL = "http://127.0.0.1:8765"  # a bare origin: the portal's base is its /clip/
SERIES = ("ordinary", "council", "committee")
UNSEEN_TITLES = ["zorblax quimvet fnargh", "wobblefrotz xyqqa", "plimbus krentaq vorpl"]


def _reason(i: int) -> str:
    # ~500 characters of words: more than REASON_CHARS, so it is shortened at a word
    words = [f"근거{i}", "관세율표", "해설서", "제84류", "주", "규정에", "따라", "분류함"] * 12
    return " ".join(words)


def _key(i: int) -> str:
    return f"007{2024:04d}{i:06d}" if i % 2 == 0 else f"import:test:{i}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Settings, str]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("evidence") / "var",
        portal_url=PORTAL,
        top_k=3,
        n_precedents=3,
        review_threshold=0.5,
        _env_file=None,
    )
    records = []
    for i, e in enumerate(make_cases(120, seed=11, with_images=0.0)):
        portal = i % 2 == 0
        records.append(
            make_case(
                case_key=_key(i),
                source="clip" if portal else "import:test",
                series=SERIES[(i // 2) % 3] if portal else None,
                reference_no=f"품목분류2과-{1000 + i}",
                decision_date=dt.date(2023, 1, 1) + dt.timedelta(days=i),
                title_raw=e.title,
                hs_raw=e.label,
                description_raw=e.description,
                decision_reason=_reason(i),
            )
        )
    upsert_cases(settings, records)
    outcome = train_and_register(settings, TrainConfig(**SMOKE_TRAIN, recent_days=0))
    assert outcome.promoted
    return settings, outcome.version


@pytest.fixture
def engine(pg_engine, trained):
    settings, _ = trained
    with pg_engine.begin() as conn:
        conn.execute(
            text("truncate requests, predictions, precedents, score_runs, model_versions cascade")
        )
    # the champion and its metrics (the test figures) as the score flow records them
    sync_registry_versions(pg_engine, Registry.from_settings(settings))
    return pg_engine


def _cases(settings: Settings) -> dict[str, dict]:
    return {r["case_key"]: r for r in read_cases(settings).to_pylist()}


def _expected_url(case: dict) -> str | None:
    if case["source"] != "clip":
        return None
    path = {
        "ordinary": "prlstclsfsrch/retrieveDmstPrlstClsfCaseDtl.do?rrdcNo={}",
        "council": "prlstclsfsrch/cncidtrm/retrieveDmstPrlstClsfCaseDtl2.do?rrdcNo={}&mttrTpcd=02",
        "committee": "prlstclsfsrch/cmitdtrm/retrieveDmstPrlstClsfCaseDtl2.do?rrdcNo={}&mttrTpcd=01",
    }[case["series"]]
    return f"{PORTAL}/clip/" + path.format(case["case_key"])


def _check_shortened(excerpt: str, full: str) -> None:
    assert excerpt.endswith(ELLIPSIS) and len(excerpt) <= REASON_CHARS + 1
    body = excerpt[: -len(ELLIPSIS)]
    assert full.startswith(body) and full[len(body)] == " "  # cut at a word


# ------------------------------------------------------------------ plain functions


def test_shorten_cuts_at_a_word_with_an_ellipsis() -> None:
    assert shorten("  짧은   사유 \n") == "짧은 사유"
    assert shorten(None) is None and shorten("   ") is None
    long = " ".join(["word"] * 100)  # 499 characters
    cut = shorten(long, 20)
    assert cut == "word word word word" + ELLIPSIS
    assert shorten("x" * 50, 20) == "x" * 20 + ELLIPSIS  # no space: a hard cut


def test_ruling_url_per_series_and_only_for_the_portal() -> None:
    assert ruling_url(PORTAL, "ordinary", "0072024000002") == (
        f"{PORTAL}/clip/prlstclsfsrch/retrieveDmstPrlstClsfCaseDtl.do?rrdcNo=0072024000002"
    )
    assert ruling_url("https://unipass.customs.go.kr/clip/", "committee", "1").endswith(
        "/clip/prlstclsfsrch/cmitdtrm/retrieveDmstPrlstClsfCaseDtl2.do?rrdcNo=1&mttrTpcd=01"
    )
    assert ruling_url(PORTAL, None, "1") is None
    from hscode.evidence import precedent_url

    imported = Precedent("k", "8517130000", "t", 0.9, series="ordinary", source="import:x")
    assert precedent_url(PORTAL, imported) is None


def test_drift_figures_pool_partitions_and_render() -> None:
    test = {"test_mean_confidence": 0.8, "test_review_rate": 0.1}
    a = ScoreSummary(scored=2, reviewed=1, confidence_sum=1.0, request_tokens=10, unseen_tokens=5)
    b = ScoreSummary(scored=2, reviewed=0, confidence_sum=1.4, request_tokens=30, unseen_tokens=0)
    a.test_figures = b.test_figures = test
    figures = drift_figures([a, b])
    assert figures["mean_confidence"] == pytest.approx(0.6)
    assert figures["review_rate"] == pytest.approx(0.25)
    assert figures["unseen_token_share"] == pytest.approx(5 / 40)
    assert figures["test_mean_confidence"] == 0.8 and figures["test_unseen_token_share"] is None
    markdown = drift_markdown(figures, "Drift")
    assert "| mean rank-1 confidence | 0.600 | 0.800 | -0.200 |" in markdown
    assert "| share of tokens unseen in training | 0.125 | n/a | n/a |" in markdown
    assert ScoreSummary().as_dict()["unseen_token_share"] is None


# ------------------------------------------------------------------ the model's index


def test_the_index_keeps_each_rulings_evidence(trained) -> None:
    settings, version = trained
    cases = _cases(settings)
    registry = Registry.from_settings(settings)
    for evaluated in (False, True):  # the served refit and the evaluated model
        index = registry.load(version, evaluated=evaluated).precedents
        assert index.evidence is not None and len(index.evidence) == len(index.keys)
        for key, ev in zip(index.keys, index.evidence, strict=True):
            case = cases[key]
            assert ev is not None
            assert ev.reference_no == case["reference_no"]
            assert ev.decision_date == case["decision_date"].isoformat()
            assert ev.series == case["series"] and ev.source == case["source"]
            _check_shortened(ev.reason, case["decision_reason"])
    metrics = registry.champion().metrics
    for name in ("test_mean_confidence", "test_review_rate", "test_unseen_token_share"):
        assert 0.0 <= metrics[name] <= 1.0, name


def test_an_index_saved_without_evidence_still_loads(trained, tmp_path: Path) -> None:
    settings, version = trained
    model = Registry.from_settings(settings).load(version)
    folder = model.save(tmp_path / "old")
    (folder / EVIDENCE_FILE).unlink()  # what a model trained before the evidence looks like
    old = HSModel.load(folder)
    assert old.precedents.evidence is None
    title = old.precedents.titles[0]
    [ranking] = old.rank([RequestInput("q", title)], top_k=1, n_precedents=2)
    assert ranking.precedents and all(
        p.reference_no is None and p.reason is None and p.source is None for p in ranking.precedents
    )
    # and saving it again writes no stale evidence file
    shutil.rmtree(folder)
    old.save(folder)
    assert not (folder / EVIDENCE_FILE).exists()


# ------------------------------------------------------------------ scoring into Postgres


def _titles(settings: Settings, n: int) -> list[str]:
    return [r["title"] for r in read_cases(settings).to_pylist()[:n]]


def _count_precedents(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("select count(*) from precedents")).scalar_one())


def _run(engine, run_id: int) -> dict:
    with engine.connect() as conn:
        row = conn.execute(
            text("select * from score_run_history where run_id = :id"), {"id": run_id}
        )
        return dict(row.mappings().one())


def test_precedents_carry_their_rulings_evidence_and_links(trained, engine) -> None:
    settings, version = trained
    # portal and imported cases alternate; 80 requests x 3 precedents: written through COPY
    titles = _titles(settings, 80)
    submit_requests(engine, [{"request_id": f"e{i:02d}", "title": t} for i, t in enumerate(titles)])
    model = Registry.from_settings(settings).load(version)
    summary = score_pending(settings, engine, model)
    assert summary.scored == len(titles)
    assert _count_precedents(engine) >= COPY_MIN_ROWS
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(text("select * from latest_precedents")).mappings()]
    cases = _cases(settings)
    assert {r["case_source"] for r in rows} == {"clip", "import:test"}
    for row in rows:
        case = cases[row["case_key"]]
        assert row["reference_no"] == case["reference_no"]
        assert row["decision_date"] == case["decision_date"]
        assert row["series"] == case["series"]
        _check_shortened(row["reason_excerpt"], case["decision_reason"])
        assert row["ruling_url"] == _expected_url(case)
    assert any(r["ruling_url"] for r in rows) and any(r["ruling_url"] is None for r in rows)

    # hscode predict writes the same precedents beside its output
    src = Path(settings.data_dir) / "req.csv"
    with open(src, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["request_id", "title"])
        writer.writerows([[f"p{i}", t] for i, t in enumerate(titles[:4])])
    out = Path(settings.data_dir) / "pred.csv"
    result = predict_file(settings, src, out, top_k=2)
    assert result["precedents"] > 0 and result["precedents_file"] == str(precedents_path(out))
    with open(precedents_path(out), newline="", encoding="utf-8") as fh:
        written = list(csv.DictReader(fh))
    for row in written:
        case = cases[row["case_key"]]
        assert row["reference_no"] == case["reference_no"]
        assert row["decision_date"] == case["decision_date"].isoformat()
        _check_shortened(row["reason_excerpt"], case["decision_reason"])
        assert (row["ruling_url"] or None) == _expected_url(case)


def test_each_run_records_its_drift_against_the_test_figures(trained, engine) -> None:
    settings, version = trained
    model = Registry.from_settings(settings).load(version)
    metrics = Registry.from_settings(settings).champion().metrics

    # words never seen in training: every token unseen
    submit_requests(
        engine, [{"request_id": f"u{i}", "title": t} for i, t in enumerate(UNSEEN_TITLES)]
    )
    unseen = score_pending(settings, engine, model, batch_size=2)
    assert unseen.scored == 3 and unseen.unseen_token_share == 1.0
    # the training cases' own titles: every token seen (the served model learned them all)
    known_titles = _titles(settings, 10)
    submit_requests(
        engine, [{"request_id": f"k{i}", "title": t} for i, t in enumerate(known_titles)]
    )
    known = score_pending(settings, engine, model, batch_size=4)
    assert known.scored == 10 and known.unseen_token_share == pytest.approx(0.0, abs=0.02)

    for summary in (unseen, known):
        run = _run(engine, summary.run_id)
        with engine.connect() as conn:
            top = conn.execute(
                text(
                    "select avg(score), avg(review::int) from predictions "
                    "where rank = 1 and run_id = :id"
                ),
                {"id": summary.run_id},
            ).one()
        assert run["scored"] == summary.scored
        assert run["unseen_token_share"] == pytest.approx(summary.unseen_token_share)
        assert run["request_tokens"] == summary.request_tokens > 0
        assert run["mean_confidence"] == pytest.approx(float(top[0]), abs=1e-5)
        assert run["mean_confidence"] == pytest.approx(summary.mean_confidence, abs=1e-5)
        assert run["review_rate"] == pytest.approx(float(top[1]))
        assert run["review_rate"] == pytest.approx(summary.review_rate)
        assert run["reviewed"] == summary.reviewed
        for name in ("test_mean_confidence", "test_review_rate", "test_unseen_token_share"):
            assert run[name] == pytest.approx(metrics[name])
        assert summary.as_dict()["test_review_rate"] == pytest.approx(
            metrics["test_review_rate"], abs=1e-6
        )
    # words never seen: the model is unsure and says so
    assert unseen.review_rate == 1.0
