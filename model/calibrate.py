"""Calibration: temperature scaling, expected calibration error, accuracy versus coverage.

Temperature scaling (Guo et al., 2017) divides the logits by one scalar T fitted on held-out
data to minimise the negative log-likelihood; it never changes the ranking of the codes, only
how much the scores can be trusted. The review rule abstains when the calibrated confidence is
below a threshold; :func:`coverage_curve` shows what that costs and buys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


def _nll_slope(
    x: np.ndarray, truth: np.ndarray, beta: float, chunk: int = 2048
) -> tuple[float, float]:
    """The first and second derivatives in ``beta`` of the mean NLL of softmax(beta * x):
    mean(E_p[x] - x_true) and mean(Var_p[x]), ``chunk`` rows at a time."""
    slope = curve = 0.0
    for lo in range(0, len(x), chunk):
        part = x[lo : lo + chunk]
        z = part * beta
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        total = z.sum(axis=1)
        z *= part  # p * x, unnormalised
        mean = z.sum(axis=1) / total
        z *= part  # p * x^2
        second = z.sum(axis=1) / total
        slope += float((mean - truth[lo : lo + chunk]).sum())
        curve += float(np.maximum(second - mean * mean, 0.0).sum())
    return slope / len(x), curve / len(x)


def fit_temperature(
    logits: np.ndarray, labels: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)
) -> float:
    """The T in ``bounds`` minimising held-out NLL of softmax(logits / T).

    Rows whose label is negative (a class the model does not know) are ignored; returns 1.0
    when there is nothing to fit. The NLL is convex in beta = 1 / T, so a Newton step on beta
    inside a bracket that its slope's sign narrows (bisection when a step leaves it) finds the
    minimum in a few passes over the logits (0.3 s against L-BFGS through autograd's
    4.6-7.2 s on 8,000 x 1,910 logits, the same T to 2e-5: ``benchmarks.bench_temperature``).
    It stops where the NLL is flat in log T (a slope under 1e-7: separable logits stop there
    instead of running to the bound); a minimum beyond ``bounds`` gives the bound.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    keep = labels >= 0
    if logits.ndim != 2 or keep.sum() == 0:
        return 1.0
    x = logits[keep]
    if not np.isfinite(x).all():
        return 1.0
    truth = x[np.arange(len(x)), labels[keep]]
    lo, hi = 1.0 / bounds[1], 1.0 / bounds[0]
    beta = float(np.clip(1.0, lo, hi))
    for _ in range(100):
        slope, curve = _nll_slope(x, truth, beta)
        if abs(beta * slope) < 1e-7:  # flat in log T (L-BFGS's default tolerance)
            break
        if slope > 0:
            hi = beta  # the NLL rises here: its minimum is at a smaller beta
        else:
            lo = beta
        step = beta - slope / curve if curve > 0 else np.nan
        nxt = step if lo < step < hi else (lo * hi) ** 0.5
        converged = abs(nxt - beta) <= 1e-10 * beta or hi - lo <= 1e-10 * hi
        beta = nxt
        if converged:
            break
    return float(np.clip(1.0 / beta, *bounds))


def reliability_bins(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15
) -> list[dict[str, float | int | str]]:
    """Equal-width bins of the top-1 confidence on [0, 1] (right edges closed): for each
    non-empty bin its range, size, mean confidence and accuracy. The one binning behind
    :func:`ece` (the stored ``ece_*`` metrics), the report's reliability diagram and the
    calibration benchmark; ``n_bins`` defaults to :func:`ece`'s, so the diagram's bins give
    the stored ECE (``tests/system/flows/test_reports.py``)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    rows: list[dict[str, float | int | str]] = []
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            rows.append(
                {
                    "bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}",
                    "n": int(mask.sum()),
                    "mean_confidence": float(confidence[mask].mean()),
                    "accuracy": float(correct[mask].mean()),
                }
            )
    return rows


def ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error of the top-1 confidence: the size-weighted gap between
    accuracy and mean confidence over the bins of :func:`reliability_bins` (same default
    ``n_bins``).

    ``labels`` are column indices; a negative label (unknown class) counts as a wrong answer.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    return top1_ece(probs.max(axis=1), probs.argmax(axis=1) == labels, n_bins)


def top1_ece(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """:func:`ece` from the top-1 confidence and whether the top-1 answer was right (for
    scores that are not a full probability matrix, e.g. a request's served confidence)."""
    n = len(confidence)
    if n == 0:
        return float("nan")
    rows = reliability_bins(confidence, correct, n_bins)
    return float(sum(r["n"] / n * abs(r["accuracy"] - r["mean_confidence"]) for r in rows))


def coverage_curve(
    confidence: np.ndarray,
    correct: np.ndarray,
    thresholds: Sequence[float] = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95),
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


def _simplex(n: int, grid: int) -> list[tuple[float, ...]]:
    """Every weight vector of ``n`` non-negative entries summing to 1 on a ``grid``-point lattice
    (``grid - 1`` steps), the first member's weight ascending."""
    steps = max(1, grid - 1)
    out: list[tuple[float, ...]] = []

    def rec(prefix: tuple[int, ...], left: int) -> None:
        if len(prefix) == n - 1:
            out.append(tuple(x / steps for x in (*prefix, left)))
            return
        for i in range(left + 1):
            rec((*prefix, i), left - i)

    rec((), steps)
    return out


def _lattice_accuracy(
    logps: Sequence[np.ndarray], y: np.ndarray, lattice: np.ndarray, chunk: int = 256
) -> np.ndarray:
    """Top-1 + top-3 accuracy of ``log_softmax(sum_i w_i * logps[i])`` for every weight row
    of ``lattice`` [M, n], exactly, without forming any mixture.

    A code c outranks the true code y under weights w >= 0 only if ``w . d_c >= 0``, where
    ``d_c[i] = logps[i][r, c] - logps[i][r, y]``; that needs some member with ``d_c[i] >= 0``.
    So only those (row, code) pairs are kept, and usually few are: a row that every member
    ranks right has none. A tie counts against the true code (two sibling codes that the
    weighted members score the same cannot both be right). The normalisation of the mixture
    shifts a row by a constant and changes no rank."""
    n_rows, n_codes = logps[0].shape
    rows = np.arange(n_rows)
    truth = [lp[rows, y] for lp in logps]
    candidate = np.zeros((n_rows, n_codes), dtype=bool)
    for lp, t in zip(logps, truth, strict=True):
        candidate |= lp >= t[:, None]
    candidate[rows, y] = False
    pair_rows, pair_codes = np.nonzero(candidate)  # row-major: grouped by row
    d_pairs = np.stack(
        [lp[pair_rows, pair_codes] - t[pair_rows] for lp, t in zip(logps, truth, strict=True)]
    )  # [n, P]
    k = min(3, n_codes)
    score = np.zeros(len(lattice), dtype=np.float64)
    if len(pair_rows) == 0:
        return score + 2.0
    starts = np.flatnonzero(np.r_[True, pair_rows[1:] != pair_rows[:-1]])
    clean = n_rows - len(starts)  # rows no code can outrank: right at top-1 and top-3
    for lo in range(0, len(lattice), chunk):
        w = lattice[lo : lo + chunk]
        beats = (w @ d_pairs >= 0).astype(np.int32)  # [m, P]
        rank = np.add.reduceat(beats, starts, axis=1)  # [m, rows with pairs]
        score[lo : lo + chunk] = (
            2 * clean + (rank == 0).sum(axis=1) + (rank < k).sum(axis=1)
        ) / n_rows
    return score


def _lattice_nll(
    logps: Sequence[np.ndarray], y: np.ndarray, lattice: np.ndarray, chunk: int = 16
) -> np.ndarray:
    """The NLL of ``log_softmax(sum_i w_i * logps[i])`` for every weight row of ``lattice``,
    in chunks of weights."""
    stacked = torch.as_tensor(np.stack(logps), dtype=torch.float64)  # [n, N, C]
    n, n_rows, n_codes = stacked.shape
    flat = stacked.reshape(n, n_rows * n_codes)
    truth = stacked[:, torch.arange(n_rows), torch.as_tensor(y)]  # [n, N]
    weights = torch.as_tensor(lattice, dtype=torch.float64)
    out = []
    for lo in range(0, len(weights), chunk):
        w = weights[lo : lo + chunk]
        mixed = (w @ flat).reshape(len(w), n_rows, n_codes)
        out.append((torch.logsumexp(mixed, dim=2) - w @ truth).mean(dim=1))
    return torch.cat(out).numpy()


@dataclass
class Ensemble:
    """Geometric mixture of temperature-scaled scorers:
    ``log p = log_softmax(sum_i w_i * log_softmax(s_i / T_i))``, weights summing to 1.

    :meth:`fit` chooses it on held-out scores: each member's temperature minimises its own
    NLL; the weights (a lattice on the simplex) maximise top-1 + top-3 accuracy of the mixture,
    ties broken by NLL. The one implementation of the ensemble, used by ``model.pipeline`` and
    the benchmarks.
    """

    temperatures: list[float]
    weights: list[float]

    @classmethod
    def fit(cls, val_scores: Sequence[np.ndarray], labels: np.ndarray, grid: int = 11) -> Ensemble:
        """Rows with a negative label (a class the model does not know) are ignored; with no
        usable row the result is the even mix at temperature 1."""
        n = len(val_scores)
        if n == 0:
            raise ValueError("an ensemble needs at least one member")
        labels = np.asarray(labels, dtype=np.int64)
        keep = labels >= 0
        if keep.sum() == 0:
            return cls(temperatures=[1.0] * n, weights=[1.0 / n] * n)
        y = labels[keep]
        scores = [np.asarray(s, dtype=np.float64)[keep] for s in val_scores]
        temps = [fit_temperature(s, y) for s in scores]
        logps = [log_softmax(s, t) for s, t in zip(scores, temps, strict=True)]
        lattice = np.array(_simplex(n, grid) if n > 1 else [(1.0,)], dtype=np.float64)
        score = _lattice_accuracy(logps, y, lattice)
        # ties on accuracy are broken by NLL, the first lattice point among equals
        tied = np.flatnonzero(score == score.max())
        losses = _lattice_nll(logps, y, lattice[tied]) if len(tied) > 1 else np.zeros(1)
        best = lattice[tied[int(np.argmin(losses))]]
        return cls(temperatures=[float(t) for t in temps], weights=[float(w) for w in best])

    def log_probs(self, scores: Sequence[np.ndarray | None]) -> np.ndarray:
        """The mixture's log-probabilities [N, C] (usable as logits).

        A member whose weight is 0 adds nothing, so its scores may be ``None`` (not computed).
        """
        if len(scores) != len(self.weights):
            raise ValueError(f"{len(scores)} score matrices for {len(self.weights)} members")
        used = [
            (w, s, t)
            for w, s, t in zip(self.weights, scores, self.temperatures, strict=True)
            if w != 0.0
        ]
        if any(s is None for _, s, _ in used):
            raise ValueError("scores missing for a member with a non-zero weight")
        if not used:
            raise ValueError("every mixture weight is 0")
        return log_softmax(sum(w * log_softmax(s, t) for w, s, t in used))

    def needed(self) -> list[bool]:
        """Which members' scores :meth:`log_probs` uses (weight != 0)."""
        return [w != 0.0 for w in self.weights]

    def to_dict(self) -> dict[str, list[float]]:
        return {"temperatures": list(self.temperatures), "weights": list(self.weights)}

    @classmethod
    def from_dict(cls, data: dict) -> Ensemble:
        return cls(
            temperatures=[float(t) for t in data["temperatures"]],
            weights=[float(w) for w in data["weights"]],
        )


@dataclass
class MixtureChoice:
    """What :func:`choose_mixture` decided, and the validation scores it decided on."""

    mixture: Ensemble
    oof: np.ndarray  # [N, C] out-of-fold log-probabilities of the shipped choice
    member_top1: list[float]  # each member alone on validation
    mixed_top1: float  # the cross-fitted mixture, out of fold
    single: int | None  # the member that serves alone, when the mixture did not earn its place
    cross_fitted: bool


def _top1(scores: np.ndarray, labels: np.ndarray) -> float:
    known = labels >= 0
    if not known.any():
        return float("nan")
    return float(np.mean(scores.argmax(1)[known] == labels[known]))


def choose_mixture(
    scores: Sequence[np.ndarray], labels: np.ndarray, parts: tuple[np.ndarray, np.ndarray] | None
) -> MixtureChoice:
    """The ensemble mixture, chosen on validation only and checked out of fold.

    With ``parts`` (two disjoint row sets covering the validation rows) the mixture is
    cross-fitted: chosen on one part and applied to the other, both ways, so every row gets a
    mixed score from a mixture that never saw it. The shipped mixture is chosen on all rows.
    When one member alone ranks better (top-1) on validation than the mixture does out of
    fold, that member serves alone: a member's ranking does not depend on its temperature, so
    its validation top-1 involves no fitting. Without ``parts`` (too little validation data)
    the scores are in-sample and the mixture is kept.
    """
    labels = np.asarray(labels, dtype=np.int64)
    mixture = Ensemble.fit(scores, labels)
    if parts is not None:
        oof = np.zeros(np.shape(scores[0]), dtype=np.float64)
        for fit_rows, apply_rows in (parts, parts[::-1]):
            part = Ensemble.fit([s[fit_rows] for s in scores], labels[fit_rows])
            oof[apply_rows] = part.log_probs([s[apply_rows] for s in scores])
    else:
        oof = mixture.log_probs(scores)
    member_top1 = [_top1(np.asarray(s), labels) for s in scores]
    mixed_top1 = _top1(oof, labels)
    best = int(np.nanargmax(member_top1)) if not np.all(np.isnan(member_top1)) else 0
    single = best if parts is not None and member_top1[best] > mixed_top1 else None
    if single is not None:
        weights = [1.0 if i == single else 0.0 for i in range(len(scores))]
        mixture = Ensemble(temperatures=mixture.temperatures, weights=weights)
        oof = mixture.log_probs([s if i == single else None for i, s in enumerate(scores)])
    return MixtureChoice(mixture, oof, member_top1, mixed_top1, single, parts is not None)


def mix_logits(
    a: np.ndarray, b: np.ndarray, weight: float, temp_a: float = 1.0, temp_b: float = 1.0
) -> np.ndarray:
    """Two-member :class:`Ensemble`: ``w * log_softmax(a / Ta) + (1 - w) * log_softmax(b /
    Tb)``, renormalised (a log-probability matrix, usable as logits)."""
    w = float(weight)
    return Ensemble([temp_a, temp_b], [w, 1.0 - w]).log_probs([a, b])


def fit_mixture(
    a: np.ndarray, b: np.ndarray, labels: np.ndarray, grid: int = 21
) -> dict[str, float]:
    """Two-member :meth:`Ensemble.fit` as ``{"weight": w_a, "temp_a", "temp_b"}``."""
    ens = Ensemble.fit([a, b], labels, grid=max(2, grid))
    return {"weight": ens.weights[0], "temp_a": ens.temperatures[0], "temp_b": ens.temperatures[1]}


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


@dataclass
class TopLabelCalibrator:
    """Monotone recalibration of the top-1 confidence that keeps the ranking.

    ``p1' = sigmoid(a * logit(p1) + b)`` (Platt scaling of the top label), fitted by maximum
    likelihood of "the top code is right" on held-out data; the other codes' probabilities
    are scaled by ``(1 - p1') / (1 - p1)``, so they keep their order and everything sums to 1.
    ``p1'`` is never lowered below the point where the runner-up would overtake it, so the
    top-k ranking (and every top-k accuracy) is exactly the input's. ``a = 1, b = 0`` is the
    identity. Temperature scaling fixes the sharpness of the whole distribution; this fixes
    the remaining over/under-confidence of the answer the review rule thresholds.
    """

    a: float = 1.0
    b: float = 0.0

    @classmethod
    def fit(cls, probs: np.ndarray, labels: np.ndarray, l2: float = 1e-3) -> TopLabelCalibrator:
        """Fit on held-out probabilities [N, C] and label indices (negative: unknown class,
        counts as a wrong top-1). Returns the identity when there is nothing to fit."""
        probs = np.asarray(probs, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.int64)
        if len(labels) < 2:
            return cls()
        correct = (probs.argmax(axis=1) == labels).astype(np.float64)
        if correct.min() == correct.max():  # all right or all wrong: no slope to learn
            return cls()
        x = torch.as_tensor(_logit(probs.max(axis=1)))
        t = torch.as_tensor(correct)
        params = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
        optimiser = torch.optim.LBFGS([params], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimiser.zero_grad()
            z = params[0] * x + params[1]
            # small ridge towards the identity (a=1, b=0): stable on few or separable rows
            loss = torch.nn.functional.binary_cross_entropy_with_logits(z, t) + l2 * (
                (params[0] - 1.0) ** 2 + params[1] ** 2
            )
            loss.backward()
            return loss

        optimiser.step(closure)
        a, b = (float(v) for v in params.detach())
        if not (np.isfinite(a) and np.isfinite(b)) or a <= 0:
            return cls()
        return cls(a=a, b=b)

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        """Recalibrated probabilities [N, C] (a new array)."""
        probs = np.asarray(probs, dtype=np.float64)
        if probs.ndim != 2 or probs.shape[0] == 0 or (self.a == 1.0 and self.b == 0.0):
            return probs.copy()
        n, c = probs.shape
        rows = np.arange(n)
        top = probs.argmax(axis=1)
        p1 = probs[rows, top]
        if c > 1:
            p2 = np.partition(probs, c - 2, axis=1)[:, c - 2]
        else:
            p2 = np.zeros(n)
        new = 1.0 / (1.0 + np.exp(-(self.a * _logit(p1) + self.b)))
        # keep the top code on top: p1' >= p2 * (1 - p1') / (1 - p1)
        floor = np.where(1.0 - p1 + p2 > 0, p2 / np.maximum(1.0 - p1 + p2, 1e-300), 1.0)
        new = np.clip(np.maximum(new, floor * (1.0 + 1e-9)), 0.0, 1.0)  # (rounding margin)
        rest = 1.0 - p1
        out = np.empty_like(probs)
        ok = rest > 1e-12
        out[ok] = probs[ok] * ((1.0 - new[ok]) / rest[ok])[:, None]
        if (~ok).any():  # the rest had no mass: share what is freed evenly
            out[~ok] = ((1.0 - new[~ok]) / max(c - 1, 1))[:, None]
        out[rows, top] = new
        return out

    def to_dict(self) -> dict[str, float]:
        return {"a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, data: dict | None) -> TopLabelCalibrator:
        if not data:
            return cls()
        return cls(a=float(data["a"]), b=float(data["b"]))
