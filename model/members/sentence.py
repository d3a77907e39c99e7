"""The sentence member: a classifier on a frozen multilingual sentence encoder's vectors
(``model.sentence.SentenceHead``): the meaning of a name whose n-grams the SVM has not seen."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from model.config import MemberName
from model.encoding import items_of
from model.members.base import (
    Batch,
    FitContext,
    LoadContext,
    MemberKind,
    read_state,
    register,
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


def _head(ctx: FitContext, epochs: int) -> SentenceHead:
    ens = ctx.config.ensemble
    return SentenceHead(
        ens.sentence_encoder, hidden=ens.sentence_hidden, epochs=epochs, seed=ctx.config.seed
    )


def _fit(ctx: FitContext) -> SentenceMember:
    """Fit on ``ctx.examples``; with validation cases and ``sentence_patience``, stopped
    early on them."""
    patience = ctx.config.ensemble.sentence_patience
    val = ctx.val if patience else ()
    head = _head(ctx, ctx.config.ensemble.sentence_epochs).fit(
        ctx.batch.texts,
        ctx.y,
        len(ctx.labels),
        sets=ctx.sets,
        val_texts=Batch(items_of(val), ctx.config.uses_description).texts if val else [],
        val_sets=ctx.class_sets(val),
        patience=patience,
    )
    return SentenceMember(head)


def _refit(previous: SentenceMember, ctx: FitContext) -> SentenceMember:
    """Train again on ``ctx.examples`` for the epochs validation chose for ``previous``."""
    head = _head(ctx, previous.head.best_epoch)
    return SentenceMember(head.fit(ctx.batch.texts, ctx.y, len(ctx.labels), sets=ctx.sets))


def _load(entry: Mapping[str, Any], ctx: LoadContext) -> SentenceMember:
    meta, arrays = read_state(entry, ctx.directory, SentenceMember.STEM)
    return SentenceMember(SentenceHead.from_state(meta, arrays))


register(MemberKind(name=MemberName.SENTENCE, fit=_fit, refit=_refit, load=_load))
