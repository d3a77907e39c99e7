"""The sentence member: a classifier on a frozen multilingual sentence encoder's vectors
(``model.sentence.SentenceHead``): the meaning of a name whose n-grams the SVM has not seen."""

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
from model.sentence import SentenceHead


class SentenceMember:
    name: ClassVar[MemberName] = MemberName.SENTENCE
    STEM = "sentence"

    def __init__(self, head: SentenceHead) -> None:
        self.head = head

    def scores(self, batch: Batch) -> np.ndarray:
        return self.head.scores(batch.texts)

    def save(self, directory: Path) -> dict[str, Any]:
        return write_state(directory, self.STEM, self.head.to_state())


def _fit(ctx: FitContext) -> SentenceMember:
    ens = ctx.config.ensemble
    head = SentenceHead(
        ens.sentence_encoder,
        hidden=ens.sentence_hidden,
        epochs=ens.sentence_epochs,
        seed=ctx.config.seed,
    ).fit(ctx.batch.texts, ctx.y, len(ctx.labels), sets=ctx.sets)
    return SentenceMember(head)


def _load(entry: Mapping[str, Any], ctx: LoadContext) -> SentenceMember:
    meta, arrays = read_state(entry, ctx.directory, SentenceMember.STEM)
    return SentenceMember(SentenceHead.from_state(meta, arrays))


register_fresh(MemberName.SENTENCE, _fit, _load)
