"""The TF-IDF members: the linear SVM and the cosine k-NN vote on its features.

``svm``: char_wb 1-4 + word 1-2 TF-IDF features and a linear SVM (``model.baseline.TfidfSvm``),
the strongest simple peer, as a member. ``knn``: a cosine k-nearest-neighbour vote over the
same features (``model.baseline.TfidfKnn``); it needs the SVM's vectorizers.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from model.baseline import TfidfKnn, TfidfSvm
from model.config import MemberName
from model.members.base import (
    Batch,
    FitContext,
    LoadContext,
    read_state,
    register_fresh,
    write_state,
)
from model.runtime import fit_jobs


class SvmMember:
    name: ClassVar[MemberName] = MemberName.SVM
    STEM = "svm"

    def __init__(self, svm: TfidfSvm) -> None:
        self.svm = svm

    def scores(self, batch: Batch) -> np.ndarray:
        return self.svm.decision_scores(batch.texts, batch.tfidf(self.svm))

    def save(self, directory: Path) -> dict[str, Any]:
        return write_state(directory, self.STEM, self.svm.to_state())


def _fit_svm(ctx: FitContext) -> SvmMember:
    ens = ctx.config.ensemble
    texts, y, weights = ctx.expanded
    svm = TfidfSvm(
        C=ens.c,
        seed=ctx.config.seed,
        min_df=ens.min_df,
        max_coef_mb=ens.max_coef_mb,
        jobs=fit_jobs(),
    ).fit(texts, y, sample_weight=weights)
    if not np.array_equal(svm.classes_, np.arange(len(ctx.labels))):
        raise RuntimeError("TF-IDF member: classes do not match the model's labels")
    return SvmMember(svm)


def _load_svm(entry: Mapping[str, Any], ctx: LoadContext) -> SvmMember:
    meta, arrays = read_state(entry, ctx.directory, SvmMember.STEM)
    return SvmMember(TfidfSvm.from_state(meta, arrays))


register_fresh(MemberName.SVM, _fit_svm, _load_svm)


class KnnMember:
    name: ClassVar[MemberName] = MemberName.KNN
    STEM = "knn"

    def __init__(self, knn: TfidfKnn) -> None:
        self.knn = knn

    def scores(self, batch: Batch) -> np.ndarray:
        return self.knn.scores(batch.texts, batch.tfidf(self.knn.features))

    def save(self, directory: Path) -> dict[str, Any]:
        return write_state(directory, self.STEM, self.knn.to_state(), compressed=True)


def svm_of(members: Mapping[MemberName, Any], what: str = "k-NN") -> TfidfSvm:
    """The fitted SVM member's model, whose TF-IDF features the ``what`` member reuses."""
    member = members.get(MemberName.SVM)
    if not isinstance(member, SvmMember):
        raise ValueError(  # noqa: TRY004 - a model-file problem, not a caller's type error
            f"the {what} member needs the SVM member's TF-IDF features"
        )
    return member.svm


def _fit_knn(ctx: FitContext) -> KnnMember:
    texts, y, weights = ctx.expanded
    knn = TfidfKnn(k=ctx.config.ensemble.knn_k).fit(
        svm_of(ctx.fitted), texts, y, len(ctx.labels), weights=weights
    )
    return KnnMember(knn)


def _load_knn(entry: Mapping[str, Any], ctx: LoadContext) -> KnnMember:
    meta, arrays = read_state(entry, ctx.directory, KnnMember.STEM)
    return KnnMember(TfidfKnn.from_state(meta, arrays, svm_of(ctx.loaded)))


register_fresh(MemberName.KNN, _fit_knn, _load_knn, requires=(MemberName.SVM,))
