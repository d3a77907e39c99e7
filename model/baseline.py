"""Strong classical baseline: character n-gram + word TF-IDF with a linear SVM."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC


class TfidfSvm:
    """char_wb 1-4-gram + word 1-2-gram TF-IDF, one-vs-rest LinearSVC.

    Character n-grams carry most of the signal on short, misspelt, mixed-script names; word
    n-grams add phrases ('of plastics'). Picklable (plain sklearn objects).
    """

    def __init__(
        self,
        C: float = 0.5,
        char_ngrams: tuple[int, int] = (1, 4),
        word_ngrams: tuple[int, int] = (1, 2),
        max_features: int | None = 300_000,
        seed: int = 13,
    ) -> None:
        self.C = C
        self.char_ngrams = char_ngrams
        self.word_ngrams = word_ngrams
        self.max_features = max_features
        self.seed = seed
        self.char_vectorizer: TfidfVectorizer | None = None
        self.word_vectorizer: TfidfVectorizer | None = None
        self.svm: LinearSVC | None = None

    @property
    def classes_(self) -> np.ndarray:
        if self.svm is None:
            raise RuntimeError("TfidfSvm is not fitted")
        return self.svm.classes_

    def _features(self, texts: Sequence[str]) -> sparse.csr_matrix:
        texts = [t if isinstance(t, str) else "" for t in texts]
        return sparse.hstack(
            [self.char_vectorizer.transform(texts), self.word_vectorizer.transform(texts)]
        ).tocsr()

    def fit(self, texts: Sequence[str], labels: Sequence) -> TfidfSvm:
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        if len(set(labels)) < 2:
            raise ValueError("TfidfSvm needs at least two classes")
        texts = [t if isinstance(t, str) else "" for t in texts]
        self.char_vectorizer = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=self.char_ngrams,
            sublinear_tf=True,
            min_df=1,
            max_features=self.max_features,
            lowercase=True,
        )
        self.word_vectorizer = TfidfVectorizer(
            analyzer="word",
            ngram_range=self.word_ngrams,
            sublinear_tf=True,
            token_pattern=r"(?u)\b\w+\b",
            min_df=1,
            lowercase=True,
        )
        self.char_vectorizer.fit(texts)
        self.word_vectorizer.fit(texts)
        self.svm = LinearSVC(C=self.C, random_state=self.seed)
        self.svm.fit(self._features(texts), np.asarray(labels))
        return self

    def decision_scores(self, texts: Sequence[str]) -> np.ndarray:
        """SVM margins, shape [N, n_classes], columns in ``classes_`` order."""
        if self.svm is None:
            raise RuntimeError("TfidfSvm is not fitted")
        scores = self.svm.decision_function(self._features(texts))
        if scores.ndim == 1:  # binary: sklearn returns one column for the positive class
            scores = np.stack([-scores, scores], axis=1)
        return scores

    def predict_topk(self, texts: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k labels [N, k] and their margins [N, k], best first."""
        scores = self.decision_scores(texts)
        k = min(k, scores.shape[1])
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return self.classes_[order], np.take_along_axis(scores, order, axis=1)
