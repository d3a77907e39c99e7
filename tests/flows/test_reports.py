"""Training-report plots and tables (hscode.reports): no Prefect needed."""

from __future__ import annotations

import numpy as np
import pytest

from hscode import reports

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def evaluation():
    rng = np.random.default_rng(0)
    n = 200
    confidence = rng.uniform(0.05, 1.0, n)
    correct = rng.uniform(0, 1, n) < confidence  # calibrated by construction
    true = rng.choice(["9608100000", "6109101000", "0202300000", "8471300000"], n)
    pred = np.where(correct, true, "3304101000")
    return {
        "history": [
            {"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.2 / e, "val_top1": 0.5 + 0.1 * e}
            for e in range(1, 5)
        ],
        "test": {
            "confidence": confidence.tolist(),
            "y_true": true.tolist(),
            "y_pred": pred.tolist(),
        },
    }


def test_every_plot_is_a_png(evaluation):
    plots = reports.training_plots(evaluation)
    assert set(plots) == set(reports.PLOT_TITLES)
    assert all(png.startswith(PNG_MAGIC) and len(png) > 2000 for png in plots.values())


def test_missing_evaluation_gives_fewer_plots_not_an_error():
    assert reports.training_plots(None) == {}
    only_history = reports.training_plots({"history": [{"epoch": 1, "train_loss": 1.0}]})
    assert set(only_history) == {"learning_curves"}


def test_accuracy_coverage_is_monotone_for_calibrated_scores():
    confidence = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    correct = np.array([True, True, True, False, False])
    coverage, accuracy = reports.accuracy_coverage_curve(confidence, correct)
    assert coverage.tolist() == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert accuracy.tolist() == [1.0, 1.0, 1.0, 0.75, 0.6]


def test_expected_calibration_error_of_overconfident_model():
    confidence = np.full(10, 0.95)
    correct = np.array([True] * 5 + [False] * 5)
    assert reports.expected_calibration_error(confidence, correct) == pytest.approx(0.45)
    by_chapter = reports.accuracy_by_chapter(
        np.array(["96", "96", "61"]), np.array([True, False, True])
    )
    assert by_chapter == [
        {"chapter": "61", "n": 1, "accuracy": 1.0},
        {"chapter": "96", "n": 2, "accuracy": 0.5},
    ]


def test_training_report_markdown_embeds_and_saves_plots(evaluation, tmp_path):
    md = reports.training_report_markdown(
        "v0001",
        {"test": {"top1": 0.81, "top5": 0.97}, "n_train": 120},
        promoted=True,
        reason="first model",
        report=evaluation,
        image_dir=tmp_path,
    )
    assert "promoted to champion" in md and "| test.top1 | 0.8100 |" in md
    assert md.count("data:image/png;base64,") == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"v0001-{k}.png" for k in reports.PLOT_TITLES
    )


def test_html_report_lists_versions(evaluation):
    champion = {
        "version": "v0002",
        "metrics": {"top1": 0.8},
        "report": evaluation,
        "is_champion": True,
    }
    html = reports.html_report(
        champion,
        [champion, {"version": "v0001", "metrics": {"top1": 0.7}}],
        [("Recent scoring runs", reports.html_table([{"model_version": "v0002", "requests": 50}]))],
    )
    assert html.startswith("<!doctype html>") and "Champion: v0002" in html
    assert html.count("<img") == 4 and "v0001" in html and "Recent scoring runs" in html
