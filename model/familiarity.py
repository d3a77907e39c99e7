"""Familiarity: does a request look like the goods the model knows? (issue 15)

A classifier's confidence only compares the codes it knows: a good of a code it never saw
still gets a confident answer (on the ghko99 names, K = 100, the calibrated confidence tells
names of known codes from names of other headings with an AUROC of 0.81 only). Familiarity
is learned from the cases the model does NOT classify, an outlier-exposure design:

- the **background**: trainable cases of codes outside the model's classes (rare codes,
  codes beyond ``--top-codes``), which every nightly training has anyway. Their headings
  are split by a hash in two: part A teaches the detector, part B (headings A never had)
  stands for goods of unknown headings when the combiner is fitted;
- the **detector**: a one-vs-rest linear SVM on TF-IDF character 1-4-grams and word 1-2-grams
  (terms in at least two cases) over chapters, each chapter twice: the known cases' chapters
  (``k84``) and the background's (``b84``). Its margin is the best known chapter's minus the
  best background chapter's: goods of another heading are told apart from the known ones
  where they look alike, chapter by chapter, not by one "other" blob (on the ghko99 names,
  K = 100: AUROC 0.963 against 0.911 for the binary detector it replaced, measured by a
  throw-away script). The combiner is fitted with a detector of background A; the served
  detector is then refitted on both parts (the floor is set with it, on validation cases it
  never saw). Chapters bound its size (at most 2 x 99 classes) whatever the number of codes;
- the **combiner**: a logistic regression over three features (the detector's margin, the
  nearest past case's similarity in the sentence encoder's space, the model's calibrated
  top-1 confidence), fitted on validation cases (familiar, held out from the detector, the
  members and the precedent index) against background B;
- the **floor**: the probability below which a request is unfamiliar, set so that
  ``max_flagged`` of the validation cases fall below it.

``HSModel.rank`` gives each request its familiarity; one below the floor multiplies the
candidates' scores by familiarity / floor (a low confidence, continuous at the floor) and
``hscode.review`` sends it to review as "unlike any known case". Without a background (every
code is a class, or too few other cases) there is no familiarity and the nearest-case rule
alone applies.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model.baseline import TfidfSvm

log = logging.getLogger(__name__)

N_FEATURES = 2**20  # the former detector's hashed character n-grams (models saved with it load)
DETECTOR = "chapters"  # the detector's kind, saved; "hashed": the former binary detector
DETECTOR_C = 0.5
DETECTOR_MIN_DF = 2
KNOWN, OTHER = "k", "b"  # detector class prefixes: a known case's chapter, a background one's
FEATURES = ("detector_margin", "nearest_similarity", "confidence")
B_SHARE = 0.3  # of the background's headings held out for the combiner
MIN_BACKGROUND = 50  # cases in each part, else no familiarity
MAX_COMBINER_CASES = 5000  # per side


def _vectorizer() -> Any:
    """The former detector's features (``"hashed"``)."""
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


Labelled = tuple[Sequence[str], Sequence[str]]  # (texts, hs codes)


def detector_classes(known_codes: Sequence[str], background_codes: Sequence[str]) -> list[str]:
    """The detector's class of each case: its chapter, marked known or background."""
    return [KNOWN + c[:2] for c in known_codes] + [OTHER + c[:2] for c in background_codes]


def fit_detector(known: Labelled, background: Labelled, seed: int, jobs: int = 1) -> TfidfSvm:
    """The chapter detector on the known cases against ``background``."""
    texts = [*known[0], *background[0]]
    svm = TfidfSvm(C=DETECTOR_C, min_df=DETECTOR_MIN_DF, seed=seed, jobs=jobs)
    return svm.fit(texts, detector_classes(known[1], background[1]))


@dataclass
class Familiarity:
    detector: TfidfSvm | None  # the chapter detector; None: the former hashed one (``coef``)
    weights: np.ndarray  # [len(FEATURES)] the combiner
    bias: float
    floor: float  # familiarity below which a request is unfamiliar
    history: dict[str, Any] = field(default_factory=dict)
    coef: np.ndarray | None = None  # the former detector: [N_FEATURES] float32 and its bias
    intercept: float = 0.0

    # --- scoring ----------------------------------------------------------------------------
    def detector_margin(self, texts: Sequence[str]) -> np.ndarray:
        texts = [t or "" for t in texts]
        if self.detector is None:  # a model saved with the former binary detector
            x = _vectorizer().transform(texts).astype(np.float32)
            return np.asarray(x @ self.coef, dtype=np.float64).ravel() + self.intercept
        scores = self.detector.decision_scores(texts)
        known = np.char.startswith(self.detector.classes_.astype(str), KNOWN)
        return scores[:, known].max(axis=1) - scores[:, ~known].max(axis=1)

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
        known: Labelled,
        background_a: Labelled,
        familiar: tuple[Sequence[str], Sequence[float | None], np.ndarray],
        unfamiliar: tuple[Sequence[str], Sequence[float | None], np.ndarray],
        *,
        max_flagged: float,
        background_b: Labelled | None = None,
        seed: int = 13,
        jobs: int = 1,
    ) -> Familiarity:
        """The detector on ``known`` against ``background_a`` (each (texts, codes)); the
        combiner on ``familiar`` (held-out cases of the classes) against ``unfamiliar``
        (background B), each as (texts, nearest similarity, confidence) scored by the model.
        With ``background_b``, the served detector is refitted on both parts of the
        background and the floor set with it (the history's AUROC and shares are the first
        detector's, on cases it never saw)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score

        model = cls(fit_detector(known, background_a, seed, jobs), np.zeros(len(FEATURES)), 0, 0)
        f_feats = model.features(*familiar)
        u_feats = model.features(*unfamiliar)
        combiner = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
        truth = np.r_[np.ones(len(f_feats)), np.zeros(len(u_feats))]
        combiner.fit(np.r_[f_feats, u_feats], truth)
        model.weights = np.asarray(combiner.coef_, dtype=np.float64).ravel()
        model.bias = float(combiner.intercept_[0])
        p_fam, p_unf = model.probability(*familiar), model.probability(*unfamiliar)
        floor = float(np.quantile(p_fam, max_flagged))
        model.history = {
            "detector": DETECTOR,
            "background_a": len(background_a[0]),
            "combiner_familiar": len(p_fam),
            "combiner_unfamiliar": len(p_unf),
            "weights": dict(zip(FEATURES, model.weights.round(4).tolist(), strict=True)),
            "max_flagged": max_flagged,
            # on the cases the combiner was fitted on (in-sample for its three weights)
            "flagged_familiar": float(np.mean(p_fam < floor)),
            "flagged_background_b": float(np.mean(p_unf < floor)),
            "auroc": float(roc_auc_score(truth, np.r_[p_fam, p_unf])),
        }
        if background_b is not None and len(background_b[0]):
            both = ([*background_a[0], *background_b[0]], [*background_a[1], *background_b[1]])
            model.detector = fit_detector(known, both, seed, jobs)
            floor = float(np.quantile(model.probability(*familiar), max_flagged))
            model.history["served_detector_background"] = len(both[0])
        model.floor = floor
        model.history["floor"] = floor
        log.info("familiarity: %s", model.history)
        return model

    # --- persistence ------------------------------------------------------------------------
    def save(self, directory: Path) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "file": "familiarity.npz",
            "bias": self.bias,
            "floor": self.floor,
            "features": list(FEATURES),
            "history": self.history,
        }
        arrays: dict[str, np.ndarray] = {"weights": self.weights.astype(np.float64)}
        if self.detector is None:
            entry |= {"detector": "hashed", "n_features": N_FEATURES, "intercept": self.intercept}
            arrays["coef"] = self.coef.astype(np.float32)
        else:
            meta, state = self.detector.to_state()
            entry |= {"detector": DETECTOR, "detector_state": meta}
            arrays |= {f"detector_{k}": v for k, v in state.items()}
        np.savez_compressed(Path(directory) / "familiarity.npz", **arrays)
        return entry

    @classmethod
    def load(cls, directory: Path, entry: dict[str, Any]) -> Familiarity:
        kind = entry.get("detector", "hashed")  # saved before the chapter detector: hashed
        if list(entry.get("features", [])) != list(FEATURES) or kind not in (DETECTOR, "hashed"):
            raise ValueError(
                f"familiarity saved with other features or detector: {entry.get('features')}, "
                f"{kind}"
            )
        if kind == "hashed" and entry.get("n_features") != N_FEATURES:
            raise ValueError(f"familiarity saved with {entry.get('n_features')} hashed features")
        with np.load(Path(directory) / entry["file"]) as arrays:
            loaded = {k: arrays[k] for k in arrays.files}
        detector = coef = None
        if kind == DETECTOR:
            state = {k.removeprefix("detector_"): v for k, v in loaded.items() if k != "weights"}
            detector = TfidfSvm.from_state(entry["detector_state"], state)
        else:
            coef = loaded["coef"]
        return cls(
            detector,
            loaded["weights"],
            float(entry["bias"]),
            float(entry["floor"]),
            dict(entry.get("history") or {}),
            coef=coef,
            intercept=float(entry.get("intercept", 0.0)),
        )
