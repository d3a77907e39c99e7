"""What a trained model gives the scoring side: the Recommender protocol and its records.

The scoring flow, the CLI ``predict`` command and the benchmarks all go through this
interface, so a model version can be swapped without touching them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class RequestInput:
    request_id: str
    title: str
    description: str | None = None
    image: bytes | None = None  # raw image bytes (JPEG/PNG), already read and size-checked


@dataclass(frozen=True, slots=True)
class Candidate:
    hs10: str
    score: float  # calibrated probability


@dataclass(frozen=True, slots=True)
class Precedent:
    case_key: str
    hs10: str
    title: str
    similarity: float  # cosine similarity in the model's precedent space, in [-1, 1]


@dataclass(frozen=True, slots=True)
class Recommendation:
    request_id: str
    candidates: list[Candidate]  # best first; len == top_k (or fewer when fewer classes)
    confidence: float  # calibrated probability of the top candidate
    review: (
        bool  # True: a human should decide (confidence below threshold, or conflicting precedents)
    )
    review_reason: str | None = None
    precedents: list[Precedent] = field(default_factory=list)


@runtime_checkable
class Recommender(Protocol):
    """A loaded model version."""

    version: str

    def recommend(
        self,
        requests: Sequence[RequestInput],
        *,
        top_k: int,
        n_precedents: int,
        review_threshold: float,
    ) -> list[Recommendation]:
        """One Recommendation per request, in order."""
        ...
