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


def test_reliability_chart_bins_give_the_calibrate_ece_with_unknown_labels():
    """The diagram's bins are model.calibrate's: their size-weighted gap is ``ece`` of the same
    probabilities, with a label the model never saw counted wrong (as the training report's
    ``correct`` counts it), and the confidences stored as float32 (as ``predict_proba`` gives)."""
    from model.calibrate import ece

    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.full(6, 0.4), size=500)
    labels = rng.integers(-1, 6, size=500)  # -1: an unknown class
    confidence = probs.astype(np.float32).max(axis=1).astype(float)
    correct = probs.argmax(axis=1) == labels
    rows, chart_ece = reports.reliability_chart(confidence, correct)
    n = sum(r["n"] for r in rows)
    from_bins = sum(r["n"] / n * abs(r["accuracy"] - r["mean_confidence"]) for r in rows)
    assert n == len(labels)
    assert from_bins == pytest.approx(ece(probs, labels), abs=1e-6)
    assert chart_ece == pytest.approx(ece(probs, labels), abs=1e-6)


def test_training_report_reliability_bins_give_the_stored_ece(settings):
    """End to end: a trained version's report (what the reliability diagram draws) and its
    stored ``test_ece_after`` metric bin the same way."""
    from hscode.case_records import synthetic_case_records
    from hscode.cases import upsert_cases
    from hscode.registry import Registry
    from hscode.training import SMOKE_TRAIN, TrainConfig, train_and_register

    upsert_cases(settings, synthetic_case_records(120, 0, "ece"))
    outcome = train_and_register(settings, TrainConfig(**SMOKE_TRAIN, refit=False))
    report = Registry.from_settings(settings).read_report(outcome.version)
    arrays = reports.evaluation_arrays(report)
    assert arrays is not None
    rows, chart_ece = reports.reliability_chart(arrays["confidence"], arrays["correct"])
    n = sum(r["n"] for r in rows)
    from_bins = sum(r["n"] / n * abs(r["accuracy"] - r["mean_confidence"]) for r in rows)
    stored = Registry.from_settings(settings).get(outcome.version).metrics["test_ece_after"]
    assert n == outcome.metrics["n_test"]
    assert from_bins == pytest.approx(stored, abs=1e-6)
    assert chart_ece == pytest.approx(stored, abs=1e-6)


def test_html_report_of_trained_versions_names_every_figure(settings):
    """End to end: two trained versions (the second compared with the first) as
    ``hscode report`` passes them; every metric training writes has a name and a meaning in
    ``reports.METRICS``, and the page shows them, the baseline row and the gate's reason."""
    import dataclasses
    import html as html_lib

    from hscode.case_records import synthetic_case_records
    from hscode.cases import upsert_cases
    from hscode.registry import Registry
    from hscode.training import SMOKE_TRAIN, TrainConfig, train_and_register

    upsert_cases(settings, synthetic_case_records(120, 0, "html"))
    train_and_register(settings, TrainConfig(**SMOKE_TRAIN, refit=False))
    upsert_cases(settings, synthetic_case_records(40, 1, "html2"))
    second = train_and_register(settings, TrainConfig(**SMOKE_TRAIN, refit=False))
    registry = Registry.from_settings(settings)
    versions = [
        dataclasses.asdict(v) | {"is_champion": v.champion} for v in registry.list_versions()
    ]
    newest = next(v for v in versions if v["version"] == second.version)
    newest["report"] = registry.read_report(second.version)
    champion = next(v for v in versions if v["is_champion"])
    if champion is not newest:
        champion["report"] = registry.read_report(champion["version"])

    undescribed = [k for k in second.metrics if k not in reports.METRICS]
    assert undescribed == [], "name and explain them in hscode.reports.METRICS"
    assert "compared_diff_top1" in second.metrics  # the comparison's figures are covered too
    page = reports.html_report(champion, versions)
    shown = [k for k in champion["metrics"] if k not in reports.METRIC_ALIASES]
    for key in shown:
        info = reports.describe(key, "hs10")
        assert html_lib.escape(info.name) in page and html_lib.escape(info.meaning) in page, key
    assert html_lib.escape(second.reason) in page
    assert "<b>TF-IDF + SVM baseline</b>" in page
    assert "no description in hscode.reports.METRICS" not in page
