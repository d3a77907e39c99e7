"""What the reports read from a training report (report.json), and the series computed from
it: per-test-case confidence, correctness and chapter (``evaluation_arrays``), per-epoch
learning history (``learning_history``), accuracy by chapter, the reliability bins and their
ECE, the accuracy-versus-coverage curve.

Key names are tolerant, because a model version written by an older trainer may lack some
inputs or spell them differently: a missing input means a missing plot or table, never a
failed report. Numbers only; the pictures are ``hscode.report_plots``'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from model.calibrate import ece, reliability_bins


def first_present(mapping: Mapping[str, Any] | None, *keys: str) -> Any:
    """The value of the first of ``keys`` that ``mapping`` holds, not None; else None."""
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
    for scope in (first_present(report, "test", "evaluation", "eval"), report):
        if not isinstance(scope, Mapping):
            continue
        conf = first_present(scope, "confidence", "confidences", "top1_confidence", "top1_score")
        if conf is None:
            continue
        correct = first_present(scope, "correct", "top1_correct")
        true = first_present(scope, "y_true", "true_hs10", "labels", "true")
        if correct is None:
            pred = first_present(scope, "y_pred", "pred_hs10", "predictions", "pred")
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
    history = first_present(report, "history", "learning_curves", "epochs")
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


def accuracy_by_chapter(chapter: np.ndarray, correct: np.ndarray) -> list[dict[str, Any]]:
    rows = []
    for ch in sorted(set(chapter.tolist())):
        mask = chapter == ch
        rows.append({"chapter": ch, "n": int(mask.sum()), "accuracy": float(correct[mask].mean())})
    return rows


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


def accuracy_coverage_curve(
    confidence: np.ndarray, correct: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy on the most confident fraction of cases, for every coverage level."""
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(correct[order])
    n = np.arange(1, len(order) + 1)
    return n / len(order), hits / n
