"""model.pipeline ensemble: the TF-IDF SVM member, its mixture, the separate calibration split,
save/load without pickle."""

from __future__ import annotations

import json
import time
from collections import Counter

import numpy as np
import pytest
import torch

from hscode.recommend import RequestInput
from model.baseline import TfidfSvm
from model.calibrate import fit_mixture, fit_temperature, mix_logits, softmax
from model.pipeline import HSModel, ModelConfig, calibration_split, fit
from model.synthetic import PRODUCTS, make_cases

TINY = {
    "embed_dim": 16,
    "embed_epochs": 2,
    "hidden": 16,
    "feature_dim": 32,
    "epochs": 3,
    "batch_size": 16,
    "lr": 5e-3,
    "num_threads": 1,
}


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    # few, short epochs: the network is still weak, the product word in the title decides
    return (
        make_cases(150, 21, with_images=0),
        make_cases(80, 22, with_images=0),
        make_cases(120, 23, with_images=0),
    )


@pytest.fixture(scope="module")
def models(data):
    train, val, _ = data
    torch.set_num_threads(1)
    on = fit(train, val, ModelConfig(inputs="title", **TINY))
    off = fit(train, val, ModelConfig(inputs="title", ensemble="none", **TINY))
    return on, off


def test_ensemble_on_and_off(models, data):
    on, off = models
    test = data[2]
    assert on.tfidf is not None and off.tfidf is None
    assert on.history["ensemble"]["kind"] == "tfidf" and "ensemble" not in off.history
    assert 0.0 <= on.mixture["weight"] <= 1.0
    assert on.mixture["temp_a"] > 0 and on.mixture["temp_b"] > 0
    # the network is trained identically either way; only the head on top differs
    np.testing.assert_array_equal(on.neural_logits(test), off.neural_logits(test))
    np.testing.assert_array_equal(off.logits(test), off.neural_logits(test))
    assert not np.array_equal(on.logits(test), on.neural_logits(test))
    # logits are the documented mixture of the two members
    m = on.mixture
    svm = on.tfidf.decision_scores([e.title for e in test])
    expected = mix_logits(on.neural_logits(test), svm, m["weight"], m["temp_a"], m["temp_b"])
    np.testing.assert_allclose(on.logits(test), expected, atol=1e-5)
    proba = on.predict_proba(test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="ensemble"):
        ModelConfig(ensemble="forest")


def test_ensemble_matches_or_beats_the_network_alone(models, data):
    on, off = models
    test = data[2]
    top1_on, top1_off = on.evaluate(test)["top1"], off.evaluate(test)["top1"]
    assert top1_on >= top1_off
    assert top1_on >= 0.95  # the product word decides; TF-IDF reads it directly
    recs = on.recommend(
        [RequestInput(f"r{i}", e.title) for i, e in enumerate(test)],
        top_k=3,
        n_precedents=2,
        review_threshold=0.5,
    )
    assert np.mean([r.candidates[0].hs10 == e.label for r, e in zip(recs, test, strict=True)]) == (
        pytest.approx(top1_on)
    )


def test_save_load_gives_identical_probabilities_without_pickle(models, data, tmp_path):
    on, _ = models
    test = data[2]
    on.save(tmp_path / "m")
    assert (tmp_path / "m" / "tfidf.json").is_file() and (tmp_path / "m" / "tfidf.npz").is_file()
    json.loads((tmp_path / "m" / "tfidf.json").read_text(encoding="utf-8"))
    with np.load(tmp_path / "m" / "tfidf.npz", allow_pickle=False) as arrays:
        assert arrays["coef"].dtype == np.float32
    loaded = HSModel.load(tmp_path / "m")
    assert loaded.tfidf is not None and loaded.mixture == on.mixture
    np.testing.assert_array_equal(loaded.predict_proba(test), on.predict_proba(test))
    reqs = [RequestInput(f"r{i}", e.title) for i, e in enumerate(test[:20])]
    kwargs = {"top_k": 3, "n_precedents": 2, "review_threshold": 0.5}
    assert loaded.recommend(reqs, **kwargs) == on.recommend(reqs, **kwargs)
    # re-saving without the member removes its files
    loaded.tfidf = None
    loaded.save(tmp_path / "m")
    assert not (tmp_path / "m" / "tfidf.json").exists()
    assert HSModel.load(tmp_path / "m").tfidf is None


def test_calibration_uses_a_separate_split(models, data):
    on, _ = models
    _, val, _ = data
    labels = [e.label for e in val]
    stop, cal = calibration_split(labels, 0.5, on.config.seed)
    assert len(stop) + len(cal) == len(val) and not set(stop) & set(cal)
    assert on.history["n_val_stop"] == len(stop) and on.history["n_val_calibration"] == len(cal)
    assert on.history["separate_calibration"] is True
    # stratified: every code is in both parts, in proportion
    cs, cc = Counter(labels[i] for i in stop), Counter(labels[i] for i in cal)
    assert set(cs) == set(cc) == set(PRODUCTS)
    assert all(abs(cs[c] - cc[c]) <= 1 for c in PRODUCTS)
    # the temperature is the NLL fit on the calibration part's final logits, and nothing else
    cal_ex = [val[i] for i in cal]
    y_cal = on.label_indices([e.label for e in cal_ex])
    assert on.temperature == pytest.approx(fit_temperature(on.logits(cal_ex), y_cal), rel=1e-6)
    # the mixture was chosen on the stop part only
    stop_ex = [val[i] for i in stop]
    y_stop = on.label_indices([e.label for e in stop_ex])
    svm = on.tfidf.decision_scores([e.title for e in stop_ex])
    mix = fit_mixture(on.neural_logits(stop_ex), svm, y_stop)
    assert mix == pytest.approx(on.mixture, rel=1e-6)
    assert set(on.history["calibration"]) == {"ece_before", "ece_after"}


def test_calibration_split_edge_cases():
    every = np.arange(3)
    for a in calibration_split(["a", "b", "a"], 0.5):
        np.testing.assert_array_equal(a, every)  # too few rows: shared
    stop, cal = calibration_split(["a"] * 10, 0.0)
    np.testing.assert_array_equal(stop, cal)
    stop, cal = calibration_split([str(i) for i in range(9)], 0.5, seed=1)
    assert len(stop) + len(cal) == 9 and abs(len(stop) - len(cal)) <= 1
    with pytest.raises(ValueError, match="calibration_share"):
        ModelConfig(calibration_share=1.0)


def test_tfidf_state_round_trip_binary_and_multiclass():
    texts = ["steel bolt m8", "hex bolt", "plastic clip", "plastic box", "볼트", "클립 플라스틱"]
    for labels in ([0, 0, 1, 1, 0, 1], [0, 0, 1, 1, 2, 2]):
        svm = TfidfSvm(min_df=1).fit(texts, labels)
        meta, arrays = svm.to_state()
        clone = TfidfSvm.from_state(json.loads(json.dumps(meta)), arrays)
        probe = ["bolt plastic", "새 볼트", ""]
        np.testing.assert_array_equal(clone.decision_scores(probe), svm.decision_scores(probe))
        np.testing.assert_array_equal(clone.classes_, svm.classes_)
        # the stored linear scorer agrees with sklearn's own decision function
        ref = svm.svm.decision_function(svm._features(probe))
        if ref.ndim == 1:
            ref = np.stack([-ref, ref], axis=1)
        np.testing.assert_allclose(svm.decision_scores(probe), ref, atol=1e-5)
    bad = dict(arrays, coef=arrays["coef"][:-1])
    with pytest.raises(ValueError, match="coefficient rows"):
        TfidfSvm.from_state(meta, bad)


def test_mixture_weight_prefers_the_informative_member():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, size=400)
    good = rng.normal(size=(400, 5))
    good[np.arange(400), y] += 4.0
    noise = rng.normal(size=(400, 5))
    m = fit_mixture(noise, good, y)
    assert m["weight"] <= 0.2  # weight of the first (noise) member
    assert fit_mixture(good, noise, y)["weight"] >= 0.8
    lp = mix_logits(good, noise, 0.5)
    np.testing.assert_allclose(softmax(lp).sum(axis=1), 1.0)
    assert fit_mixture(good, noise, -np.ones(400, dtype=int))["weight"] == 0.5


def test_recommend_throughput_text_only(models, data):
    on, _ = models
    reqs = [RequestInput(f"r{i}", e.title) for i, e in enumerate(data[2] * 5)]
    on.recommend(reqs[:10], top_k=5, n_precedents=3, review_threshold=0.5)  # warm caches
    t0 = time.perf_counter()
    recs = on.recommend(reqs, top_k=5, n_precedents=3, review_threshold=0.5)
    rate = len(reqs) / (time.perf_counter() - t0)
    assert len(recs) == len(reqs)
    assert rate >= 1000, f"{rate:.0f} requests/s"
