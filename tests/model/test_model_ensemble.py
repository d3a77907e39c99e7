"""model.members / model.mixture: the ensemble: the TF-IDF SVM and k-NN members, their validation-chosen mixture
(cross-fitted), the final temperature on the whole validation set, save/load without pickle.

These fixtures use the k-NN vote ("tfidf+knn", the former default, still supported) because
they exercise a weighted k-NN; the default nearest-case member: tests/model/test_nearest.py."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from sklearn.svm import LinearSVC
from tiny_models import TINY_NETWORK

from hscode.recommend import recommend
from hscode.review import ReviewPolicy
from model.baseline import TfidfKnn, TfidfSvm
from model.calibrate import Ensemble, fit_mixture, fit_temperature, mix_logits, softmax
from model.config import ModelConfig
from model.encoding import items_of
from model.fit import fit
from model.hsmodel import HSModel
from model.members import Batch
from model.records import RequestInput
from model.sentence import SentenceHead
from model.synthetic import PRODUCTS, make_cases
from model.validation import calibration_split

TINY = {
    **TINY_NETWORK,
    # the recipe these fixtures were written for: with every term (min_df 1) the mixture
    # weighs the k-NN vote 0 on this data, and the tests below exercise a weighted k-NN
    "ensemble_min_df": 2,
    "ensemble": "tfidf+knn",
    # the members these fixtures exercise (the heading member: tests/model/test_heading.py)
    "heading_digits": 0,
}


def _recommend(model, requests, top_k=5, n_precedents=3, review_threshold=0.5):
    policy = ReviewPolicy(review_threshold)
    return recommend(model, requests, top_k=top_k, n_precedents=n_precedents, policy=policy)


def _svm(model):
    return model.member("svm").svm


def _knn(model):
    return model.member("knn").knn


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
    on = fit(train, val, ModelConfig.from_flat(inputs="title", **TINY))
    off = fit(train, val, ModelConfig.from_flat(inputs="title", **{**TINY, "ensemble": "none"}))
    return on, off


@pytest.fixture(scope="module")
def norefit(data):
    train, val, _ = data
    return fit(train, val, ModelConfig.from_flat(inputs="title", refit_members=False, **TINY))


def test_ensemble_on_and_off(models, data):
    on, off = models
    test = data[2]
    assert ModelConfig().ensemble.kind == "tfidf+nearest"  # the shipped default
    assert on.config.ensemble.kind == "tfidf+knn"  # what these fixtures choose
    assert on.member("svm") is not None and off.member("svm") is None
    assert on.member_names == ("network", "companion", "svm", "knn", "sentence")
    assert off.member_names == ()
    # the companion (a second, text-only network) was trained; on this data the mixture
    # weighs it 0, so it is dropped, like any member weighted 0 (k-NN included)
    assert on.history["companion"]["best_epoch"] >= 1 and off.member("companion") is None
    assert 1 <= on.history["sentence"]["best_epoch"] <= on.history["sentence"]["epochs"]
    weight = dict(zip(on.member_names, on.mixture.weights, strict=True))
    assert weight["companion"] == 0.0 and weight["knn"] > 0.0  # what this fixture exercises
    assert on.member("companion") is None and on.member("knn") is not None
    assert on.history["ensemble"]["dropped"][0] == "companion"
    assert (on.member("sentence") is None) == ("sentence" in on.history["ensemble"]["dropped"])
    assert on.history["ensemble"]["kind"] == "tfidf+knn" and "ensemble" not in off.history
    assert off.mixture is None
    assert sum(on.mixture.weights) == pytest.approx(1.0)
    assert all(0.0 <= w <= 1.0 for w in on.mixture.weights)
    assert all(t > 0 for t in on.mixture.temperatures)
    # the network is trained identically either way; only the head on top differs
    np.testing.assert_array_equal(on.neural_logits(test), off.neural_logits(test))
    np.testing.assert_array_equal(off.logits(test), off.neural_logits(test))
    # logits are the documented mixture of the members
    texts = [e.title for e in test]
    sentence = (
        on.member("sentence").head.scores(texts) if on.member("sentence") is not None else None
    )
    expected = on.mixture.log_probs(
        [
            on.neural_logits(test),
            None,
            _svm(on).decision_scores(texts),
            _knn(on).scores(texts),
            sentence,
        ]
    )
    np.testing.assert_allclose(on.logits(test), expected, atol=1e-5)
    proba = on.predict_proba(test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="ensemble"):
        ModelConfig.from_flat(ensemble="forest")
    with pytest.raises(ValueError, match="knn_k"):
        ModelConfig.from_flat(knn_k=0)
    with pytest.raises(ValueError, match="companion"):
        ModelConfig.from_flat(companion="glove")
    assert ModelConfig.from_flat(
        inputs="title", companion="none", sentence_encoder="none"
    ).members == ("network", "svm", "heading", "nearest")
    assert ModelConfig.from_flat(inputs="title", ensemble="tfidf+knn").members == (
        "network",
        "companion",
        "svm",
        "heading",
        "knn",
        "sentence",
    )
    assert ModelConfig.from_flat(inputs="image").members == ()


def test_companion_config_is_text_only_on_its_own_embeddings():
    cfg = ModelConfig.from_flat(inputs="title+description+image", char_ngram_max=3)
    comp = cfg.companion_config()
    assert comp.inputs == "title+description" and comp.network.embedding == "fasttext"
    assert comp.network.subword and comp.network.char_ngram_max == 0 and comp.members == ()
    w2v = ModelConfig.from_flat(subword=True, companion="word2vec").companion_config()
    assert w2v.network.embedding == "word2vec" and not w2v.network.subword
    assert ModelConfig.from_flat(inputs="title+image").companion_config().inputs == "title"


def test_ensemble_matches_or_beats_the_network_alone(models, data):
    on, off = models
    test = data[2]
    top1_on, top1_off = on.evaluate(test)["top1"], off.evaluate(test)["top1"]
    assert top1_on >= top1_off
    assert top1_on >= 0.95  # the product word decides; TF-IDF reads it directly
    recs = _recommend(
        on,
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
    for name in ("svm.json", "svm.npz", "knn.json", "knn.npz"):
        assert (tmp_path / "m" / name).is_file()
    assert not (tmp_path / "m" / "companion").exists()  # weighted 0: not saved
    json.loads((tmp_path / "m" / "svm.json").read_text(encoding="utf-8"))
    with np.load(tmp_path / "m" / "svm.npz", allow_pickle=False) as arrays:
        assert arrays["coef"].dtype == np.float32
    with np.load(tmp_path / "m" / "knn.npz", allow_pickle=False) as arrays:
        assert arrays["data"].dtype == np.float32  # the sparse training matrix, no pickle
    loaded = HSModel.load(tmp_path / "m")
    assert loaded.member("svm") is not None and loaded.member("knn") is not None
    assert loaded.mixture == on.mixture and loaded.member_names == on.member_names
    np.testing.assert_array_equal(loaded.predict_proba(test), on.predict_proba(test))
    reqs = [RequestInput(f"r{i}", e.title) for i, e in enumerate(test[:20])]
    kwargs = {"top_k": 3, "n_precedents": 2, "review_threshold": 0.5}
    assert _recommend(loaded, reqs, **kwargs) == _recommend(on, reqs, **kwargs)
    # a missing member is a clear error, not a silently different model
    (tmp_path / "m" / "knn.json").unlink()
    with pytest.raises(ValueError, match="knn"):
        HSModel.load(tmp_path / "m")
    # re-saving without the members removes their files
    loaded.members, loaded.mixture, loaded.member_names = {}, None, ()
    loaded.save(tmp_path / "m")
    for name in ("svm.json", "svm.npz", "knn.json", "knn.npz", "companion"):
        assert not (tmp_path / "m" / name).exists()
    assert HSModel.load(tmp_path / "m").member("svm") is None


def _as_format_1(directory):
    """Rewrite a format-2 model folder in the format-1 layout (what models saved before the
    members became modules look like): a flat config in config.json, the main network's files
    in the folder itself, the SVM with the member names and mixture in tfidf.json."""
    manifest = json.loads((directory / "model.json").read_text(encoding="utf-8"))
    for f in (directory / "network").iterdir():
        f.rename(directory / f.name)
    (directory / "network").rmdir()
    meta = json.loads((directory / "svm.json").read_text(encoding="utf-8"))
    meta["members"], meta["mixture"] = manifest["member_names"], manifest["mixture"]
    (directory / "tfidf.json").write_text(json.dumps(meta), encoding="utf-8")
    (directory / "svm.json").unlink()
    (directory / "svm.npz").rename(directory / "tfidf.npz")
    flat = ModelConfig.from_dict(manifest["config"]).to_flat()
    v1 = {
        "format": 1,
        "config": {k: str(v) if hasattr(v, "value") else v for k, v in flat.items()},
        "labels": manifest["labels"],
        "temperature": manifest["temperature"],
        "top_calibration": manifest["top_calibration"],
        "tokenizer": manifest["network"]["tokenizer"],
        "version": manifest["version"],
        "history": manifest["history"],
    }
    (directory / "config.json").write_text(json.dumps(v1), encoding="utf-8")
    (directory / "model.json").unlink()


def test_loads_format_1_models_through_the_migration(models, data, tmp_path):
    on, _ = models
    test = data[2]
    on.save(tmp_path / "m")
    _as_format_1(tmp_path / "m")
    old = HSModel.load(tmp_path / "m")
    assert old.member_names == on.member_names and old.config == on.config
    np.testing.assert_array_equal(old.predict_proba(test), on.predict_proba(test))
    # older still: the two-member mixture {"weight", "temp_a", "temp_b"} in tfidf.json
    meta = json.loads((tmp_path / "m" / "tfidf.json").read_text(encoding="utf-8"))
    del meta["members"]
    meta["mixture"] = {"weight": 0.3, "temp_a": 1.5, "temp_b": 0.2}
    (tmp_path / "m" / "tfidf.json").write_text(json.dumps(meta), encoding="utf-8")
    (tmp_path / "m" / "knn.json").unlink()
    old = HSModel.load(tmp_path / "m")
    assert old.member_names == ("network", "svm") and old.member("knn") is None
    expected = mix_logits(
        on.neural_logits(test), _svm(on).decision_scores([e.title for e in test]), 0.3, 1.5, 0.2
    )
    np.testing.assert_allclose(old.logits(test), expected, atol=1e-5)
    # a format this code does not know is refused clearly
    (tmp_path / "m" / "config.json").write_text(json.dumps({"format": 99}), encoding="utf-8")
    with pytest.raises(ValueError, match="unsupported model format 99"):
        HSModel.load(tmp_path / "m")


def test_mixture_is_cross_fitted_and_temperature_uses_all_validation(models, norefit, data):
    on, off = models
    train, val, _ = data
    labels = [e.label for e in val]
    stop, cal = calibration_split(labels, 0.5, on.config.seed)
    assert len(stop) + len(cal) == len(val) and not set(stop) & set(cal)
    assert on.history["n_val_stop"] == len(stop) and on.history["n_val_calibration"] == len(cal)
    assert on.history["separate_calibration"] is True
    # stratified: every code is in both parts, in proportion
    cs, cc = Counter(labels[i] for i in stop), Counter(labels[i] for i in cal)
    assert set(cs) == set(cc) == set(PRODUCTS)
    assert all(abs(cs[c] - cc[c]) <= 1 for c in PRODUCTS)
    # without the refit, the members are the ones the mixture was chosen with: recompute it
    m = norefit
    np.testing.assert_array_equal(m.neural_logits(val), off.neural_logits(val))
    texts = [e.title for e in val]
    # the dropped companion's validation scores: retrain it exactly as fit did
    companion = fit(train, val, m.config.companion_config())
    scores = [
        m.neural_logits(val),
        companion.neural_logits(val),
        _svm(m).decision_scores(texts),
        _knn(m).scores(texts),
        # the sentence head, retrained exactly as fit did (it may have been dropped too):
        # stopped early on the stopping part of validation
        SentenceHead(
            m.config.ensemble.sentence_encoder,
            hidden=m.config.ensemble.sentence_hidden,
            epochs=m.config.ensemble.sentence_epochs,
            seed=m.config.seed,
        )
        .fit(
            [e.title for e in train],
            m.label_indices([e.label for e in train]),
            len(m.labels),
            val_texts=[texts[i] for i in stop],
            val_sets=[(int(m.label_indices([labels[i]])[0]),) for i in stop],
            patience=m.config.ensemble.sentence_patience,
        )
        .scores(texts),
    ]
    y = m.label_indices(labels)
    oof = np.zeros_like(scores[0], dtype=np.float64)
    for a, b in ((stop, cal), (cal, stop)):
        oof[b] = Ensemble.fit([s[a] for s in scores], y[a]).log_probs([s[b] for s in scores])
    assert m.mixture.weights == pytest.approx(Ensemble.fit(scores, y).weights)
    assert m.temperature == pytest.approx(fit_temperature(oof, y), rel=1e-6)
    assert m.history["calibration"]["n"] == len(val) and m.history["calibration"]["out_of_fold"]
    # the refit members saw train + validation; the mixture and temperature are the same
    assert on.history["ensemble"]["refit_on"] == len(train) + len(val)
    assert "refit_on" not in m.history["ensemble"]
    assert on.mixture == m.mixture and on.temperature == m.temperature
    assert _knn(on).matrix.shape[0] == len(train) + len(val) == _knn(m).matrix.shape[0] + len(val)


def test_calibration_split_edge_cases():
    every = np.arange(3)
    for a in calibration_split(["a", "b", "a"], 0.5):
        np.testing.assert_array_equal(a, every)  # too few rows: shared
    stop, cal = calibration_split(["a"] * 10, 0.0)
    np.testing.assert_array_equal(stop, cal)
    stop, cal = calibration_split([str(i) for i in range(9)], 0.5, seed=1)
    assert len(stop) + len(cal) == 9 and abs(len(stop) - len(cal)) <= 1
    with pytest.raises(ValueError, match="calibration_share"):
        ModelConfig.from_flat(calibration_share=1.0)


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
        sk = LinearSVC(C=svm.C, random_state=svm.seed).fit(svm._features(texts), labels)
        ref = sk.decision_function(svm._features(probe))
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
    # three members: the informative one gets most of the weight, weights sum to 1
    ens = Ensemble.fit([noise, good, noise[::-1]], y)
    assert ens.weights[1] >= 0.7 and sum(ens.weights) == pytest.approx(1.0)
    assert Ensemble.from_dict(json.loads(json.dumps(ens.to_dict()))) == ens
    with pytest.raises(ValueError, match="members"):
        ens.log_probs([good, noise])


def test_knn_member_votes_and_round_trips():
    texts = ["steel bolt m8", "hex bolt", "plastic clip", "plastic box", "볼트", "클립 플라스틱"]
    y = [0, 0, 1, 1, 0, 1]
    svm = TfidfSvm(min_df=1).fit(texts, y)
    knn = TfidfKnn(k=2).fit(svm, texts, y, 2)
    probe = ["hex bolt", "plastic clip box", ""]
    scores = knn.scores(probe)
    assert scores.shape == (3, 2)
    assert scores[0].argmax() == 0 and scores[1].argmax() == 1
    np.testing.assert_allclose(scores[2], np.log(TfidfKnn.EPS))  # no overlap: no vote
    meta, arrays = knn.to_state()
    clone = TfidfKnn.from_state(json.loads(json.dumps(meta)), arrays, svm)
    np.testing.assert_array_equal(clone.scores(probe), scores)
    with pytest.raises(ValueError, match="class indices"):
        TfidfKnn().fit(svm, texts, [0, 0, 1, 1, 0, 2], 2)
    with pytest.raises(ValueError, match="k must"):
        TfidfKnn(k=0)


def test_a_member_with_weight_zero_is_not_computed(models, data):
    """Scoring skips a member the mixture ignores (the k-NN vote is the costly one)."""
    on, _ = models
    test = data[2]
    before = on.logits(test)
    saved, knn_scores = on.mixture, _knn(on).scores
    weights = list(saved.weights)
    knn = on.member_names.index("knn")
    weights[knn] = 0.0
    weights = [w / sum(weights) for w in weights] if sum(weights) else weights
    on.mixture = Ensemble(list(saved.temperatures), weights)
    expected = on.mixture.log_probs(
        on.member_scores(
            Batch(items_of(test), False, on.neural_logits(test)), [w != 0.0 for w in weights]
        )
    )

    def refuse(texts):
        raise AssertionError("k-NN scores computed although its weight is 0")

    _knn(on).scores = refuse
    try:
        np.testing.assert_allclose(on.logits(test), expected, rtol=1e-5, atol=1e-5)
        assert len(_recommend(on, [RequestInput("r1", test[0].title)], top_k=3)[0].candidates) == 3
    finally:
        on.mixture, _knn(on).scores = saved, knn_scores
    np.testing.assert_array_equal(on.logits(test), before)


def test_an_unfamiliar_request_is_flagged_and_shown_no_unrelated_precedents(models, data, tmp_path):
    on, _ = models
    familiar = data[2][0].title
    requests = [
        RequestInput("familiar", familiar),
        RequestInput("unfamiliar", "quantum entanglement research grant proposal"),
    ]
    known, odd = _recommend(on, requests, top_k=3, n_precedents=3, review_threshold=0.0)
    assert odd.review and odd.review_reason.startswith("unlike any known case")
    assert "no similar past case" in odd.review_reason and odd.precedents == []
    threshold = on.config.calibration.precedent_min_similarity
    assert known.precedents and all(p.similarity >= threshold for p in known.precedents)
    assert not (known.review_reason or "").startswith("unlike")
    # the precedents' sentence vectors are saved with the model
    loaded = HSModel.load(on.save(tmp_path / "m"))
    assert loaded.precedents.sentences is not None
    again = _recommend(loaded, requests, top_k=3, n_precedents=3, review_threshold=0.0)
    assert [(r.review_reason, [p.case_key for p in r.precedents]) for r in again] == [
        (r.review_reason, [p.case_key for p in r.precedents]) for r in (known, odd)
    ]


def test_the_companion_reuses_the_main_networks_word_vectors(monkeypatch):
    """Both networks train fastText on the same corpus with the same seed; the vectors are
    the same within a process, so the companion takes the main network's instead of
    training them again."""
    from model import train_loop
    from model.embeddings import train_embeddings

    corpus = [["steel", "bolt"], ["plastic", "clip"], ["steel", "clip"]] * 5
    a, b = (train_embeddings(corpus, dim=8, epochs=2, seed=3, workers=1) for _ in range(2))
    np.testing.assert_array_equal(a.vectors, b.vectors)  # why sharing changes nothing
    calls = []

    def counted(*args, **kwargs):
        calls.append(kwargs.get("kind"))
        return train_embeddings(*args, **kwargs)

    monkeypatch.setattr(train_loop, "train_embeddings", counted)
    train, val = make_cases(120, 71, with_images=0), make_cases(40, 72, with_images=0)
    cfg = ModelConfig.from_flat(inputs="title", **{**TINY, "ensemble": "tfidf"})
    assert cfg.members[:2] == ("network", "companion")
    model = fit(train, val, cfg)
    assert calls == ["fasttext"]  # once, for both networks
    assert model.history["companion"]["best_epoch"] >= 1  # the companion did train
