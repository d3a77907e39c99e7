"""When a human must decide: the review rule, business policy applied to a model's ranking.

A ranking goes to review, with the first reason that applies:

1. ``unlike any known case``: no past case is as similar as the precedent space's floor
   (the model has not seen goods like these; its confidence means little there);
2. ``low confidence``: the calibrated probability of the top code is below the threshold;
3. ``precedents disagree`` (only with ``precedent_vote``, ``Settings.review_precedent_vote``,
   off by default): the similar past cases (similarity-weighted vote) point to another code
   than the top candidate (a case decided under a code the tariff has since split or moved
   votes for the top candidate when it is one of its successors).

Why the third rule is off by default (docs/benchmarks.md section 13a): on the ghko99 names
(K = 100) it flagged 10-12% of the names of known codes, and only 28-31% of the answers it
alone flagged were wrong (20-22% of all answers are), while the low-confidence rule's flags were
wrong 59-63% of the time. The evidence is still shown: every answer lists its precedents.
"""

from __future__ import annotations

from dataclasses import dataclass

from hscode.settings import Settings
from model.records import Ranking

_DEFAULT = Settings.model_fields  # the policy's defaults are the settings' (one definition)


@dataclass(frozen=True, slots=True)
class ReviewPolicy:
    threshold: float = _DEFAULT["review_threshold"].default
    precedent_vote: bool = _DEFAULT["review_precedent_vote"].default

    @classmethod
    def from_settings(cls, settings: Settings) -> ReviewPolicy:
        """The policy a deployment's ``hscode.settings.Settings`` describe."""
        return cls(settings.review_threshold, settings.review_precedent_vote)

    def assess(self, ranking: Ranking) -> tuple[bool, str | None]:
        """(review, reason) for one ranking."""
        if not ranking.familiar:
            return True, f"unlike any known case: {_unfamiliar_why(ranking)}"
        confidence = ranking.confidence
        if confidence < self.threshold:
            return True, f"low confidence {confidence:.2f} < {self.threshold:.2f}"
        precedents = ranking.precedents
        if self.precedent_vote and precedents and ranking.candidates:
            top = ranking.candidates[0].hs10
            votes: dict[str, float] = {}
            for p in precedents:
                # a case decided under a code since split or moved speaks for its successors
                code = top if p.supports(top) else p.hs10
                votes[code] = votes.get(code, 0.0) + max(p.similarity, 0.0) + 1e-6
            winner = max(votes, key=votes.__getitem__)
            if winner != top:
                agree = sum(p.supports(winner) for p in precedents)
                return True, (
                    f"precedents disagree: {agree}/{len(precedents)} nearest cases are "
                    f"{winner}, not {top}"
                )
        return False, None


def _unfamiliar_why(ranking: Ranking) -> str:
    """Why a ranking is unfamiliar: its familiarity below the floor (with the nearest case),
    or, without a familiarity model, no case as similar as the similarity floor."""
    nearest, floor = ranking.nearest_similarity, ranking.similarity_floor
    below = nearest is not None and floor is not None and nearest < floor
    if ranking.familiarity is None or ranking.familiarity_floor is None:
        return f"no similar past case (nearest similarity {nearest:.2f} < {floor:.2f})"
    why = f"familiarity {ranking.familiarity:.2f} < {ranking.familiarity_floor:.2f}"
    if below:
        return f"{why}; no similar past case"
    return why if nearest is None else f"{why}; nearest past case {nearest:.2f}"
