"""The model reports: the training report in Markdown (``training_report_markdown``, for a
Prefect artifact) and the static HTML page about the champion and recent versions
(``html_report``: the latest run's verdict at the top, the champion's section, the versions
table, callers' extra sections, the page's style).

This module is the entry point callers import from; it re-exports the names they use from
the modules that own each job:

- ``hscode.metrics_catalog``: what every figure means (``METRICS``, ``describe``,
  ``format_value``);
- ``hscode.report_inputs``: what is read from a training report, and the series computed
  from it;
- ``hscode.report_plots``: the matplotlib plots as PNG bytes, ``data_uri``;
- ``hscode.report_tables``: Markdown and HTML tables, truncation, escaping;
- ``hscode.report_version``: the HTML section about one version, and why it was or was not
  promoted.

Plain Python + matplotlib (Agg backend); no Prefect import.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hscode.metrics_catalog import (
    MEMBER_NAMES,
    METRIC_ALIASES,
    METRICS,
    MetricInfo,
    code_digits,
    describe,
    format_value,
)
from hscode.report_inputs import (
    accuracy_by_chapter,
    accuracy_coverage_curve,
    evaluation_arrays,
    expected_calibration_error,
    learning_history,
    reliability_chart,
)
from hscode.report_plots import (
    PLOT_TITLES,
    data_uri,
    plot_accuracy_by_chapter,
    plot_accuracy_coverage,
    plot_learning_curves,
    plot_reliability,
    training_plots,
)
from hscode.report_tables import Cell, html_table, legend, markdown_table, metric_rows, render_table
from hscode.report_version import (
    baseline_rows,
    explain_promotion,
    gate_record,
    verdict_box,
    version_html,
    version_level,
)
from hscode.review import ReviewPolicy

__all__ = [
    "MEMBER_NAMES",
    "METRICS",
    "METRIC_ALIASES",
    "PLOT_TITLES",
    "MetricInfo",
    "accuracy_by_chapter",
    "accuracy_coverage_curve",
    "baseline_rows",
    "code_digits",
    "data_uri",
    "describe",
    "dumps_json",
    "evaluation_arrays",
    "expected_calibration_error",
    "explain_promotion",
    "format_value",
    "gate_record",
    "gate_section",
    "html_report",
    "html_table",
    "learning_history",
    "markdown_table",
    "metric_rows",
    "plot_accuracy_by_chapter",
    "plot_accuracy_coverage",
    "plot_learning_curves",
    "plot_reliability",
    "reliability_chart",
    "training_plots",
    "training_report_markdown",
    "version_html",
]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- the training report (Markdown)


def gate_section(report: Mapping[str, Any] | None) -> list[str]:
    """Markdown parts: the champion comparison, which model serves, accuracy by month."""
    if not report:
        return []
    parts: list[str] = []
    comparison = report.get("comparison") or {}
    if comparison.get("champion"):
        rows = [
            {
                "model": "candidate (evaluated)",
                "top-1": comparison.get("candidate_top1"),
                "top-3": comparison.get("candidate_top3"),
            },
            {
                "model": f"champion {comparison['champion']} (evaluated)",
                "top-1": comparison.get("champion_top1"),
                "top-3": comparison.get("champion_top3"),
            },
        ]
        lo, hi = comparison.get("diff_top1_low"), comparison.get("diff_top1_high")
        parts += [
            "## Comparison with the champion\n",
            (
                f"On {comparison.get('n', 0)} test cases neither model learned from "
                f"({comparison.get('excluded_champion_used', 0)} of the candidate's test cases "
                "were left out because the champion had learned from them). Top-1 difference "
                f"{comparison.get('diff_top1', float('nan')):+.4f}, 95% interval "
                f"{lo if lo is not None else float('nan'):+.4f} .. "
                f"{hi if hi is not None else float('nan'):+.4f} ({comparison.get('method', '')}); "
                f"promotion needs the lower end >= -{comparison.get('margin', 0):.3f}.\n"
            ),
            markdown_table(rows),
        ]
    served = report.get("served") or {}
    if served:
        parts.append(
            f"**Served model:** {served.get('model')} ({served.get('why')}; "
            f"{served.get('n_examples')} cases).\n"
        )
    by_month = ((report.get("test") or {}).get("by_month")) or []
    if len(by_month) > 1 or (by_month and by_month[0].get("month") != "undated"):
        parts += ["## Test accuracy by decision month\n", markdown_table(by_month)]
    split = report.get("split") or {}
    if split.get("note"):
        parts.append(f"_{split['note']}_\n")
    return parts


def training_report_markdown(
    version: str,
    metrics: Mapping[str, Any] | None,
    promoted: bool,
    reason: str | None,
    report: Mapping[str, Any] | None,
    champion_metrics: Mapping[str, Any] | None = None,
    image_dir: Path | None = None,
) -> str:
    """Markdown for the training-report artifact.

    Plots are embedded as base64 data URIs; with ``image_dir`` they are also saved as
    PNG files there (for UIs that strip data URIs) and linked.
    """
    verdict = "promoted to champion" if promoted else "not promoted"
    parts = [
        f"# Training report: `{version}`\n",
        f"**{verdict}**" + (f": {reason}" if reason else "") + "\n",
        "## Metrics\n",
        markdown_table(metric_rows(metrics)),
    ]
    if champion_metrics:
        parts += ["## Previous champion\n", markdown_table(metric_rows(champion_metrics))]
    parts += gate_section(report)
    arrays = evaluation_arrays(report)
    if arrays is not None and "chapter" in arrays:
        parts += [
            "## Accuracy by chapter\n",
            markdown_table(accuracy_by_chapter(arrays["chapter"], arrays["correct"])),
        ]
    plots = training_plots(report)
    if plots:
        parts.append("## Plots\n")
    for key, png in plots.items():
        title = PLOT_TITLES[key]
        parts.append(f"### {title}\n\n![{title}]({data_uri(png)})\n")
        if image_dir is not None:
            path = Path(image_dir) / f"{version}-{key}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png)
            parts.append(f"[{path.name}]({path.resolve().as_uri()})\n")
    if not plots:
        parts.append("_No evaluation details recorded for plots._\n")
    return "\n".join(parts)


# ---------------------------------------------------------------- the HTML page


_VERSION_COLUMNS = ("test_top1", "test_top3", "test_ece_after", "n_test")


def _versions_section(versions: Sequence[Mapping[str, Any]], max_rows: int) -> str:
    esc = html.escape
    rows = []
    levels = []
    for v in versions:
        metrics = {m["metric"]: m["value"] for m in metric_rows(v.get("metrics"))}
        promoted, reason = gate_record(v)
        levels.append(version_level(v))
        rows.append(
            {
                "version": v.get("version"),
                "created": v.get("created_at"),
                "serving": "yes" if v.get("is_champion") else "",
                "promoted": {True: "yes", False: "no", None: "?"}[promoted],
                "why": Cell(esc(reason or "not recorded")),
                **{k: metrics.get(k) for k in _VERSION_COLUMNS},
            }
        )
    level = levels[0] if levels and len(set(map(str, levels))) == 1 else None
    infos = {k: describe(k, level) for k in _VERSION_COLUMNS}
    columns = [
        ("version", "Version"),
        ("created", "Trained"),
        ("serving", "Champion"),
        ("promoted", "Promoted"),
        ("why", "Why (the gate's reason)"),
        *((k, infos[k].name) for k in _VERSION_COLUMNS),
    ]
    table = render_table(
        rows,
        columns,
        kinds={k: i.kind for k, i in infos.items()},
        widths=["13%", "11%", "7%", "7%", "30%", "8%", "8%", "8%", "8%"],
        max_rows=max_rows,
        more=" versions",
    )
    return table + legend(infos.values())


def html_report(
    champion: Mapping[str, Any] | None,
    versions: Sequence[Mapping[str, Any]],
    extra_sections: Sequence[tuple[str, str]] = (),
    generated_at: dt.datetime | None = None,
    review_threshold: float | None = None,
    max_rows: int = 15,
) -> str:
    """A self-contained HTML page (plots inline, no external assets) about the champion and
    recent versions, explaining itself: why the newest version was or was not promoted at the
    top, every figure named in words with its meaning, the TF-IDF + SVM baseline beside the
    model, long tables cut to ``max_rows`` rows.

    ``champion``/``versions`` are dicts with ``version``, ``metrics``, ``created_at``,
    ``is_champion``, ``info`` (``gate``, ``served``, ...) and optionally ``report`` (the
    training report). ``extra_sections`` are (title, pre-rendered HTML) pairs, e.g. recent
    scoring runs. ``review_threshold`` (default: the settings' default) marks its row in the
    review-rate table.
    """
    if review_threshold is None:
        review_threshold = ReviewPolicy().threshold
    generated_at = generated_at or dt.datetime.now(dt.UTC)
    esc = html.escape
    body = [
        "<!doctype html><html><head><meta charset='utf-8'>"
        + "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        + "<title>HS-code recommender report</title>",
        _STYLE,
        "<h1>HS-code recommender report</h1>",
        f"<p class='legend'>Generated {esc(generated_at.isoformat(timespec='seconds'))}</p>",
    ]
    newest = max(versions, key=lambda v: str(v.get("created_at") or ""), default=None)
    same = False
    if newest is not None:
        same = champion is not None and newest.get("version") == champion.get("version")
        shown = champion if same else newest
        body.append("<h2>Latest training run</h2>")
        body.append(
            verdict_box(
                shown,
                heading=f"{newest.get('version')}"
                + (" (the champion)" if newest.get("is_champion") else "")
                + ":",
            )
        )
    if champion:
        body.append(f"<h2>Champion: {esc(str(champion.get('version')))}</h2>")
        body.append(
            version_html(
                champion, review_threshold=review_threshold, max_rows=max_rows, verdict=not same
            )
        )
    else:
        body.append("<h2>No champion model yet</h2><p>Run <code>hscode train</code>.</p>")
    body.append("<h2>Recent model versions</h2>")
    body.append(_versions_section(versions, max_rows=max(max_rows, 20)))
    for title, section in extra_sections:
        body.append(f"<h2>{esc(title)}</h2>{section}")
    body.append("</body></html>")
    return "\n".join(body)


_STYLE = (
    "<style>"
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;color:#222;"
    "line-height:1.4;margin:1.5em auto;padding:0 1em;max-width:1100px}"
    "h2{margin-top:1.6em;border-bottom:1px solid #ddd}h3{margin-top:1.2em}"
    "table{border-collapse:collapse;margin:.5em 0;width:100%;table-layout:fixed}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top;"
    "font-size:13px;overflow-wrap:anywhere;word-break:break-word}"
    "th{background:#f4f4f4}tr.group th{background:#e8eef6}"
    "td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}"
    "tr.more td{font-style:italic;color:#666}"
    ".legend{font-size:12px;color:#555;margin:.2em 0 .8em}"
    ".verdict{padding:.6em 1em;margin:.8em 0;border-left:6px solid #999;background:#f6f6f6}"
    ".verdict.promoted{border-color:#2e7d32;background:#edf7ee}"
    ".verdict.kept{border-color:#c62828;background:#fbeeee}"
    ".verdict small{color:#555}"
    "img{max-width:100%;height:auto;margin:.5em 0}code{overflow-wrap:anywhere}"
    "</style></head><body>"
)


def dumps_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str, ensure_ascii=False)
