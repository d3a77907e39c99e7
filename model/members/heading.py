"""The heading member: a linear SVM on the SVM member's TF-IDF features that learns the
heading (the first ``EnsembleConfig.heading_digits`` digits) of each case, every code scored
by its heading's margin. It pools the cases of sibling codes, so it knows a heading better
than the ten-digit members (which split its cases over the subheadings) and tells the mixture
which heading a name belongs to; the ten-digit members choose the code inside it. When every
code has its own heading (a model trained at four digits) it is the SVM member itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy import sparse

from model.baseline import TfidfSvm, fit_one_vs_rest
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
from model.runtime import fit_jobs


class HeadingMember:
    name: ClassVar[MemberName] = MemberName.HEADING
    STEM = "heading"

    def __init__(
        self,
        features: TfidfSvm,
        head_of_class: np.ndarray,
        coef: np.ndarray | None,
        intercept: np.ndarray | None,
    ) -> None:
        self.features = features  # the SVM member's model: its vectorizers (and margins)
        self.head_of_class = head_of_class  # heading index per code, [n_codes]
        # [n_terms, n_heads] and [n_heads]; None when nothing is fitted (see ``own_svm``)
        self.coef = coef
        self.intercept = intercept

    @property
    def n_heads(self) -> int:
        return int(self.head_of_class.max()) + 1 if len(self.head_of_class) else 0

    @property
    def own_svm(self) -> bool:
        """Every code is its own heading: the member is the SVM member itself."""
        return self.coef is None and self.n_heads == len(self.head_of_class)

    @property
    def silent(self) -> bool:
        """One heading only: the member tells no code from another (zeros)."""
        return self.coef is None and not self.own_svm

    def scores(self, batch: Batch) -> np.ndarray:
        tfidf = batch.tfidf(self.features)
        if self.own_svm:
            return self.features.decision_scores(batch.texts, tfidf)
        if self.silent:
            return np.zeros((len(batch), len(self.head_of_class)))
        heads = np.asarray(tfidf.astype(np.float32) @ self.coef, dtype=np.float64)
        return (heads + self.intercept)[:, self.head_of_class]

    def save(self, directory: Path) -> dict[str, Any]:
        arrays = {"head_of_class": self.head_of_class}
        if self.coef is not None and self.intercept is not None:
            # half precision on disk: the margins move by < 1e-3, the file is half the size
            arrays |= {"coef": self.coef.astype(np.float16), "intercept": self.intercept}
        meta = {"n_heads": self.n_heads}
        return write_state(directory, self.STEM, (meta, arrays), compressed=True)


def heading_index(labels: Sequence[str], digits: int) -> np.ndarray:
    """Per code, the index of its ``digits``-digit heading among the sorted headings."""
    heads = sorted({lab[:digits] for lab in labels})
    index = {h: i for i, h in enumerate(heads)}
    return np.array([index[lab[:digits]] for lab in labels], dtype=np.int64)


def _fit(ctx: FitContext) -> HeadingMember:
    ens = ctx.config.ensemble
    svm = svm_of(ctx.fitted, "heading")
    head_of_class = heading_index(ctx.labels, ens.heading_digits)
    n_heads = int(head_of_class.max()) + 1
    if n_heads in (1, len(ctx.labels)):
        return HeadingMember(svm, head_of_class, None, None)
    texts, y, weights = ctx.expanded  # a case with several right codes counts for each
    x: sparse.csr_matrix = ctx.batch.tfidf(svm) if weights is None else svm.sparse_features(texts)
    coef, intercept, seen = fit_one_vs_rest(
        x, head_of_class[y], ens.c, ctx.config.seed, weights, jobs=fit_jobs()
    )
    # a heading no training case has (its codes' cases are all elsewhere) scores below all
    full = np.zeros((x.shape[1], n_heads), dtype=np.float32)
    bias = np.full(n_heads, float(intercept.min()) - 1.0, dtype=np.float32)
    full[:, seen] = coef.T
    bias[seen] = intercept
    # rounded as saved (half precision): the model in memory scores as the one loaded
    full[:] = full.astype(np.float16)
    return HeadingMember(svm, head_of_class, full, bias)


def _load(entry: Mapping[str, Any], ctx: LoadContext) -> HeadingMember:
    _, arrays = read_state(entry, ctx.directory, HeadingMember.STEM)
    coef = arrays.get("coef")
    return HeadingMember(
        svm_of(ctx.loaded, "heading"),
        arrays["head_of_class"].astype(np.int64),
        None if coef is None else np.ascontiguousarray(coef, dtype=np.float32),
        arrays.get("intercept"),
    )


register_fresh(MemberName.HEADING, _fit, _load, requires=(MemberName.SVM,))
