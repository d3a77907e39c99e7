"""Past cases as evidence: the index of training cases and the nearest-case search.

With a sentence encoder the space is its vectors of the cases' titles (titles on both sides:
a request often has a title alone while a ruling has a long description; comparing
"title | description" with a bare title put familiar goods below the threshold, 29 of 30 demo
requests). There, unrelated goods score low, so a precedent is shown only from
``min_similarity`` up and the nearest similarity says whether a request is familiar at all.
Without one the space is the network's L2-normalised features, which have no such scale: every
nearest case is shown and no familiarity is claimed.

Each indexed case may carry its ruling's evidence (:class:`CaseEvidence`: reference number,
decision date, series, the shortened decision reason, source), given at training
(:meth:`PrecedentIndex.attach_evidence`, from the cases dataset) and saved beside the index
in ``precedent_evidence.json``; a found :class:`~model.records.Precedent` carries it. An
index saved before it has no such file: its precedents carry none (the fields are None).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from model.config import SentenceEncoderName
from model.encoding import Item, title_texts
from model.records import Example, Precedent
from model.runtime import matmul_dtype
from model.sentence import get_encoder

# queries per product in the sentence space (512 of 2,000 was the fastest)
SEARCH_CHUNK = 512

FILE = "precedents.npz"
EVIDENCE_FILE = "precedent_evidence.json"
EVIDENCE_FORMAT = 1
EVIDENCE_FIELDS = ("reference_no", "decision_date", "series", "reason", "source")


@dataclass(frozen=True, slots=True)
class CaseEvidence:
    """What a reviewer reads about a past case besides its title and code."""

    reference_no: str | None = None
    decision_date: str | None = None  # ISO date
    series: str | None = None
    reason: str | None = None  # the decision reason, shortened by whoever builds the index
    source: str | None = None  # "clip" for the portal's rulings, "review", "import:...", ...

    def row(self) -> list[str | None]:
        return [getattr(self, f) for f in EVIDENCE_FIELDS]


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
    # per indexed case (aligned with ``keys``), None for a case without it; None: the index
    # holds no evidence at all (an index saved before it)
    evidence: list[CaseEvidence | None] | None = None
    # per indexed case, the current codes it was split or moved into (``Example.candidates``;
    # empty for a case whose label is its code); None: none has any (or an older index)
    successors: list[tuple[str, ...]] | None = None
    # ``sentences`` transposed for the product, made on the first search: (the array, it)
    _cases_t: tuple[np.ndarray, torch.Tensor] | None = field(
        default=None, init=False, repr=False, compare=False
    )

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
            successors=[tuple(e.candidates) for e in examples]
            if any(e.candidates for e in examples)
            else None,
        )

    def __len__(self) -> int:
        return len(self.keys)

    def attach_evidence(self, evidence: Mapping[str, CaseEvidence]) -> int:
        """Record each indexed case's evidence by its key (a key not in ``evidence`` gets
        none); returns how many cases got some."""
        self.evidence = [evidence.get(k) for k in self.keys]
        return sum(e is not None for e in self.evidence)

    def _precedent(self, j: int, similarity: float) -> Precedent:
        ev = (self.evidence[j] if self.evidence is not None else None) or _NO_EVIDENCE
        return Precedent(
            case_key=self.keys[j],
            hs10=self.labels[j],
            title=self.titles[j],
            similarity=similarity,
            reference_no=ev.reference_no,
            decision_date=ev.decision_date,
            series=ev.series,
            reason=ev.reason,
            source=ev.source,
            successors=self.successors[j] if self.successors is not None else (),
        )

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
            best, row, col, value = self._sentence_hits(queries, floor)
            nearest = best.tolist()
        elif n:
            sims = features() @ self.features.T
            near = np.argpartition(-sims, n - 1, axis=1)[:, :n]
            row = np.repeat(np.arange(rows), n)
            col = near.ravel()
            value = sims[row, col]
        if not n:
            return Neighbours([[] for _ in range(rows)], nearest, floor)
        order = np.lexsort((col, -value, row))  # by request, best first, ties by case
        row, col, value = row[order], col[order], value[order]
        rank = np.arange(len(row)) - np.searchsorted(row, row)  # position within its request
        keep = rank < n
        found: list[list[Precedent]] = [[] for _ in range(rows)]
        for r, j, v in zip(row[keep].tolist(), col[keep].tolist(), value[keep].tolist()):
            found[r].append(self._precedent(j, float(np.clip(v, -1.0, 1.0))))
        return Neighbours(found, nearest, floor)

    def _sentence_hits(
        self, queries: np.ndarray, floor: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Each query's best cosine to the cases, and every (query, case, cosine) from the
        floor up: only those can be precedents, so only those are ranked. The product runs
        in chunks of queries that stay in the cache, in :func:`model.runtime.matmul_dtype`
        (2,000 queries x 11,596 cases: 0.07 s in bf16 against 0.18 s in numpy; section 17)."""
        if self._cases_t is None or self._cases_t[0] is not self.sentences:
            cases = torch.from_numpy(np.ascontiguousarray(self.sentences.T, dtype=np.float32))
            self._cases_t = (self.sentences, cases.to(matmul_dtype()))
        cases = self._cases_t[1]
        best = np.zeros(len(queries), dtype=np.float32)
        rows, cols, values = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0)]
        with torch.inference_mode():
            for start in range(0, len(queries), SEARCH_CHUNK):
                part = torch.from_numpy(queries[start : start + SEARCH_CHUNK])
                sims = torch.matmul(part.to(cases.dtype), cases).float()
                best[start : start + len(part)] = sims.amax(dim=1).numpy()
                row, col = (sims >= floor).nonzero(as_tuple=True)
                values.append(sims[row, col].numpy().astype(np.float64))
                rows.append(row.numpy() + start)
                cols.append(col.numpy())
        return best, np.concatenate(rows), np.concatenate(cols), np.concatenate(values)

    # --- persistence ------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        np.savez(
            directory / FILE,
            features=self.features.astype(np.float32),
            keys=np.array(self.keys, dtype=str),
            titles=np.array(self.titles, dtype=str),
            labels=np.array(self.labels, dtype=str),
            **({} if self.sentences is None else {"sentences": self.sentences}),
            # "|"-joined candidate codes per case ("" for a case whose label is its code)
            **(
                {}
                if self.successors is None
                else {"successors": np.array(["|".join(c) for c in self.successors], dtype=str)}
            ),
        )
        path = directory / EVIDENCE_FILE
        if self.evidence is None:
            path.unlink(missing_ok=True)  # a stale file must not describe another index
            return
        if len(self.evidence) != len(self.keys):
            raise ValueError(f"{len(self.evidence)} evidence rows for {len(self.keys)} cases")
        payload = {
            "format": EVIDENCE_FORMAT,
            "fields": list(EVIDENCE_FIELDS),
            "rows": [None if e is None else e.row() for e in self.evidence],
        }
        path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path, encoder: str, min_similarity: float) -> PrecedentIndex:
        with np.load(directory / FILE, allow_pickle=False) as prec:
            index = cls(
                keys=prec["keys"].tolist(),
                titles=prec["titles"].tolist(),
                labels=prec["labels"].tolist(),
                features=prec["features"],
                sentences=prec["sentences"].astype(np.float32)
                if "sentences" in prec.files
                else None,
                encoder=encoder,
                min_similarity=min_similarity,
                successors=[tuple(c.split("|")) if c else () for c in prec["successors"].tolist()]
                if "successors" in prec.files
                else None,
            )
        index.evidence = _load_evidence(directory / EVIDENCE_FILE, len(index.keys))
        return index


_NO_EVIDENCE = CaseEvidence()


def _load_evidence(path: Path, n: int) -> list[CaseEvidence | None] | None:
    """The saved evidence rows (None without the file: an index saved before it)."""
    if not path.is_file():
        return None
    payload = json.loads(path.read_text(encoding="utf-8"))
    if payload.get("format") != EVIDENCE_FORMAT:
        raise ValueError(f"{path}: unsupported evidence format {payload.get('format')!r}")
    rows = payload.get("rows") or []
    if len(rows) != n:
        raise ValueError(f"{path}: {len(rows)} evidence rows for an index of {n} cases")
    position = {f: i for i, f in enumerate(payload.get("fields") or EVIDENCE_FIELDS)}
    return [
        None
        if row is None
        else CaseEvidence(
            *(
                None if f not in position or row[position[f]] is None else str(row[position[f]])
                for f in EVIDENCE_FIELDS
            )
        )
        for row in rows
    ]
