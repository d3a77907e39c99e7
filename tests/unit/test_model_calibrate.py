"""model.calibrate: temperature scaling, ECE and the accuracy-versus-coverage curve."""

from __future__ import annotations

import numpy as np
import pytest

from model.calibrate import (
    Ensemble,
    _lattice_accuracy,
    _simplex,
    choose_mixture,
    coverage_curve,
    ece,
    fit_temperature,
    log_softmax,
    nll,
    softmax,
)


def _overconfident(n: int, seed: int, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z) (so z is perfectly calibrated); the model reports 4 z."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, classes))
    p = softmax(z)
    labels = np.array([rng.choice(classes, p=row) for row in p])
    return z * 4.0, labels


def test_temperature_scaling_fixes_overconfidence():
    val_logits, val_y = _overconfident(2000, 1)
    test_logits, test_y = _overconfident(2000, 2)
    t = fit_temperature(val_logits, val_y)
    assert 3.5 < t < 4.5  # undoes the x4 sharpening
    before, after = softmax(test_logits), softmax(test_logits, t)
    assert nll(after, test_y) < nll(before, test_y) - 0.5
    assert ece(before, test_y) > 0.2
    assert ece(after, test_y) < 0.05
    # ranking unchanged
    np.testing.assert_array_equal(before.argmax(1), after.argmax(1))


def test_temperature_edge_cases():
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 1.0
    assert fit_temperature(np.ones((4, 3)), np.array([-1, -1, -1, -1])) == 1.0  # unknown labels
    # perfectly separable data: wants T -> 0
    logits = np.eye(3)[[0, 1, 2, 0]] * 5
    assert fit_temperature(logits, np.array([0, 1, 2, 0])) < 0.5  # sharpens


def test_the_temperature_is_the_nll_minimum():
    from scipy.optimize import minimize_scalar

    rng = np.random.default_rng(3)
    for n, classes, scale in ((600, 40, 1.5), (400, 5, 6.0), (300, 200, 0.2)):
        y = rng.integers(0, classes, n)
        logits = rng.normal(0, 1, (n, classes))
        logits[np.arange(n), y] += rng.normal(2.0, 1.5, n)
        logits *= scale
        best = minimize_scalar(
            lambda log_t, z=logits, y=y: nll(softmax(z, np.exp(log_t)), y),
            bounds=(np.log(0.05), np.log(20.0)),
            method="bounded",
            options={"xatol": 1e-9},
        )
        assert fit_temperature(logits, y) == pytest.approx(np.exp(best.x), rel=1e-4)
    # constant logits: every T is as good; the start (1) is kept
    assert fit_temperature(np.zeros((5, 3)), np.array([0, 1, 2, 0, 1])) == 1.0
    # a minimum beyond the bounds gives the bound
    y = rng.integers(0, 4, 500)
    flat = rng.normal(0, 1, (500, 4)) * 50.0  # noise at a huge scale: wants T above 20
    assert fit_temperature(flat, y) == pytest.approx(20.0, rel=1e-6)


def test_ece_known_values():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 0, 0, 1])
    # bin 0.9: conf 0.9, acc 1.0 -> 0.1; bin 0.6: conf 0.6, acc 0.5 -> 0.1; each half the mass
    assert ece(probs, labels, n_bins=10) == pytest.approx(0.1)
    assert ece(probs, np.array([-1, -1, -1, -1]), n_bins=10) == pytest.approx(0.75)
    assert np.isnan(ece(np.zeros((0, 2)), np.zeros(0, dtype=int)))


def test_coverage_curve():
    conf = np.array([0.95, 0.9, 0.7, 0.4, 0.2])
    correct = np.array([True, True, False, True, False])
    points = coverage_curve(conf, correct, thresholds=(0.0, 0.5, 0.8, 0.99))
    assert [p["coverage"] for p in points] == [1.0, 0.6, 0.4, 0.0]
    assert points[0]["accuracy"] == pytest.approx(0.6)
    assert points[1]["accuracy"] == pytest.approx(2 / 3)
    assert points[2]["accuracy"] == 1.0 and np.isnan(points[3]["accuracy"])
    assert [p["n"] for p in points] == [5, 3, 2, 0]


def test_softmax_and_nll():
    p = softmax(np.array([[1000.0, 0.0], [0.0, 0.0]]))
    np.testing.assert_allclose(p, [[1.0, 0.0], [0.5, 0.5]])
    assert nll(p, np.array([0, 1])) == pytest.approx(np.log(2) / 2)


def test_top_label_calibration_fixes_a_shape_temperature_cannot_and_keeps_ranking():
    from model.calibrate import TopLabelCalibrator

    rng = np.random.default_rng(3)
    n, c = 4000, 20
    # confidences spread over (0, 1); true accuracy = a squashed version of them:
    # under-confident when unsure, over-confident when sure (what the mixture showed)
    logits = rng.normal(size=(n, c)) * rng.uniform(0.2, 3.0, size=(n, 1))
    probs = softmax(logits)
    conf = probs.max(1)
    z = np.log(conf / (1 - conf))
    p_right = 1 / (1 + np.exp(-(0.55 * z + 0.2)))
    top = probs.argmax(1)
    right = rng.uniform(size=n) < p_right
    other = (top + rng.integers(1, c, size=n)) % c
    y = np.where(right, top, other)
    fit_rows, test_rows = np.arange(0, n, 2), np.arange(1, n, 2)
    t = fit_temperature(logits[fit_rows], y[fit_rows])
    cal = TopLabelCalibrator.fit(softmax(logits[fit_rows], t), y[fit_rows])
    before = softmax(logits[test_rows], t)
    after = cal(before)
    assert ece(after, y[test_rows]) < 0.6 * ece(before, y[test_rows])
    assert ece(after, y[test_rows]) < 0.03
    np.testing.assert_allclose(after.sum(1), 1.0, atol=1e-9)
    # the ranking is untouched: every top-k is the same
    np.testing.assert_array_equal(
        np.argsort(-after, axis=1, kind="stable")[:, :5],
        np.argsort(-before, axis=1, kind="stable")[:, :5],
    )
    # even a harsh calibrator cannot push the top code below the runner-up
    harsh = TopLabelCalibrator(a=0.2, b=-3.0)(before)
    assert np.all(harsh.argmax(1) == before.argmax(1))
    np.testing.assert_allclose(harsh.sum(1), 1.0, atol=1e-9)
    # identity cases, edge inputs, round trip
    assert TopLabelCalibrator.fit(before, before.argmax(1)) == TopLabelCalibrator()
    np.testing.assert_array_equal(TopLabelCalibrator()(before), before)
    one_hot = np.eye(3)[[0, 1]]
    np.testing.assert_allclose(TopLabelCalibrator(a=1.0, b=-1.0)(one_hot).sum(1), 1.0)
    assert TopLabelCalibrator.from_dict(cal.to_dict()) == cal
    assert TopLabelCalibrator.from_dict(None) == TopLabelCalibrator()


def _member(y: np.ndarray, n_classes: int, right: float, rng, spread: float = 3.0) -> np.ndarray:
    """Scores ranking the true class first on a ``right`` share of rows, a random class
    otherwise."""
    scores = rng.normal(0.0, 1.0, (len(y), n_classes))
    first = np.where(rng.random(len(y)) < right, y, rng.integers(0, n_classes, len(y)))
    scores[np.arange(len(y)), first] += spread
    return scores


def _parts(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2 :])


def test_a_mixture_of_two_complementary_members_is_kept():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 20, 600)
    a, b = _member(y, 20, 0.6, rng), _member(y, 20, 0.6, rng)
    choice = choose_mixture([a, b], y, _parts(len(y), rng))
    assert choice.single is None and choice.cross_fitted
    assert choice.mixed_top1 > max(choice.member_top1)
    assert all(w > 0 for w in choice.mixture.weights)


def test_a_member_that_ranks_better_alone_serves_alone():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 20, 600)
    parts = _parts(len(y), rng)
    strong = _member(y, 20, 0.7, rng)
    # a member that is right on one part and wrong with confidence on the other: a mixture
    # chosen on the first part leans on it and fails on the second
    fickle = rng.normal(0.0, 1.0, (len(y), 20))
    fickle[parts[0], y[parts[0]]] += 10.0
    fickle[parts[1], (y[parts[1]] + 1) % 20] += 10.0
    choice = choose_mixture([strong, fickle], y, parts)
    assert Ensemble.fit([strong[parts[0]], fickle[parts[0]]], y[parts[0]]).weights[1] > 0.5
    assert choice.single == 0 and choice.mixture.weights == [1.0, 0.0]
    assert choice.member_top1[0] > choice.mixed_top1
    # the out-of-fold scores are the strong member's own ranking
    np.testing.assert_array_equal(choice.oof.argmax(1), strong.argmax(1))


def test_without_parts_the_mixture_is_in_sample_and_kept():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 5, 40)
    a, b = _member(y, 5, 0.9, rng), _member(y, 5, 0.2, rng)
    choice = choose_mixture([a, b], y, None)
    assert not choice.cross_fitted and choice.single is None
    np.testing.assert_allclose(choice.oof, choice.mixture.log_probs([a, b]))


def _mixture_accuracy_directly(logps: list[np.ndarray], y: np.ndarray, w: np.ndarray) -> float:
    """Top-1 + top-3 of one weight vector, from the formed mixture (ties count against)."""
    z = log_softmax(sum(wi * lp for wi, lp in zip(w, logps, strict=True)))
    truth = z[np.arange(len(y)), y][:, None]
    rank = (z >= truth).sum(axis=1) - 1
    return float(np.mean(rank == 0) + np.mean(rank < 3))


def test_the_lattice_search_scores_every_mixture_as_forming_it_would():
    rng = np.random.default_rng(3)
    n_rows, n_codes = 300, 40
    y = rng.integers(0, n_codes, n_rows)
    # members of different skill, so that the rows' candidate sets differ in size
    logps = []
    for skill in (0.5, 2.0, 3.5):
        s = rng.normal(0, 1.0, (n_rows, n_codes))
        s[np.arange(n_rows), y] += skill
        logps.append(log_softmax(s))
    lattice = np.array(_simplex(3, 11))
    fast = _lattice_accuracy(logps, y, lattice, chunk=7)  # a chunk that does not divide M
    direct = [_mixture_accuracy_directly(logps, y, w) for w in lattice]
    assert fast == pytest.approx(direct, abs=1e-12)
    assert 0.5 < fast.max() < 2.0  # neither trivial nor perfect


def test_a_member_that_ties_sibling_codes_earns_no_credit_for_the_tie():
    """The heading member scores every code of a heading alike: alone it cannot be right at
    ten digits, however the codes are ordered."""
    rng = np.random.default_rng(4)
    n_rows = 200
    y = rng.integers(0, 4, n_rows) * 2  # codes 0, 2, 4, 6; code y + 1 is its sibling
    heading = np.full((n_rows, 8), -5.0)
    for r, label in enumerate(y):
        heading[r, label : label + 2] = 5.0
    weak = rng.normal(0, 1.0, (n_rows, 8))
    weak[np.arange(n_rows), y] += 0.8
    logps = [log_softmax(heading), log_softmax(weak)]
    score = _lattice_accuracy(logps, y, np.array([[1.0, 0.0], [0.5, 0.5]]))
    assert score[0] == pytest.approx(1.0)  # never top-1, always top-3 (two codes tie at the top)
    assert score[1] > score[0]  # the weak member breaks the tie inside the heading
    chosen = Ensemble.fit([heading, weak], y)
    assert 0.0 < chosen.weights[0] < 1.0
