"""What the scoring side gets from a model version: the Recommender protocol, the
Recommendation record, and :func:`recommend`, which applies the review policy.

The scoring flow, the CLI ``predict`` command and the benchmarks all go through this
interface, so a model version can be swapped without touching them. A recommender only ranks
(``model.records.Ranking``); whether a human must review is ``hscode.review``'s call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

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


def recommend(
    recommender: Recommender,
    requests: Sequence[RequestInput],
    *,
    top_k: int,
    n_precedents: int,
    policy: ReviewPolicy,
) -> list[Recommendation]:
    """One Recommendation per request, in order: the recommender's ranking and the policy's
    review flag and reason."""
    out = []
    for ranking in recommender.rank(requests, top_k=top_k, n_precedents=n_precedents):
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
