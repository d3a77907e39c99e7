"""The HTML report explains itself (hscode.reports): every figure named in words with its
meaning, the TF-IDF + SVM baseline beside the model, why a version was or was not promoted,
tables that fit the page, every text from data escaped. No training: hand-made versions
shaped like what ``hscode.training`` writes."""

from __future__ import annotations

import datetime as dt
import html as html_lib
import re

import numpy as np
import pytest

from hscode import reports

# what ``train_and_register`` stores as a version's metrics (a run with a champion,
# cross-validation, an out-of-time window, split codes and a refit)
METRICS = {
    "test_n": 400,
    "test_unknown_labels": 2,
    "test_partial_n": 12,
    "test_top1": 0.78,
    "test_top3": 0.9,
    "test_top5": 0.93,
    "test_partial_top1": 0.5,
    "test_partial_top3": 0.75,
    "test_partial_top5": 0.83,
    "test_hs6_top1": 0.84,
    "test_hs4_top1": 0.88,
    "test_hs2_top1": 0.93,
    "test_nll_before": 1.2,
    "test_nll_after": 0.9,
    "test_ece_before": 0.12,
    "test_ece_after": 0.031,
    "test_temperature": 1.7,
    "val_top1": 0.8,
    "ece_before": 0.12,
    "ece_after": 0.031,
    "n_cases": 2100,
    "n_selected": 2000,
    "n_classes": 100,
    "n_train": 1400,
    "n_val": 200,
    "n_test": 400,
    "n_test_recent": 40,
    "fit_seconds": 61.0,
    "test_recent_top1": 0.7,
    "test_recent_top3": 0.85,
    "cv_top1": 0.77,
    "cv_top3": 0.89,
    "cv_top5": 0.92,
    "cv_hs6_top1": 0.83,
    "cv_hs4_top1": 0.87,
    "cv_ece_after": 0.04,
    "champion_test_top1": 0.8,
    "champion_test_top3": 0.91,
    "compared_n": 380,
    "compared_diff_top1": -0.03,
    "refit_seconds": 80.0,
    "train_seconds": 150.0,
}

NOT_PROMOTED = (
    "not promoted: could be worse than the champion by more than the margin 0.020 on 380 test "
    "cases neither model used, candidate top-1 0.7700 / top-3 0.9000, champion v0001 top-1 "
    "0.8000 / top-3 0.9100; top-1 difference -0.0300 (95% interval -0.0550 .. -0.0050)"
)


def _report(n_codes: int = 4, n: int = 200) -> dict:
    rng = np.random.default_rng(0)
    codes = [f"{10 + i % 80:02d}{i:08d}" for i in range(n_codes)]
    true = [codes[i % n_codes] for i in range(n)]
    correct = (rng.uniform(size=n) < 0.75).tolist()
    pred = [t if ok else codes[(codes.index(t) + 1) % n_codes] for t, ok in zip(true, correct)]
    months = [
        {"month": f"{2020 + m // 12}-{m % 12 + 1:02d}", "n": 5, "top1": 0.7, "top3": 0.9}
        for m in range(40)
    ]
    return {
        "test": {
            "confidence": rng.uniform(0.2, 1.0, n).tolist(),
            "y_true": true,
            "y_pred": pred,
            "correct": correct,
            "coverage": [
                {"threshold": t, "coverage": 1 - t / 2, "accuracy": 0.78 + t / 5, "n": 10}
                for t in (0.0, 0.3, 0.4, 0.5, 0.9)
            ],
            "by_month": months,
        },
        "history": {
            "epochs": [{"epoch": 1, "train_loss": 1.0, "val_top1": 0.5}],
            "ensemble": {
                "kind": "tfidf+knn",
                "members": ["network", "companion", "svm", "knn", "sentence"],
                "weights": [0.4, 0.1, 0.3, 0.1, 0.1],
                "val_top1_network": 0.71,
                "val_top1_companion": 0.69,
                "val_top1_svm": 0.7654,
                "val_top1_knn": 0.66,
                "val_top1_sentence": 0.6,
                "val_top1_mixed_out_of_fold": 0.8,
                "single_member": None,
            },
        },
        "selection": {"level": "hs10"},
        "split": {"note": "the newest 30 days of decisions are the out-of-time test"},
        "comparison": {
            "promoted": False,
            "reason": NOT_PROMOTED,
            "margin": 0.02,
            "champion": "v0001",
            "n": 380,
            "excluded_champion_used": 20,
            "candidate_top1": 0.77,
            "candidate_top3": 0.9,
            "champion_top1": 0.8,
            "champion_top3": 0.91,
            "diff_top1": -0.03,
            "diff_top1_low": -0.055,
            "diff_top1_high": -0.005,
            "diff_top3": -0.01,
            "diff_top3_low": -0.03,
            "diff_top3_high": 0.01,
            "method": "paired bootstrap over cases, 2000 resamples, 95% interval",
        },
        "served": {"model": "evaluated", "why": "not promoted, so not refitted"},
    }


def _version(name: str, created: str, promoted: bool, reason: str, **extra) -> dict:
    return {
        "version": name,
        "created_at": created,
        "metrics": dict(METRICS),
        "info": {"level": "hs10", "gate": {"promoted": promoted, "reason": reason}},
        "is_champion": False,
        **extra,
    }


def _page(champion_report: dict | None = None, **kwargs) -> str:
    champion = _version(
        "v0002",
        "2026-01-02T00:00:00+00:00",
        False,
        NOT_PROMOTED,
        is_champion=True,
        report=champion_report if champion_report is not None else _report(),
    )
    older = _version("v0001", "2026-01-01T00:00:00+00:00", True, "promoted: first model")
    return reports.html_report(
        champion,
        [champion, older],
        generated_at=dt.datetime(2026, 1, 3, tzinfo=dt.UTC),
        **kwargs,
    )


def test_every_figure_shown_is_named_in_words_with_its_meaning():
    page = _page()
    for key in METRICS:
        if key in reports.METRIC_ALIASES:  # the same figure as another key: shown once
            assert reports.METRIC_ALIASES[key] in METRICS
            continue
        info = reports.describe(key, "hs10")
        assert info.meaning != "no description in hscode.reports.METRICS", key
        assert html_lib.escape(info.name) in page and html_lib.escape(info.meaning) in page, key
        assert f">{key}<" not in page  # never the bare key
    assert "Top-1 accuracy (10 digits)" in page
    assert html_lib.escape(reports.METRICS["test_top1"].meaning) == (
        "share of test cases whose first recommended code is the decided code"
    )
    # the sections' columns too: review rate, coverage, months, chapters, codes
    for key in (
        "coverage.review_rate",
        "coverage.coverage",
        "by_month.top1",
        "chapter.accuracy",
        "code.missed",
        "confusion.n",
        "comparison.diff_top1",
        "member.weight",
    ):
        assert html_lib.escape(reports.describe(key, "hs10").meaning) in page, key
    assert "no description in hscode.reports.METRICS" not in page


def test_an_unknown_metric_is_named_from_its_key_and_says_it_has_no_description():
    info = reports.describe("test_brand_new_score")
    assert info.name == "Test brand new score"
    assert "no description" in info.meaning


def test_the_definitions_are_one_table_other_code_can_read():
    assert reports.METRICS["test_ece_after"].kind == "ratio"
    assert reports.describe("test_hs6_top1").name.startswith("Top-1 accuracy (6 digits")
    assert reports.describe("test_top1", "hs4").name == "Top-1 accuracy (4 digits)"
    assert reports.describe("cv_top1", "hs10").name == "Cross-validated top-1 accuracy (10 digits)"
    assert all(info.name and info.meaning for info in reports.METRICS.values())


def test_why_not_promoted_is_at_the_top_in_plain_words():
    page = _page()
    top = page.index("Latest training run")
    verdict = page.index("Not promoted.")
    assert top < verdict < page.index("<h2>Champion:")
    assert html_lib.escape(NOT_PROMOTED) in page  # the gate's own record
    plain = page[verdict : page.index("</div>", verdict)]
    assert "380 test cases" in plain and "-5.5" in plain and "2.0 points" in plain
    assert "promoted by hand" in plain  # it serves although the gate said no


def test_explain_promotion_without_a_comparison():
    first = reports.explain_promotion(True, "promoted: first model, no champion yet")
    assert first.startswith("Promoted") and "no champion" in first
    other = reports.explain_promotion(False, "not promoted: not comparable")
    assert other == "Not promoted: not comparable."
    assert "No promotion decision" in reports.explain_promotion(None, "")


def test_the_baseline_is_a_row_beside_the_model():
    page = _page()
    start = page.index("The model beside the TF-IDF + SVM baseline")
    table = page[start : page.index("</table>", start)]
    assert "This model" in table and "<b>TF-IDF + SVM baseline</b>" in table
    row = next(r for r in table.split("<tr>") if "<b>TF-IDF + SVM baseline</b>" in r)
    assert "76.5%" in row and "30.0%" in row  # its validation top-1 and its mixture weight
    rows = reports.baseline_rows(METRICS, _report())
    assert [r["_member"] for r in rows][:2] == ["mixed", "svm"]


def test_baseline_test_figures_are_shown_when_the_report_has_them():
    report = _report() | {"baseline": {"top1": 0.7321, "top3": 0.8811}}
    rows = reports.baseline_rows(METRICS, report)
    svm = next(r for r in rows if r["_member"] == "svm")
    assert svm["test_top1"] == 0.7321 and svm["test_top3"] == 0.8811
    page = _page(report)
    assert "73.2%" in page and "88.1%" in page


def test_no_ensemble_says_there_are_no_baseline_figures():
    report = _report()
    report["history"] = {"epochs": []}
    page = _page(report)
    assert "records no TF-IDF + SVM baseline figures" in page


def test_hostile_text_is_escaped():
    hostile = "<script>alert('x')</script>"
    report = _report()
    report["test"]["y_true"] = [hostile] + report["test"]["y_true"][1:]
    report["test"]["correct"] = [False] + report["test"]["correct"][1:]
    report["comparison"]["champion"] = hostile
    champion = _version(
        hostile, "2026-01-02", True, f"promoted: {hostile}", is_champion=True, report=report
    )
    champion["info"]["inputs"] = hostile
    page = reports.html_report(
        champion,
        [champion, _version(f"v{hostile}", "2026-01-01", False, hostile)],
        [(hostile, reports.html_table([{"title": hostile}]))],
    )
    assert "<script" not in page
    assert "&lt;script&gt;" in page
    assert page.count("&lt;script&gt;") >= 6


def test_long_tables_are_cut_with_how_many_more():
    page = _page(_report(n_codes=120, n=600), max_rows=10)
    missed = page[page.index("Codes most often missed") :]
    missed = missed[: missed.index("</table>")]
    assert missed.count("<tr>") == 1 + 10  # the header and 10 codes
    n_missed = int(re.search(r"\.\.\. and (\d+) more codes", missed).group(1))
    assert n_missed > 0 and n_missed + 10 <= 120
    months = page[page.index("accuracy by decision month") :]
    months = months[: months.index("</table>")]
    assert "... and 16 more earlier months" in months  # 40 months, the newest 24 shown
    assert months.index("2023-04") < months.index("2023-03")  # newest first
    table = reports.html_table([{"n": i} for i in range(60)])
    assert "... and 10 more" in table and table.count("<tr>") == 51


def test_the_page_fits_and_stands_alone():
    page = _page()
    assert page.startswith("<!doctype html>")
    assert "table-layout:fixed" in page and "max-width:1100px" in page
    assert "overflow-wrap:anywhere" in page
    assert "<td class='num'>78.0%</td>" in page  # numbers right-aligned
    assert not re.search(r"""(src|href)=['"]?(https?:)?//""", page)  # nothing to fetch
    assert "<link" not in page and "<script" not in page
    assert page.count("<img") == len(reports.training_plots(_report()))
    assert "0.4 (the review threshold)" in page  # the settings' default


@pytest.mark.parametrize(
    ("value", "kind", "text"),
    [
        (0.7812, "share", "78.1%"),
        (-0.031, "points", "-3.1 points"),
        (0.0312, "ratio", "0.0312"),
        (1234, "count", "1,234"),
        (61.04, "seconds", "61.0 s"),
        (float("nan"), "share", "n/a"),
        (None, "share", "n/a"),
        (-0.0, "number", "0"),
    ],
)
def test_format_value(value, kind, text):
    assert reports.format_value(value, kind) == text


def test_the_marked_row_follows_the_review_threshold_passed():
    page = _page(review_threshold=0.3)
    assert "0.3 (the review threshold)" in page
    assert "0.4 (the review threshold)" not in page


def test_an_unpromoted_newest_version_is_explained_from_its_own_report():
    champion = _version(
        "v0001", "2026-01-01", True, "promoted: first model", is_champion=True, report={}
    )
    newest = _version("v0002", "2026-01-02", False, NOT_PROMOTED, report=_report())
    page = reports.html_report(champion, [newest, champion])
    top = page[page.index("Latest training run") : page.index("<h2>Champion:")]
    assert "v0002:" in top and "Not promoted. On 380 test cases" in top
    without = dict(newest, report=None)  # only the gate's one-line reason: no figures
    top = reports.html_report(champion, [without, champion])
    assert "Not promoted. On 380 test cases" not in top and "Not promoted: could be" in top
