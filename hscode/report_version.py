"""The HTML about one model version: why it was or was not promoted, in plain words
(``gate_record``, ``explain_promotion``, ``verdict_box``), and ``version_html``, its section
of the report: the model beside the TF-IDF + SVM baseline (``baseline_rows``), the comparison
with the previous champion, every figure with its meaning, review rates by confidence
threshold, accuracy by month, chapter and code, the plots.

Reads a version dict (``version``, ``metrics``, ``info``, ``is_champion``, optionally
``report``: the training report); the page around it is ``hscode.reports.html_report``.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from hscode.metrics_catalog import (
    FIGURE_GROUPS,
    MEMBER_NAMES,
    METRIC_ALIASES,
    code_kind,
    describe,
    format_value,
)
from hscode.report_inputs import accuracy_by_chapter, evaluation_arrays, first_present
from hscode.report_plots import PLOT_TITLES, data_uri, training_plots
from hscode.report_tables import NUMERIC, Cell, legend, metric_rows, metric_table


def version_level(version: Mapping[str, Any]) -> Any:
    """The code level a version dict's model predicts (``hs10``, ...), if recorded."""
    report = version.get("report") or {}
    return (report.get("selection") or {}).get("level") or (version.get("info") or {}).get("level")


def _pct(value: Any) -> str:
    return format_value(value, "share")


def _pts(value: Any) -> str:
    if not isinstance(value, NUMERIC) or not np.isfinite(float(value)):
        return "n/a"
    return f"{100 * float(value):+.1f}"


def gate_record(version: Mapping[str, Any]) -> tuple[bool | None, str]:
    """(promoted by the gate?, its recorded reason) of a version dict: ``info.gate``, else the
    training report's ``comparison``; (None, "") when neither is recorded."""
    gate = (version.get("info") or {}).get("gate") or {}
    comparison = (version.get("report") or {}).get("comparison") or {}
    for source in (gate, comparison):
        if source.get("reason") or source.get("promoted") is not None:
            promoted = source.get("promoted")
            return (None if promoted is None else bool(promoted)), str(source.get("reason") or "")
    return None, ""


def explain_promotion(
    promoted: bool | None,
    reason: str,
    comparison: Mapping[str, Any] | None = None,
    is_champion: bool = False,
) -> str:
    """Why a version was or was not promoted, in plain words (text, not HTML)."""
    c = comparison or {}
    if c.get("champion") and c.get("n") and c.get("diff_top1_low") is not None:
        margin = float(c.get("margin") or 0.0)
        low = c.get("diff_top1_low")
        figures = (
            f"On {int(c['n']):,} test cases that neither it nor the champion {c['champion']} had "
            f"learned from, its first answer was right for {_pct(c.get('candidate_top1'))} "
            f"against {_pct(c.get('champion_top1'))} for the champion: a difference of "
            f"{_pts(c.get('diff_top1'))} points, 95% interval {_pts(low)} to "
            f"{_pts(c.get('diff_top1_high'))} points. A new version is promoted unless it may "
            f"be worse than the champion by more than {100 * margin:.1f} points, that is unless "
            f"the interval's lower end falls below -{100 * margin:.1f}."
        )
        if promoted:
            text = f"Promoted. {figures} Here it does not ({_pts(low)}): not worse, with 95% confidence."
        else:
            text = (
                f"Not promoted. {figures} Here it does ({_pts(low)}): it may be worse than the "
                "champion, so the champion keeps serving."
            )
    elif promoted and not c.get("champion") and "first model" in reason:
        text = "Promoted: it is the first model, so there was no champion to compare it with."
    elif reason:
        text = reason[0].upper() + reason[1:]
        if not text.endswith("."):
            text += "."
    elif promoted is None:
        text = "No promotion decision is recorded for this version."
    else:
        text = "Promoted." if promoted else "Not promoted."
    if is_champion and promoted is False:
        text += " It serves all the same: it was promoted by hand (hscode models promote)."
    return text


def verdict_box(version: Mapping[str, Any], heading: str = "") -> str:
    esc = html.escape
    promoted, reason = gate_record(version)
    report = version.get("report") or {}
    plain = explain_promotion(
        promoted, reason, report.get("comparison"), bool(version.get("is_champion"))
    )
    css = "promoted" if promoted else ("kept" if promoted is False else "unknown")
    parts = [f"<div class='verdict {css}'>"]
    if heading:
        parts.append(f"<b>{esc(heading)}</b> ")
    parts.append(f"<span class='why'>{esc(plain)}</span>")
    if reason and reason not in plain:
        parts.append(f"<br><small>The gate's record: {esc(reason)}</small>")
    parts.append("</div>")
    return "".join(parts)


def _key_figures(metrics: Mapping[str, Any], level: Any) -> str:
    """Every scalar metric of the version: name, value, meaning; grouped."""
    flat = {m["metric"]: m["value"] for m in metric_rows(metrics)}
    for alias, target in METRIC_ALIASES.items():
        if alias in flat and target in flat:
            del flat[alias]
    if not flat:
        return "<p><em>no metrics recorded</em></p>"
    esc = html.escape
    out = [
        "<table><colgroup><col style='width:30%'><col style='width:14%'>"
        + "<col style='width:56%'></colgroup>",
        "<thead><tr><th>Figure</th><th class='num'>Value</th><th>What it means</th></tr>"
        + "</thead><tbody>",
    ]
    placed: set[str] = set()
    groups = [(title, [k for k in keys if k in flat]) for title, keys in FIGURE_GROUPS]
    rest = [k for k in flat if not any(k in keys for _, keys in FIGURE_GROUPS)]
    groups.append(("Other figures", rest))
    for title, keys in groups:
        keys = [k for k in keys if k not in placed]
        if not keys:
            continue
        out.append(f"<tr class='group'><th colspan='3'>{esc(title)}</th></tr>")
        for key in keys:
            placed.add(key)
            info = describe(key, level)
            out.append(
                f"<tr><td>{esc(info.name)}</td>"
                f"<td class='num'>{esc(format_value(flat[key], info.kind))}</td>"
                f"<td>{esc(info.meaning)}</td></tr>"
            )
    out.append("</tbody></table>")
    return "\n".join(out)


def baseline_rows(
    metrics: Mapping[str, Any] | None, report: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """This model beside the TF-IDF + SVM baseline and its other ensemble members.

    The members' figures are from the training history (``history.ensemble``: each member
    alone on validation, and its weight in the mixture). Test figures of the baseline are shown
    when the report holds them: ``report["baseline"]`` (``top1``, ``top3``, ``hs6_top1``, ...
    on the test cases) or metrics ``baseline_test_top1``, ...
    """
    metrics, report = metrics or {}, report or {}
    history = report.get("history") if isinstance(report.get("history"), Mapping) else {}
    ensemble = (history or {}).get("ensemble") or {}
    members = [str(m) for m in ensemble.get("members") or []]
    weights = list(ensemble.get("weights") or [])
    single = ensemble.get("single_member")
    baseline = report.get("baseline") if isinstance(report.get("baseline"), Mapping) else {}
    baseline_test = {
        k: baseline.get(k) for k in ("top1", "top3", "hs6_top1") if baseline.get(k) is not None
    }
    for k in ("top1", "top3", "hs6_top1"):
        v = metrics.get(f"baseline_test_{k}")
        if v is not None:
            baseline_test.setdefault(k, v)
    if not members and not baseline_test:
        return []
    mixed_val = (
        ensemble.get(f"val_top1_{single}")
        if single
        else first_present(ensemble, "val_top1_mixed_out_of_fold")
    )
    rows = [
        {
            "model": MEMBER_NAMES["mixed"]
            + (f": {MEMBER_NAMES.get(single, single)} alone served" if single else ""),
            "val_top1": mixed_val if mixed_val is not None else metrics.get("val_top1"),
            "test_top1": metrics.get("test_top1"),
            "test_top3": metrics.get("test_top3"),
            "test_hs6_top1": metrics.get("test_hs6_top1"),
            "weight": None,
            "_member": "mixed",
        }
    ]
    order = sorted(range(len(members)), key=lambda i: (members[i] != "svm", i))
    if "svm" not in members and baseline_test:
        rows.append({"model": MEMBER_NAMES["svm"], "_member": "svm"})
    for i in order:
        name = members[i]
        rows.append(
            {
                "model": MEMBER_NAMES.get(name, name),
                "val_top1": ensemble.get(f"val_top1_{name}"),
                "weight": weights[i] if i < len(weights) else None,
                "_member": name,
            }
        )
    for row in rows:
        if row["_member"] == "svm":
            row.update({f"test_{k}": v for k, v in baseline_test.items()})
    return rows


def _baseline_section(metrics: Mapping[str, Any], report: Mapping[str, Any], level: Any) -> str:
    rows = baseline_rows(metrics, report)
    if not rows:
        return (
            "<p>This version records no TF-IDF + SVM baseline figures (trained without the "
            "ensemble, or by an older trainer).</p>"
        )
    columns = ["val_top1", "test_top1", "test_top3"]
    if any(r.get("test_hs6_top1") is not None for r in rows):
        columns.append("test_hs6_top1")
    columns.append("weight")
    for row in rows:
        if row["_member"] == "svm":
            row["model"] = Cell(f"<b>{html.escape(str(row['model']))}</b>")
    note = (
        "<p class='legend'>The members are measured alone on validation only; the test cases "
        "are scored by the model itself"
        + (
            ", and the baseline's test figures are its own."
            if any(r.get("test_top1") is not None for r in rows[1:])
            else " (empty cells: not measured)."
        )
        + "</p>"
    )
    width = f"{62 / len(columns):.0f}%"
    return (
        metric_table(
            rows,
            columns,
            "member",
            level,
            first=("model", "Model"),
            widths=["38%", *([width] * len(columns))],
        )
        + note
    )


def _comparison_section(comparison: Mapping[str, Any], level: Any) -> str:
    if not comparison.get("champion"):
        return ""
    esc = html.escape
    champion = str(comparison["champion"])
    rows = [
        {
            "model": "This version",
            "candidate_top1": comparison.get("candidate_top1"),
            "candidate_top3": comparison.get("candidate_top3"),
        },
        {
            "model": f"Previous champion {champion}",
            "candidate_top1": comparison.get("champion_top1"),
            "candidate_top3": comparison.get("champion_top3"),
        },
        {
            "model": "Difference (95% interval)",
            "candidate_top1": Cell(
                esc(
                    f"{_pts(comparison.get('diff_top1'))} points "
                    f"[{_pts(comparison.get('diff_top1_low'))}, "
                    f"{_pts(comparison.get('diff_top1_high'))}]"
                ),
                numeric=True,
            ),
            "candidate_top3": Cell(
                esc(
                    f"{_pts(comparison.get('diff_top3'))} points "
                    f"[{_pts(comparison.get('diff_top3_low'))}, "
                    f"{_pts(comparison.get('diff_top3_high'))}]"
                ),
                numeric=True,
            ),
        },
    ]
    infos = [
        describe("comparison.n", level),
        describe("comparison.excluded_champion_used", level),
        describe("comparison.diff_top1", level),
        describe("comparison.margin", level),
    ]
    summary = (
        f"<p>{esc(infos[0].name)}: {esc(format_value(comparison.get('n'), 'count'))}; "
        f"{esc(infos[1].name.lower())}: "
        f"{esc(format_value(comparison.get('excluded_champion_used'), 'count'))}; "
        f"{esc(infos[3].name.lower())}: "
        f"{esc(format_value(comparison.get('margin'), 'share').replace('%', ' points'))}."
        + (f" Interval: {esc(str(comparison['method']))}." if comparison.get("method") else "")
        + "</p>"
    )
    table = metric_table(
        rows,
        ["candidate_top1", "candidate_top3"],
        "comparison",
        level,
        first=("model", "Model, on the compared cases"),
        widths=["40%", "30%", "30%"],
    )
    return summary + table + legend(infos)


def _coverage_section(report: Mapping[str, Any], review_threshold: float | None) -> str:
    coverage = (report.get("test") or {}).get("coverage") or []
    rows = []
    for point in coverage:
        if not isinstance(point, Mapping):
            continue
        t, cov = point.get("threshold"), point.get("coverage")
        row = dict(point)
        row["review_rate"] = 1.0 - cov if isinstance(cov, NUMERIC) else None
        at_review = review_threshold is not None and isinstance(t, NUMERIC)
        if at_review and abs(float(t) - review_threshold) < 1e-9:
            row["threshold"] = Cell(
                html.escape(f"{float(t):g} (the review threshold)"), numeric=True
            )
        rows.append(row)
    if not rows:
        return ""
    return "<h3>Review rate by confidence threshold</h3>" + metric_table(
        rows, ["threshold", "coverage", "review_rate", "accuracy", "n"], "coverage", None
    )


def _month_section(report: Mapping[str, Any], level: Any, max_rows: int) -> str:
    by_month = [
        r for r in (report.get("test") or {}).get("by_month") or [] if isinstance(r, Mapping)
    ]
    note = (report.get("split") or {}).get("note")
    if not by_month and not note:
        return ""
    parts = ["<h3>Out of time: accuracy by decision month</h3>"]
    if note:
        parts.append(f"<p class='legend'>{html.escape(str(note))}</p>")
    if by_month:
        newest_first = list(reversed(by_month))
        parts.append(
            metric_table(
                newest_first,
                ["month", "n", "top1", "top3"],
                "by_month",
                level,
                max_rows=max_rows,
                more=" earlier months",
            )
        )
    return "".join(parts)


def _per_code_sections(report: Mapping[str, Any], level: Any, max_rows: int) -> str:
    test = report.get("test") or {}
    true, pred = test.get("y_true"), test.get("y_pred")
    if not true or not pred or len(true) != len(pred):
        return ""
    correct = test.get("correct")
    if correct is None or len(correct) != len(true):
        correct = [str(a) == str(b) for a, b in zip(true, pred, strict=True)]
    parts: list[str] = []
    arrays = evaluation_arrays(report)
    if arrays is not None and "chapter" in arrays:
        chapters = accuracy_by_chapter(arrays["chapter"], arrays["correct"])
        chapters.sort(key=lambda r: (-r["n"], r["chapter"]))
        parts += [
            "<h3>Accuracy by HS chapter (largest first)</h3>",
            metric_table(
                chapters, ["chapter", "n", "accuracy"], "chapter", level,
                max_rows=max_rows, more=" chapters",
            ),
        ]  # fmt: skip
    per_code: dict[str, list[int]] = {}
    wrong: dict[str, Counter[str]] = {}
    confusions: Counter[tuple[str, str]] = Counter()
    for t, p, ok in zip(true, pred, correct, strict=True):
        t, p = str(t), str(p)
        counts = per_code.setdefault(t, [0, 0])
        counts[0] += 1
        if not ok:
            counts[1] += 1
            wrong.setdefault(t, Counter())[p] += 1
            confusions[(t, p)] += 1
    missed = [
        {
            "code": code,
            "n": n,
            "missed": m,
            "accuracy": (n - m) / n,
            "answered": wrong[code].most_common(1)[0][0],
        }
        for code, (n, m) in per_code.items()
        if m
    ]
    missed.sort(key=lambda r: (-r["missed"], r["accuracy"], r["code"]))
    if missed:
        parts += [
            "<h3>Codes most often missed</h3>",
            metric_table(
                missed, ["code", "n", "missed", "accuracy", "answered"], "code", level,
                max_rows=max_rows, more=" codes with a miss",
            ),
        ]  # fmt: skip
    pairs = [
        {"decided": t, "answered": p, "n": n}
        for (t, p), n in sorted(confusions.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    if pairs:
        parts += [
            "<h3>Most frequent confusions</h3>",
            metric_table(
                pairs, ["decided", "answered", "n"], "confusion", level,
                max_rows=max_rows, more=" pairs",
            ),
        ]  # fmt: skip
    return "".join(parts)


def version_html(
    version: Mapping[str, Any],
    review_threshold: float | None = None,
    max_rows: int = 15,
    plots: bool = True,
    verdict: bool = True,
) -> str:
    """The HTML section about one version dict (``version``, ``metrics``, ``info``,
    ``is_champion``, optionally ``report``): why it was or was not promoted, the model beside
    the TF-IDF + SVM baseline, the comparison with the champion, every figure with its meaning,
    review rates, accuracy by month, chapter and code (the top ``max_rows`` of each), plots."""
    esc = html.escape
    metrics = version.get("metrics") or {}
    report = version.get("report") or {}
    info = version.get("info") or {}
    level = version_level(version)
    parts = [verdict_box(version) if verdict else ""]
    served = report.get("served") or info.get("served") or {}
    facts = []
    if version.get("created_at"):
        facts.append(f"trained {version['created_at']}")
    if level:
        facts.append(f"predicts {code_kind(level)} ({level})")
    if info.get("inputs"):
        facts.append(f"from {info['inputs']}")
    if served.get("model"):
        facts.append(f"serves its {served['model']} model ({served.get('why', '')})")
    if info.get("metrics_describe"):
        facts.append(f"figures: {info['metrics_describe']}")
    if facts:
        parts.append(f"<p>{esc('; '.join(str(f) for f in facts))}.</p>")
    parts += ["<h3>The model beside the TF-IDF + SVM baseline</h3>"]
    parts.append(_baseline_section(metrics, report, level))
    comparison = _comparison_section(report.get("comparison") or {}, level)
    if comparison:
        parts += ["<h3>Comparison with the previous champion</h3>", comparison]
    parts += ["<h3>Every figure, and what it means</h3>", _key_figures(metrics, level)]
    parts.append(_coverage_section(report, review_threshold))
    parts.append(_month_section(report, level, max_rows=24))
    parts.append(_per_code_sections(report, level, max_rows=max_rows))
    if plots:
        for key, png in training_plots(report).items():
            parts.append(
                f"<h3>{esc(PLOT_TITLES[key])}</h3><img alt='{esc(key)}' src='{data_uri(png)}'>"
            )
    return "\n".join(p for p in parts if p)
