"""Calibration: temperature scaling, expected calibration error, accuracy versus coverage.

Temperature scaling (Guo et al., 2017) divides the logits by one scalar T fitted on held-out
data to minimise the negative log-likelihood; it never changes the ranking of the codes, only
how much the scores can be trusted. The review rule abstains when the calibrated confidence is
below a threshold; :func:`coverage_curve` shows what that costs and buys.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class; labels are column indices (>= 0)."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return float("nan")
    p = probs[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(p, 1e-12, 1.0))))


def fit_temperature(
    logits: np.ndarray, labels: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)
) -> float:
    """The T > 0 minimising held-out NLL of softmax(logits / T).

    Rows whose label is negative (a class the model does not know) are ignored. Optimises log T
    with L-BFGS from T = 1, then clips to ``bounds``; returns 1.0 when there is nothing to fit.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    keep = labels >= 0
    if logits.ndim != 2 or keep.sum() == 0:
        return 1.0
    x = torch.as_tensor(logits[keep], dtype=torch.float64)
    y = torch.as_tensor(labels[keep])
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(x / log_t.exp(), y)
        loss.backward()
        return loss

    optimiser.step(closure)
    t = float(log_t.detach().exp())
    if not np.isfinite(t):
        return 1.0
    return float(np.clip(t, *bounds))


def ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error of the top-1 confidence, equal-width bins on [0, 1].

    ``labels`` are column indices; a negative label (unknown class) counts as a wrong answer.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if n == 0:
        return float("nan")
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            total += mask.sum() / n * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)


def coverage_curve(
    confidence: np.ndarray,
    correct: np.ndarray,
    thresholds: Sequence[float] = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95),
) -> list[dict[str, float]]:
    """For each review threshold: share of requests answered automatically (confidence >= t)
    and the top-1 accuracy on those. Accuracy is NaN when nothing is covered."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    points = []
    for t in thresholds:
        covered = confidence >= t
        n = int(covered.sum())
        points.append(
            {
                "threshold": float(t),
                "coverage": float(n / len(confidence)) if len(confidence) else float("nan"),
                "accuracy": float(correct[covered].mean()) if n else float("nan"),
                "n": n,
            }
        )
    return points


def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def mix_logits(
    a: np.ndarray, b: np.ndarray, weight: float, temp_a: float = 1.0, temp_b: float = 1.0
) -> np.ndarray:
    """Geometric mixture of two scorers: ``w * log_softmax(a / Ta) + (1 - w) * log_softmax(b /
    Tb)``, renormalised (a log-probability matrix, usable as logits)."""
    w = float(weight)
    return log_softmax(w * log_softmax(a, temp_a) + (1.0 - w) * log_softmax(b, temp_b))


def fit_mixture(
    a: np.ndarray, b: np.ndarray, labels: np.ndarray, grid: int = 21
) -> dict[str, float]:
    """Weight and member temperatures of :func:`mix_logits`, fitted on held-out scores.

    Each member's temperature minimises its own NLL; the weight of ``a`` (a grid of ``grid``
    points on [0, 1]) maximises top-1 + top-3 accuracy of the mixture, ties broken by NLL.
    Rows with a negative label (a class the model does not know) are ignored; with no usable
    row the result is the even mix at temperature 1.
    """
    labels = np.asarray(labels, dtype=np.int64)
    keep = labels >= 0
    if keep.sum() == 0:
        return {"weight": 0.5, "temp_a": 1.0, "temp_b": 1.0}
    a, b, y = np.asarray(a)[keep], np.asarray(b)[keep], labels[keep]
    temp_a, temp_b = fit_temperature(a, y), fit_temperature(b, y)
    la, lb = log_softmax(a, temp_a), log_softmax(b, temp_b)
    best: tuple[float, float, float] | None = None
    for w in np.linspace(0.0, 1.0, max(2, grid)):
        lp = log_softmax(w * la + (1.0 - w) * lb)
        k = min(3, lp.shape[1])
        order = np.argsort(-lp, axis=1, kind="stable")[:, :k]
        score = float(np.mean(order[:, 0] == y) + np.mean((order == y[:, None]).any(axis=1)))
        loss = float(-lp[np.arange(len(y)), y].mean())
        if best is None or (score, -loss) > (best[1], -best[2]):
            best = (float(w), score, loss)
    return {"weight": best[0], "temp_a": temp_a, "temp_b": temp_b}
