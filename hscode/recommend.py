"""What the scoring side gets from a model version: the Recommender protocol, the
Recommendation record, and :func:`recommend`, which applies the review policy.

The scoring flow, the CLI ``predict`` command and the benchmarks all go through this
interface, so a model version can be swapped without touching them. A recommender only ranks
(``model.records.Ranking``); whether a human must review is ``hscode.review``'s call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

from hscode.hs import LEVEL_DIGITS
from hscode.review import ReviewPolicy
from model.records import Candidate, Precedent, Ranking, RequestInput


@dataclass(frozen=True, slots=True)
class Recommendation:
    request_id: str
    candidates: list[Candidate]  # best first; len == top_k (or fewer when fewer classes)
    confidence: float  # calibrated probability of the top candidate
    review: bool  # True: a human should decide (ReviewPolicy)
    review_reason: str | None = None
    precedents: list[Precedent] = field(default_factory=list)


@runtime_checkable
class Recommender(Protocol):
    """A loaded model version."""

    version: str

    def rank(
        self, requests: Sequence[RequestInput], *, top_k: int, n_precedents: int
    ) -> list[Ranking]:
        """One Ranking per request, in order."""
        ...


@dataclass(frozen=True)
class CodeCheck:
    """The tariff edition answers are checked against: only its (current) ten-digit codes
    are recommended. ``edition`` None: no current edition is loaded, nothing is checked."""

    edition: str | None
    codes: frozenset[str] = frozenset()
    # ranks asked beyond top_k, so that top_k current codes remain after the check
    margin: int = 10

    @property
    def active(self) -> bool:
        return self.edition is not None

    def apply(self, ranking: Ranking, top_k: int) -> Ranking:
        kept = [c for c in ranking.candidates if c.hs10 in self.codes][:top_k]
        return replace(ranking, candidates=kept)


UNCHECKED = CodeCheck(None)

# ten-digit codes asked for a ranking at fewer digits: the mass beyond them is negligible
ROLL_UP_DEPTH = 50


def roll_up(candidates: Sequence[Candidate], digits: int) -> list[Candidate]:
    """The ranking at ``digits`` digits: each prefix scored by the summed calibrated
    probability of its ten-digit ``candidates``, best first (ties: the prefix ranked first
    in ``candidates``). A heading whose probability is spread over several subheadings can
    thus rank above the heading of the single best ten-digit code. ``Candidate.hs10`` holds
    the prefix. ``digits`` 10: the candidates as they are."""
    if digits not in LEVEL_DIGITS:
        raise ValueError(f"digits must be one of {LEVEL_DIGITS}, got {digits}")
    if digits == 10:
        return list(candidates)
    mass: dict[str, float] = {}
    for c in candidates:
        key = c.hs10[:digits]
        mass[key] = mass.get(key, 0.0) + c.score
    ranked = sorted(mass.items(), key=lambda kv: -kv[1])  # stable: first seen wins a tie
    return [Candidate(hs10=code, score=min(score, 1.0)) for code, score in ranked]


def recommend(
    recommender: Recommender,
    requests: Sequence[RequestInput],
    *,
    top_k: int,
    n_precedents: int,
    policy: ReviewPolicy,
    check: CodeCheck = UNCHECKED,
) -> list[Recommendation]:
    """One Recommendation per request, in order: the recommender's ranking, only codes of
    ``check``'s edition when it is active (a request can be left with none), and the
    policy's review flag and reason. The confidence is the top remaining code's score: an
    answer whose best code is obsolete gets the (lower) confidence of its best current one."""
    ask = top_k + check.margin if check.active else top_k
    out = []
    for ranking in recommender.rank(requests, top_k=ask, n_precedents=n_precedents):
        if check.active:
            ranking = check.apply(ranking, top_k)
        review, reason = policy.assess(ranking)
        out.append(
            Recommendation(
                request_id=ranking.request_id,
                candidates=list(ranking.candidates),
                confidence=ranking.confidence,
                review=review,
                review_reason=reason,
                precedents=list(ranking.precedents),
            )
        )
    return out
