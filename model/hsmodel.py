"""The composed model: a main network, ensemble members, their mixture, calibration,
precedents.

``HSModel`` ranks codes for cases (calibrated probabilities), finds precedents and evaluates
itself; ``model.fit`` makes one, ``model.refit`` retrains one on more cases,
``model.artifact`` saves and loads one. Each member is a module of ``model.members``; the
model only walks them in mixture order. Whether a ranking needs a human is not the model's
call: ``hscode.review`` decides that from the ranking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model.calibrate import Ensemble, TopLabelCalibrator, coverage_curve, ece, nll, softmax
from model.config import MemberName, ModelConfig
from model.encoding import Item, items_of, title_texts
from model.familiarity import Familiarity
from model.members import Batch, Member
from model.network import Network
from model.precedents import PrecedentIndex
from model.records import Candidate, Example, Ranking, RequestInput, accepted_matrix
from model.runtime import json_safe
from model.text import UNK


class HSModel:
    """A trained classifier over ``labels``."""

    def __init__(
        self,
        config: ModelConfig,
        labels: Sequence[str],
        network: Network,
        *,
        member_names: Sequence[MemberName] = (),
        members: Mapping[MemberName, Member] | None = None,
        mixture: Ensemble | None = None,
        temperature: float = 1.0,
        top_calibration: TopLabelCalibrator | None = None,
        precedents: PrecedentIndex | None = None,
        familiarity: Familiarity | None = None,
        version: str = "",
        history: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.labels = list(labels)
        self.network = network
        # the mixture's members in its order; ``members`` holds the fitted ones (a member the
        # mixture weighs 0 is dropped after fitting: it is never computed)
        self.member_names = tuple(MemberName(m) for m in member_names)
        self.members: dict[MemberName, Member] = dict(members or {})
        self.mixture = mixture
        self.temperature = float(temperature)
        self.top_calibration = top_calibration or TopLabelCalibrator()  # identity until fitted
        self.precedents = precedents or PrecedentIndex(
            features=np.zeros((0, network.feature_dim), dtype=np.float32)
        )
        # how much a request looks like the known goods (None: no background to learn it)
        self.familiarity = familiarity
        self.version = version
        self.history: dict[str, Any] = history or {}
        self._label_index = {lab: i for i, lab in enumerate(self.labels)}

    # --- members ----------------------------------------------------------------------------
    def member(self, name: MemberName | str) -> Member | None:
        return self.members.get(MemberName(name))

    def weights(self) -> dict[MemberName, float]:
        """Each member's mixture weight ({} without a mixture)."""
        if self.mixture is None or not self.member_names:
            return {}
        return dict(zip(self.member_names, self.mixture.weights, strict=True))

    def _network_needed(self) -> bool:
        """Whether any score uses the network's logits (not when the mixture weighs it 0)."""
        if self.mixture is None or not self.member_names:
            return True
        needed = dict(zip(self.member_names, self.mixture.needed(), strict=True))
        return bool(needed.get(MemberName.NETWORK))

    def member_scores(
        self, batch: Batch, needed: Sequence[bool] | None = None
    ) -> list[np.ndarray | None]:
        """Each member's scores [N, C], in mixture order; ``None`` for a member that
        ``needed`` says to skip (e.g. one the mixture gives weight 0)."""
        needed = [True] * len(self.member_names) if needed is None else list(needed)
        out: list[np.ndarray | None] = []
        for name, need in zip(self.member_names, needed, strict=True):
            member = self.members.get(name)
            if need and member is None:
                raise ValueError(f"the mixture needs member {name!r}, which the model lacks")
            out.append(member.scores(batch) if need else None)
        return out

    def _combine(self, batch: Batch) -> np.ndarray:
        """The final uncalibrated logits: the network's, or the members' mixture."""
        if self.mixture is None or not self.member_names or len(batch) == 0:
            return batch.network_logits
        scores = self.member_scores(batch, self.mixture.needed())
        return self.mixture.log_probs(scores).astype(np.float32)

    def _batch(self, items: Sequence[Item]) -> tuple[Batch, np.ndarray | None]:
        """The members' batch with the network's logits when something needs them, and the
        network's features when they were computed."""
        logits = feats = None
        if self._network_needed():
            logits, feats = self.network.run(self.network.encode(items))
        return Batch(items, self.config.uses_description, logits), feats

    # --- prediction -------------------------------------------------------------------------
    def logits(self, examples: Sequence[Example | RequestInput]) -> np.ndarray:
        """Uncalibrated logits [N, len(labels)] (with the ensemble: mixed log-probabilities)."""
        return self._combine(self._batch(items_of(examples))[0])

    def neural_logits(self, examples: Sequence[Example]) -> np.ndarray:
        """The main network's own logits [N, len(labels)], without the other members."""
        return self.network.logits(items_of(examples))

    def predict_proba(self, examples: Sequence[Example | RequestInput]) -> np.ndarray:
        """Calibrated probabilities [N, len(labels)], columns in ``labels`` order."""
        return self.calibrated(self.logits(examples)).astype(np.float32)

    def calibrated(self, logits: np.ndarray) -> np.ndarray:
        """Final logits -> calibrated probabilities: temperature, then the top-label
        recalibration (both keep the ranking)."""
        return self.top_calibration(softmax(logits, self.temperature))

    def features(self, examples: Sequence[Example]) -> np.ndarray:
        """L2-normalised learned features [N, D] of the main network."""
        return self.network.run(self.network.encode(items_of(examples)))[1]

    # --- drift ------------------------------------------------------------------------------
    def token_counts(
        self, requests: Sequence[Example | RequestInput]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(tokens, unseen) per request, int64 [N] each: the tokens of its title (and of its
        description when the model reads descriptions), as the main network's tokenizer cuts
        them and before the length cap, and how many of them the model never saw in
        training (:meth:`seen_tokens`). None for a model without text."""
        network = self.network
        seen = self.seen_tokens()
        if seen is None:
            return None
        items = items_of(requests)
        token_lists = network.token_cache(title_texts(items))
        if self.config.uses_description:
            descriptions = network.token_cache(
                [d if isinstance(d, str) else "" for _, d, _ in items]
            )
            token_lists = [a + b for a, b in zip(token_lists, descriptions, strict=True)]
        tokens = np.fromiter((len(t) for t in token_lists), dtype=np.int64, count=len(items))
        unseen = np.fromiter(
            (sum(tok not in seen for tok in t) for t in token_lists),
            dtype=np.int64,
            count=len(items),
        )
        return tokens, unseen

    def seen_tokens(self) -> frozenset[str] | None:
        """The tokens the model saw in training: its text network's vocabulary (the tokens of
        the titles, and descriptions when it reads them, it was trained on) and the tokens of
        the titles of every case it indexes as precedents (the cases it learned from: a served
        refit indexes every selected case, also when it kept the evaluated model's network,
        whose vocabulary is the training split's). Computed once per precedent index (a
        tokenizer pass over its titles); None for a model without text."""
        network = self.network
        if network.vocab is None or not self.config.uses_text:
            return None
        cached = getattr(self, "_seen_tokens", None)
        if cached is not None and cached[0] is self.precedents:
            return cached[1]
        seen = {tok for tok, i in network.vocab.stoi.items() if i > UNK}
        for toks in network.tokenizer.tokenize_many(self.precedents.titles):
            seen.update(toks)
        frozen = frozenset(seen)
        self._seen_tokens = (self.precedents, frozen)
        return frozen

    def unseen_token_share(self, requests: Sequence[Example | RequestInput]) -> float | None:
        """The share of the requests' tokens (all requests' tokens together, see
        :meth:`token_counts`) unseen in training; None without text or without any token."""
        counts = self.token_counts(requests)
        if counts is None:
            return None
        total = int(counts[0].sum())
        return float(counts[1].sum()) / total if total else None

    def set_precedents(self, examples: Sequence[Example], features: np.ndarray | None = None):
        """Index these cases (normally the training set) for precedent search."""
        if features is None:
            features = self.features(examples) if examples else self.precedents.features[:0]
        self.precedents = PrecedentIndex.build(
            examples,
            features,
            self.config.ensemble.sentence_encoder,
            self.config.calibration.precedent_min_similarity,
            with_sentences=self.config.uses_text,
        )

    def rank(
        self, requests: Sequence[RequestInput], *, top_k: int = 5, n_precedents: int = 3
    ) -> list[Ranking]:
        """One Ranking per request, in order: the ``top_k`` codes with calibrated scores and
        up to ``n_precedents`` similar past cases. Unreadable image bytes count as no photo."""
        if top_k < 1:
            raise ValueError("top_k must be >= 1")
        if not requests:
            return []
        items = items_of(requests)
        batch, feats = self._batch(items)
        probs = self.calibrated(self._combine(batch))
        k = min(top_k, probs.shape[1])
        if k < probs.shape[1]:
            top = np.argpartition(-probs, k - 1, axis=1)[:, :k]
        else:
            top = np.tile(np.arange(probs.shape[1]), (len(requests), 1))
        top_scores = np.take_along_axis(probs, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        top_scores = np.take_along_axis(top_scores, order, axis=1)

        def features() -> np.ndarray:
            return feats if feats is not None else self.network.run(self.network.encode(items))[1]

        found = self.precedents.search(items, n_precedents, features)
        familiarity = floor = None
        if self.familiarity is not None:
            # an unfamiliar request's scores are scaled by familiarity / floor: a low confidence,
            # continuous at the floor (scaling by the familiarity itself left the familiar
            # cases below the floor far under-confident: docs/benchmarks.md section 13a)
            familiarity = self.familiarity.probability(batch.texts, found.nearest, top_scores[:, 0])
            floor = self.familiarity.floor
            scale = np.minimum(familiarity / max(floor, 1e-12), 1.0)
            top_scores = top_scores * scale[:, None]
        labels = self.labels
        return [
            Ranking(
                request_id=req.request_id,
                candidates=[
                    Candidate(hs10=labels[c], score=float(s))
                    for c, s in zip(top[r].tolist(), top_scores[r].tolist(), strict=True)
                ],
                precedents=found.precedents[r],
                nearest_similarity=found.nearest[r],
                similarity_floor=found.floor,
                familiarity=None if familiarity is None else float(familiarity[r]),
                familiarity_floor=floor,
            )
            for r, req in enumerate(requests)
        ]

    # --- evaluation -------------------------------------------------------------------------
    def label_indices(self, labels: Sequence[str]) -> np.ndarray:
        """Column index per label; -1 for a label the model never saw."""
        return np.array([self._label_index.get(lab, -1) for lab in labels], dtype=np.int64)

    def evaluate(self, examples: Sequence[Example], ks: Sequence[int] = (1, 3, 5)) -> dict:
        """Top-k accuracy, rolled-up top-1 (hs6/hs4/hs2 when the labels are longer), NLL and
        ECE before/after calibration, and the accuracy-vs-coverage curve of the confidence.

        A partial case (``Example.candidates``) is right when the code is any of its set; it
        counts in every accuracy and apart in ``partial_*``; NLL and ECE are on the others.
        """
        if not examples:
            raise ValueError("evaluate needs at least one example")
        logits = self.logits(examples)
        y = self.label_indices([e.label for e in examples])
        raw, cal = softmax(logits, 1.0), self.calibrated(logits)
        ranked = np.argsort(-cal, axis=1, kind="stable")
        accepted = accepted_matrix(examples, self.labels)
        partial = np.array([bool(e.candidates) for e in examples])
        exact = ~partial
        metrics: dict[str, Any] = {
            "n": len(examples),
            "unknown_labels": int(((y < 0) & exact).sum()),
            "partial_n": int(partial.sum()),
        }
        rows = np.arange(len(examples))[:, None]
        for k in ks:
            hit = accepted[rows, ranked[:, : min(k, ranked.shape[1])]].any(axis=1)
            metrics[f"top{k}"] = float(hit.mean())
            if partial.any():
                metrics[f"partial_top{k}"] = float(hit[partial].mean())
        true_sets = [{c for c in e.accepted} for e in examples]
        for level in (6, 4, 2):
            if not all(len(lab) > level for lab in self.labels):
                continue
            prefixes = sorted({lab[:level] for lab in self.labels})
            pidx = {p: i for i, p in enumerate(prefixes)}
            agg = np.zeros((len(examples), len(prefixes)))
            cols = np.array([pidx[lab[:level]] for lab in self.labels])
            np.add.at(agg.T, cols, cal.T)
            pred = [prefixes[i] for i in agg.argmax(axis=1)]
            metrics[f"hs{level}_top1"] = float(
                np.mean(
                    [p in {t[:level] for t in ts} for p, ts in zip(pred, true_sets, strict=True)]
                )
            )
        known = (y >= 0) & exact
        metrics["nll_before"] = nll(raw[known], y[known]) if known.any() else float("nan")
        metrics["nll_after"] = nll(cal[known], y[known]) if known.any() else float("nan")
        metrics["ece_before"] = ece(raw[exact], y[exact]) if exact.any() else float("nan")
        metrics["ece_after"] = ece(cal[exact], y[exact]) if exact.any() else float("nan")
        metrics["temperature"] = self.temperature
        metrics["top_calibration"] = self.top_calibration.to_dict()
        correct = accepted[np.arange(len(examples)), cal.argmax(axis=1)]
        metrics["coverage"] = coverage_curve(cal.max(axis=1), correct)
        return json_safe(metrics)

    # --- persistence (model.artifact) -------------------------------------------------------
    def save(self, directory: Path) -> Path:
        from model.artifact import save

        return save(self, Path(directory))

    @classmethod
    def load(cls, directory: Path, device: str = "cpu") -> HSModel:
        from model.artifact import load

        return load(Path(directory), device=device)
