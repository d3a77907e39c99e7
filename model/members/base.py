"""The ensemble-member contract: one protocol, one registry, one module per member.

A member turns a batch of cases into scores over the model's codes (logit-like, [N, C]); the
mixture (``model.calibrate.Ensemble``) weighs the members' temperature-scaled
log-probabilities. Each member module defines a class implementing :class:`Member` and
registers a :class:`MemberKind` (how to fit, refit and load it) under its
:class:`model.config.MemberName`. ``model.fit`` and ``model.refit`` walk the registry in
mixture order; nothing dispatches on member names elsewhere. Adding a member is one new
module in this package plus its name in ``MemberName`` / ``ModelConfig.members``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from scipy import sparse

from model.baseline import TfidfSvm
from model.config import MemberName, ModelConfig
from model.encoding import Item, compose_texts, items_of
from model.network import Network
from model.records import Example
from model.train_loop import Progress


class Batch:
    """What members score: the cases' items, their composed texts (computed once, for every
    text member) and the main network's logits when they were computed."""

    def __init__(
        self,
        items: Sequence[Item],
        with_description: bool,
        network_logits: np.ndarray | None = None,
    ) -> None:
        self.items = list(items)
        self.with_description = with_description
        self.network_logits = network_logits
        self._tfidf: dict[int, sparse.csr_matrix] = {}

    @cached_property
    def texts(self) -> list[str]:
        return compose_texts(self.items, self.with_description)

    def tfidf(self, svm: TfidfSvm) -> sparse.csr_matrix:
        """The texts' TF-IDF features under ``svm``'s vectorizers, computed once per batch:
        the SVM, the k-NN vote and the nearest case all read them."""
        key = id(svm)
        if key not in self._tfidf:
            self._tfidf[key] = svm.sparse_features(self.texts)
        return self._tfidf[key]

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class FitContext:
    """Everything a member may fit on. ``examples`` are the cases to learn from; ``val`` only
    stops a network's training early (empty in a refit); ``fitted`` holds the members fitted
    before this one in mixture order (the k-NN vote reads the SVM's features)."""

    config: ModelConfig
    labels: Sequence[str]
    examples: Sequence[Example]
    network: Network
    device: torch.device
    val: Sequence[Example] = ()
    progress: Progress | None = None
    extra_texts: Sequence[str] = ()
    keyed_vectors: Any = None
    fitted: dict[MemberName, Member] = field(default_factory=dict)

    @cached_property
    def batch(self) -> Batch:
        return Batch(items_of(self.examples), self.config.uses_description)

    @cached_property
    def y(self) -> np.ndarray:
        """A class index per example; -1 for a partial label (its set: ``sets``)."""
        index = {lab: i for i, lab in enumerate(self.labels)}
        return np.array(
            [-1 if e.candidates else index[e.label] for e in self.examples], dtype=np.int64
        )

    @cached_property
    def sets(self) -> list[tuple[int, ...]]:
        """Per example, the class indices that are right for it (one for an exact label)."""
        return self.class_sets(self.examples)

    def class_sets(self, examples: Sequence[Example]) -> list[tuple[int, ...]]:
        """Per example, the indices of its right codes among ``labels`` (codes the model does
        not have left out: a validation case of such a code gets an empty set)."""
        index = {lab: i for i, lab in enumerate(self.labels)}
        return [tuple(index[c] for c in e.accepted if c in index) for e in examples]

    @cached_property
    def expanded(self) -> tuple[list[str], np.ndarray, np.ndarray | None]:
        """(texts, class indices, weights) with one row per right class: a partial case
        once per candidate, weighted 1/|set|; weights None when every label is exact (for
        members that learn from single labels: the TF-IDF SVM and k-NN vote)."""
        texts = self.batch.texts
        if all(len(s) == 1 for s in self.sets):
            return texts, np.array([s[0] for s in self.sets], dtype=np.int64), None
        rows = [(t, c, 1.0 / len(s)) for t, s in zip(texts, self.sets, strict=True) for c in s]
        return (
            [r[0] for r in rows],
            np.array([r[1] for r in rows], dtype=np.int64),
            np.array([r[2] for r in rows], dtype=np.float32),
        )


@dataclass(frozen=True)
class LoadContext:
    directory: Path
    config: ModelConfig
    network: Network
    device: str
    loaded: Mapping[MemberName, Member]


class Member(Protocol):
    """A fitted ensemble member."""

    name: ClassVar[MemberName]

    def scores(self, batch: Batch) -> np.ndarray:
        """Logit-like scores [len(batch), n_codes], columns in the model's label order."""
        ...

    def save(self, directory: Path) -> dict[str, Any]:
        """Write the member's files into ``directory``; return its manifest entry."""
        ...


@dataclass(frozen=True)
class MemberKind:
    """How one member is made. ``refit(previous, ctx)`` trains it again on ``ctx.examples``
    as the evaluated ``previous`` was trained (same epochs); ``on_all_validation``: the member
    chooses nothing on validation, so after the mixture is chosen it may be refitted on
    train + validation (``EnsembleConfig.refit_members``)."""

    name: MemberName
    fit: Callable[[FitContext], Member]
    refit: Callable[[Member, FitContext], Member]
    load: Callable[[Mapping[str, Any], LoadContext], Member]
    requires: tuple[MemberName, ...] = ()
    on_all_validation: bool = True


REGISTRY: dict[MemberName, MemberKind] = {}


def register(kind: MemberKind) -> MemberKind:
    if kind.name in REGISTRY:
        raise ValueError(f"member {kind.name!r} registered twice")
    REGISTRY[kind.name] = kind
    return kind


def register_fresh(
    name: MemberName,
    fit: Callable[[FitContext], Member],
    load: Callable[[Mapping[str, Any], LoadContext], Member],
    requires: tuple[MemberName, ...] = (),
) -> MemberKind:
    """Register a member whose refit is a fresh fit on the refit's cases (it carries nothing
    over from the evaluated one: the text members)."""
    return register(
        MemberKind(
            name=name, fit=fit, refit=lambda previous, ctx: fit(ctx), load=load, requires=requires
        )
    )


def kind_of(name: MemberName | str) -> MemberKind:
    try:
        return REGISTRY[MemberName(name)]
    except (KeyError, ValueError):
        raise ValueError(f"unknown ensemble member {name!r}") from None


# --- plain-file persistence for the members made of arrays --------------------------------
def write_state(
    directory: Path,
    stem: str,
    state: tuple[dict, dict[str, np.ndarray]],
    compressed: bool = False,
) -> dict[str, Any]:
    """Write a ``to_state()`` pair as ``stem.json`` + ``stem.npz``; return the manifest entry."""
    meta, arrays = state
    (directory / f"{stem}.json").write_text(json.dumps(meta, ensure_ascii=False), "utf-8")
    (np.savez_compressed if compressed else np.savez)(directory / f"{stem}.npz", **arrays)
    return {"file": stem}


def read_state(
    entry: Mapping[str, Any], directory: Path, stem: str
) -> tuple[dict, dict[str, np.ndarray]]:
    """The ``(meta, arrays)`` pair a manifest ``entry`` names (``stem`` when it names none)."""
    stem = entry.get("file", stem)
    meta_path = directory / f"{stem}.json"
    if not meta_path.is_file():
        raise ValueError(f"model at {directory}: the mixture needs {stem}.json / {stem}.npz")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    with np.load(directory / f"{stem}.npz", allow_pickle=False) as arrays:
        return meta, dict(arrays)
