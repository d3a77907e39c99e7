"""TF-IDF + linear SVM baseline: shapes, learning a toy task, pickling, invariance."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest

from model.baseline import TfidfSvm

NAMES = {
    "0202300000": ["frozen beef boneless", "소고기 냉동", "beef patties frozen", "ground beef"],
    "3926909000": ["plastic clip", "플라스틱 커버", "plastic storage box", "plastic holder"],
    "7318159000": ["steel bolt", "hex bolt", "볼트", "anchor bolt"],
    "8517130000": ["smartphone", "스마트폰", "mobile phone", "휴대전화"],
}
BRANDS = ["samsung", "lg", "acme", "bosch", "삼성", "현대"]


def _cases(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        code = rng.choice(sorted(NAMES))
        model_no = f"{rng.choice('ABKSX')}{rng.randint(100, 9999)}"
        texts.append(f"{rng.choice(NAMES[code])} {rng.choice(BRANDS)} {model_no}")
        labels.append(code)
    return texts, labels


@pytest.fixture(scope="module")
def fitted() -> TfidfSvm:
    texts, labels = _cases(200, seed=1)
    return TfidfSvm().fit(texts, labels)


def test_topk_shapes_and_order(fitted):
    labels, scores = fitted.predict_topk(["plastic clip", "볼트 M8", ""], k=3)
    assert labels.shape == (3, 3) and scores.shape == (3, 3)
    assert np.all(np.diff(scores, axis=1) <= 0)  # best first
    assert set(labels.ravel()) <= set(fitted.classes_)
    assert fitted.decision_scores(["beef"]).shape == (1, 4)
    assert fitted.predict_topk(["beef"], k=10)[0].shape == (1, 4)  # k capped at n classes


def test_learns_toy_task_and_ignores_brand_and_model_number(fitted):
    texts, labels = _cases(100, seed=2)
    top1 = fitted.predict_topk(texts, k=1)[0][:, 0]
    assert np.mean(top1 == np.array(labels)) >= 0.95
    a = fitted.predict_topk(["스마트폰 samsung K1234", "steel bolt acme S77"], k=1)[0][:, 0]
    b = fitted.predict_topk(["스마트폰 bosch X9876", "steel bolt 현대 B4321"], k=1)[0][:, 0]
    assert a.tolist() == b.tolist() == ["8517130000", "7318159000"]


def test_pickle_round_trip(fitted):
    clone = pickle.loads(pickle.dumps(fitted))
    texts = ["frozen beef", "plastic box"]
    np.testing.assert_allclose(clone.decision_scores(texts), fitted.decision_scores(texts))


def test_binary_and_bad_input():
    model = TfidfSvm().fit(["beef", "pork beef", "bolt", "steel bolt"], ["a", "a", "b", "b"])
    assert model.decision_scores(["beef"]).shape == (1, 2)
    assert model.predict_topk(["steel"], k=1)[0][0, 0] == "b"
    with pytest.raises(ValueError, match="at least two classes"):
        TfidfSvm().fit(["a", "b"], ["x", "x"])
    with pytest.raises(ValueError, match="labels"):
        TfidfSvm().fit(["a", "b"], ["x"])
    with pytest.raises(RuntimeError, match="not fitted"):
        TfidfSvm().decision_scores(["a"])


def test_a_coefficient_budget_drops_terms_seen_once():
    texts, labels = _cases(200, seed=3)
    every = TfidfSvm(min_df=1).fit(texts, labels)
    n_terms = len(every.char_vectorizer.vocabulary_) + len(every.word_vectorizer.vocabulary_)
    coef_mb = n_terms * 4 * 4 / 2**20  # 4 classes, float32
    roomy = TfidfSvm(min_df=1, max_coef_mb=coef_mb * 1.01).fit(texts, labels)
    tight = TfidfSvm(min_df=1, max_coef_mb=coef_mb * 0.99).fit(texts, labels)
    assert roomy.min_df == 1 and roomy.coef.shape == every.coef.shape
    assert tight.min_df == 2 and tight.coef.shape[0] < n_terms  # the model numbers went
    assert TfidfSvm.from_state(*tight.to_state()).min_df == 2


def _item_problem(rng: np.random.Generator) -> tuple[list[str], object, np.ndarray]:
    """300 short names, their TF-IDF features and their 35 codes (one per item x kind)."""
    texts = [f"item{i % 7} kind{i % 5} x{rng.integers(100)}" for i in range(300)]
    features = TfidfSvm()
    features.fit_vectorizers(texts)
    return (
        texts,
        features._features(texts),
        np.array([f"c{(i % 7) * 5 + i % 5:02d}" for i in range(300)]),
    )


def test_the_one_vs_rest_fit_on_active_sets_solves_the_whole_problems(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each class fitted on its own rows and the negatives that score above -1 is the
    plain one-vs-rest fit on every row, to the solver's tolerance: in one thread or two,
    with sample weights too, and with a first random draw that misses most negatives."""
    from sklearn.svm import LinearSVC

    from model import baseline
    from model.baseline import fit_one_vs_rest

    rng = np.random.default_rng(0)
    texts, x, y = _item_problem(rng)
    flip = rng.random(300) < 0.1  # some noise, so that the problems are not separable
    y[flip] = rng.permutation(y[flip])
    weights = rng.uniform(0.5, 2.0, 300)
    plain = LinearSVC(C=0.5, random_state=13, tol=1e-6).fit(x, y)
    plain_weighted = LinearSVC(C=0.5, random_state=13, tol=1e-6).fit(x, y, sample_weight=weights)
    assert np.abs(plain.coef_).max() > 0.5  # weights worth comparing
    monkeypatch.setattr(baseline, "ACTIVE_SAMPLE", 20)  # the first draw: 20 of 290 negatives
    fits = [
        (fit_one_vs_rest(x, y, 0.5, 13, jobs=1), plain),
        (fit_one_vs_rest(x, y, 0.5, 13, jobs=2), plain),
        (fit_one_vs_rest(x, y, 0.5, 13, weights, jobs=2), plain_weighted),
    ]
    for (coef, intercept, classes), reference in fits:
        assert list(classes) == list(reference.classes_) == sorted(set(y))
        assert coef.shape == (35, x.shape[1])
        assert np.abs(coef - reference.coef_).max() < 2e-3
        assert np.abs(intercept - reference.intercept_).max() < 2e-3
        # float32, laid out so that the scorer's [features, classes] matrix is a view
        assert coef.dtype == intercept.dtype == np.float32 and coef.T.flags.c_contiguous
    fitted = TfidfSvm(jobs=2).fit(texts, list(y))
    assert fitted.coef is not None and fitted.coef.flags.c_contiguous
    # two classes only: one problem, the first class's weights its negation
    coef, _, classes = fit_one_vs_rest(x, y == y[0], 0.5, 13, jobs=2)
    assert coef.shape[0] == 2 and np.allclose(coef[0], -coef[1]) and len(classes) == 2


def test_the_fit_says_when_its_checks_ran_out_with_violators_left(monkeypatch, caplog):
    from model import baseline
    from model.baseline import fit_one_vs_rest

    rng = np.random.default_rng(1)
    _, x, y = _item_problem(rng)
    monkeypatch.setattr(baseline, "ACTIVE_SAMPLE", 5)
    with caplog.at_level("WARNING", logger="model.baseline"):
        fit_one_vs_rest(x, y, 0.5, 13)  # enough checks: silent
    assert not caplog.records
    # no check allowed: the first fit, on 5 drawn negatives each, is left as it is
    monkeypatch.setattr(baseline, "ACTIVE_ROUNDS", 0)
    with caplog.at_level("WARNING", logger="model.baseline"):
        fit_one_vs_rest(x, y, 0.5, 13)
    assert [r.getMessage() for r in caplog.records if "still have negatives" in r.getMessage()]
