"""Past cases as evidence: the index of training cases and the nearest-case search.

With a sentence encoder the space is its vectors of the cases' titles (titles on both sides:
a request often has a title alone while a ruling has a long description; comparing
"title | description" with a bare title put familiar goods below the threshold, 29 of 30 demo
requests). There, unrelated goods score low, so a precedent is shown only from
``min_similarity`` up and the nearest similarity says whether a request is familiar at all.
Without one the space is the network's L2-normalised features, which have no such scale: every
nearest case is shown and no familiarity is claimed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model.config import SentenceEncoderName
from model.encoding import Item, title_texts
from model.records import Example, Precedent
from model.sentence import get_encoder

FILE = "precedents.npz"


@dataclass
class Neighbours:
    """The search result for N requests."""

    precedents: list[list[Precedent]]
    nearest: list[float | None]  # per request; None in the feature space
    floor: float | None  # the threshold of "similar"; None in the feature space


@dataclass
class PrecedentIndex:
    keys: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    features: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    # the cases' sentence vectors (float32, as the queries), with a sentence encoder
    sentences: np.ndarray | None = None
    encoder: str = SentenceEncoderName.NONE
    min_similarity: float = 0.5

    @classmethod
    def build(
        cls,
        examples: Sequence[Example],
        features: np.ndarray,
        encoder: str,
        min_similarity: float,
        with_sentences: bool = True,
    ) -> PrecedentIndex:
        sentences = None
        if encoder != SentenceEncoderName.NONE and with_sentences:
            titles = title_texts([(e.title, None, None) for e in examples])
            sentences = get_encoder(encoder).encode(titles).astype(np.float32)
        return cls(
            keys=[e.key for e in examples],
            titles=[e.title for e in examples],
            labels=[e.label for e in examples],
            features=features,
            sentences=sentences,
            encoder=encoder,
            min_similarity=min_similarity,
        )

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def sentence_space(self) -> bool:
        return self.sentences is not None and len(self.keys) > 0

    def search(
        self,
        items: Sequence[Item],
        n: int,
        features: Callable[[], np.ndarray],
    ) -> Neighbours:
        """The ``n`` nearest cases per request; ``features()`` gives the requests' network
        features, called only when the space is the network's."""
        n = min(max(0, n), len(self))
        rows = len(items)
        nearest: list[float | None] = [None] * rows
        floor = None
        sims = None
        if self.sentence_space:
            floor = self.min_similarity
            queries = get_encoder(self.encoder).encode(title_texts(items))
            sims = queries @ self.sentences.T
            nearest = [float(v) for v in sims.max(axis=1)]
        elif n:
            sims = features() @ self.features.T
        if not n:
            return Neighbours([[] for _ in range(rows)], nearest, floor)
        minimum = -1.0 if floor is None else floor
        near = np.argpartition(-sims, n - 1, axis=1)[:, :n]
        near_sims = np.take_along_axis(sims, near, axis=1)
        order = np.argsort(-near_sims, axis=1, kind="stable")
        near = np.take_along_axis(near, order, axis=1)
        near_sims = np.take_along_axis(near_sims, order, axis=1)
        found = [
            [
                Precedent(
                    case_key=self.keys[j],
                    hs10=self.labels[j],
                    title=self.titles[j],
                    similarity=float(np.clip(s, -1.0, 1.0)),
                )
                for j, s in zip(near[r].tolist(), near_sims[r].tolist(), strict=True)
                if s >= minimum
            ]
            for r in range(rows)
        ]
        return Neighbours(found, nearest, floor)

    # --- persistence ------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        np.savez(
            directory / FILE,
            features=self.features.astype(np.float32),
            keys=np.array(self.keys, dtype=str),
            titles=np.array(self.titles, dtype=str),
            labels=np.array(self.labels, dtype=str),
            **({} if self.sentences is None else {"sentences": self.sentences}),
        )

    @classmethod
    def load(cls, directory: Path, encoder: str, min_similarity: float) -> PrecedentIndex:
        with np.load(directory / FILE, allow_pickle=False) as prec:
            return cls(
                keys=prec["keys"].tolist(),
                titles=prec["titles"].tolist(),
                labels=prec["labels"].tolist(),
                features=prec["features"],
                sentences=prec["sentences"].astype(np.float32)
                if "sentences" in prec.files
                else None,
                encoder=encoder,
                min_similarity=min_similarity,
            )
