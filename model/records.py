"""The records the model takes and gives, shared by the model and the domain core.

``model`` is the lowest layer: ``hscode`` (training, scoring, predict) imports these, the model
imports nothing of ``hscode``. What the model gives is a :class:`Ranking`: ranked codes with
calibrated scores and the nearest past cases. Whether a human must review it is business
policy and lives in ``hscode.review``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(slots=True)
class Example:
    """One labelled case (or an unlabelled request, with ``label=''``).

    ``candidates``: a partial label, the codes any of which is right for the case (a decided
    code that today's tariff split into several: ``hscode.code_status``); ``label`` then
    keeps the decided code, which is not a class. Empty: ``label`` is the one right code.
    """

    key: str
    title: str
    description: str | None = None
    image: bytes | None = None
    label: str = ""
    candidates: tuple[str, ...] = ()

    @property
    def accepted(self) -> tuple[str, ...]:
        """The codes that count as a correct answer for this case."""
        return self.candidates or (self.label,)


def accepted_matrix(examples: Sequence[Example], labels: Sequence[str]) -> np.ndarray:
    """[N, len(labels)] bool: the classes that count as right for each example (its label,
    or every candidate of a partial one); a code not among ``labels`` counts nowhere."""
    index = {label: j for j, label in enumerate(labels)}
    accepted = np.zeros((len(examples), len(labels)), dtype=bool)
    for i, e in enumerate(examples):
        for code in e.accepted:
            j = index.get(code)
            if j is not None:
                accepted[i, j] = True
    return accepted


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
    # the ruling's evidence, recorded in the index at training (``model.precedents``); None
    # for an index without it (models trained before it) or a case that lacks the field
    reference_no: str | None = None
    decision_date: str | None = None  # ISO date
    series: str | None = None  # the portal's series (portal cases)
    reason: str | None = None  # the decision reason, shortened
    source: str | None = None  # where the case came from: "clip" (the portal), "review", ...
    # the current codes the case stands for when its decided code ``hs10`` is no longer one
    # (split or moved: its candidate set); empty when ``hs10`` is its code
    successors: tuple[str, ...] = ()

    def supports(self, code: str) -> bool:
        """Whether this past case speaks for ``code``: its decided code, or a current code it
        was split or moved into."""
        return code == self.hs10 or code in self.successors


@dataclass(frozen=True, slots=True)
class Ranking:
    """The model's answer for one request.

    ``precedents`` are the nearest indexed cases, only those at or above ``similarity_floor``.
    ``nearest_similarity`` is the similarity of the nearest indexed case and
    ``similarity_floor`` the precedent space's threshold of "similar"; both are ``None`` when
    the space has no meaningful scale (the network's own features), so no familiarity check
    applies.
    """

    request_id: str
    candidates: list[Candidate]  # best first
    precedents: list[Precedent] = field(default_factory=list)
    nearest_similarity: float | None = None
    similarity_floor: float | None = None
    # P(the request is like the goods the model knows) and the floor below which it is not
    # (``model.familiarity``); None without a familiarity model
    familiarity: float | None = None
    familiarity_floor: float | None = None

    @property
    def confidence(self) -> float:
        return self.candidates[0].score if self.candidates else 0.0

    @property
    def familiar(self) -> bool:
        """False for an unfamiliar good: its familiarity is below the floor, or (without a
        familiarity model) no indexed case is as similar as the similarity floor."""
        if self.familiarity is not None and self.familiarity_floor is not None:
            return self.familiarity >= self.familiarity_floor
        if self.nearest_similarity is None or self.similarity_floor is None:
            return True
        return self.nearest_similarity >= self.similarity_floor
