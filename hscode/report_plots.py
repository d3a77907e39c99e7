"""The pictures of a trained model, as PNG bytes: learning curves, accuracy by chapter, the
reliability diagram, accuracy versus coverage (``training_plots`` draws every one a training
report supports, keyed as in ``PLOT_TITLES``), and ``data_uri`` to inline a PNG in Markdown or
HTML.

matplotlib with the Agg backend (no display needed: flows run on workers without one). The
series drawn are computed by ``hscode.report_inputs``.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: flows run on workers without a display
import matplotlib.pyplot as plt
import numpy as np

from hscode.report_inputs import (
    accuracy_by_chapter,
    accuracy_coverage_curve,
    evaluation_arrays,
    learning_history,
    reliability_chart,
)

PLOT_TITLES = {
    "learning_curves": "Learning curves",
    "accuracy_by_chapter": "Accuracy by HS chapter",
    "reliability": "Reliability diagram",
    "accuracy_coverage": "Accuracy versus coverage",
}


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
