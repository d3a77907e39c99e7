"""hscode.review.ReviewPolicy's precedent rule, and the successors a precedent index keeps for
cases decided under codes the tariff has since split."""

from __future__ import annotations

import numpy as np

from hscode.review import ReviewPolicy
from model.precedents import PrecedentIndex
from model.records import Candidate, Example, Precedent, Ranking

OLD, NEW_A, NEW_B, OTHER = "9405400000", "9405420000", "9405490000", "9403200000"


def _ranking(top: str, precedents: list[Precedent]) -> Ranking:
    return Ranking("r", [Candidate(top, 0.9), Candidate(OTHER, 0.05)], precedents, 0.9, 0.5)


def test_a_case_decided_under_a_split_code_speaks_for_its_successors():
    policy = ReviewPolicy(0.5, precedent_vote=True)
    split = Precedent("old", OLD, "led lamp", 0.95, successors=(NEW_A, NEW_B))
    same = Precedent("new", NEW_A, "led lamp set", 0.9)
    # before: 1/2 nearest cases were the old code, and outvoted the current successor
    assert policy.assess(_ranking(NEW_A, [split, same])) == (False, None)
    assert split.supports(NEW_B) and not split.supports(OTHER)
    # a case of another code still disagrees, and is counted as such
    other = [Precedent(f"o{i}", OTHER, "table", 0.97) for i in range(2)]
    review, reason = policy.assess(_ranking(NEW_A, [*other, split]))
    assert review and reason == f"precedents disagree: 2/3 nearest cases are {OTHER}, not {NEW_A}"
    # the old code itself as the top answer is supported by its own cases
    assert policy.assess(_ranking(OLD, [split]))[0] is False


def test_the_index_keeps_successors_through_a_save(tmp_path):
    cases = [
        Example("a", "led lamp", label=OLD, candidates=(NEW_A, NEW_B)),
        Example("b", "oak table", label=OTHER),
    ]
    features = np.eye(2, dtype=np.float32)
    index = PrecedentIndex.build(cases, features, "none", 0.5)
    index.save(tmp_path)
    loaded = PrecedentIndex.load(tmp_path, "none", 0.5)
    assert loaded.successors == [(NEW_A, NEW_B), ()]
    found = loaded.search([("led lamp", None, None)], 2, lambda: features[:1])
    first = found.precedents[0][0]
    assert (first.hs10, first.successors) == (OLD, (NEW_A, NEW_B))
    # an index with no split case stores none (and older indexes load as none)
    plain = PrecedentIndex.build(cases[1:], features[:1], "none", 0.5)
    plain.save(tmp_path)
    assert PrecedentIndex.load(tmp_path, "none", 0.5).successors is None


def test_the_precedent_vote_is_off_unless_the_settings_turn_it_on():
    from hscode.settings import Settings

    other = [Precedent(f"o{i}", OTHER, "table", 0.97) for i in range(3)]
    ranking = _ranking(NEW_A, other)
    assert ReviewPolicy.from_settings(Settings()).assess(ranking) == (False, None)
    on = ReviewPolicy.from_settings(Settings(review_precedent_vote=True, review_threshold=0.3))
    assert on == ReviewPolicy(0.3, precedent_vote=True)
    assert on.assess(ranking)[1].startswith("precedents disagree: 3/3")
