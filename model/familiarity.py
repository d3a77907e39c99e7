"""Familiarity: does a request look like the goods the model knows? (issue 15)

A classifier's confidence only compares the codes it knows: a good of a code it never saw
still gets a confident answer (on the ghko99 names, K = 100, the calibrated confidence tells
names of known codes from names of other headings with an AUROC of 0.81 only). Familiarity
is learned from the cases the model does NOT classify, an outlier-exposure design:

- the **background**: trainable cases of codes outside the model's classes (rare codes,
  codes beyond ``--top-codes``), which every nightly training has anyway. Their headings
  are split by a hash in two: part A teaches the detector, part B (headings A never had)
  stands for goods of unknown headings when the combiner is fitted;
- the **detector**: a linear SVM on hashed character 2-4-grams (no vocabulary to store),
  the training cases against background A;
- the **combiner**: a logistic regression over three features (the detector's margin, the
  nearest past case's similarity in the sentence encoder's space, the model's calibrated
  top-1 confidence), fitted on validation cases (familiar, held out from the detector, the
  members and the precedent index) against background B;
- the **floor**: the probability below which a request is unfamiliar, set so that
  ``max_flagged`` of the validation cases fall below it.

``HSModel.rank`` gives each request its familiarity; one below the floor multiplies the
candidates' scores by it (a low confidence) and ``hscode.review`` sends it to review as
"unlike any known case". Without a background (every code is a class, or too few other
cases) there is no familiarity and the nearest-case rule alone applies.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

log = logging.getLogger(__name__)

N_FEATURES = 2**20  # hashed character n-grams
FEATURES = ("detector_margin", "nearest_similarity", "confidence")
B_SHARE = 0.3  # of the background's headings held out for the combiner
MIN_BACKGROUND = 50  # cases in each part, else no familiarity
MAX_COMBINER_CASES = 5000  # per side


def _vectorizer() -> Any:
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        analyzer="char_wb",
        ngram_range=(2, 4),
        n_features=N_FEATURES,
        alternate_sign=False,
        binary=True,
        norm="l2",
        lowercase=True,
    )


def held_out_heading(code: str) -> bool:
    """Whether a background code's heading (4 digits) is in part B (stable across runs)."""
    return zlib.crc32(code[:4].encode()) % 1000 < B_SHARE * 1000


def sample(items: list[Any], n: int, seed: int) -> list[Any]:
    """At most ``n`` of ``items``, a seeded choice in their order."""
    if len(items) <= n:
        return items
    rng = np.random.default_rng(seed)
    return [items[i] for i in sorted(rng.choice(len(items), n, replace=False))]


@dataclass
class Familiarity:
    coef: np.ndarray  # [N_FEATURES] float32, the detector
    intercept: float
    weights: np.ndarray  # [len(FEATURES)] the combiner
    bias: float
    floor: float  # familiarity below which a request is unfamiliar
    history: dict[str, Any] = field(default_factory=dict)

    # --- scoring ----------------------------------------------------------------------------
    def detector_margin(self, texts: Sequence[str]) -> np.ndarray:
        x = _vectorizer().transform([t or "" for t in texts]).astype(np.float32)
        return np.asarray(x @ self.coef, dtype=np.float64).ravel() + self.intercept

    def features(
        self, texts: Sequence[str], nearest: Sequence[float | None], confidence: np.ndarray
    ) -> np.ndarray:
        near = np.array([0.0 if v is None else float(v) for v in nearest], dtype=np.float64)
        return np.c_[self.detector_margin(texts), near, np.asarray(confidence, np.float64)]

    def probability(
        self, texts: Sequence[str], nearest: Sequence[float | None], confidence: np.ndarray
    ) -> np.ndarray:
        """P(familiar) per request, in [0, 1]."""
        if not len(texts):
            return np.zeros(0)
        z = self.features(texts, nearest, confidence) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    # --- fitting ----------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        known_texts: Sequence[str],
        background_a: Sequence[str],
        familiar: tuple[Sequence[str], Sequence[float | None], np.ndarray],
        unfamiliar: tuple[Sequence[str], Sequence[float | None], np.ndarray],
        *,
        max_flagged: float,
        seed: int = 13,
    ) -> Familiarity:
        """The detector on ``known_texts`` against ``background_a``; the combiner and the floor
        on ``familiar`` (held-out cases of the classes) against ``unfamiliar`` (background B),
        each as (texts, nearest similarity, confidence) scored by the model."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score
        from sklearn.svm import LinearSVC

        vec = _vectorizer()
        x = sparse.vstack([vec.transform(list(known_texts)), vec.transform(list(background_a))])
        y = np.r_[np.ones(len(known_texts)), np.zeros(len(background_a))]
        svm = LinearSVC(C=0.1, class_weight="balanced", random_state=seed).fit(x.tocsr(), y)
        coef = np.asarray(svm.coef_, dtype=np.float32).ravel()
        model = cls(coef, float(svm.intercept_[0]), np.zeros(len(FEATURES)), 0.0, 0.0)
        f_feats = model.features(*familiar)
        u_feats = model.features(*unfamiliar)
        combiner = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
        truth = np.r_[np.ones(len(f_feats)), np.zeros(len(u_feats))]
        combiner.fit(np.r_[f_feats, u_feats], truth)
        model.weights = np.asarray(combiner.coef_, dtype=np.float64).ravel()
        model.bias = float(combiner.intercept_[0])
        p_fam, p_unf = model.probability(*familiar), model.probability(*unfamiliar)
        model.floor = float(np.quantile(p_fam, max_flagged))
        model.history = {
            "background_a": len(background_a),
            "combiner_familiar": len(p_fam),
            "combiner_unfamiliar": len(p_unf),
            "weights": dict(zip(FEATURES, model.weights.round(4).tolist(), strict=True)),
            "floor": model.floor,
            "max_flagged": max_flagged,
            # on the cases the combiner was fitted on (in-sample for its three weights)
            "flagged_familiar": float(np.mean(p_fam < model.floor)),
            "flagged_background_b": float(np.mean(p_unf < model.floor)),
            "auroc": float(roc_auc_score(truth, np.r_[p_fam, p_unf])),
        }
        log.info("familiarity: %s", model.history)
        return model

    # --- persistence ------------------------------------------------------------------------
    def save(self, directory: Path) -> dict[str, Any]:
        np.savez_compressed(
            Path(directory) / "familiarity.npz",
            coef=self.coef.astype(np.float32),
            weights=self.weights.astype(np.float64),
        )
        return {
            "file": "familiarity.npz",
            "intercept": self.intercept,
            "bias": self.bias,
            "floor": self.floor,
            "features": list(FEATURES),
            "n_features": N_FEATURES,
            "history": self.history,
        }

    @classmethod
    def load(cls, directory: Path, entry: dict[str, Any]) -> Familiarity:
        if list(entry.get("features", [])) != list(FEATURES) or entry.get("n_features") != (
            N_FEATURES
        ):
            raise ValueError(f"familiarity saved with other features: {entry.get('features')}")
        with np.load(Path(directory) / entry["file"]) as arrays:
            coef, weights = arrays["coef"], arrays["weights"]
        return cls(
            coef,
            float(entry["intercept"]),
            weights,
            float(entry["bias"]),
            float(entry["floor"]),
            dict(entry.get("history") or {}),
        )
