"""What every figure of the reports means: the ``METRICS`` table (each metric's name as a
table shows it, its meaning in one line, and its kind, how its value prints), the ensemble
members' names, the metric aliases shown once, the groups of the key-figures table, and the
two functions other code reads them through: ``describe`` (a key in words, ``{code}`` filled
in for the model's level) and ``format_value`` (a value as its kind reads best).

A new metric gets its entry here (``_EVALUATION`` for what ``HSModel.evaluate`` measures,
``_build_metrics`` for the rest); the tests fail on a metric training writes that lacks one.
No plotting, no HTML: importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class MetricInfo:
    """A figure in words: ``name`` as a table shows it, ``meaning`` in one line, and ``kind``,
    how its value prints: ``share`` (0..1, as a percentage), ``points`` (a difference of two
    shares, in percentage points), ``ratio`` (0..1, as a decimal), ``count``, ``seconds``,
    ``number``. ``{code}`` in either text stands for the digits the model predicts."""

    name: str
    meaning: str
    kind: str = "share"


# What ``HSModel.evaluate`` measures (the version's ``test_*`` metrics without the prefix).
_EVALUATION: dict[str, MetricInfo] = {
    "top1": MetricInfo(
        "Top-1 accuracy ({code})",
        "share of test cases whose first recommended code is the decided code",
    ),
    "top3": MetricInfo(
        "Top-3 accuracy ({code})",
        "share of test cases whose decided code is among the first 3 recommended codes",
    ),
    "top5": MetricInfo(
        "Top-5 accuracy ({code})",
        "share of test cases whose decided code is among the first 5 recommended codes",
    ),
    "hs6_top1": MetricInfo(
        "Top-1 accuracy (6 digits, subheading)",
        "share of test cases whose first recommended 6-digit subheading (the scores of its "
        "codes summed) is the decided code's",
    ),
    "hs4_top1": MetricInfo(
        "Top-1 accuracy (4 digits, heading)",
        "share of test cases whose first recommended 4-digit heading is the decided code's",
    ),
    "hs2_top1": MetricInfo(
        "Top-1 accuracy (2 digits, chapter)",
        "share of test cases whose first recommended chapter is the decided code's",
    ),
    "partial_top1": MetricInfo(
        "Split-code cases: top-1 accuracy",
        "top-1 accuracy on the cases whose decided code was later split into several codes "
        "(right when the first answer is any code of the set)",
    ),
    "partial_top3": MetricInfo(
        "Split-code cases: top-3 accuracy",
        "share of the split-code cases with a code of their set among the first 3 answers",
    ),
    "partial_top5": MetricInfo(
        "Split-code cases: top-5 accuracy",
        "share of the split-code cases with a code of their set among the first 5 answers",
    ),
    "n": MetricInfo(
        "Test cases evaluated", "held-out cases these figures are measured on", "count"
    ),
    "partial_n": MetricInfo(
        "Split-code test cases",
        "test cases decided under a code later split into several (a partial label)",
        "count",
    ),
    "unknown_labels": MetricInfo(
        "Test cases of an unknown code",
        "test cases whose decided code the model has no class for (always counted wrong)",
        "count",
    ),
    "ece_after": MetricInfo(
        "Calibration error (ECE)",
        "average gap between the confidence of the first answer and how often it is right, "
        "over 15 confidence bins; 0 means a confidence of 0.8 is right 80% of the time",
        "ratio",
    ),
    "ece_before": MetricInfo(
        "Calibration error before calibration",
        "the same gap for the raw scores, before the temperature and top-label calibration",
        "ratio",
    ),
    "nll_after": MetricInfo(
        "Log loss",
        "average negative log of the calibrated probability given to the decided code "
        "(lower is better)",
        "number",
    ),
    "nll_before": MetricInfo(
        "Log loss before calibration",
        "the same for the raw scores, before calibration",
        "number",
    ),
    "temperature": MetricInfo(
        "Calibration temperature",
        "divisor of the scores chosen on validation (above 1 softens over-confident scores)",
        "number",
    ),
    "review_rate": MetricInfo(
        "Review rate",
        "share of test cases whose confidence is below the review threshold, so a person "
        "decides them",
    ),
}

_CV_KEYS = ("top1", "top3", "top5", "hs6_top1", "hs4_top1", "ece_after")


def _build_metrics() -> dict[str, MetricInfo]:
    table: dict[str, MetricInfo] = {}
    for key, info in _EVALUATION.items():
        table[f"test_{key}"] = info
    table.update(
        {
            "test_recent_top1": MetricInfo(
                "Out-of-time top-1 accuracy ({code})",
                "top-1 accuracy on the test cases decided in the newest window (30 days by "
                "default), all decided after every case the model learned from",
            ),
            "test_recent_top3": MetricInfo(
                "Out-of-time top-3 accuracy ({code})",
                "top-3 accuracy on the same newest-window test cases",
            ),
            "val_top1": MetricInfo(
                "Validation top-1 accuracy",
                "top-1 accuracy on the validation cases that chose the epochs, the mixture and "
                "the calibration (out of fold where the members were refitted on them)",
            ),
            "ece_after": MetricInfo(
                "Calibration error (ECE)", _EVALUATION["ece_after"].meaning, "ratio"
            ),
            "ece_before": MetricInfo(
                "Calibration error before calibration",
                _EVALUATION["ece_before"].meaning,
                "ratio",
            ),
            "test_mean_confidence": MetricInfo(
                "Mean confidence of the first answer",
                "mean rank-1 score of the model's ranking on the test cases, as scoring "
                "computes it (familiarity included): the figure each scoring run's drift is "
                "compared with",
                "ratio",
            ),
            "test_unseen_token_share": MetricInfo(
                "Share of tokens unseen in training",
                "share of the test cases' tokens not in the vocabulary the model trained on: "
                "the figure each scoring run's drift is compared with",
            ),
            "champion_test_top1": MetricInfo(
                "Champion's top-1 accuracy (compared cases)",
                "the previous champion's top-1 accuracy on the test cases neither model "
                "learned from",
            ),
            "champion_test_top3": MetricInfo(
                "Champion's top-3 accuracy (compared cases)",
                "the previous champion's top-3 accuracy on the same cases",
            ),
            "compared_n": MetricInfo(
                "Cases compared with the champion",
                "this version's test cases the champion never learned from: the leak-free "
                "cases both are scored on",
                "count",
            ),
            "compared_diff_top1": MetricInfo(
                "Top-1 difference with the champion",
                "this version's top-1 accuracy minus the champion's on the compared cases",
                "points",
            ),
            "n_cases": MetricInfo(
                "Trainable cases", "cases in the dataset with a usable current code", "count"
            ),
            "n_selected": MetricInfo(
                "Selected cases", "cases of the codes this run learns (every role)", "count"
            ),
            "n_classes": MetricInfo(
                "Codes", "distinct codes the model can recommend (its classes)", "count"
            ),
            "n_train": MetricInfo(
                "Training cases", "cases the evaluated model learned from", "count"
            ),
            "n_val": MetricInfo(
                "Validation cases",
                "cases that chose the epochs, the mixture and the calibration",
                "count",
            ),
            "n_test": MetricInfo(
                "Test cases",
                "held-out cases (a fixed hash of the title and the newest decisions); never "
                "learned from",
                "count",
            ),
            "n_test_recent": MetricInfo(
                "Out-of-time test cases",
                "test cases decided in the newest window (30 days by default)",
                "count",
            ),
            "n_review_cases": MetricInfo(
                "Cases from reviewers",
                "selected cases that are reviewers' decisions on past requests, not rulings",
                "count",
            ),
            "fit_seconds": MetricInfo("Fit time", "seconds to fit the evaluated model", "seconds"),
            "refit_seconds": MetricInfo(
                "Refit time",
                "seconds to refit the promoted recipe on every case (the served model)",
                "seconds",
            ),
            "train_seconds": MetricInfo(
                "Training run time", "seconds for the whole run, evaluation included", "seconds"
            ),
        }
    )
    for key in _CV_KEYS:
        base = _EVALUATION[key]
        table[f"cv_{key}"] = MetricInfo(
            f"Cross-validated {base.name[0].lower()}{base.name[1:]}",
            f"mean over the cross-validation folds: {base.meaning}",
            base.kind,
        )
    # report.json's sections: the comparison with the champion, the review thresholds, the
    # accuracy by month, chapter and code, the ensemble members
    table.update(
        {
            "comparison.candidate_top1": MetricInfo(
                "Top-1 accuracy ({code})",
                "share of the compared cases whose first recommended code is the decided code",
            ),
            "comparison.candidate_top3": MetricInfo(
                "Top-3 accuracy ({code})",
                "share of the compared cases whose decided code is among the first 3",
            ),
            "comparison.diff_top1": MetricInfo(
                "Top-1 difference (95% interval)",
                "this version minus the champion on the same cases, with its 95% interval (a "
                "paired bootstrap over the cases); promotion needs the interval's lower end at "
                "or above minus the margin",
                "points",
            ),
            "comparison.diff_top3": MetricInfo(
                "Top-3 difference (95% interval)",
                "the same for top-3 accuracy (shown, not used by the gate)",
                "points",
            ),
            "comparison.n": MetricInfo("Cases compared", _CASES_COMPARED, "count"),
            "comparison.excluded_champion_used": MetricInfo(
                "Test cases left out",
                "this version's test cases the champion had learned from, so not compared",
                "count",
            ),
            "comparison.margin": MetricInfo(
                "Promotion margin",
                "how much worse than the champion (top-1) a new version may be and still be "
                "promoted",
                "points",
            ),
            "coverage.threshold": MetricInfo(
                "Confidence threshold",
                "a first answer with a calibrated confidence at or above it goes out without "
                "review",
                "number",
            ),
            "coverage.coverage": MetricInfo(
                "Answered automatically",
                "share of test cases whose confidence reaches the threshold (the coverage)",
            ),
            "coverage.review_rate": MetricInfo(
                "Review rate",
                "share of test cases below the threshold, which a person decides",
            ),
            "coverage.accuracy": MetricInfo(
                "Accuracy when answered automatically",
                "top-1 accuracy on the test cases that reach the threshold",
            ),
            "coverage.n": MetricInfo(
                "Cases answered automatically",
                "test cases that reach the threshold",
                "count",
            ),
            "by_month.month": MetricInfo(
                "Decision month", "month the test cases were decided in", "text"
            ),
            "by_month.n": MetricInfo("Test cases", "test cases decided in that month", "count"),
            "by_month.top1": MetricInfo(
                "Top-1 accuracy ({code})",
                "top-1 accuracy on the test cases of that month: whether accuracy holds on "
                "goods decided later than the training cases (out of time)",
            ),
            "by_month.top3": MetricInfo(
                "Top-3 accuracy ({code})",
                "top-3 accuracy on the test cases of that month",
            ),
            "chapter.chapter": MetricInfo(
                "HS chapter", "first two digits of the decided code", "text"
            ),
            "chapter.n": MetricInfo("Test cases", "test cases of the chapter", "count"),
            "chapter.accuracy": MetricInfo(
                "Top-1 accuracy ({code})",
                "share of the chapter's test cases whose first recommended code is the "
                "decided code",
            ),
            "code.code": MetricInfo("Decided code", "the code the ruling decided", "text"),
            "code.n": MetricInfo("Test cases", "test cases decided under the code", "count"),
            "code.missed": MetricInfo(
                "Missed", "of those, cases whose first recommended code was wrong", "count"
            ),
            "code.accuracy": MetricInfo(
                "Top-1 accuracy ({code})",
                "share of the code's test cases whose first recommended code is right",
            ),
            "code.answered": MetricInfo(
                "Most frequent wrong answer",
                "the code most often recommended first instead",
                "text",
            ),
            "confusion.decided": MetricInfo("Decided code", "the code the ruling decided", "text"),
            "confusion.answered": MetricInfo(
                "Recommended first", "the wrong code the model put first", "text"
            ),
            "confusion.n": MetricInfo(
                "Times", "test cases with this decided code answered with that one", "count"
            ),
            "member.val_top1": MetricInfo(
                "Validation top-1 accuracy",
                "top-1 accuracy on the validation cases, each member alone (fitted without "
                "them) and the mixture out of fold: the same cases for every row",
            ),
            "member.test_top1": MetricInfo(
                "Test top-1 accuracy ({code})",
                "share of test cases whose first recommended code is the decided code",
            ),
            "member.test_top3": MetricInfo(
                "Test top-3 accuracy ({code})",
                "share of test cases whose decided code is among the first 3 recommended",
            ),
            "member.test_hs6_top1": MetricInfo(
                "Test top-1 accuracy (6 digits)",
                "share of test cases whose first recommended subheading is the decided one",
            ),
            "member.weight": MetricInfo(
                "Weight in the mixture",
                "share of the model's combined score that comes from this member (0: dropped)",
            ),
        }
    )
    return table


_CASES_COMPARED = (
    "this version's test cases the champion never learned from: the leak-free cases both "
    "models are scored on"
)

METRICS: Mapping[str, MetricInfo] = _build_metrics()
"""Every figure the reports show, by key: the version's metrics (``test_top1``, ...) and the
columns of report.json's sections (``comparison.*``, ``coverage.*``, ``by_month.*``, ...)."""

MEMBER_NAMES: Mapping[str, str] = {
    "mixed": "This model (its members' weighted mixture)",
    "svm": "TF-IDF + SVM baseline",
    "network": "Main network (fastText + BiLSTM)",
    "companion": "Second text network",
    "knn": "TF-IDF nearest cases (k-NN vote)",
    "heading": "TF-IDF + SVM on the heading (the codes of a heading score alike, so its "
    "ten-digit top-1 understates it)",
    "nearest": "Most similar past case of each code",
    "sentence": "Sentence-encoder classifier",
}

# keys the versions' metrics repeat under a second name: shown once, under the second
METRIC_ALIASES = {
    "ece_after": "test_ece_after",
    "ece_before": "test_ece_before",
    "test_n": "n_test",
}

# the key-figures table's groups, in order: (title, the metric keys it shows)
FIGURE_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Accuracy on the held-out test cases",
        (
            "test_top1", "test_top3", "test_top5", "test_hs6_top1", "test_hs4_top1",
            "test_hs2_top1", "test_recent_top1", "test_recent_top3", "test_partial_top1",
            "test_partial_top3", "test_partial_top5", "val_top1",
        ),
    ),
    (
        "Confidence and review",
        (
            "test_ece_after", "test_ece_before", "test_review_rate", "test_mean_confidence",
            "test_unseen_token_share", "test_nll_after", "test_nll_before", "test_temperature",
        ),
    ),
    (
        "Against the champion",
        ("champion_test_top1", "champion_test_top3", "compared_diff_top1", "compared_n"),
    ),
    ("Cross-validation", tuple(f"cv_{k}" for k in _CV_KEYS)),
    (
        "Data",
        (
            "n_cases", "n_selected", "n_classes", "n_train", "n_val", "n_test",
            "n_test_recent", "n_review_cases", "test_n", "test_partial_n",
            "test_unknown_labels",
        ),
    ),
    ("Time", ("fit_seconds", "refit_seconds", "train_seconds")),
)  # fmt: skip


def code_digits(level: Any) -> str:
    """How many digits the model predicts, in words: ``hs10`` -> ``10 digits``."""
    digits = "".join(ch for ch in str(level or "") if ch.isdigit())
    return f"{digits} digits" if digits else "full code"


def code_kind(level: Any) -> str:
    digits = "".join(ch for ch in str(level or "") if ch.isdigit())
    return f"{digits}-digit codes" if digits else "codes"


def describe(key: str, level: Any = None) -> MetricInfo:
    """The figure ``key`` in words (``METRICS``), ``{code}`` filled in for the model's level;
    a key the table lacks is named from its spelling, and says so."""
    # an older trainer's spellings: nested (``test.top1``) or bare (``top1``) keys
    info = METRICS.get(key) or METRICS.get(key.replace(".", "_")) or _EVALUATION.get(key)
    if info is None:
        return MetricInfo(
            key.replace(".", ": ").replace("_", " ").strip().capitalize(),
            "no description in hscode.reports.METRICS",
            "number",
        )
    code = code_digits(level)
    return MetricInfo(info.name.format(code=code), info.meaning.format(code=code), info.kind)


def format_value(value: Any, kind: str = "number") -> str:
    """A value as its kind reads best (``METRICS``' kinds); missing or NaN: ``n/a``."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, (int, float, np.integer, np.floating)):
        return str(value)
    v = float(value)
    if not np.isfinite(v):
        return "n/a"
    if kind == "share":
        return f"{v:.1%}"
    if kind == "points":
        return f"{100 * v:+.1f} points"
    if kind == "ratio":
        return f"{v:.4f}"
    if kind == "count":
        return f"{int(v):,}" if v == int(v) else f"{v:,.1f}"
    if kind == "seconds":
        return f"{v:,.1f} s"
    return "0" if v == 0 else f"{v:.4g}"
