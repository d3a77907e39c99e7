"""Pictures and tables of a trained model: learning curves, accuracy by chapter,
reliability diagram, accuracy versus coverage; a training report in Markdown (for a
Prefect artifact) and a static HTML report of the champion and recent versions.

Plain Python + matplotlib (Agg backend: no display needed); no Prefect import.
Evaluation inputs are read from the training report with tolerant key names, because a
model version written by an older trainer may lack some of them: a missing input means
a missing plot, never a failed report.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: flows run on workers without a display
import matplotlib.pyplot as plt
import numpy as np

from model.calibrate import ece, reliability_bins

log = logging.getLogger(__name__)

PLOT_TITLES = {
    "learning_curves": "Learning curves",
    "accuracy_by_chapter": "Accuracy by HS chapter",
    "reliability": "Reliability diagram",
    "accuracy_coverage": "Accuracy versus coverage",
}


# ---------------------------------------------------------------- evaluation inputs


def _first(mapping: Mapping[str, Any] | None, *keys: str) -> Any:
    if not mapping:
        return None
    for key in keys:
        if key in mapping and mapping[key] is not None:
            return mapping[key]
    return None


def evaluation_arrays(report: Mapping[str, Any] | None) -> dict[str, np.ndarray] | None:
    """Per-test-case confidence, correctness and true chapter, if the report holds them.

    Accepts ``report["test"]`` / ``report["evaluation"]`` or the report itself, with
    ``confidence``/``confidences``, ``correct`` (bools) or ``y_true`` + ``y_pred``.
    """
    if not report:
        return None
    for scope in (_first(report, "test", "evaluation", "eval"), report):
        if not isinstance(scope, Mapping):
            continue
        conf = _first(scope, "confidence", "confidences", "top1_confidence", "top1_score")
        if conf is None:
            continue
        correct = _first(scope, "correct", "top1_correct")
        true = _first(scope, "y_true", "true_hs10", "labels", "true")
        if correct is None:
            pred = _first(scope, "y_pred", "pred_hs10", "predictions", "pred")
            if pred is None or true is None:
                continue
            correct = [str(a) == str(b) for a, b in zip(true, pred, strict=False)]
        conf_arr = np.asarray(conf, dtype=float)
        correct_arr = np.asarray(correct, dtype=bool)
        if conf_arr.shape != correct_arr.shape or conf_arr.size == 0:
            continue
        out = {"confidence": conf_arr, "correct": correct_arr}
        if true is not None and len(true) == conf_arr.size:
            out["chapter"] = np.asarray([str(t)[:2] for t in true])
        return out
    return None


def learning_history(report: Mapping[str, Any] | None) -> list[dict[str, float]]:
    """Per-epoch records (``epoch`` + numeric metrics), flattening per-encoder histories."""
    if not report:
        return []
    history = _first(report, "history", "learning_curves", "epochs")
    if isinstance(history, Mapping):
        # {"text": [...], "fusion": [...]} -> prefix each metric with its stage
        rows: list[dict[str, float]] = []
        for stage, records in history.items():
            if not isinstance(records, Sequence) or isinstance(records, (str, bytes)):
                continue  # a scalar next to the per-stage lists (e.g. an epoch count)
            for i, rec in enumerate(records):
                if isinstance(rec, Mapping):
                    row = {"epoch": float(rec.get("epoch", i + 1)), "stage": stage}
                    row.update({k: v for k, v in rec.items() if isinstance(v, (int, float))})
                    rows.append(row)
        return rows
    if isinstance(history, Sequence):
        return [
            {
                "epoch": float(rec.get("epoch", i + 1)),
                **{k: v for k, v in rec.items() if isinstance(v, (int, float))},
            }
            for i, rec in enumerate(history)
            if isinstance(rec, Mapping)
        ]
    return []


# ---------------------------------------------------------------- plots


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def plot_learning_curves(history: Sequence[Mapping[str, Any]]) -> bytes | None:
    if not history:
        return None
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    stages = sorted({str(r.get("stage", "")) for r in history})
    for stage in stages:
        rows = [r for r in history if str(r.get("stage", "")) == stage]
        epochs = [r["epoch"] for r in rows]
        metrics = sorted({k for r in rows for k in r if k not in ("epoch", "stage")})
        for metric in metrics:
            ys = [r.get(metric, np.nan) for r in rows]
            label = f"{stage} {metric}".strip()
            ax = ax_loss if "loss" in metric else ax_acc
            ax.plot(epochs, ys, marker="o", ms=3, label=label)
    ax_loss.set(title="Loss", xlabel="epoch")
    ax_acc.set(title="Accuracy", xlabel="epoch", ylim=(0, 1.02))
    for ax in (ax_loss, ax_acc):
        if ax.lines:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return _png(fig)


def accuracy_by_chapter(chapter: np.ndarray, correct: np.ndarray) -> list[dict[str, Any]]:
    rows = []
    for ch in sorted(set(chapter.tolist())):
        mask = chapter == ch
        rows.append({"chapter": ch, "n": int(mask.sum()), "accuracy": float(correct[mask].mean())})
    return rows


def plot_accuracy_by_chapter(rows: Sequence[Mapping[str, Any]]) -> bytes | None:
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(max(4, 0.45 * len(rows) + 2), 3.2))
    xs = [str(r["chapter"]) for r in rows]
    ax.bar(xs, [r["accuracy"] for r in rows], color="#4c72b0")
    for i, r in enumerate(rows):
        ax.text(i, min(r["accuracy"] + 0.02, 1.0), f"n={r['n']}", ha="center", fontsize=7)
    ax.set(title="Top-1 accuracy by HS chapter", xlabel="chapter (HS2)", ylim=(0, 1.08))
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray) -> float:
    """The ECE of top-1 confidences and their correctness, computed by ``model.calibrate.ece``
    (the stored ``ece_after`` metric's function, with its binning): one column of
    probabilities whose label is 0 when the answer was right and -1 (an unknown class, which
    ``ece`` counts as wrong) when it was not."""
    confidence = np.asarray(confidence, dtype=np.float64).reshape(-1, 1)
    labels = np.where(np.asarray(correct, dtype=bool).reshape(-1), 0, -1)
    return ece(confidence, labels)


def reliability_chart(
    confidence: np.ndarray, correct: np.ndarray
) -> tuple[list[dict[str, Any]], float]:
    """What the reliability diagram draws: the bins of ``model.calibrate.reliability_bins``
    and their ECE, binned exactly as the stored ``ece_after`` metric is."""
    return reliability_bins(confidence, correct), expected_calibration_error(confidence, correct)


def plot_reliability(confidence: np.ndarray, correct: np.ndarray) -> bytes | None:
    rows, ece_value = reliability_chart(confidence, correct)
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(3.8, 3.6))
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="perfect calibration")
    ax.plot(
        [r["mean_confidence"] for r in rows], [r["accuracy"] for r in rows], "o-", label="model"
    )
    ax.set(
        title=f"Reliability (ECE {ece_value:.3f})",
        xlabel="mean confidence",
        ylabel="accuracy",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _png(fig)


def accuracy_coverage_curve(
    confidence: np.ndarray, correct: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy on the most confident fraction of cases, for every coverage level."""
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(correct[order])
    n = np.arange(1, len(order) + 1)
    return n / len(order), hits / n


def plot_accuracy_coverage(confidence: np.ndarray, correct: np.ndarray) -> bytes | None:
    if confidence.size == 0:
        return None
    coverage, accuracy = accuracy_coverage_curve(confidence, correct)
    fig, ax = plt.subplots(figsize=(3.8, 3.6))
    ax.plot(coverage, accuracy)
    ax.set(
        title="Accuracy vs coverage",
        xlabel="coverage (most confident fraction answered)",
        ylabel="accuracy",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    ax.grid(alpha=0.3)
    return _png(fig)


def training_plots(report: Mapping[str, Any] | None) -> dict[str, bytes]:
    """The PNG plots a training report supports; keys as in ``PLOT_TITLES``."""
    plots: dict[str, bytes | None] = {
        "learning_curves": plot_learning_curves(learning_history(report))
    }
    arrays = evaluation_arrays(report)
    if arrays is not None:
        conf, correct = arrays["confidence"], arrays["correct"]
        if "chapter" in arrays:
            plots["accuracy_by_chapter"] = plot_accuracy_by_chapter(
                accuracy_by_chapter(arrays["chapter"], correct)
            )
        plots["reliability"] = plot_reliability(conf, correct)
        plots["accuracy_coverage"] = plot_accuracy_coverage(conf, correct)
    return {k: v for k, v in plots.items() if v}


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# ---------------------------------------------------------------- tables


def metric_rows(metrics: Mapping[str, Any] | None, prefix: str = "") -> list[dict[str, Any]]:
    """Flatten nested numeric metrics into ``[{"metric": "test.top1", "value": 0.83}]``."""
    rows: list[dict[str, Any]] = []
    for key, value in (metrics or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float)):
            rows.append({"metric": name, "value": value})
        elif isinstance(value, Mapping):
            rows.extend(metric_rows(value, prefix=f"{name}."))
    return rows


def markdown_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    float_format: str = ".4f",
) -> str:
    """A Markdown table (for artifacts and reports); pipes and newlines in cells escaped."""
    if not rows:
        return "_none_\n"
    cols = list(columns or rows[0].keys())
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(_cell(r.get(c), float_format) for c in cols) + " |")
    return "\n".join(out) + "\n"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def _cell(value: Any, float_format: str) -> str:
    if isinstance(value, float):
        return format(value, float_format)
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


# ---------------------------------------------------------------- reports


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


def html_report(
    champion: Mapping[str, Any] | None,
    versions: Sequence[Mapping[str, Any]],
    extra_sections: Sequence[tuple[str, str]] = (),
    generated_at: dt.datetime | None = None,
) -> str:
    """A self-contained HTML page (plots inline) about the champion and recent versions.

    ``champion``/``versions`` are dicts with ``version``, ``metrics``, ``created_at``,
    ``promoted``/``is_champion`` and optionally ``report`` (the training report).
    ``extra_sections`` are (title, pre-rendered HTML) pairs, e.g. recent scoring runs.
    """
    generated_at = generated_at or dt.datetime.now(dt.UTC)
    esc = html.escape
    body = [
        "<!doctype html><html><head><meta charset='utf-8'><title>HS-code recommender report</title>",
        _STYLE,
        "<h1>HS-code recommender report</h1>",
        f"<p>Generated {esc(generated_at.isoformat(timespec='seconds'))}</p>",
    ]
    if champion:
        body.append(f"<h2>Champion: {esc(str(champion.get('version')))}</h2>")
        body.append(_html_table(metric_rows(champion.get("metrics"))))
        for key, png in training_plots(champion.get("report")).items():
            body.append(
                f"<h3>{esc(PLOT_TITLES[key])}</h3><img alt='{esc(key)}' src='{data_uri(png)}'>"
            )
    else:
        body.append("<h2>No champion model yet</h2><p>Run <code>hscode train</code>.</p>")
    body.append("<h2>Recent model versions</h2>")
    rows = []
    for v in versions:
        row: dict[str, Any] = {
            "version": v.get("version"),
            "created": v.get("created_at"),
            "champion": "yes" if v.get("is_champion") else "",
        }
        # a dozen metrics keep the table readable; the full set is in each version's dir
        row.update({m["metric"]: m["value"] for m in metric_rows(v.get("metrics"))[:12]})
        rows.append(row)
    body.append(_html_table(rows))
    for title, section in extra_sections:
        body.append(f"<h2>{esc(title)}</h2>{section}")
    body.append("</body></html>")
    return "\n".join(body)


_STYLE = (
    "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
    "text-align:left;font-size:13px}img{max-width:100%;margin:.5em}</style></head><body>"
)


def _html_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)
    lines = [f"<table><tr>{head}</tr>"]
    for r in rows:
        lines.append("<tr>" + "".join(f"<td>{esc(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def html_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Public alias for callers building ``extra_sections``."""
    return _html_table(rows)


def dumps_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str, ensure_ascii=False)
