"""The nearest past case of each code: a request scored by how like it each code's most
similar training case is.

The similarity blends two spaces: the cosine of the TF-IDF n-gram features (the SVM's
vectorizers: spelling, part numbers, shared words) and the cosine of a frozen sentence
encoder's vectors (meaning across languages and paraphrases), ``w * sentence + (1 - w) *
tfidf``. A code's score is its best case's blended similarity times ``scale`` (the mixture's
temperature sets the final scale). Unlike a k-NN vote it is a score for every code, so the
mixture can use it to re-rank the SVM's close calls: on the ghko99 K = 100 names it adds
0.58-0.85 points of top-1 to the SVM and sentence head (three seeds), where the TF-IDF-only
version adds -0.17 to +0.24 (`docs/benchmarks.md` section 14). Saves without pickle
(:meth:`to_state` / :meth:`from_state`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse
from scipy.sparse._sparsetools import csr_todense

from model.baseline import TfidfSvm, csr_from_state, csr_state, l2_rows
from model.runtime import matmul_dtype
from model.sentence import get_encoder

NO_CASE = -1.0  # the similarity of a code with no training case (below any cosine's use)


# the terms in most training texts (single characters, common syllables) make a sparse
# product slow: every query row meets their long columns. This many of them go into a dense
# product instead, with the sentence vectors (K = 100 names, 2,000 requests x 11,596 cases in
# bf16: 0.21 s at 512 terms, 0.17 at 1,024, 0.16 at 2,048, 0.22 at 4,096; fp32 at 512 terms,
# as three products: 0.42 s; docs/benchmarks.md section 17)
DENSE_TERMS = 1024


@dataclass(frozen=True)
class _Split:
    common: np.ndarray  # term indices of the dense part
    rare: np.ndarray  # every other term
    # [len(common) (+ dim), n_train]: the common terms' columns, then the sentence vectors'
    dense_t: torch.Tensor
    rare_t: sparse.csr_matrix  # [len(rare), n_train] float32

    @classmethod
    def of(cls, matrix: sparse.csr_matrix, vectors: np.ndarray | None) -> _Split:
        by_term = matrix.tocsc()
        in_texts = np.diff(by_term.indptr)
        n = min(DENSE_TERMS, matrix.shape[1])
        common = np.sort(np.argsort(-in_texts, kind="stable")[:n])
        rare = np.setdiff1d(np.arange(matrix.shape[1]), common)
        dense = by_term[:, common].toarray().T.astype(np.float32)
        if vectors is not None:
            dense = np.vstack([dense, vectors.T.astype(np.float32)])
        return cls(
            common=common,
            rare=rare,
            dense_t=torch.from_numpy(np.ascontiguousarray(dense)).to(matmul_dtype()),
            rare_t=by_term[:, rare].T.tocsr().astype(np.float32),
        )


class NearestCases:
    """Per code, the blended similarity to its most similar training case (see the module)."""

    def __init__(
        self,
        encoder: str = "use-m3",
        sentence_weight: float = 0.5,
        scale: float = 20.0,
        chunk: int = 1024,
    ) -> None:
        if not 0.0 <= sentence_weight <= 1.0:
            raise ValueError("sentence_weight must be in [0, 1]")
        if encoder == "none":
            sentence_weight = 0.0
        else:
            get_encoder(encoder)  # an unknown name fails here, not after fitting
        self.encoder = encoder
        self.sentence_weight = float(sentence_weight)
        self.scale = float(scale)
        self.chunk = int(chunk)
        self.features: TfidfSvm | None = None
        self.matrix: sparse.csr_matrix | None = None  # [n_train, n_terms], rows L2-normalised
        self.vectors: np.ndarray | None = None  # [n_train, dim] float16 (None: tfidf only)
        self.starts: np.ndarray | None = None  # first row of each code with rows (rows sorted)
        self.codes: np.ndarray | None = None  # the code of each run that starts there
        self.n_classes = 0
        self._t: _Split | None = None

    def _vectors(self, texts: Sequence[str]) -> np.ndarray | None:
        if self.sentence_weight == 0.0:
            return None
        return get_encoder(self.encoder).encode(texts)

    def fit(
        self, features: TfidfSvm, texts: Sequence[str], labels: Sequence[int], n_classes: int
    ) -> NearestCases:
        """Index ``texts`` with class indices ``labels`` in ``[0, n_classes)`` (a case with
        several right codes: once per code)."""
        labels = np.asarray(labels, dtype=np.int64)
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        if len(labels) == 0:
            raise ValueError("NearestCases needs at least one training text")
        if labels.min() < 0 or labels.max() >= n_classes:
            raise ValueError("NearestCases labels must be class indices in [0, n_classes)")
        order = np.argsort(labels, kind="stable")
        texts = [texts[i] for i in order]
        labels = labels[order]
        self.features = features
        self.matrix = l2_rows(features.sparse_features(texts))
        self._t = None
        vectors = self._vectors(texts)
        self.vectors = None if vectors is None else vectors.astype(np.float16)
        self.codes, self.starts = np.unique(labels, return_index=True)
        self.n_classes = int(n_classes)
        return self

    def similarities(
        self, texts: Sequence[str], tfidf: sparse.csr_matrix | None = None
    ) -> np.ndarray:
        """[N, n_classes]: each code's best blended similarity (``NO_CASE`` without a case).
        ``tfidf``: the texts' TF-IDF features under ``features``, when the caller has them."""
        if self.matrix is None or self.features is None:
            raise RuntimeError("NearestCases is not fitted")
        out = np.full((len(texts), self.n_classes), NO_CASE, dtype=np.float32)
        if len(texts) == 0:
            return out
        x = l2_rows(self.features.sparse_features(texts) if tfidf is None else tfidf)
        dense = self._vectors(texts)
        split = self._split()
        w = self.sentence_weight if dense is not None else 0.0
        for start in range(0, len(texts), self.chunk):
            stop = start + self.chunk
            part = x[start:stop]
            # the blend (1 - w) * part @ matrix.T + w * dense @ vectors.T in two pieces: the
            # commonest terms and the sentence vectors as one dense product, the rest of the
            # terms as a sparse one (now cheap: its rows are short)
            query = part[:, split.common].toarray().astype(np.float32)
            query *= 1.0 - w
            if dense is not None:
                query = np.hstack([query, w * dense[start:stop]])
            q = torch.from_numpy(query).to(split.dense_t.dtype)
            sims = torch.matmul(q, split.dense_t).float().numpy()
            rare = (part[:, split.rare].astype(np.float32) @ split.rare_t).tocsr()
            rare.data *= np.float32(1.0 - w)
            # adds the sparse piece into sims in place (``toarray(out=)`` would zero it
            # first); the exactness tests check the sum
            csr_todense(*rare.shape, rare.indptr, rare.indices, rare.data, sims)
            out[start:stop, self.codes] = np.maximum.reduceat(sims, self.starts, axis=1)
        return out

    def _split(self) -> _Split:
        """The training matrices as the products want them, made once (not per batch)."""
        if self._t is None:
            self._t = _Split.of(self.matrix, self.vectors)
        return self._t

    def scores(self, texts: Sequence[str], tfidf: sparse.csr_matrix | None = None) -> np.ndarray:
        """Logit-like scores [N, n_classes] (float64): the similarities times ``scale``."""
        return self.similarities(texts, tfidf).astype(np.float64) * self.scale

    # --- persistence without pickle ---------------------------------------------------------
    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        if self.matrix is None:
            raise RuntimeError("NearestCases is not fitted")
        m = self.matrix
        meta = {
            "encoder": self.encoder,
            "sentence_weight": self.sentence_weight,
            "scale": self.scale,
            "n_classes": self.n_classes,
            "shape": list(m.shape),
        }
        arrays = {
            **csr_state(m),
            "codes": self.codes.astype(np.int32),
            "starts": self.starts.astype(np.int64),
        }
        if self.vectors is not None:
            arrays["vectors"] = self.vectors
        return meta, arrays

    @classmethod
    def from_state(
        cls, meta: dict, arrays: dict[str, np.ndarray], features: TfidfSvm
    ) -> NearestCases:
        nearest = cls(
            encoder=meta["encoder"], sentence_weight=meta["sentence_weight"], scale=meta["scale"]
        )
        nearest.features = features
        nearest.matrix = csr_from_state(arrays, meta["shape"], features, "nearest-case")
        nearest.vectors = arrays.get("vectors")
        nearest.codes = arrays["codes"].astype(np.int64)
        nearest.starts = arrays["starts"].astype(np.int64)
        nearest.n_classes = int(meta["n_classes"])
        return nearest
