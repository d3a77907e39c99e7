"""Strong classical baseline: character n-gram + word TF-IDF with a linear SVM.

Also the TF-IDF member of the production ensemble (``model.pipeline``): it saves itself
without pickle (:meth:`TfidfSvm.to_state` / :meth:`TfidfSvm.from_state`: vocabularies and
idf weights as JSON/arrays, the linear coefficients as a float32 array) and scores with one
sparse matrix product, identical before and after a save/load round trip.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from model.sentence import get_encoder


def per_class_rows(coef: np.ndarray, intercept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A linear SVM's weights with one row per class: a binary one has a single row, for its
    second class (the first gets its negation)."""
    if coef.shape[0] == 1:
        return np.concatenate([-coef, coef]), np.concatenate([-intercept, intercept])
    return coef, intercept


ACTIVE_SAMPLE = 1024
"""Negatives drawn at random for each class's first fit in :func:`fit_one_vs_rest`."""
ACTIVE_ROUNDS = 4
"""At most this many checks of the out-of-set rows in :func:`fit_one_vs_rest`."""

log = logging.getLogger(__name__)


def _violators(
    x: sparse.csr_matrix,
    inverse: np.ndarray,
    coef: np.ndarray,
    intercept: np.ndarray,
    chunk: int = 4096,
) -> list[np.ndarray]:
    """Per class, its negative rows with a score above -1 under ``(coef, intercept)``: those
    with a loss (the squared hinge's margin is 1). Scored ``chunk`` rows at a time, the
    product :meth:`TfidfSvm.decision_scores` makes."""
    weights = coef.T  # [features, classes], a view of the Fortran array
    rows, cols = [], []
    for start in range(0, x.shape[0], chunk):
        scores = np.asarray(x[start : start + chunk].astype(np.float32) @ weights) + intercept
        r, c = np.nonzero(scores > -1.0)
        negative = inverse[start + r] != c
        rows.append(r[negative] + start)
        cols.append(c[negative])
    row, col = np.concatenate(rows), np.concatenate(cols)
    order = np.argsort(col, kind="stable")
    bounds = np.searchsorted(col[order], np.arange(len(coef) + 1))
    return [row[order[bounds[k] : bounds[k + 1]]] for k in range(len(coef))]


def fit_one_vs_rest(
    x: sparse.csr_matrix,
    y: Sequence,
    C: float,
    seed: int,
    sample_weight: Sequence[float] | None = None,
    jobs: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A one-vs-rest linear SVM (liblinear's squared hinge, ``LinearSVC``) as ``(coef
    [classes, features], intercept, classes)``, with ``jobs`` threads.

    Each class's binary problem (its rows against every other row) is solved on an active
    set: its own rows, ``ACTIVE_SAMPLE`` negatives at random (weighed up to stand for all of
    them in the first fit), and then every negative the current weights score above -1.
    A negative outside the set scores at most -1, so it has no loss and no dual variable,
    and the set's solution is then the whole problem's: after each fit all rows are scored
    (one sparse product for every class), the classes with new violators are refitted on the
    larger set, until none has (at most ``ACTIVE_ROUNDS`` checks). The weights thus agree with
    the plain fit on every row to the solver's tolerance (tested), while each problem has a
    fraction of the rows: liblinear's cost is about rows x classes (docs/benchmarks.md
    section 19b). The classes' fits run ``jobs`` at a time in threads (liblinear releases
    the GIL); each holds one class's float64 weights.

    The coefficients come back as float32 in Fortran order, so that the scorer's
    ``[features, classes]`` matrix is their transpose without a copy.
    """
    from concurrent.futures import ThreadPoolExecutor

    classes, inverse = np.unique(np.asarray(y), return_inverse=True)
    n_rows, n_classes = x.shape[0], len(classes)
    weight = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    x = sparse.csr_matrix(x)
    coef = np.zeros((n_classes, x.shape[1]), dtype=np.float32, order="F")
    intercept = np.zeros(n_classes, dtype=np.float32)
    if n_classes == 2:  # one problem: the second class's, the first gets its negation
        svm = LinearSVC(C=C, random_state=seed).fit(x, inverse, sample_weight=weight)
        coef[:], intercept[:] = per_class_rows(svm.coef_, svm.intercept_)
        return coef, intercept, classes

    rng = np.random.default_rng(seed)
    sets: list[np.ndarray] = []
    scales: list[np.ndarray] = []  # the first fit's: the drawn negatives stand for all
    by_class = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[by_class], np.arange(n_classes + 1))
    for k in range(n_classes):
        own = by_class[bounds[k] : bounds[k + 1]]
        draw = rng.choice(n_rows, size=min(n_rows, ACTIVE_SAMPLE + len(own)), replace=False)
        drawn = draw[inverse[draw] != k][:ACTIVE_SAMPLE]
        sets.append(np.concatenate([own, np.sort(drawn)]))
        scales.append(np.ones(len(sets[-1])))
        scales[-1][len(own) :] = (n_rows - len(own)) / max(1, len(drawn))

    def fit(k: int, scale: np.ndarray | None) -> None:
        rows = sets[k]
        w = None if weight is None else weight[rows]
        if scale is not None:
            w = scale if w is None else w * scale
        svm = LinearSVC(C=C, random_state=seed).fit(
            x[rows], (inverse[rows] == k).astype(np.int8), sample_weight=w
        )
        coef[k], intercept[k] = svm.coef_[0], svm.intercept_[0]

    with ThreadPoolExecutor(max(1, int(jobs))) as pool:
        list(pool.map(lambda k: fit(k, scales[k]), range(n_classes)))
        for check in range(ACTIVE_ROUNDS):
            grown = [
                np.union1d(s, v)
                for s, v in zip(sets, _violators(x, inverse, coef, intercept), strict=True)
            ]
            # after the first check every class is refitted unweighted, grown or not
            pending = [k for k in range(n_classes) if check == 0 or len(grown[k]) > len(sets[k])]
            sets = grown
            if not pending:
                break
            list(pool.map(lambda k: fit(k, None), pending))
        else:  # every check found violators: say whether the last refit left any
            left = [
                k
                for k, v in enumerate(_violators(x, inverse, coef, intercept))
                if len(np.setdiff1d(v, sets[k]))
            ]
            if left:
                log.warning(
                    "one-vs-rest SVM: after %d checks %d of %d classes still have negatives "
                    "scoring above -1 outside their active sets; their weights are not the "
                    "plain fit's",
                    ACTIVE_ROUNDS,
                    len(left),
                    n_classes,
                )
    return coef, intercept, classes


class TfidfSvm:
    """char_wb 1-4-gram + word 1-2-gram TF-IDF, one-vs-rest LinearSVC.

    Character n-grams carry most of the signal on short, misspelt, mixed-script names; word
    n-grams add phrases ('of plastics'). With ``sentence_encoder`` (``"use-m3"``,
    :mod:`model.sentence`) the frozen encoder's L2-normalised vector, times
    ``sentence_weight``, is appended to the sparse features. The product no longer fits it
    that way (the solver's cost grows with the 512 dense columns in every row: over 19
    minutes at every code; the sentence head member replaced it at the same accuracy), but
    models saved that way still load and score. Picklable (plain sklearn objects); or, without pickle,
    :meth:`to_state` / :meth:`from_state`.
    """

    def __init__(
        self,
        C: float = 0.5,
        char_ngrams: tuple[int, int] = (1, 4),
        word_ngrams: tuple[int, int] = (1, 2),
        max_features: int | None = 300_000,
        seed: int = 13,
        min_df: int = 1,
        sentence_encoder: str = "none",
        sentence_weight: float = 0.5,
        max_coef_mb: float | None = None,
        jobs: int = 1,
    ) -> None:
        if sentence_weight <= 0:
            raise ValueError("sentence_weight must be > 0")
        self.sentence_encoder = sentence_encoder
        self.sentence_weight = float(sentence_weight)
        if sentence_encoder != "none":
            get_encoder(sentence_encoder)  # an unknown name fails here, not after fitting
        self.C = C
        self.min_df = min_df
        # with a budget: when the coefficients (terms x classes, float32) at ``min_df`` would
        # exceed it, terms seen only once are dropped as well (min_df 2), once
        self.max_coef_mb = max_coef_mb
        self.char_ngrams = char_ngrams
        self.word_ngrams = word_ngrams
        self.max_features = max_features
        self.seed = seed
        self.jobs = jobs  # threads of the SVM's fit (``fit_one_vs_rest``)
        self.char_vectorizer: TfidfVectorizer | None = None
        self.word_vectorizer: TfidfVectorizer | None = None
        # the fitted linear scorer, [n_features, n_classes] float32, and its bias [n_classes]
        self.coef: np.ndarray | None = None
        self.intercept: np.ndarray | None = None
        self._classes: np.ndarray | None = None

    @property
    def classes_(self) -> np.ndarray:
        if self._classes is None:
            raise RuntimeError("TfidfSvm is not fitted")
        return self._classes

    def sparse_features(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """The TF-IDF n-gram features (char then word), [N, n_terms]."""
        texts = [t if isinstance(t, str) else "" for t in texts]
        return sparse.hstack(
            [self.char_vectorizer.transform(texts), self.word_vectorizer.transform(texts)]
        ).tocsr()

    def dense_features(self, texts: Sequence[str]) -> np.ndarray | None:
        """The weighted sentence vectors [N, dim], or None without a sentence encoder."""
        if self.sentence_encoder == "none":
            return None
        return get_encoder(self.sentence_encoder).encode(texts) * np.float32(self.sentence_weight)

    def _features(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """Everything the SVM sees: the n-grams, then the sentence vector when configured."""
        tfidf = self.sparse_features(texts)
        dense = self.dense_features(texts)
        if dense is None:
            return tfidf
        return sparse.hstack([tfidf, sparse.csr_matrix(dense)]).tocsr()

    def fit(
        self, texts: Sequence[str], labels: Sequence, sample_weight: Sequence[float] | None = None
    ) -> TfidfSvm:
        """Fit on ``texts``; ``sample_weight`` (optional) weighs each text's loss."""
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        if len(set(labels)) < 2:
            raise ValueError("TfidfSvm needs at least two classes")
        texts = [t if isinstance(t, str) else "" for t in texts]
        self.fit_vectorizers(texts)
        n_classes = len(set(labels))
        if self.max_coef_mb is not None and self.min_df < 2:
            n_terms = len(self.char_vectorizer.vocabulary_) + len(self.word_vectorizer.vocabulary_)
            if n_terms * n_classes * 4 / 2**20 > self.max_coef_mb:
                self.min_df = 2
                self.fit_vectorizers(texts)
        self._set_linear(
            *fit_one_vs_rest(
                self._features(texts), labels, self.C, self.seed, sample_weight, self.jobs
            )
        )
        return self

    def fit_vectorizers(self, texts: list[str]) -> None:
        """Fit the TF-IDF vocabularies alone (the first step of :meth:`fit`)."""
        self.char_vectorizer = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=self.char_ngrams,
            sublinear_tf=True,
            min_df=self.min_df,
            max_features=self.max_features,
            lowercase=True,
        )
        self.word_vectorizer = TfidfVectorizer(
            analyzer="word",
            ngram_range=self.word_ngrams,
            sublinear_tf=True,
            token_pattern=r"(?u)\b\w+\b",
            min_df=self.min_df,
            lowercase=True,
        )
        self.char_vectorizer.fit(texts)
        self.word_vectorizer.fit(texts)

    def _set_linear(self, coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray) -> None:
        coef, intercept = per_class_rows(
            np.asarray(coef, dtype=np.float32), np.asarray(intercept, dtype=np.float32)
        )
        self.coef = np.ascontiguousarray(coef.T)
        self.intercept = intercept
        self._classes = np.asarray(classes)

    def decision_scores(
        self, texts: Sequence[str], tfidf: sparse.csr_matrix | None = None
    ) -> np.ndarray:
        """SVM margins, shape [N, n_classes], columns in ``classes_`` order. ``tfidf``: the
        texts' :meth:`sparse_features` when the caller has them already."""
        if self.coef is None:
            raise RuntimeError("TfidfSvm is not fitted")
        if tfidf is None:
            tfidf = self.sparse_features(texts)
        tfidf = tfidf.astype(np.float32)
        n_terms = tfidf.shape[1]
        scores = np.asarray(tfidf @ self.coef[:n_terms], dtype=np.float64)
        dense = self.dense_features(texts)
        if dense is not None:
            scores += dense @ self.coef[n_terms:]
        return scores + self.intercept

    def predict_topk(self, texts: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k labels [N, k] and their margins [N, k], best first."""
        scores = self.decision_scores(texts)
        k = min(k, scores.shape[1])
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return self.classes_[order], np.take_along_axis(scores, order, axis=1)

    # --- persistence without pickle ---------------------------------------------------------
    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-serialisable metadata, arrays for ``np.savez``) of a fitted model."""
        if self.coef is None:
            raise RuntimeError("TfidfSvm is not fitted")

        def terms(vec: TfidfVectorizer) -> list[str]:
            out = [""] * len(vec.vocabulary_)
            for term, i in vec.vocabulary_.items():
                out[i] = term
            return out

        meta = {
            "C": self.C,
            "char_ngrams": list(self.char_ngrams),
            "word_ngrams": list(self.word_ngrams),
            "max_features": self.max_features,
            "seed": self.seed,
            "min_df": self.min_df,
            "sentence_encoder": self.sentence_encoder,
            "sentence_weight": self.sentence_weight,
            "char_terms": terms(self.char_vectorizer),
            "word_terms": terms(self.word_vectorizer),
            "classes": self._classes.tolist(),
        }
        arrays = {
            "char_idf": np.asarray(self.char_vectorizer.idf_, dtype=np.float64),
            "word_idf": np.asarray(self.word_vectorizer.idf_, dtype=np.float64),
            "coef": self.coef,
            "intercept": self.intercept,
        }
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> TfidfSvm:
        """Rebuild a fitted model from :meth:`to_state` output (no sklearn fit, no pickle)."""
        model = cls(
            C=meta["C"],
            char_ngrams=tuple(meta["char_ngrams"]),
            word_ngrams=tuple(meta["word_ngrams"]),
            max_features=meta["max_features"],
            seed=meta["seed"],
            min_df=meta.get("min_df", 1),
            sentence_encoder=meta.get("sentence_encoder", "none"),
            sentence_weight=meta.get("sentence_weight", 0.5),
        )
        char_terms, word_terms = meta["char_terms"], meta["word_terms"]
        coef = np.asarray(arrays["coef"], dtype=np.float32)
        dense_dim = (
            0 if model.sentence_encoder == "none" else get_encoder(model.sentence_encoder).dim
        )
        if coef.shape[0] != len(char_terms) + len(word_terms) + dense_dim:
            raise ValueError(
                f"TF-IDF state: {coef.shape[0]} coefficient rows for "
                f"{len(char_terms)} + {len(word_terms)} terms + {dense_dim} sentence dimensions"
            )
        model.char_vectorizer = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=model.char_ngrams,
            sublinear_tf=True,
            lowercase=True,
            vocabulary={t: i for i, t in enumerate(char_terms)},
        )
        model.char_vectorizer.idf_ = np.asarray(arrays["char_idf"], dtype=np.float64)
        model.word_vectorizer = TfidfVectorizer(
            analyzer="word",
            ngram_range=model.word_ngrams,
            sublinear_tf=True,
            token_pattern=r"(?u)\b\w+\b",
            lowercase=True,
            vocabulary={t: i for i, t in enumerate(word_terms)},
        )
        model.word_vectorizer.idf_ = np.asarray(arrays["word_idf"], dtype=np.float64)
        model.coef = np.ascontiguousarray(coef)
        model.intercept = np.asarray(arrays["intercept"], dtype=np.float32)
        model._classes = np.asarray(meta["classes"])
        return model


def l2_rows(x: sparse.spmatrix) -> sparse.csr_matrix:
    """``x`` as float32 CSR with each row scaled to unit length (an empty row stays empty)."""
    x = sparse.csr_matrix(x, dtype=np.float32)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sparse.csr_matrix(sparse.diags(1.0 / norms).astype(np.float32) @ x)


def csr_state(m: sparse.csr_matrix) -> dict[str, np.ndarray]:
    """A CSR matrix's arrays for ``np.savez`` (its shape goes in the JSON metadata)."""
    return {
        "data": m.data.astype(np.float32),
        "indices": m.indices.astype(np.int32),
        "indptr": m.indptr.astype(np.int64),
    }


def csr_from_state(
    arrays: dict[str, np.ndarray], shape: Sequence[int], features: TfidfSvm, what: str
) -> sparse.csr_matrix:
    """The CSR matrix :func:`csr_state` saved, checked against ``features``' term count."""
    n_terms = len(features.char_vectorizer.vocabulary_) + len(features.word_vectorizer.vocabulary_)
    if shape[1] != n_terms:
        raise ValueError(f"{what} state: {shape[1]} columns but the vectorizers give {n_terms}")
    return sparse.csr_matrix(
        (arrays["data"], arrays["indices"], arrays["indptr"]), shape=tuple(shape)
    )


class TfidfKnn:
    """Cosine k-nearest-neighbour vote over the TF-IDF features of the training texts.

    Reuses a fitted :class:`TfidfSvm`'s vectorizers (``features``), so the two members share
    one vocabulary. Scores are ``log(eps + sum of squared similarities per class among the k
    nearest training texts)``: logit-like, so they mix with the others in an ensemble. Saves
    itself without pickle: the L2-normalised sparse training matrix (CSR arrays) and labels.
    """

    EPS = 1e-3

    def __init__(self, k: int = 10, chunk: int = 1024) -> None:
        if k < 1:
            raise ValueError("k must be >= 1")
        self.k = int(k)
        self.chunk = int(chunk)
        self.features: TfidfSvm | None = None
        self.matrix: sparse.csr_matrix | None = None  # [n_train, n_features], rows L2-normalised
        self.labels: np.ndarray | None = None  # class index per training row
        self.weights: np.ndarray | None = None  # vote weight per training row (None: 1)
        self.n_classes = 0
        self._train_t: sparse.csr_matrix | None = None  # ``matrix`` transposed, for scoring

    def fit(
        self,
        features: TfidfSvm,
        texts: Sequence[str],
        labels: Sequence[int],
        n_classes: int,
        weights: Sequence[float] | None = None,
    ) -> TfidfKnn:
        """Index ``texts`` (class indices ``labels`` in ``[0, n_classes)``); ``weights``
        (optional) scale each indexed text's vote (a partial label's copies share one)."""
        labels = np.asarray(labels, dtype=np.int64)
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        if len(labels) == 0:
            raise ValueError("TfidfKnn needs at least one training text")
        if labels.min() < 0 or labels.max() >= n_classes:
            raise ValueError("TfidfKnn labels must be class indices in [0, n_classes)")
        self.features = features
        self.matrix = l2_rows(features.sparse_features(texts))
        self._train_t = None
        self.labels = labels
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float32)
        self.n_classes = int(n_classes)
        return self

    def scores(self, texts: Sequence[str], tfidf: sparse.csr_matrix | None = None) -> np.ndarray:
        """Vote scores [N, n_classes] (float64); ``tfidf``: the texts' features, when known."""
        if self.matrix is None or self.features is None:
            raise RuntimeError("TfidfKnn is not fitted")
        x = l2_rows(self.features.sparse_features(texts) if tfidf is None else tfidf)
        out = np.zeros((x.shape[0], self.n_classes), dtype=np.float64)
        if self._train_t is None:  # made once, not per batch
            self._train_t = self.matrix.T.tocsr()
        train_t = self._train_t
        kk = min(self.k, self.matrix.shape[0])
        for start in range(0, x.shape[0], self.chunk):
            sims = (x[start : start + self.chunk] @ train_t).toarray()
            near = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
            near_sims = np.clip(np.take_along_axis(sims, near, axis=1), 0.0, None)
            rows = np.repeat(np.arange(sims.shape[0]), kk)
            votes = near_sims.ravel() ** 2
            if self.weights is not None:
                votes = votes * self.weights[near].ravel()
            np.add.at(out[start : start + self.chunk], (rows, self.labels[near].ravel()), votes)
        return np.log(out + self.EPS)

    # --- persistence without pickle ---------------------------------------------------------
    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        if self.matrix is None:
            raise RuntimeError("TfidfKnn is not fitted")
        m = self.matrix
        meta = {"k": self.k, "n_classes": self.n_classes, "shape": list(m.shape)}
        arrays = {**csr_state(m), "labels": self.labels.astype(np.int32)}
        if self.weights is not None:
            arrays["weights"] = self.weights
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray], features: TfidfSvm) -> TfidfKnn:
        knn = cls(k=meta["k"])
        knn.matrix = csr_from_state(arrays, meta["shape"], features, "kNN")
        knn.labels = np.asarray(arrays["labels"], dtype=np.int64)
        knn.weights = np.asarray(arrays["weights"], np.float32) if "weights" in arrays else None
        knn.n_classes = int(meta["n_classes"])
        knn.features = features
        return knn
