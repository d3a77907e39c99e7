"""model.familiarity: goods unlike the known ones get a low confidence and a review flag with
the reason, learned from cases of other codes (the background); saved and refitted with the
model; without a background the nearest-case rule alone applies."""

from __future__ import annotations

import random

import numpy as np
import pytest
from tiny_models import TINY_NETWORK

from hscode.recommend import recommend
from hscode.review import ReviewPolicy
from model.config import ModelConfig
from model.familiarity import N_FEATURES, Familiarity, detector_classes, held_out_heading
from model.fit import fit
from model.hsmodel import HSModel
from model.records import Example, RequestInput
from model.refit import refit
from model.synthetic import BRANDS, make_cases, model_number

TINY = {
    **TINY_NETWORK,
    "inputs": "title",
}

# goods of other codes (none of model.synthetic's): the background the model learns from
OTHER_GOODS = {
    "0203291000": ["냉동 돼지고기", "frozen pork belly", "pork loin frozen"],
    "0303890000": ["냉동 고등어", "frozen mackerel", "frozen fish fillet"],
    "0901210000": ["볶은 커피 원두", "roasted coffee beans", "coffee beans"],
    "2204210000": ["레드 와인", "red wine bottle", "포도주"],
    "3304990000": ["보습 크림", "face moisturizer cream", "skin lotion"],
    "3923300000": ["플라스틱 병", "PET bottle", "plastic container"],
    "4011100000": ["승용차 타이어", "passenger car tyre", "radial tire"],
    "6109100000": ["면 티셔츠", "cotton t-shirt", "knitted cotton tee"],
    "7318150000": ["육각 볼트", "hex bolt", "steel screw bolt"],
    "8429520000": ["굴삭기", "hydraulic excavator", "crawler excavator"],
    "8703230000": ["승용 자동차", "passenger car sedan", "gasoline car"],
    "9503000000": ["장난감 블록", "toy building blocks", "plastic toy"],
    "9403600000": ["나무 책상", "wooden desk", "wooden furniture"],
    "8481800000": ["볼 밸브", "ball valve", "brass valve"],
    "7208510000": ["열연 강판", "hot rolled steel plate", "steel sheet"],
    "2710193000": ["윤활유", "lubricating oil", "engine oil"],
}


def background_cases(n_per_code: int = 30, seed: int = 5) -> list[Example]:
    rng = random.Random(seed)
    return [
        Example(
            f"bg-{code}-{i}",
            f"{rng.choice(words)} {rng.choice(BRANDS)} {model_number(rng)}",
            label=code,
        )
        for code, words in OTHER_GOODS.items()
        for i in range(n_per_code)
    ]


@pytest.fixture(scope="module")
def models():
    train, val = make_cases(200, 31, with_images=0), make_cases(120, 32, with_images=0)
    config = ModelConfig.from_flat(**TINY)
    with_background = fit(train, val, config, background=background_cases())
    without = fit(train, val, config)
    return with_background, without, train + val


def _recommend(model, requests):
    return recommend(model, requests, top_k=3, n_precedents=3, policy=ReviewPolicy(0.0))


def test_the_background_splits_by_heading_into_two_parts():
    parts = {held_out_heading(code) for code in OTHER_GOODS}
    assert parts == {True, False}  # both parts have headings of these goods
    assert all(held_out_heading(c) == held_out_heading(c[:4] + "999999") for c in OTHER_GOODS)


def test_a_request_unlike_any_known_case_gets_low_confidence_and_the_reason(models):
    model, _, _ = models
    assert model.familiarity is not None
    fitted = model.history["familiarity"]
    assert fitted["background_a"] > 0 and fitted["combiner_unfamiliar"] > 0
    assert 0.0 < fitted["floor"] < 1.0
    assert fitted["flagged_familiar"] == pytest.approx(0.1, abs=0.05)  # max_flagged
    odd, known = _recommend(
        model,
        [
            RequestInput("odd", "quantum entanglement research grant proposal"),
            RequestInput("known", "스마트폰 Samsung SM-G991N"),
        ],
    )
    assert odd.review and odd.review_reason.startswith("unlike any known case: familiarity")
    assert "no similar past case" in odd.review_reason and odd.precedents == []
    raw = model.rank([RequestInput("odd", "quantum entanglement research grant proposal")])[0]
    assert raw.familiarity < raw.familiarity_floor
    # its scores are scaled by familiarity / floor: a low confidence
    assert odd.confidence <= raw.familiarity / raw.familiarity_floor + 1e-9
    assert not (known.review_reason or "").startswith("unlike")
    assert known.confidence > odd.confidence


def test_goods_of_other_codes_are_flagged_far_more_often_than_known_goods(models):
    model, _, _ = models
    known = [RequestInput(e.key, e.title) for e in make_cases(100, 77, with_images=0)]
    other = [RequestInput(e.key, e.title) for e in background_cases(8, seed=99)]
    flagged = lambda reqs: np.mean(
        [(r.review_reason or "").startswith("unlike") for r in _recommend(model, reqs)]
    )
    assert flagged(known) <= 0.25
    assert flagged(other) >= 0.6


def test_familiarity_is_saved_and_kept_by_the_refit(models, tmp_path):
    model, _, cases = models
    model.save(tmp_path / "m")
    loaded = HSModel.load(tmp_path / "m")
    request = [RequestInput("odd", "frozen pork belly Sony X100")]
    a, b = model.rank(request)[0], loaded.rank(request)[0]
    assert a.familiarity == pytest.approx(b.familiarity, abs=1e-6)
    assert a.familiarity_floor == b.familiarity_floor
    served = refit(model, cases)
    assert served.familiarity is not None
    assert served.familiarity.floor == model.familiarity.floor
    assert "familiarity" in served.history["refit"]["kept_from_evaluated"]


def test_without_a_background_the_nearest_case_rule_applies(models):
    _, without, _ = models
    assert without.familiarity is None
    (odd,) = _recommend(without, [RequestInput("odd", "quantum entanglement research proposal")])
    ranking = without.rank([RequestInput("odd", "quantum entanglement research proposal")])[0]
    assert ranking.familiarity is None
    assert odd.review_reason.startswith("unlike any known case: no similar past case")


def test_the_detector_learns_chapters_known_and_other_and_is_refitted_on_both_parts(models):
    model, _, _ = models
    fitted = model.history["familiarity"]
    background = background_cases()
    part_a = [e for e in background if not held_out_heading(e.label)]
    assert fitted["detector"] == "chapters"
    assert fitted["background_a"] == len(part_a)
    # the served detector saw both parts; part B's headings are none of the classes'
    assert fitted["served_detector_background"] == len(background)
    classes = set(model.familiarity.detector.classes_.tolist())
    assert {f"b{code[:2]}" for code in OTHER_GOODS} <= classes
    assert {f"k{code[:2]}" for code in model.labels} <= classes
    assert detector_classes(["8517130000"], ["0203291000"]) == ["k85", "b02"]


def test_a_model_saved_with_the_former_hashed_detector_still_loads_and_scores(tmp_path):
    rng = np.random.default_rng(0)
    former = Familiarity(
        None,
        np.array([1.0, 2.0, 0.5]),
        -0.3,
        0.4,
        coef=rng.normal(size=N_FEATURES).astype(np.float32),
        intercept=0.1,
    )
    entry = former.save(tmp_path)
    assert entry["detector"] == "hashed"
    entry.pop("detector")  # as models saved before the chapter detector have it
    loaded = Familiarity.load(tmp_path, entry)
    texts, nearest, confidence = (
        ["frozen pork belly", "스마트폰"],
        [0.4, None],
        np.array([0.9, 0.2]),
    )
    np.testing.assert_allclose(
        loaded.probability(texts, nearest, confidence),
        former.probability(texts, nearest, confidence),
    )


def test_below_the_floor_the_scores_are_scaled_by_familiarity_over_the_floor(models):
    model, _, _ = models
    request = [RequestInput("odd", "quantum entanglement research grant proposal")]
    scaled = model.rank(request, top_k=3)[0]
    floor = model.familiarity.floor
    try:
        model.familiarity.floor = 0.0  # nothing is below it: the scores unscaled
        unscaled = model.rank(request, top_k=3)[0]
    finally:
        model.familiarity.floor = floor
    assert scaled.familiarity < floor
    factor = scaled.familiarity / floor
    assert [c.hs10 for c in scaled.candidates] == [c.hs10 for c in unscaled.candidates]
    np.testing.assert_allclose(
        [c.score for c in scaled.candidates], [c.score * factor for c in unscaled.candidates]
    )
