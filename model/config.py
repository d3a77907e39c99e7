"""What defines a training run: one nested, JSON-serialisable config, and the names it uses.

``ModelConfig`` has one section per part of the model: ``network`` (tokens, embeddings, the
BiLSTM and its training loop), ``image`` (the VGG branch and fusion), ``ensemble`` (which
members are mixed with the network) and ``calibration`` (validation split, temperature,
top-label step, precedent threshold). Every field has one flat name too (``hidden``,
``ensemble_c``, ``calibration_share``...), unique across sections: the CLI, the benchmarks and
format-1 model files use those, through :meth:`ModelConfig.from_flat` and
:meth:`ModelConfig.from_dict`.

The modes are ``StrEnum``s (a member compares equal to its string, so saved JSON and CLI
arguments read as before) defined here once; the rest of the project imports them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from typing import Any


class Inputs(StrEnum):
    """Which fields of a case the model reads."""

    TITLE = "title"
    TITLE_DESCRIPTION = "title+description"
    TITLE_IMAGE = "title+image"
    ALL = "title+description+image"
    IMAGE = "image"

    @property
    def uses_text(self) -> bool:
        return "title" in self.value

    @property
    def uses_description(self) -> bool:
        return "description" in self.value

    @property
    def uses_image(self) -> bool:
        return "image" in self.value


# the modes `hscode train` offers (an image-only model cannot rank text requests)
TRAINABLE_INPUTS: tuple[Inputs, ...] = tuple(m for m in Inputs if m.uses_text)


class Embedding(StrEnum):
    FASTTEXT = "fasttext"
    WORD2VEC = "word2vec"


class Fusion(StrEnum):
    JOINT = "joint"
    CONCAT = "concat"
    LATE = "late"


class EnsembleKind(StrEnum):
    """Which TF-IDF members join the network: the SVM and the nearest case of each code, the
    SVM and the k-NN vote (the former default), the SVM, or none."""

    TFIDF_NEAREST = "tfidf+nearest"
    TFIDF_KNN = "tfidf+knn"
    TFIDF = "tfidf"
    NONE = "none"


class Companion(StrEnum):
    """The second, text-only network of the ensemble."""

    FASTTEXT_SUBWORD = "fasttext-subword"
    WORD2VEC = "word2vec"
    NONE = "none"


class SentenceEncoderName(StrEnum):
    USE_M3 = "use-m3"
    NONE = "none"


class MemberName(StrEnum):
    """Ensemble members, in mixture order (``model.members`` holds one module per member)."""

    NETWORK = "network"
    COMPANION = "companion"
    SVM = "svm"
    HEADING = "heading"
    KNN = "knn"
    NEAREST = "nearest"
    SENTENCE = "sentence"


def _enum(kind: type[StrEnum], value: Any, what: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        allowed = tuple(m.value for m in kind)
        raise ValueError(f"unknown {what} {value!r}; expected one of {allowed}") from None


@dataclass
class NetworkConfig:
    """Tokens, word embeddings, the BiLSTM text encoder and its training loop."""

    embedding: Embedding = Embedding.FASTTEXT
    # fastText composition inside the network (word + hashed char n-gram vectors, fine-tuned;
    # unseen words get vectors from their n-grams); fastText only. Off by default: on the
    # ghko99 K=100 validation split it ties the plain fastText init (65.5 vs 64.9% top-1) at
    # ~3x the training time (docs/benchmarks.md section 1)
    subword: bool = False
    tokenizer: str = "morph+subword"  # see model.tokenize.MODES
    embed_dim: int = 128
    embed_epochs: int = 10
    hidden: int = 256  # BiLSTM hidden size per direction
    lstm_layers: int = 1
    feature_dim: int = 512  # text and image features (the paper's 512)
    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-3  # 2e-3 -> 3e-3: +2.9 points top-1 on the ghko99 K=100 validation split
    weight_decay: float = 1e-4
    dropout: float = 0.3
    label_smoothing: float = 0.1
    max_len: int = 64
    char_ngram_max: int = 0  # > 0: add a bag of character n-grams (n_min..n_max) to the text
    char_ngram_min: int = 1
    ngram_dim: int = 128
    ngram_min_count: int = 2  # n-grams seen fewer times in training are dropped
    wide: bool = False  # add a linear TF-IDF n-gram classifier to the logits (needs n-grams)
    wide_weight_decay: float = 0.0
    early_stopping: bool = True  # keep the epoch with the best validation accuracy
    # ... and stop after this many epochs without a better one (0: run every epoch)
    patience: int = 4
    # a warm-started network (``model.warm``: from the champion's, on a light night) trains
    # this many epochs instead of ``epochs``
    warm_epochs: int = 2

    def __post_init__(self) -> None:
        self.embedding = _enum(Embedding, self.embedding, "embedding")
        if self.subword and self.embedding != Embedding.FASTTEXT:
            raise ValueError("subword=True needs fastText embeddings")
        for name in ("epochs", "batch_size", "max_len", "embed_dim", "hidden", "warm_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


@dataclass
class ImageConfig:
    """The VGG image encoder, its pre-training and fine-tuning, and the fusion head."""

    image_size: int = 64
    vgg_cfg: str = "A"  # torchvision VGG cfg: A/B/D/E (VGG11/13/16/19) or tiny/small
    vgg_width: float = 0.25  # channel multiplier (1.0 = the standard VGG widths)
    pretrain_epochs: int = 5  # self-supervised rotation pre-training on all photos
    finetune_epochs: int = 3  # supervised image-only fine-tuning before joint training
    fusion: Fusion = Fusion.JOINT
    modality_dropout: float = 0.2
    aux_weight: float = 0.0  # extra per-modality losses (always on for late fusion)

    def __post_init__(self) -> None:
        self.fusion = _enum(Fusion, self.fusion, "fusion")
        if self.image_size < 1:
            raise ValueError("image_size must be >= 1")


@dataclass
class EnsembleConfig:
    """The members mixed with the network (text inputs only)."""

    # the network mixed with a TF-IDF linear SVM ("tfidf") and the nearest case of each code
    # ("tfidf+nearest") or a TF-IDF cosine k-NN vote ("tfidf+knn"); weights and temperatures
    # chosen on validation | none. The nearest case adds 0.58-0.85 points of top-1 to the SVM
    # and sentence head on the ghko99 K = 100 names, three seeds, where the k-NN vote adds
    # -0.03 to +0.13 (`bench_sentence --members --nearest`, docs/benchmarks.md section 14)
    kind: EnsembleKind = EnsembleKind.TFIDF_NEAREST
    c: float = 0.5  # the SVM's C
    # TF-IDF terms in fewer training texts are dropped. 1 (every term, as the TF-IDF + SVM
    # peer) against 2, on the ghko99 K = 100 / 300 names, two seeds each: top-3 +0.2 to +0.6,
    # top-1 -0.6 to +0.8 (level on average; `bench_sentence --members`, section 10e); when the
    # coefficients (terms x codes, float32) would exceed max_coef_mb, terms seen once are
    # dropped after all (at every code, min_df 2: 112,527 terms x 1,910 codes = 0.86 GB,
    # measured; min_df 1 keeps more terms than that)
    min_df: int = 1
    max_coef_mb: float = 512.0
    # a frozen multilingual sentence encoder shipped in its wheel ("use-m3", model.sentence):
    # the member "sentence" (a classifier on its vectors) and the precedent space; "none" for
    # neither. Mixed with the SVM it adds 0.6-1.1 points top-1 and 1.2-1.3 points top-3 on the
    # ghko99 K = 100 / 300 names, two seeds each (`bench_sentence --members`, section 10e)
    sentence_encoder: SentenceEncoderName = SentenceEncoderName.USE_M3
    sentence_hidden: int = 1024  # the head's hidden layer
    sentence_epochs: int = 20
    # > 0: the head keeps its best validation epoch and stops after this many epochs without
    # a better top-1, and a refit trains that epoch's count. Off by default: at patience 4 it
    # stopped after 9-14 epochs on the ghko99 K = 100 names and cost 0.07-0.52 points top-1 on
    # three seeds (its validation top-1 still creeps up to epoch 30); at 100,000 cases it ran
    # all 20 epochs anyway (docs/benchmarks.md section 21c)
    sentence_patience: int = 0
    # neighbours of the k-NN member. On the ghko99 K=100 validation split the member alone
    # scores 69.7/82.9% top-1/3 at k=10 and 70.4/84.6% at k=40, but with ~25 cases per code
    # k=40 votes across codes (the brand/model-number behaviour test fails); kept at 10
    knn_k: int = 10
    # the nearest-case member's similarity: this share from the sentence encoder's cosine,
    # the rest from the TF-IDF cosine. Mixed with the SVM and head, top-1 on three seeds:
    # 0.5 best on each (+0.58 to +0.85), 0.3 and 0.7 +0.21 to +0.74, TF-IDF alone -0.17 to +0.24
    nearest_sentence_weight: float = 0.5
    # the heading member: a TF-IDF SVM on the first this-many digits of each code, every code
    # scored by its heading's margin (model.members.heading); 0: no heading member. On the
    # path users run (ghko99 names, K = 300, three seeds) the mixture weighs it 0.1-0.2 and
    # the lead over TF-IDF + SVM at four digits went from +0.41 [-0.24, +1.04] to +1.18
    # [+0.60, +1.83] on the weakest seed (docs/benchmarks.md section 15)
    heading_digits: int = 4
    # a second, text-only BiLSTM network, the member "companion". Two networks disagree more
    # than one: on the ghko99 validation splits (K = 100 / 300) adding either companion lifts
    # the mixture's top-1 by 0.4-1.0 points (top-3 -0.2 to +0.5); with the word2vec companion
    # the brand / model-number behaviour test fails (docs/benchmarks.md section 1)
    companion: Companion = Companion.FASTTEXT_SUBWORD
    # after the mixture is chosen, refit the text members on train + validation
    refit_members: bool = True

    def __post_init__(self) -> None:
        self.kind = _enum(EnsembleKind, self.kind, "ensemble")
        self.companion = _enum(Companion, self.companion, "companion")
        self.sentence_encoder = _enum(
            SentenceEncoderName, self.sentence_encoder, "sentence_encoder"
        )
        if self.knn_k < 1:
            raise ValueError("knn_k must be >= 1")
        if self.heading_digits not in (0, 2, 4, 6):
            raise ValueError("heading_digits must be 0 (no heading member), 2, 4 or 6")
        if not 0.0 <= self.nearest_sentence_weight <= 1.0:
            raise ValueError("nearest_sentence_weight must be in [0, 1]")
        if self.sentence_hidden < 1 or self.sentence_epochs < 1:
            raise ValueError("sentence_hidden and sentence_epochs must be >= 1")
        if self.sentence_patience < 0:
            raise ValueError("sentence_patience must be >= 0")


@dataclass
class CalibrationConfig:
    """Held-out choices: the validation split, the temperature, the top-label step, and the
    similarity from which a past case counts as a precedent."""

    # validation is split in two stratified parts: early stopping uses the first; the mixture
    # is cross-fitted on both and the final temperature fitted on all of it (0: no split)
    share: float = 0.5
    # after the temperature, a monotone (Platt) recalibration of the top-1 confidence fitted on
    # the same held-out scores; keeps the ranking (model.calibrate.TopLabelCalibrator)
    top_label: bool = True
    # with a sentence encoder, precedents are searched in its space, where unrelated goods
    # score low (cosine 0.1-0.3 between unrelated names, 0.6-0.9 between translations): a
    # precedent is shown only from this similarity up, and a request whose nearest past case
    # is below it is unfamiliar (on the ghko99 K = 100 names 5% of held-out names of known
    # codes and 19% of names of unknown headings are below 0.5)
    precedent_min_similarity: float = 0.5
    # learn how much a request looks like the known goods from the cases of other codes
    # (``model.familiarity``), when ``fit`` gets such a background; the floor below which a
    # request is unfamiliar flags this share of the validation cases (0.15 with the review
    # threshold 0.4: at most 20% of known goods to review, docs/benchmarks.md section 13a)
    familiarity: bool = True
    familiarity_max_flagged: float = 0.15

    def __post_init__(self) -> None:
        if not 0.0 <= self.share < 1.0:
            raise ValueError("calibration_share must be in [0, 1)")
        if not 0.0 < self.familiarity_max_flagged < 1.0:
            raise ValueError("familiarity_max_flagged must be in (0, 1)")


_SECTIONS: dict[str, type] = {
    "network": NetworkConfig,
    "image": ImageConfig,
    "ensemble": EnsembleConfig,
    "calibration": CalibrationConfig,
}
# flat name -> (section, field) where the two differ; every other field's flat name is its own
_RENAMED = {
    "ensemble": ("ensemble", "kind"),
    "ensemble_c": ("ensemble", "c"),
    "ensemble_min_df": ("ensemble", "min_df"),
    "ensemble_max_coef_mb": ("ensemble", "max_coef_mb"),
    "calibration_share": ("calibration", "share"),
    "top_label_calibration": ("calibration", "top_label"),
}
FLAT_NAMES: dict[str, tuple[str, str]] = {
    **{
        f.name: (section, f.name)
        for section, kind in _SECTIONS.items()
        for f in fields(kind)
        if (section, f.name) not in _RENAMED.values()
    },
    **_RENAMED,
}
_TOP = ("inputs", "seed", "device", "num_threads")


@dataclass
class ModelConfig:
    """Everything that defines a training run (saved with the model)."""

    inputs: Inputs = Inputs.ALL
    network: NetworkConfig = field(default_factory=NetworkConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    seed: int = 13
    device: str = "auto"  # auto (cuda when available) | cpu | cuda | cuda:N
    num_threads: int | None = None  # torch intra-op threads while fitting (None: leave as is)

    def __post_init__(self) -> None:
        self.inputs = _enum(Inputs, self.inputs, "inputs")
        if self.network.wide and (self.network.char_ngram_max < 1 or not self.uses_text):
            raise ValueError("wide=True needs text inputs and char_ngram_max >= 1")

    # --- flat names -----------------------------------------------------------------------
    @classmethod
    def from_flat(cls, **values: Any) -> ModelConfig:
        """A config from flat names (``hidden=128, ensemble="none", inputs="title"``)."""
        top = {k: values.pop(k) for k in _TOP if k in values}
        parts: dict[str, dict[str, Any]] = {s: {} for s in _SECTIONS}
        for name, value in values.items():
            if name not in FLAT_NAMES:
                raise TypeError(f"unknown model setting {name!r}")
            section, key = FLAT_NAMES[name]
            parts[section][key] = value
        return cls(**top, **{s: _SECTIONS[s](**kw) for s, kw in parts.items()})

    def with_flat(self, **values: Any) -> ModelConfig:
        """A copy with these flat-named settings changed."""
        return ModelConfig.from_flat(**{**self.to_flat(), **values})

    def to_flat(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in _TOP}
        for name, (section, key) in FLAT_NAMES.items():
            out[name] = getattr(getattr(self, section), key)
        return out

    # --- JSON -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """The nested form (``to_dict``) or the flat one of format-1 models; unknown keys are
        ignored (a setting a newer version added and an older one does not know)."""
        if isinstance(data.get("network"), dict):
            top = {k: data[k] for k in _TOP if k in data}
            parts = {}
            for section, kind in _SECTIONS.items():
                known = {f.name for f in fields(kind)}
                parts[section] = kind(
                    **{k: v for k, v in (data.get(section) or {}).items() if k in known}
                )
            return cls(**top, **parts)
        return cls.from_flat(**{k: v for k, v in data.items() if k in FLAT_NAMES or k in _TOP})

    # --- derived --------------------------------------------------------------------------
    @property
    def uses_text(self) -> bool:
        return self.inputs.uses_text

    @property
    def uses_description(self) -> bool:
        return self.inputs.uses_description

    @property
    def uses_image(self) -> bool:
        return self.inputs.uses_image

    @property
    def members(self) -> tuple[MemberName, ...]:
        """Ensemble members in mixture order (none without text inputs)."""
        ens = self.ensemble
        if not self.uses_text or ens.kind == EnsembleKind.NONE:
            return ()
        names = [MemberName.NETWORK]
        if ens.companion != Companion.NONE:
            names.append(MemberName.COMPANION)
        names.append(MemberName.SVM)
        if ens.heading_digits:
            names.append(MemberName.HEADING)
        if ens.kind == EnsembleKind.TFIDF_KNN:
            names.append(MemberName.KNN)
        if ens.kind == EnsembleKind.TFIDF_NEAREST:
            names.append(MemberName.NEAREST)
        if ens.sentence_encoder != SentenceEncoderName.NONE:
            names.append(MemberName.SENTENCE)
        return tuple(names)

    def companion_config(self) -> ModelConfig:
        """The companion network's config: this one, text inputs only, on the companion's
        embeddings (with the subword layer for "fasttext-subword"), without n-grams or an
        ensemble of its own."""
        companion = self.ensemble.companion
        return replace(
            self,
            inputs=Inputs.TITLE_DESCRIPTION if self.uses_description else Inputs.TITLE,
            network=replace(
                self.network,
                embedding=Embedding.WORD2VEC
                if companion == Companion.WORD2VEC
                else Embedding.FASTTEXT,
                subword=companion == Companion.FASTTEXT_SUBWORD,
                char_ngram_max=0,
                wide=False,
            ),
            ensemble=replace(self.ensemble, kind=EnsembleKind.NONE, companion=Companion.NONE),
        )


def _plain(value: Any) -> Any:
    """StrEnum members as plain strings (JSON, Postgres JSONB)."""
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
