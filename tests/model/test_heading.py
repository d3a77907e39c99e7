"""model.members.heading: every code scored by its heading's margin, learned from the pooled
cases of sibling codes, on the SVM member's TF-IDF features."""

from __future__ import annotations

import numpy as np
import pytest

from model.baseline import TfidfSvm
from model.config import MemberName, ModelConfig
from model.encoding import items_of
from model.members import Batch, FitContext, LoadContext, kind_of
from model.members.heading import heading_index
from model.members.tfidf import SvmMember
from model.records import Example

# two beef codes (0202), one pork code (0203), one cotton shirt code (6205)
CASES = [
    ("frozen beef boneless", "0202300000"),
    ("frozen beef cuts", "0202300000"),
    ("beef carcass frozen", "0202100000"),
    ("frozen beef half carcass", "0202100000"),
    ("frozen pork belly", "0203291000"),
    ("pork shoulder frozen", "0203291000"),
    ("cotton shirt men", "6205200000"),
    ("men's shirt of cotton", "6205200000"),
]
LABELS = sorted({code for _, code in CASES})


def _context(cases, labels=LABELS, digits: int = 4) -> FitContext:
    examples = [Example(f"k{i}", title, label=code) for i, (title, code) in enumerate(cases)]
    index = {lab: i for i, lab in enumerate(labels)}
    svm = TfidfSvm(min_df=1).fit([t for t, _ in cases], [index[c] for _, c in cases])
    cfg = ModelConfig.from_flat(inputs="title", companion="none", heading_digits=digits)
    return FitContext(
        config=cfg, labels=labels, examples=examples, network=None, device="cpu",
        fitted={MemberName.SVM: SvmMember(svm)},
    )  # fmt: skip


def test_heading_index_groups_codes_by_their_first_digits():
    assert heading_index(LABELS, 4).tolist() == [0, 0, 1, 2]
    assert heading_index(LABELS, 2).tolist() == [0, 0, 0, 1]


def test_sibling_codes_share_their_headings_score_and_it_round_trips(tmp_path):
    ctx = _context(CASES)
    assert MemberName.HEADING in ctx.config.members
    member = kind_of("heading").fit(ctx)
    assert member.n_heads == 3 and member.coef.shape[1] == 3
    batch = Batch(items_of([Example("q1", "frozen beef"), Example("q2", "cotton shirt")]), False)
    scores = member.scores(batch)
    assert scores.shape == (2, len(LABELS))
    np.testing.assert_array_equal(scores[:, 0], scores[:, 1])  # both 0202 codes, one score
    assert scores[0].argmax() in (0, 1) and scores[1].argmax() == 3
    entry = member.save(tmp_path)
    loaded = kind_of("heading").load(
        entry, LoadContext(tmp_path, ctx.config, None, "cpu", dict(ctx.fitted))
    )
    # float16 on disk: margins agree to about 1e-3
    np.testing.assert_allclose(loaded.scores(batch), scores, atol=5e-3)
    with pytest.raises(ValueError, match="heading member needs the SVM"):
        kind_of("heading").load(entry, LoadContext(tmp_path, ctx.config, None, "cpu", {}))


def test_codes_that_are_their_own_headings_reuse_the_svm():
    """A model trained at four digits: the heading member is the SVM member, fitted once."""
    cases = [(t, c[:4]) for t, c in CASES]
    ctx = _context(cases, sorted({c for _, c in cases}))
    member = kind_of("heading").fit(ctx)
    assert member.coef is None
    batch = Batch(items_of([Example("q", "frozen pork")]), False)
    svm = ctx.fitted[MemberName.SVM].svm
    np.testing.assert_array_equal(member.scores(batch), svm.decision_scores(batch.texts))


def test_one_heading_carries_no_signal():
    beef = [(t, c) for t, c in CASES if c.startswith("0202")]
    ctx = _context(beef, sorted({c for _, c in beef}))
    member = kind_of("heading").fit(ctx)
    batch = Batch(items_of([Example("q", "frozen beef")]), False)
    assert member.coef is None and not member.scores(batch).any()


def test_no_heading_member_when_switched_off():
    cfg = ModelConfig.from_flat(inputs="title", companion="none", heading_digits=0)
    assert MemberName.HEADING not in cfg.members
    with pytest.raises(ValueError, match="heading_digits must be"):
        ModelConfig.from_flat(inputs="title", heading_digits=5)
