"""Behaviour of a trained model (checklist-style tests on synthetic cases): what a user
expects whatever the accuracy figure says.

- minimum functionality: the bare product word of every code is answered with that code;
- invariance: letter case and spacing do not move the code (brand and model number:
  ``test_model_pipeline.py::test_changed_model_number_or_brand_keeps_heading``);
- directional: adding the code's own description keeps the answer and does not lower the
  confidence much; a nonsense request is unfamiliar (and so goes to review).
"""

from __future__ import annotations

import random

import pytest

from hscode.recommend import recommend
from hscode.review import ReviewPolicy
from model.config import ModelConfig
from model.fit import fit
from model.records import Example, RequestInput
from model.synthetic import BRANDS, PRODUCTS, make_cases, model_number

SMALL = {
    "inputs": "title+description",
    "embed_dim": 16,
    "embed_epochs": 3,
    "hidden": 32,
    "feature_dim": 64,
    "epochs": 6,
    "batch_size": 32,
    "lr": 1e-2,
    "label_smoothing": 0.0,
    "num_threads": 1,
}


@pytest.fixture(scope="module")
def model():
    return fit(
        make_cases(250, 31, with_images=0),
        make_cases(60, 32, with_images=0),
        ModelConfig.from_flat(**SMALL),
    )


def _top(model, titles: list[str], descriptions: list[str | None] | None = None) -> list[str]:
    descriptions = descriptions or [None] * len(titles)
    examples = [
        Example(f"q{i}", t, d) for i, (t, d) in enumerate(zip(titles, descriptions, strict=True))
    ]
    return [model.labels[i] for i in model.predict_proba(examples).argmax(axis=1)]


def test_minimum_functionality_every_product_word_gets_its_code(model):
    titles, expected = [], []
    for code, (words, _, _) in PRODUCTS.items():
        titles += words
        expected += [code] * len(words)
    answers = _top(model, titles)
    assert sum(a == e for a, e in zip(answers, expected, strict=True)) >= len(titles) - 1


@pytest.mark.xfail(
    strict=True,
    reason="the sentence member reads text as written: upper-casing moves 2 of 20 codes "
    "('FORMAL SHOES' leans to monitors); the TF-IDF members and the networks lower-case. "
    "A head stopped early on validation (sentence_patience 4) moved at most 1",
)
def test_invariance_to_letter_case_and_spacing(model):
    rng = random.Random(6)
    base = [
        f"{word} {rng.choice(BRANDS)} {model_number(rng)}"
        for words, _, _ in PRODUCTS.values()
        for word in words
    ]
    shouted = [f"  {' '.join(t.upper().split())}  ".replace(" ", "  ") for t in base]
    before, after = _top(model, base), _top(model, shouted)
    assert sum(b != a for b, a in zip(before, after, strict=True)) <= 1


def test_directional_own_description_keeps_the_answer(model):
    titles, descriptions, expected = [], [], []
    for code, (words, phrases, _) in PRODUCTS.items():
        titles.append(words[1])
        descriptions.append(phrases[1])
        expected.append(code)
    assert _top(model, titles, descriptions) == expected


def test_nonsense_is_unfamiliar_and_goes_to_review(model):
    requests = [
        RequestInput("known", f"{PRODUCTS['8517130000'][0][1]} samsung A-1234N"),
        RequestInput("odd", "quarterly municipal zoning ordinance amendment"),
    ]
    rankings = model.rank(requests, top_k=3, n_precedents=3)
    assert rankings[0].familiar and not rankings[1].familiar
    assert rankings[1].precedents == []
    recs = recommend(model, requests, top_k=3, n_precedents=3, policy=ReviewPolicy(0.0))
    assert not recs[0].review
    assert recs[1].review and recs[1].review_reason.startswith("unlike any known case")
