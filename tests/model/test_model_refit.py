"""model.refit: the served model is the evaluated recipe retrained on every case."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from tiny_models import TINY_NETWORK

from model.calibrate import Ensemble
from model.config import MemberName, ModelConfig
from model.fit import fit
from model.hsmodel import HSModel
from model.members import FitContext, kind_of
from model.records import Example
from model.refit import refit
from model.synthetic import make_cases

TINY = {**TINY_NETWORK, "epochs": 4}


@pytest.fixture(scope="module")
def fitted():
    train = make_cases(150, 31, with_images=0)
    val = make_cases(80, 32, with_images=0)
    test = make_cases(60, 33, with_images=0)
    evaluated = fit(train, val, ModelConfig.from_flat(inputs="title", **TINY))
    served = refit(evaluated, [*train, *val, *test])
    return evaluated, served, [*train, *val, *test]


def test_refit_keeps_what_validation_chose(fitted) -> None:
    evaluated, served, everything = fitted
    assert served.member_names == evaluated.member_names
    assert served.mixture.weights == evaluated.mixture.weights
    assert served.mixture.temperatures == evaluated.mixture.temperatures
    assert served.temperature == evaluated.temperature
    assert served.top_calibration.to_dict() == evaluated.top_calibration.to_dict()
    info = served.history["refit"]
    assert info["n_examples"] == len(everything)
    # the time of each member's refit is recorded (a cost benchmark reads it, issue 18)
    assert set(info["timings"]["member_s"]) == {str(n) for n in evaluated.members}
    assert all(v >= 0 for v in info["timings"]["member_s"].values())
    seconds = evaluated.history["ensemble"]["seconds"]
    assert {"svm", "score_validation", "mixture_and_calibration"} <= set(seconds)
    assert set(evaluated.member_names) <= set(seconds)  # every member's fit, kept or dropped
    assert len(served.history["epochs"]) == len(evaluated.history["epochs"])  # evaluated run's


def test_a_network_the_mixture_weighs_zero_is_kept_not_retrained(fitted) -> None:
    evaluated, served, _ = fitted
    weight = dict(zip(evaluated.member_names, evaluated.mixture.weights, strict=True))
    assert weight["network"] == 0.0  # what this fixture exercises (the text members win)
    assert served.network is evaluated.network
    assert served.history["refit"]["epochs"] is None
    assert "weighs it 0" in served.history["refit"]["network"]
    # nothing scores with it, so scoring does not run it
    assert not served._network_needed()


def test_a_weighted_network_is_retrained_for_its_best_epoch(fitted) -> None:
    evaluated, _, everything = fitted
    weighted = copy.copy(evaluated)
    weights = [0.5 if m == "network" else 0.0 for m in evaluated.member_names]
    weights[evaluated.member_names.index("svm")] = 0.5
    weighted.mixture = Ensemble(evaluated.mixture.temperatures, weights)
    served = refit(weighted, everything)
    info = served.history["refit"]
    assert info["epochs"] == evaluated.history["best_epoch"] and info["network"] == "retrained"
    a = evaluated.network.module.state_dict()
    b = served.network.module.state_dict()
    assert any(not np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert served._network_needed()


def test_refit_learns_from_every_case(fitted) -> None:
    evaluated, served, everything = fitted
    assert set(served.precedents.keys) == {e.key for e in everything}
    assert served.labels == sorted({e.label for e in everything})
    # the SVM member was refitted on every case: it knows their vocabulary
    assert served.member("svm") is not None and served.member("svm").svm.coef.shape[1] == len(
        served.labels
    )
    assert served.member("svm").svm.coef.shape[0] >= evaluated.member("svm").svm.coef.shape[0]
    probs = served.predict_proba(everything[:10])
    assert probs.shape == (10, len(served.labels))
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)


def test_refit_model_saves_and_loads(fitted, tmp_path) -> None:
    _, served, everything = fitted
    served.save(tmp_path / "m")
    loaded = HSModel.load(tmp_path / "m")
    assert loaded.history["refit"] == served.history["refit"]
    assert np.allclose(loaded.predict_proba(everything[:20]), served.predict_proba(everything[:20]))


def test_refit_needs_two_classes(fitted) -> None:
    evaluated, _, everything = fitted
    one = [e for e in everything if e.label == everything[0].label]
    with pytest.raises(ValueError, match="two classes"):
        refit(evaluated, one)


def test_a_zero_weight_network_is_retrained_when_the_refit_brings_new_codes(fitted) -> None:
    evaluated, _, everything = fitted
    extra = [
        Example(f"new-{i}", f"titanium bicycle frame size {i}", label="8714910000")
        for i in range(6)
    ]
    served = refit(evaluated, [*everything, *extra])
    assert "8714910000" in served.labels and served.labels != evaluated.labels
    assert served.network is not evaluated.network
    assert served.history["refit"]["network"] == "retrained"
    assert served.predict_proba(extra[:2]).shape == (2, len(served.labels))


def test_the_sentence_head_is_fitted_on_validation_and_retrained_for_its_chosen_epochs() -> None:
    config = ModelConfig.from_flat(
        inputs="title", **TINY, sentence_hidden=32, sentence_epochs=30, sentence_patience=4
    )
    train = make_cases(60, 41, with_images=0)
    val = make_cases(30, 42, with_images=0)
    labels = sorted({e.label for e in train})
    kind = kind_of(MemberName.SENTENCE)
    device = torch.device("cpu")
    chosen = kind.fit(FitContext(config, labels, train, None, device, val=val))
    head = chosen.head
    assert 1 <= head.best_epoch < head.epochs_run < 30  # validation stopped it
    again = kind.refit(chosen, FitContext(config, labels, [*train, *val], None, device))
    assert again.head.epochs_run == again.head.best_epoch == head.best_epoch
