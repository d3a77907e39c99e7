"""The nearest-case member: each code scored by its most similar training case, in a blend of
the SVM's TF-IDF space and the sentence encoder's space (``model.nearest.NearestCases``).
It needs the SVM's vectorizers."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from model.config import MemberName
from model.members.base import (
    Batch,
    FitContext,
    LoadContext,
    read_state,
    register_fresh,
    write_state,
)
from model.members.tfidf import svm_of
from model.nearest import NearestCases


class NearestMember:
    name: ClassVar[MemberName] = MemberName.NEAREST
    STEM = "nearest"

    def __init__(self, nearest: NearestCases) -> None:
        self.nearest = nearest

    def scores(self, batch: Batch) -> np.ndarray:
        return self.nearest.scores(batch.texts, batch.tfidf(self.nearest.features))

    def save(self, directory: Path) -> dict[str, Any]:
        return write_state(directory, self.STEM, self.nearest.to_state(), compressed=True)


def _fit(ctx: FitContext) -> NearestMember:
    ens = ctx.config.ensemble
    texts, y, _ = ctx.expanded  # a case with several right codes counts for each of them
    nearest = NearestCases(
        encoder=str(ens.sentence_encoder), sentence_weight=ens.nearest_sentence_weight
    ).fit(svm_of(ctx.fitted, "nearest-case"), texts, y, len(ctx.labels))
    return NearestMember(nearest)


def _load(entry: Mapping[str, Any], ctx: LoadContext) -> NearestMember:
    meta, arrays = read_state(entry, ctx.directory, NearestMember.STEM)
    return NearestMember(NearestCases.from_state(meta, arrays, svm_of(ctx.loaded, "nearest-case")))


register_fresh(MemberName.NEAREST, _fit, _load, requires=(MemberName.SVM,))
