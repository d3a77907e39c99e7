"""model.nearest / model.members.nearest: each code scored by its most similar training case,
in a blend of the TF-IDF and the sentence encoder's cosines; the default ensemble's member."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from model.baseline import TfidfSvm, l2_rows
from model.config import ModelConfig
from model.fit import fit
from model.nearest import NO_CASE, NearestCases
from model.sentence import get_encoder
from model.synthetic import make_cases

TEXTS = ["steel bolt m8", "hex bolt", "plastic clip", "plastic box", "볼트", "클립 플라스틱"]
LABELS = [0, 0, 1, 1, 0, 1]


@pytest.fixture(scope="module")
def svm():
    return TfidfSvm(min_df=1).fit(TEXTS, LABELS)


@pytest.fixture(autouse=True)
def exact_products(request, monkeypatch):
    """fp32 products, so the cosines are checked to 1e-6 (bf16 has a test of its own)."""
    if "bf16" not in request.node.name:
        monkeypatch.setattr("model.nearest.matmul_dtype", lambda: torch.float32)


def test_each_code_scores_its_most_similar_case(svm):
    nearest = NearestCases(encoder="none").fit(svm, TEXTS, LABELS, 3)  # code 2: no case
    probe = ["hex bolt", "plastic clip box"]
    sims = nearest.similarities(probe)
    # TF-IDF alone: the cosine to the best case of each code, computed by hand
    x, train = l2_rows(svm.sparse_features(probe)), l2_rows(svm.sparse_features(TEXTS))
    cos = (x @ train.T).toarray()
    for code in (0, 1):
        rows = [i for i, y in enumerate(LABELS) if y == code]
        np.testing.assert_allclose(sims[:, code], cos[:, rows].max(axis=1), rtol=1e-5)
    assert sims[0, 0] == pytest.approx(1.0, abs=1e-5)  # "hex bolt" is a training case
    assert np.all(sims[:, 2] == NO_CASE)
    np.testing.assert_allclose(nearest.scores(probe), sims * nearest.scale, rtol=1e-6)


def test_the_blend_adds_the_sentence_cosine(svm):
    w = 0.5
    nearest = NearestCases(encoder="use-m3", sentence_weight=w).fit(svm, TEXTS, LABELS, 2)
    probe = ["bolts made of steel", "클립"]
    tfidf = NearestCases(encoder="none").fit(svm, TEXTS, LABELS, 2)
    x = tfidf.matrix  # the same training rows, sorted by code
    enc = get_encoder("use-m3")
    order = np.argsort(LABELS, kind="stable")
    blended = (1 - w) * (l2_rows(svm.sparse_features(probe)) @ x.T).toarray() + w * (
        enc.encode(probe) @ enc.encode([TEXTS[i] for i in order]).T
    )
    got = nearest.similarities(probe)
    sorted_labels = np.array(LABELS)[order]
    for code in (0, 1):
        # float16 stored vectors: agreement to about 1e-3
        np.testing.assert_allclose(
            got[:, code], blended[:, sorted_labels == code].max(axis=1), atol=2e-3
        )
    # an English paraphrase with no shared n-gram of the Korean case still finds it
    assert got[1].argmax() == 1


def test_round_trip_without_pickle_and_bad_input(svm):
    nearest = NearestCases(encoder="use-m3").fit(svm, TEXTS, LABELS, 2)
    meta, arrays = nearest.to_state()
    assert arrays["vectors"].dtype == np.float16 and "labels" not in arrays
    clone = NearestCases.from_state(json.loads(json.dumps(meta)), arrays, svm)
    probe = ["hex bolt", "", "plastic"]
    np.testing.assert_array_equal(clone.scores(probe), nearest.scores(probe))
    assert nearest.scores([]).shape == (0, 2)
    with pytest.raises(ValueError, match="class indices"):
        NearestCases(encoder="none").fit(svm, TEXTS, [0, 0, 1, 1, 0, 5], 2)
    with pytest.raises(ValueError, match="sentence_weight"):
        NearestCases(sentence_weight=1.5)
    other = TfidfSvm(min_df=1).fit(["a b", "c d"], [0, 1])
    with pytest.raises(ValueError, match="columns"):
        NearestCases.from_state(meta, arrays, other)
    with pytest.raises(RuntimeError, match="not fitted"):
        NearestCases().scores(["x"])


def test_member_fits_on_the_svm_features_and_round_trips(svm, tmp_path):
    from model.config import MemberName
    from model.encoding import items_of
    from model.members import Batch, FitContext, LoadContext, kind_of
    from model.members.tfidf import SvmMember
    from model.records import Example

    labels = ["7318150000", "3926909000"]
    examples = [Example(f"k{i}", t, label=labels[y]) for i, (t, y) in enumerate(zip(TEXTS, LABELS))]
    # a case with two right codes is indexed once under each
    examples.append(Example("p", "bolt clip set", label=labels[0], candidates=tuple(labels)))
    cfg = ModelConfig.from_flat(inputs="title", companion="none")
    ctx = FitContext(
        config=cfg, labels=labels, examples=examples, network=None, device="cpu",
        fitted={MemberName.SVM: SvmMember(svm)},
    )  # fmt: skip
    member = kind_of("nearest").fit(ctx)
    assert member.nearest.matrix.shape[0] == len(examples) + 1
    assert member.nearest.sentence_weight == cfg.ensemble.nearest_sentence_weight
    batch = Batch(items_of([Example("q", "bolt clip set")]), with_description=False)
    assert member.nearest.similarities(batch.texts)[0] == pytest.approx([1.0, 1.0], abs=2e-3)
    entry = member.save(tmp_path)
    loaded = kind_of("nearest").load(
        entry,
        LoadContext(tmp_path, cfg, None, "cpu", {MemberName.SVM: SvmMember(svm)}),
    )
    np.testing.assert_array_equal(loaded.scores(batch), member.scores(batch))
    with pytest.raises(ValueError, match="nearest-case member needs the SVM"):
        kind_of("nearest").load(entry, LoadContext(tmp_path, cfg, None, "cpu", {}))


def test_default_ensemble_has_the_member():
    cfg = ModelConfig.from_flat(
        inputs="title", embed_dim=16, embed_epochs=2, hidden=16, feature_dim=32, epochs=2,
        batch_size=32, num_threads=1, companion="none",
    )  # fmt: skip
    assert cfg.members == ("network", "svm", "heading", "nearest", "sentence")
    train, val = make_cases(150, 61, with_images=0), make_cases(60, 62, with_images=0)
    model = fit(train, val, cfg)
    ensemble = model.history["ensemble"]
    assert ensemble["kind"] == "tfidf+nearest" and "val_top1_nearest" in ensemble
    # on this easy data the SVM alone is perfect, so the others are weighed 0 and dropped
    assert (model.member("nearest") is None) == ("nearest" in ensemble["dropped"])


def test_a_batch_computes_its_tfidf_features_once(svm, monkeypatch):
    from model.config import MemberName
    from model.encoding import items_of
    from model.members import Batch
    from model.members.nearest import NearestMember
    from model.members.tfidf import SvmMember
    from model.records import Example

    members = [
        SvmMember(svm),
        NearestMember(NearestCases(encoder="none").fit(svm, TEXTS, LABELS, 2)),
    ]
    assert [m.name for m in members] == [MemberName.SVM, MemberName.NEAREST]
    batch = Batch(items_of([Example("a", "hex bolt"), Example("b", "plastic clip")]), False)
    expected = [svm.decision_scores(batch.texts), members[1].nearest.scores(batch.texts)]
    calls = []
    transform = svm.sparse_features
    monkeypatch.setattr(svm, "sparse_features", lambda texts: calls.append(1) or transform(texts))
    got = [m.scores(batch) for m in members]
    assert len(calls) == 1  # the SVM and the nearest case share one transform
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("dense_terms", [0, 3, 10_000])
def test_the_split_product_is_the_plain_cosine(svm, monkeypatch, dense_terms):
    import model.nearest as nearest_module

    monkeypatch.setattr(nearest_module, "DENSE_TERMS", dense_terms)
    nearest = NearestCases(encoder="none", chunk=2).fit(svm, TEXTS, LABELS, 2)
    split = nearest._split()
    assert len(split.common) == min(dense_terms, nearest.matrix.shape[1])
    assert len(split.common) + len(split.rare) == nearest.matrix.shape[1]
    probe = ["hex bolt m8", "plastic clip box", "볼트 클립", ""]
    x = l2_rows(svm.sparse_features(probe))
    cos = (x @ nearest.matrix.T).toarray()
    rows = np.argsort(LABELS, kind="stable")  # the member's rows, sorted by code
    labels = np.array(LABELS)[rows]
    expected = np.stack([cos[:, labels == c].max(axis=1) for c in (0, 1)], axis=1)
    np.testing.assert_allclose(nearest.similarities(probe), expected, atol=1e-6)


def test_bf16_products_stay_within_3e_3_of_the_exact_blend(svm, monkeypatch):
    probe = ["hex bolt m8", "plastic clip box", "볼트 클립", "steel clip"]
    exact = NearestCases(encoder="use-m3", chunk=3).fit(svm, TEXTS, LABELS, 2)
    expected = exact.similarities(probe)
    monkeypatch.setattr("model.nearest.matmul_dtype", lambda: torch.bfloat16)
    fast = NearestCases(encoder="use-m3", chunk=3).fit(svm, TEXTS, LABELS, 2)
    assert fast._split().dense_t.dtype == torch.bfloat16
    np.testing.assert_allclose(fast.similarities(probe), expected, atol=3e-3)
