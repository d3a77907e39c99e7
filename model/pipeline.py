"""The model contract the training, registry and scoring code calls: ``fit`` -> ``HSModel``.

``fit(train, val, config)`` trains the paper's model end to end:
  1. tokenise (Kiwi morphemes + model-number shapes), train word embeddings with gensim on the
     training texts (+ optional unlabelled ``extra_texts``; fastText or word2vec), build the
     vocabulary. With fastText and ``config.subword`` the network's embedding layer is
     ``SubwordEmbedding``: word vector + hashed character n-gram vectors, fine-tuned end to
     end, so misspelt and unseen words get vectors from their n-grams;
  2. image branch (when the inputs include images): decode every photo once, pre-train the VGG
     encoder self-supervised (rotation prediction) on ALL available photos, train and validation
     alike, then fine-tune it on the target classes;
  3. train text encoder, image encoder and the fusion head together (joint representation,
     learned missing-image embedding, modality dropout), keeping the epoch with the best
     validation accuracy;
  4. ensemble (text inputs; ``ensemble="tfidf+knn"``, the default, or ``"tfidf"``): a second,
     text-only network (``config.companion``, by default fastText with the subword layer;
     trained like step 3 on its own embeddings), a char_wb 1-4 + word 1-2 TF-IDF linear SVM
     (``model.baseline.TfidfSvm``), a cosine k-NN vote on the same TF-IDF features
     (``model.baseline.TfidfKnn``) and, with a sentence encoder, a classifier on its frozen
     vectors (``model.sentence.SentenceHead``, member "sentence"), trained on the training
     texts;
     the members' temperature-scaled log-probabilities are mixed geometrically
     (``model.calibrate.Ensemble``) with weights and temperatures chosen on validation;
  5. fit a temperature on the final (mixed) logits: the mixture is cross-fitted on the two
     parts of the validation set, so every validation case has a mixed score from a mixture
     that never saw it, and the temperature is fitted on all of them; then the TF-IDF members
     are refitted on train + validation (``refit_members``);
  6. keep the L2-normalised features of the training cases for precedent search.

The validation set is split once, stratified by code (``calibration_share``): the "stop" part
picks the best epoch; both parts take turns choosing and checking the mixture (with fewer
than 4 validation cases both parts are all of them). Without an ensemble the temperature is
fitted on the "calibration" part of the network's logits.

``HSModel`` predicts calibrated probabilities, recommends codes with precedents and a review
flag (the ``hscode.recommend.Recommender`` protocol), evaluates, and saves/loads itself as
plain files: ``config.json``, ``vocab.json``, ``weights.pt`` (state dicts only),
``embeddings.npy``, ``precedents.npz`` and, with the ensemble, ``tfidf.json`` (vocabularies,
member names, mixture) + ``tfidf.npz`` (idf weights, linear coefficients) and ``knn.json`` +
``knn.npz`` (the k-NN member's L2-normalised sparse TF-IDF matrix of the training texts, as
CSR arrays), ``sentence.json`` + ``sentence.npz`` (the sentence head's layers), and the
companion network as a model directory of its own, ``companion/`` (no
pickled objects).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hscode.recommend import Candidate, Precedent, Recommendation, RequestInput
from model.baseline import TfidfKnn, TfidfSvm
from model.calibrate import (
    Ensemble,
    TopLabelCalibrator,
    choose_mixture,
    coverage_curve,
    ece,
    fit_temperature,
    nll,
    softmax,
)
from model.embeddings import train_embeddings
from model.fusion import FUSIONS, FusionModel
from model.image import ImageEncoder, augment, decode_many, pretrain_rotation, to_tensor
from model.sentence import ENCODERS as SENTENCE_ENCODERS
from model.sentence import SentenceHead, get_encoder
from model.text import (
    PAD,
    UNK,
    SubwordEmbedding,
    TextEncoder,
    Vocab,
    char_ngrams,
    embedding_matrix,
)
from model.tokenize import Tokenizer

log = logging.getLogger(__name__)

ENSEMBLES = ("tfidf+knn", "tfidf", "none")
COMPANIONS = ("fasttext-subword", "word2vec", "none")
# ensemble member names, in mixture order
MEMBERS = {"tfidf+knn": ("network", "svm", "knn"), "tfidf": ("network", "svm"), "none": ()}
INPUTS = ("title", "title+description", "title+image", "title+description+image", "image")
FORMAT_VERSION = 1
SEP_TOKEN = "<sep>"


@dataclass(slots=True)
class Example:
    """One labelled case (or an unlabelled request, with ``label=''``)."""

    key: str
    title: str
    description: str | None = None
    image: bytes | None = None
    label: str = ""


@dataclass
class ModelConfig:
    """Everything that defines a training run. JSON-serialisable (saved with the model)."""

    inputs: str = "title+description+image"
    embedding: str = "fasttext"  # or "word2vec"
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
    image_size: int = 64
    vgg_cfg: str = "A"  # torchvision VGG cfg: A/B/D/E (VGG11/13/16/19) or tiny/small
    vgg_width: float = 0.25  # channel multiplier (1.0 = the standard VGG widths)
    pretrain_epochs: int = 5  # self-supervised rotation pre-training on all photos
    finetune_epochs: int = 3  # supervised image-only fine-tuning before joint training
    fusion: str = "joint"  # joint | concat | late
    modality_dropout: float = 0.2
    aux_weight: float = 0.0  # extra per-modality losses (always on for late fusion)
    early_stopping: bool = True  # keep the epoch with the best validation accuracy
    # ... and stop after this many epochs without a better one (0: run every epoch)
    patience: int = 4
    seed: int = 13
    device: str = "auto"  # auto (cuda when available) | cpu | cuda | cuda:N
    num_threads: int | None = None  # torch intra-op threads while fitting (None: leave as is)
    # text inputs: mix the network with a TF-IDF linear SVM ("tfidf") and a TF-IDF cosine
    # k-NN vote ("tfidf+knn"); weights and temperatures chosen on validation | none
    ensemble: str = "tfidf+knn"
    ensemble_c: float = 0.5  # the SVM's C
    # TF-IDF terms in fewer training texts are dropped. 1 (every term, as the TF-IDF + SVM
    # peer) against 2, on the ghko99 K = 100 / 300 names, two seeds each: top-3 +0.2 to +0.6,
    # top-1 -0.6 to +0.8 (level on average; `bench_sentence --members`, section 10e); when the
    # coefficients (terms x codes, float32) would exceed ensemble_max_coef_mb, terms seen
    # once are dropped after all (at every code, min_df 2: 112,527 terms x 1,910 codes =
    # 0.86 GB, measured; min_df 1 keeps more terms than that)
    ensemble_min_df: int = 1
    ensemble_max_coef_mb: float = 512.0
    # a frozen multilingual sentence encoder shipped in its wheel ("use-m3", model.sentence):
    # the ensemble member "sentence" (a classifier on its vectors, model.sentence.SentenceHead)
    # and the precedent space; "none" for neither. Mixed with the SVM it adds 0.6-1.1 points
    # top-1 and 1.2-1.3 points top-3 on the ghko99 K = 100 / 300 names, two seeds each
    # (`bench_sentence --members`, docs/benchmarks.md section 10e)
    sentence_encoder: str = "use-m3"
    sentence_hidden: int = 1024  # the head's hidden layer
    sentence_epochs: int = 20
    # with a sentence encoder, precedents are searched in its space, where unrelated goods
    # score low (cosine 0.1-0.3 between unrelated names, 0.6-0.9 between translations): a
    # precedent is shown only from this similarity up, and a request whose nearest past case
    # is below it is flagged "unlike any known case" (on the ghko99 K = 100 names 5% of
    # held-out names of known codes and 19% of names of unknown headings are below 0.5)
    precedent_min_similarity: float = 0.5
    # neighbours of the k-NN member. On the ghko99 K=100 validation split the member alone
    # scores 69.7/82.9% top-1/3 at k=10 and 70.4/84.6% at k=40, but with ~25 cases per code
    # k=40 votes across codes (the brand/model-number behaviour test fails); kept at 10
    knn_k: int = 10
    # a second, text-only BiLSTM network mixed as the ensemble member "companion":
    # "fasttext-subword" (fastText with the subword layer), "word2vec", or "none". Two networks
    # disagree more than one: on the ghko99 validation splits (K = 100 / 300) adding either
    # companion lifts the mixture's top-1 by 0.4-1.0 points (top-3 -0.2 to +0.5); with the
    # word2vec companion the brand / model-number behaviour test fails (docs/benchmarks.md
    # section 1)
    companion: str = "fasttext-subword"
    # after the mixture is chosen, refit the TF-IDF members on train + validation
    refit_members: bool = True
    # validation is split in two stratified parts: early stopping uses the first; the mixture
    # is cross-fitted on both and the final temperature fitted on all of it (0: no split)
    calibration_share: float = 0.5
    # after the temperature, a monotone (Platt) recalibration of the top-1 confidence fitted on
    # the same held-out scores; keeps the ranking (model.calibrate.TopLabelCalibrator)
    top_label_calibration: bool = True

    def __post_init__(self) -> None:
        if self.inputs not in INPUTS:
            raise ValueError(f"unknown inputs {self.inputs!r}; expected one of {INPUTS}")
        if self.embedding not in ("fasttext", "word2vec"):
            raise ValueError(f"unknown embedding {self.embedding!r}; expected fasttext or word2vec")
        if self.ensemble not in ENSEMBLES:
            raise ValueError(f"unknown ensemble {self.ensemble!r}; expected one of {ENSEMBLES}")
        if self.subword and self.embedding != "fasttext":
            raise ValueError("subword=True needs fastText embeddings")
        if self.knn_k < 1:
            raise ValueError("knn_k must be >= 1")
        if self.sentence_encoder not in SENTENCE_ENCODERS:
            raise ValueError(
                f"unknown sentence_encoder {self.sentence_encoder!r}; "
                f"expected one of {SENTENCE_ENCODERS}"
            )
        if self.sentence_hidden < 1 or self.sentence_epochs < 1:
            raise ValueError("sentence_hidden and sentence_epochs must be >= 1")
        if self.companion not in COMPANIONS:
            raise ValueError(f"unknown companion {self.companion!r}; expected one of {COMPANIONS}")
        if not 0.0 <= self.calibration_share < 1.0:
            raise ValueError("calibration_share must be in [0, 1)")
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; expected one of {FUSIONS}")
        if self.wide and (self.char_ngram_max < 1 or not self.uses_text):
            raise ValueError("wide=True needs text inputs and char_ngram_max >= 1")
        for name in ("epochs", "batch_size", "max_len", "image_size", "embed_dim", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")

    @property
    def uses_text(self) -> bool:
        return "title" in self.inputs

    @property
    def uses_subword(self) -> bool:
        return bool(self.subword)

    @property
    def members(self) -> tuple[str, ...]:
        """Ensemble members in mixture order (none without text inputs)."""
        if not self.uses_text or self.ensemble == "none":
            return ()
        network, *tfidf = MEMBERS[self.ensemble]
        companion = ("companion",) if self.companion != "none" else ()
        sentence = ("sentence",) if self.sentence_encoder != "none" else ()
        return (network, *companion, *tfidf, *sentence)

    def companion_config(self) -> ModelConfig:
        """The companion network's config: this one, text inputs only, on the companion's
        embeddings (with the subword layer for "fasttext-subword"), without n-grams or an
        ensemble of its own."""
        return replace(
            self,
            inputs="title+description" if self.uses_description else "title",
            embedding="word2vec" if self.companion == "word2vec" else "fasttext",
            subword=self.companion == "fasttext-subword",
            char_ngram_max=0,
            wide=False,
            ensemble="none",
            companion="none",
        )

    @property
    def uses_description(self) -> bool:
        return "description" in self.inputs

    @property
    def uses_image(self) -> bool:
        return "image" in self.inputs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# --- helpers ----------------------------------------------------------------------------------
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _autocast(device: torch.device) -> contextlib.AbstractContextManager:
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def _pad(seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max((len(s) for s in seqs), default=1) or 1
    ids = np.full((len(seqs), width), PAD, dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    return torch.from_numpy(ids), torch.from_numpy(lengths)


def _json_safe(value: Any) -> Any:
    """NaN/inf -> None (strict JSON and Postgres JSONB reject NaN), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def calibration_split(
    labels: Sequence[str], share: float = 0.5, seed: int = 13
) -> tuple[np.ndarray, np.ndarray]:
    """(stop, calibration) row indices of a validation set, stratified by label.

    Rows are grouped by label (labels sorted, rows shuffled within a label with ``seed``) and
    every row whose running share crosses a multiple of ``share`` goes to calibration, so each
    label is split in proportion and labels with a single row alternate between the parts.
    With ``share == 0``, fewer than 4 rows or an empty part, both parts are all rows.
    """
    n = len(labels)
    every = np.arange(n)
    if share <= 0 or n < 4:
        return every, every
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        by_label.setdefault(lab, []).append(i)
    ordered: list[int] = []
    for lab in sorted(by_label):
        rows = by_label[lab]
        rng.shuffle(rows)
        ordered.extend(rows)
    cal = [i for j, i in enumerate(ordered) if math.floor((j + 1) * share) > math.floor(j * share)]
    stop = sorted(set(ordered) - set(cal))
    if not cal or not stop:
        return every, every
    return np.array(stop, dtype=np.int64), np.array(sorted(cal), dtype=np.int64)


class _CachedTokenizer:
    """Tokenise with a cache: repeated titles (common in requests and cases) cost a lookup."""

    def __init__(self, tokenizer: Tokenizer, max_size: int = 200_000) -> None:
        self.tokenizer = tokenizer
        self.max_size = max_size
        self.cache: dict[str, list[str]] = {}

    def __call__(self, texts: Sequence[str]) -> list[list[str]]:
        cache = self.cache
        missing = list(dict.fromkeys(t for t in texts if t not in cache))
        if missing:
            if len(cache) + len(missing) > self.max_size:
                cache.clear()
            for text, toks in zip(missing, self.tokenizer.tokenize_many(missing), strict=True):
                cache[text] = toks
        return [cache[t] for t in texts]


class _Inputs:
    """Encoded batch-ready inputs of N cases: token ids (lists) and decoded pixels."""

    def __init__(
        self,
        ids: list[list[int]] | None,
        pixels: torch.Tensor | None,
        present,
        bags: list[list[int]] | None = None,
    ):
        self.ids = ids
        self.pixels = pixels
        self.present = present
        self.bags = bags

    def subset(self, idx: Sequence[int]) -> _Inputs:
        idx = [int(i) for i in idx]
        sel = torch.as_tensor(idx, dtype=torch.long)
        return _Inputs(
            None if self.ids is None else [self.ids[i] for i in idx],
            None if self.pixels is None else self.pixels[sel],
            None if self.present is None else self.present[sel],
            None if self.bags is None else [self.bags[i] for i in idx],
        )

    def __len__(self) -> int:
        if self.ids is not None:
            return len(self.ids)
        return 0 if self.pixels is None else int(self.pixels.shape[0])


# --- the model --------------------------------------------------------------------------------
class HSModel:
    """A trained classifier over ``labels``; implements ``hscode.recommend.Recommender``."""

    def __init__(
        self,
        config: ModelConfig,
        labels: list[str],
        network: FusionModel,
        vocab: Vocab | None,
        tokenizer: Tokenizer,
        temperature: float = 1.0,
        pretrained_embeddings: np.ndarray | None = None,
        version: str = "",
        ngram_vocab: Vocab | None = None,
        tfidf: TfidfSvm | None = None,
        mixture: Ensemble | None = None,
        knn: TfidfKnn | None = None,
        members: Sequence[str] = (),
        companion: HSModel | None = None,
        sentence: SentenceHead | None = None,
    ) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self._token_cache = _CachedTokenizer(tokenizer)
        # the ensemble members and their mixture (``members`` order: "network", "companion",
        # "svm", "knn", "sentence"); without a mixture the network's logits are the model's.
        # The companion is a text-only HSModel of its own (``ModelConfig.companion_config``)
        self.tfidf = tfidf
        self.knn = knn
        self.sentence = sentence
        self.companion = companion
        self.mixture = mixture
        self.members = tuple(members)
        self.ngram_vocab = ngram_vocab
        self.labels = list(labels)
        self.network = network.eval()
        self.vocab = vocab
        self.temperature = float(temperature)
        self.top_calibration = TopLabelCalibrator()  # identity until fitted
        self.pretrained_embeddings = pretrained_embeddings
        self.version = version
        self.device = next(network.parameters()).device
        self.history: dict[str, Any] = {}
        self._label_index = {lab: i for i, lab in enumerate(self.labels)}
        self.train_features = np.zeros((0, network.feature_dim), dtype=np.float32)
        # the precedents' sentence vectors (float32, as the queries: no conversion per request
        # batch), when the model has a sentence encoder
        self.train_sentences: np.ndarray | None = None
        self.train_keys: list[str] = []
        self.train_titles: list[str] = []
        self.train_labels: list[str] = []

    @property
    def companion(self) -> HSModel | None:
        return self._companion

    @companion.setter
    def companion(self, companion: HSModel | None) -> None:
        """Set the companion member; with the same tokenizer it shares this model's token
        cache, so a request is tokenised once for both networks."""
        self._companion = companion
        if companion is not None and companion.tokenizer.to_config() == self.tokenizer.to_config():
            companion._token_cache = self._token_cache

    # --- encoding ---------------------------------------------------------------------------
    def _tokens(self, texts: Sequence[str]) -> list[list[str]]:
        return self._token_cache(texts)

    def _encode(self, items: Sequence[tuple[str, str | None, bytes | None]]) -> _Inputs:
        cfg = self.config
        ids = None
        if cfg.uses_text:
            titles = [t if isinstance(t, str) else "" for t, _, _ in items]
            title_tokens = self._tokens(titles)
            if cfg.uses_description:
                descs = [d if isinstance(d, str) else "" for _, d, _ in items]
                desc_tokens = self._tokens(descs)
                token_lists = [
                    (a + [SEP_TOKEN] + b) if b else a
                    for a, b in zip(title_tokens, desc_tokens, strict=True)
                ]
            else:
                token_lists = title_tokens
            stoi = self.vocab.stoi
            token_lists = [toks[: cfg.max_len] for toks in token_lists]
            embedding = self.network.text_encoder.embedding
            if isinstance(embedding, SubwordEmbedding):
                ids = [row or [UNK] for row in embedding.encode(token_lists, stoi)]
            else:
                ids = [[stoi.get(t, UNK) for t in toks] or [UNK] for toks in token_lists]
        bags = None
        if cfg.uses_text and self.ngram_vocab is not None:
            gstoi = self.ngram_vocab.stoi
            bags = []
            for t, d, _ in items:
                text = t if isinstance(t, str) else ""
                if cfg.uses_description and isinstance(d, str) and d:
                    text = f"{text} | {d}"
                grams = char_ngrams(text, cfg.char_ngram_min, cfg.char_ngram_max)
                bags.append([gstoi[g] for g in grams if g in gstoi] or [UNK])
        pixels = present = None
        if cfg.uses_image:
            pixels, present = decode_many([img for _, _, img in items], cfg.image_size)
        return _Inputs(ids, pixels, present, bags)

    def _batch(self, data: _Inputs, idx: Sequence[int], train: bool = False, gen=None):
        ids = lengths = images = has_image = bag_ids = bag_offsets = None
        dev = self.device
        if data.ids is not None:
            ids, lengths = _pad([data.ids[i] for i in idx])
            ids, lengths = ids.to(dev, non_blocking=True), lengths.to(dev, non_blocking=True)
        if data.pixels is not None:
            sel = torch.as_tensor(list(idx), dtype=torch.long)
            has_image = data.present[sel]
            images = to_tensor(data.pixels[sel])
            if train:
                images = augment(images, gen)
            images = images.to(dev, non_blocking=True)
            has_image = has_image.to(dev)
        if data.bags is not None:
            rows = [data.bags[i] for i in idx]
            bag_ids = torch.from_numpy(np.fromiter((g for r in rows for g in r), dtype=np.int64))
            sizes = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
            bag_offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(sizes)[:-1]]))
            bag_ids, bag_offsets = bag_ids.to(dev), bag_offsets.to(dev)
        return ids, lengths, images, has_image, bag_ids, bag_offsets

    def _run(self, data: _Inputs, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """Raw logits [N, C] and L2-normalised features [N, D], in input order."""
        n = len(data)
        logits = np.zeros((n, len(self.labels)), dtype=np.float32)
        feats = np.zeros((n, self.network.feature_dim), dtype=np.float32)
        if n == 0:
            return logits, feats
        # Similar lengths together: less padding for the LSTM.
        order = (
            np.argsort([len(s) for s in data.ids], kind="stable")
            if data.ids is not None
            else np.arange(n)
        )
        self.network.eval()
        with torch.inference_mode(), _autocast(self.device):
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                out, feat, _ = self.network(*self._batch(data, idx))
                logits[idx] = out.float().cpu().numpy()
                feats[idx] = F.normalize(feat.float(), dim=1).cpu().numpy()
        return logits, feats

    @staticmethod
    def _items(examples: Sequence[Example | RequestInput]):
        return [(e.title, e.description, e.image) for e in examples]

    def _texts(self, items: Sequence[tuple[str, str | None, bytes | None]]) -> list[str]:
        """What the TF-IDF member reads: the title (+ " | description" when used)."""
        out = []
        for t, d, _ in items:
            text = t if isinstance(t, str) else ""
            if self.config.uses_description and isinstance(d, str) and d:
                text = f"{text} | {d}"
            out.append(text)
        return out

    def member_scores(
        self, neural: np.ndarray, items, needed: Sequence[bool] | None = None
    ) -> list[np.ndarray | None]:
        """Each ensemble member's scores [N, C], in ``members`` order; ``None`` for a member
        that ``needed`` says to skip (e.g. one the mixture gives weight 0)."""
        needed = [True] * len(self.members) if needed is None else list(needed)
        wanted = {name for name, need in zip(self.members, needed, strict=True) if need}
        texts = self._texts(items) if wanted - {"network"} else []
        out: list[np.ndarray | None] = []
        for name, need in zip(self.members, needed, strict=True):
            if not need:
                out.append(None)
            elif name == "network":
                out.append(neural)
            elif name == "companion":
                out.append(self.companion._run(self.companion._encode(items))[0])
            elif name == "svm":
                out.append(self.tfidf.decision_scores(texts))
            elif name == "knn":
                out.append(self.knn.scores(texts))
            elif name == "sentence":
                out.append(self.sentence.scores(texts))
            else:
                raise ValueError(f"unknown ensemble member {name!r}")
        return out

    def _network_needed(self) -> bool:
        """Whether any score uses the network's logits (not when the mixture weighs it 0)."""
        if self.mixture is None or not self.members:
            return True
        return bool(dict(zip(self.members, self.mixture.needed(), strict=True)).get("network"))

    def _combine(self, neural: np.ndarray | None, items) -> np.ndarray:
        """The final uncalibrated logits: the network's, or the members' mixture."""
        if self.mixture is None or not self.members or len(items) == 0:
            return neural
        scores = self.member_scores(neural, items, self.mixture.needed())
        return self.mixture.log_probs(scores).astype(np.float32)

    # --- prediction -------------------------------------------------------------------------
    def logits(self, examples: Sequence[Example]) -> np.ndarray:
        """Uncalibrated logits [N, len(labels)] (with the ensemble: mixed log-probabilities)."""
        items = self._items(examples)
        neural = self._run(self._encode(items))[0] if self._network_needed() else None
        return self._combine(neural, items)

    def neural_logits(self, examples: Sequence[Example]) -> np.ndarray:
        """The network's own logits [N, len(labels)], without the TF-IDF member."""
        return self._run(self._encode(self._items(examples)))[0]

    def predict_proba(self, examples: Sequence[Example]) -> np.ndarray:
        """Calibrated probabilities [N, len(labels)], columns in ``labels`` order."""
        return self.calibrated(self.logits(examples)).astype(np.float32)

    def calibrated(self, logits: np.ndarray) -> np.ndarray:
        """Final logits -> calibrated probabilities: temperature, then the top-label
        recalibration (both keep the ranking)."""
        return self.top_calibration(softmax(logits, self.temperature))

    def features(self, examples: Sequence[Example]) -> np.ndarray:
        """L2-normalised learned features [N, D] (the precedent-search space)."""
        return self._run(self._encode(self._items(examples)))[1]

    def set_precedents(self, examples: Sequence[Example]) -> None:
        """Index these cases (normally the training set) for precedent search."""
        self._index_precedents(
            examples, self.features(examples) if examples else self.train_features[:0]
        )

    def _index_precedents(self, examples: Sequence[Example], features: np.ndarray) -> None:
        self.train_features = features
        self.train_keys = [e.key for e in examples]
        self.train_titles = [e.title for e in examples]
        self.train_labels = [e.label for e in examples]
        self.train_sentences = None
        if self.config.sentence_encoder != "none" and self.config.uses_text:
            vectors = get_encoder(self.config.sentence_encoder).encode(
                _precedent_texts(self._items(examples))
            )
            self.train_sentences = vectors.astype(np.float32)

    def recommend(
        self,
        requests: Sequence[RequestInput],
        *,
        top_k: int = 5,
        n_precedents: int = 3,
        review_threshold: float = 0.5,
    ) -> list[Recommendation]:
        """One Recommendation per request, in order (the Recommender protocol).

        Precedents are the nearest indexed cases in the sentence encoder's space when the
        model has one (only those with a similarity of at least
        ``config.precedent_min_similarity``), else by the network's learned features.
        ``review`` is set when no indexed case is that similar ("unlike any known case: no
        similar past case"), when the calibrated confidence is below ``review_threshold``, or
        when the precedents (similarity-weighted vote) point to a different code than the top
        candidate. Unreadable image bytes count as no photo.
        """
        if top_k < 1:
            raise ValueError("top_k must be >= 1")
        if not requests:
            return []
        items = self._items(requests)
        n_prec = min(max(0, n_precedents), len(self.train_keys))
        # the precedent space: the sentence encoder's when the model has one (unrelated
        # goods score low there, so a threshold means something), else the network's features
        sentence_space = self.train_sentences is not None and len(self.train_keys) > 0
        logits = feats = None
        if self._network_needed() or (n_prec and not sentence_space):
            logits, feats = self._run(self._encode(items))
        probs = self.calibrated(self._combine(logits, items))
        k = min(top_k, probs.shape[1])
        top = np.argpartition(-probs, k - 1, axis=1)[:, :k] if k < probs.shape[1] else None
        if top is None:
            top = np.tile(np.arange(probs.shape[1]), (len(requests), 1))
        top_scores = np.take_along_axis(probs, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        top_scores = np.take_along_axis(top_scores, order, axis=1)

        min_similarity = self.config.precedent_min_similarity if sentence_space else -1.0
        nearest = np.full(len(requests), np.nan)
        if sentence_space:
            queries = get_encoder(self.config.sentence_encoder).encode(_precedent_texts(items))
            sims = queries @ self.train_sentences.T
            nearest = sims.max(axis=1)
        elif n_prec:
            sims = feats @ self.train_features.T
        if n_prec:
            near = np.argpartition(-sims, n_prec - 1, axis=1)[:, :n_prec]
            near_sims = np.take_along_axis(sims, near, axis=1)
            o = np.argsort(-near_sims, axis=1, kind="stable")
            near = np.take_along_axis(near, o, axis=1)
            near_sims = np.take_along_axis(near_sims, o, axis=1)

        out: list[Recommendation] = []
        labels = self.labels
        for r, req in enumerate(requests):
            cands = [
                Candidate(hs10=labels[c], score=float(s))
                for c, s in zip(top[r].tolist(), top_scores[r].tolist(), strict=True)
            ]
            confidence = cands[0].score
            precedents: list[Precedent] = []
            if n_prec:
                precedents = [
                    Precedent(
                        case_key=self.train_keys[j],
                        hs10=self.train_labels[j],
                        title=self.train_titles[j],
                        similarity=float(np.clip(s, -1.0, 1.0)),
                    )
                    for j, s in zip(near[r].tolist(), near_sims[r].tolist(), strict=True)
                    if s >= min_similarity
                ]
            review, reason = False, None
            if sentence_space and nearest[r] < min_similarity:
                review = True
                reason = (
                    f"unlike any known case: no similar past case (nearest similarity "
                    f"{nearest[r]:.2f} < {min_similarity:.2f})"
                )
            elif confidence < review_threshold:
                review = True
                reason = f"low confidence {confidence:.2f} < {review_threshold:.2f}"
            elif precedents:
                votes: dict[str, float] = {}
                for p in precedents:
                    votes[p.hs10] = votes.get(p.hs10, 0.0) + max(p.similarity, 0.0) + 1e-6
                winner = max(votes, key=votes.__getitem__)
                if winner != cands[0].hs10:
                    review = True
                    agree = sum(p.hs10 == winner for p in precedents)
                    reason = (
                        f"precedents disagree: {agree}/{len(precedents)} nearest cases are "
                        f"{winner}, not {cands[0].hs10}"
                    )
            out.append(
                Recommendation(
                    request_id=req.request_id,
                    candidates=cands,
                    confidence=confidence,
                    review=review,
                    review_reason=reason,
                    precedents=precedents,
                )
            )
        return out

    # --- evaluation -------------------------------------------------------------------------
    def label_indices(self, labels: Sequence[str]) -> np.ndarray:
        """Column index per label; -1 for a label the model never saw."""
        return np.array([self._label_index.get(lab, -1) for lab in labels], dtype=np.int64)

    def evaluate(self, examples: Sequence[Example], ks: Sequence[int] = (1, 3, 5)) -> dict:
        """Top-k accuracy, rolled-up top-1 (hs6/hs4/hs2 when the labels are longer), NLL and
        ECE before/after calibration, and the review rule's accuracy-vs-coverage curve."""
        if not examples:
            raise ValueError("evaluate needs at least one example")
        logits = self.logits(examples)
        y = self.label_indices([e.label for e in examples])
        raw, cal = softmax(logits, 1.0), self.calibrated(logits)
        ranked = np.argsort(-cal, axis=1, kind="stable")
        metrics: dict[str, Any] = {"n": len(examples), "unknown_labels": int((y < 0).sum())}
        for k in ks:
            hit = (ranked[:, : min(k, ranked.shape[1])] == y[:, None]).any(axis=1)
            metrics[f"top{k}"] = float(hit.mean())
        true_labels = [e.label for e in examples]
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
                np.mean([p == t[:level] for p, t in zip(pred, true_labels, strict=True)])
            )
        known = y >= 0
        metrics["nll_before"] = nll(raw[known], y[known]) if known.any() else float("nan")
        metrics["nll_after"] = nll(cal[known], y[known]) if known.any() else float("nan")
        metrics["ece_before"] = ece(raw, y)
        metrics["ece_after"] = ece(cal, y)
        metrics["temperature"] = self.temperature
        metrics["top_calibration"] = self.top_calibration.to_dict()
        correct = cal.argmax(axis=1) == y
        metrics["coverage"] = coverage_curve(cal.max(axis=1), correct)
        return _json_safe(metrics)

    # --- persistence ------------------------------------------------------------------------
    def save(self, directory: Path) -> Path:
        """Write the model as plain files into ``directory`` (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "labels": self.labels,
            "temperature": self.temperature,
            "top_calibration": self.top_calibration.to_dict(),
            "tokenizer": self.tokenizer.to_config(),
            "version": self.version,
            "history": self.history,
        }
        (directory / "config.json").write_text(
            json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        vocab = self.vocab.to_dict() if self.vocab is not None else None
        (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), "utf-8")
        if self.ngram_vocab is not None:
            (directory / "ngrams.json").write_text(
                json.dumps(self.ngram_vocab.to_dict(), ensure_ascii=False), "utf-8"
            )
        state = {k: v.detach().cpu() for k, v in self.network.state_dict().items()}
        torch.save(state, directory / "weights.pt")
        if self.pretrained_embeddings is not None:
            np.save(directory / "embeddings.npy", self.pretrained_embeddings, allow_pickle=False)
        # a stale member must not survive a re-save
        for name in (
            "tfidf.json",
            "tfidf.npz",
            "knn.json",
            "knn.npz",
            "sentence.json",
            "sentence.npz",
        ):
            (directory / name).unlink(missing_ok=True)
        shutil.rmtree(directory / "companion", ignore_errors=True)
        if self.companion is not None:
            self.companion.save(directory / "companion")
        if self.tfidf is not None:
            tmeta, arrays = self.tfidf.to_state()
            tmeta["members"] = list(self.members)
            tmeta["mixture"] = self.mixture.to_dict() if self.mixture is not None else None
            (directory / "tfidf.json").write_text(json.dumps(tmeta, ensure_ascii=False), "utf-8")
            np.savez(directory / "tfidf.npz", **arrays)
            if self.knn is not None:
                kmeta, karrays = self.knn.to_state()
                (directory / "knn.json").write_text(json.dumps(kmeta), "utf-8")
                np.savez_compressed(directory / "knn.npz", **karrays)
            if self.sentence is not None:
                smeta, sarrays = self.sentence.to_state()
                (directory / "sentence.json").write_text(json.dumps(smeta), "utf-8")
                np.savez(directory / "sentence.npz", **sarrays)
        np.savez(
            directory / "precedents.npz",
            features=self.train_features.astype(np.float32),
            keys=np.array(self.train_keys, dtype=str),
            titles=np.array(self.train_titles, dtype=str),
            labels=np.array(self.train_labels, dtype=str),
            **({} if self.train_sentences is None else {"sentences": self.train_sentences}),
        )
        return directory

    @classmethod
    def load(cls, directory: Path, device: str = "cpu") -> HSModel:
        """Load a saved model (on CPU by default, whatever device trained it)."""
        directory = Path(directory)
        meta_path = directory / "config.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"no model at {directory} (config.json missing)")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported model format {meta.get('format')!r} in {directory}")
        config = ModelConfig.from_dict(meta["config"])
        vocab_data = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
        vocab = Vocab.from_dict(vocab_data) if vocab_data else None
        ngram_path = directory / "ngrams.json"
        ngram_vocab = (
            Vocab.from_dict(json.loads(ngram_path.read_text(encoding="utf-8")))
            if ngram_path.is_file()
            else None
        )
        state = torch.load(directory / "weights.pt", map_location="cpu", weights_only=True)
        network = _build_network(config, len(meta["labels"]), vocab, None, ngram_vocab, state)
        network.load_state_dict(state)
        network.to(resolve_device(device))
        emb_path = directory / "embeddings.npy"
        tfidf, mixture, knn, sentence, members = None, None, None, None, ()
        if (directory / "tfidf.json").is_file():
            tmeta = json.loads((directory / "tfidf.json").read_text(encoding="utf-8"))
            with np.load(directory / "tfidf.npz", allow_pickle=False) as arrays:
                tfidf = TfidfSvm.from_state(tmeta, dict(arrays))
            mixture, members = _read_mixture(tmeta)
            if (directory / "knn.json").is_file():
                kmeta = json.loads((directory / "knn.json").read_text(encoding="utf-8"))
                with np.load(directory / "knn.npz", allow_pickle=False) as arrays:
                    knn = TfidfKnn.from_state(kmeta, dict(arrays), tfidf)
            if (directory / "sentence.json").is_file():
                smeta = json.loads((directory / "sentence.json").read_text(encoding="utf-8"))
                with np.load(directory / "sentence.npz", allow_pickle=False) as arrays:
                    sentence = SentenceHead.from_state(smeta, dict(arrays))
        needed = dict(zip(members, mixture.needed(), strict=True)) if mixture else {}
        for name, part in (("knn", knn), ("sentence", sentence)):
            if needed.get(name) and part is None:
                raise ValueError(
                    f"model at {directory}: the mixture needs {name}.json / {name}.npz"
                )
        companion = None
        if (directory / "companion" / "config.json").is_file():
            companion = cls.load(directory / "companion", device=device)
        if needed.get("companion") and companion is None:
            raise ValueError(f"model at {directory}: the mixture needs its companion/ network")
        model = cls(
            config,
            meta["labels"],
            network,
            vocab,
            Tokenizer.from_config(meta["tokenizer"]),
            temperature=meta["temperature"],
            pretrained_embeddings=np.load(emb_path) if emb_path.is_file() else None,
            version=meta.get("version", ""),
            ngram_vocab=ngram_vocab,
            tfidf=tfidf,
            mixture=mixture,
            knn=knn,
            members=members,
            companion=companion,
            sentence=sentence,
        )
        model.history = meta.get("history", {})
        model.top_calibration = TopLabelCalibrator.from_dict(meta.get("top_calibration"))
        with np.load(directory / "precedents.npz", allow_pickle=False) as prec:
            model.train_features = prec["features"]
            model.train_keys = prec["keys"].tolist()
            model.train_titles = prec["titles"].tolist()
            model.train_labels = prec["labels"].tolist()
            model.train_sentences = (
                prec["sentences"].astype(np.float32) if "sentences" in prec.files else None
            )
        return model


def _precedent_texts(items: Sequence[tuple[str, str | None, bytes | None]]) -> list[str]:
    """What the precedent space compares: titles only, on both sides. A request often has a
    title alone while a ruling has a long description; comparing "title | description" with a
    bare title put familiar goods below the similarity threshold (29 of 30 demo requests were
    flagged "unlike any known case" by a title+description model; 1 of 30 on titles)."""
    return [t if isinstance(t, str) else "" for t, _, _ in items]


def _read_mixture(meta: dict) -> tuple[Ensemble | None, tuple[str, ...]]:
    """The saved mixture: {"members", "mixture": Ensemble dict}, or the older two-member
    {"mixture": {"weight", "temp_a", "temp_b"}} (network weight, member temperatures)."""
    mix = meta.get("mixture")
    if mix is None:
        return None, ()
    if "weight" in mix:
        w = float(mix["weight"])
        return Ensemble([mix["temp_a"], mix["temp_b"]], [w, 1.0 - w]), ("network", "svm")
    members = tuple(meta["members"])
    ens = Ensemble.from_dict(mix)
    if len(members) != len(ens.weights):
        raise ValueError(f"saved mixture: {len(ens.weights)} weights for members {members}")
    return ens, members


def _build_network(
    config: ModelConfig,
    n_classes: int,
    vocab: Vocab | None,
    matrix: np.ndarray | None,
    ngram_vocab: Vocab | None = None,
    state: Mapping[str, torch.Tensor] | None = None,
) -> FusionModel:
    """The untrained network; with ``state`` (a saved state dict) shaped to load it."""
    text_encoder = image_encoder = None
    if config.uses_text:
        if matrix is None:
            matrix = np.zeros((len(vocab), config.embed_dim), dtype=np.float32)
        text_encoder = TextEncoder(
            matrix,
            hidden=config.hidden,
            layers=config.lstm_layers,
            out_dim=config.feature_dim,
            dropout=config.dropout,
            ngram_vocab_size=len(ngram_vocab) if ngram_vocab is not None else 0,
            ngram_dim=config.ngram_dim,
        )
        prefix = "text_encoder.embedding."
        if state is not None and prefix + "flat" in state:
            text_encoder.embedding = SubwordEmbedding(
                **SubwordEmbedding.shapes_from_state(dict(state), prefix)
            )
    if config.uses_image:
        image_encoder = ImageEncoder(
            cfg=config.vgg_cfg,
            width=config.vgg_width,
            out_dim=config.feature_dim,
            dropout=config.dropout,
        )
    return FusionModel(
        n_classes,
        text_encoder=text_encoder,
        image_encoder=image_encoder,
        fusion=config.fusion,
        joint_dim=config.feature_dim,
        dropout=config.dropout,
        modality_dropout=config.modality_dropout,
        wide_vocab_size=len(ngram_vocab) if (config.wide and ngram_vocab is not None) else 0,
    )


# --- training ---------------------------------------------------------------------------------
@dataclass
class _Progress:
    total: int
    callback: Callable[[int, int], None] | None
    done: int = 0
    history: dict[str, Any] = field(default_factory=dict)

    def step(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        if self.callback is not None:
            self.callback(self.done, self.total)


def _validate(examples: Sequence[Example], name: str) -> None:
    for e in examples:
        if not isinstance(e.label, str) or not e.label:
            raise ValueError(f"{name} example {e.key!r} has no label")


def fit(
    train: Sequence[Example],
    val: Sequence[Example],
    config: ModelConfig,
    progress: Callable[[int, int], None] | None = None,
    *,
    extra_images: Sequence[bytes | None] = (),
    image_init: Mapping[str, torch.Tensor] | None = None,
    extra_texts: Sequence[str] = (),
    keyed_vectors: Any = None,
) -> HSModel:
    """Train a model on ``train``; ``val`` picks the best epoch, the ensemble weights and
    (on a separate, stratified share ``config.calibration_share`` of it) the temperature.

    Image inputs: the encoder is pre-trained (rotation prediction) on the photos of ``train``,
    ``val`` (labels unused) and ``extra_images`` (e.g. photos of cases outside the target
    classes: the paper pre-trains on all collected images). ``image_init``, a state dict from
    :func:`pretrain_image_encoder`, starts from an already pre-trained encoder instead and skips
    the pre-training.

    Text inputs: the word embeddings are trained with gensim on the training texts plus
    ``extra_texts`` (unlabelled, e.g. the titles of cases outside the target classes; never
    evaluation texts). ``keyed_vectors``, gensim KeyedVectors of ``config.embedding``'s kind
    trained beforehand, are used instead of training them; a mapping ``{kind: KeyedVectors}``
    serves the network and the companion network alike (a kind it lacks is trained).
    """
    train, val = list(train), list(val)
    if not train:
        raise ValueError("fit needs training examples")
    _validate(train, "training")
    _validate(val, "validation")
    labels = sorted({e.label for e in train})
    if len(labels) < 2:
        raise ValueError(f"fit needs at least two classes, got {labels}")
    device = resolve_device(config.device)
    with _threads(config.num_threads):
        return _fit(
            train,
            val,
            config,
            labels,
            device,
            progress,
            extra_images,
            image_init,
            extra_texts,
            keyed_vectors,
        )


def pretrain_image_encoder(
    images: Sequence[bytes | None],
    config: ModelConfig,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Self-supervised pre-training of the configured VGG encoder on unlabelled photos.

    Returns the encoder's state dict (CPU tensors) for ``fit(..., image_init=...)``, so one
    pre-training on all case images can serve several models. Unreadable photos are skipped.
    """
    device = resolve_device(config.device)
    with _threads(config.num_threads):
        _seed_everything(config.seed)
        pixels, present = decode_many(list(images), config.image_size)
        pixels = pixels[present]
        encoder = ImageEncoder(
            config.vgg_cfg, config.vgg_width, config.feature_dim, dropout=config.dropout
        ).to(device)
        total = math.ceil(len(pixels) / config.batch_size) * config.pretrain_epochs
        prog = _Progress(total, progress)
        _pretrain(encoder, pixels, config, device, prog.step)
    return {k: v.detach().cpu() for k, v in encoder.state_dict().items()}


def _pretrain(
    encoder: ImageEncoder,
    pixels: torch.Tensor,
    config: ModelConfig,
    device: torch.device,
    progress: Callable[[], None] | None,
) -> list[float]:
    """Rotation pre-training of ``encoder`` on ``pixels`` as ``config`` says (the one call
    site of :func:`model.image.pretrain_rotation`); returns the per-epoch losses."""
    return pretrain_rotation(
        encoder,
        pixels,
        epochs=config.pretrain_epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        device=device,
        seed=config.seed,
        amp=device.type == "cuda",
        progress=progress,
    )


def _fit(
    train,
    val,
    config: ModelConfig,
    labels,
    device,
    progress,
    extra_images=(),
    image_init=None,
    extra_texts=(),
    keyed_vectors=None,
    precedents=True,
    refitting=False,
) -> HSModel:
    """``refitting``: the members, mixture and calibration come from an evaluated model
    (``model.refit``), so nothing is chosen here and an empty ``val`` is expected."""
    t0 = time.perf_counter()
    _seed_everything(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    tokenizer = Tokenizer(mode=config.tokenizer)
    token_cache = _CachedTokenizer(tokenizer)
    n_batches = math.ceil(len(train) / config.batch_size)
    n_img = sum(1 for e in train + val if e.image) if config.uses_image else 0
    total = 2 + n_batches * config.epochs
    if config.uses_image:
        n_img += sum(1 for b in extra_images if b)
        if image_init is None:
            total += math.ceil(n_img / config.batch_size) * config.pretrain_epochs
        if config.uses_text:
            total += n_batches * config.finetune_epochs
    with_companion = "companion" in config.members and len(val) > 0
    if with_companion:  # its own steps: 2 + its batches (same batch size and epochs)
        total += 2 + n_batches * config.epochs
    prog = _Progress(total, progress)
    timings: dict[str, float] = {}

    # 1. text: tokens, embeddings, vocabulary
    vocab, matrix, ngram_vocab = None, None, None
    if config.uses_text:
        titles = token_cache([e.title or "" for e in train])
        corpus = list(titles)
        if config.uses_description:
            corpus += [t for t in token_cache([e.description or "" for e in train]) if t]
        kv = keyed_vectors
        if isinstance(kv, Mapping):
            kv = kv.get(config.embedding)
        if kv is not None:
            is_fasttext = getattr(kv, "bucket", 0) > 0
            if is_fasttext != (config.embedding == "fasttext"):
                raise ValueError(f"keyed_vectors are not {config.embedding} vectors")
            if int(kv.vector_size) != config.embed_dim:
                raise ValueError(
                    f"keyed_vectors have dim {kv.vector_size}, config.embed_dim {config.embed_dim}"
                )
        else:
            extra = [t for t in token_cache([x for x in extra_texts if isinstance(x, str)]) if t]
            kv = train_embeddings(
                corpus + extra,
                kind=config.embedding,
                dim=config.embed_dim,
                epochs=config.embed_epochs,
                seed=config.seed,
                workers=1,
            )
        vocab = Vocab.build(corpus)
        if config.uses_description:
            vocab.add(SEP_TOKEN)
        matrix = embedding_matrix(vocab, kv, seed=config.seed)
        if config.char_ngram_max > 0:
            texts = [
                f"{e.title or ''} | {e.description}"
                if config.uses_description and e.description
                else (e.title or "")
                for e in train
            ]
            gram_lists = [
                char_ngrams(t, config.char_ngram_min, config.char_ngram_max) for t in texts
            ]
            ngram_vocab = Vocab.build(gram_lists, min_count=config.ngram_min_count)
            # smoothed idf (as scikit-learn's TfidfVectorizer) for the wide part
            df = Counter(g for grams in gram_lists for g in grams)
            n_docs = len(gram_lists)
            ngram_idf = np.array(
                [0.0, 0.0]
                + [math.log((1 + n_docs) / (1 + df[g])) + 1.0 for g in ngram_vocab.itos[2:]],
                dtype=np.float32,
            )
        timings["embeddings_s"] = time.perf_counter() - t0
    prog.step()

    network = _build_network(config, len(labels), vocab, matrix, ngram_vocab)
    if config.uses_text and config.uses_subword:
        network.text_encoder.embedding = SubwordEmbedding.from_keyed_vectors(vocab, kv)
    if network.wide is not None:
        network.wide_idf.copy_(torch.from_numpy(ngram_idf))
    network = network.to(device)
    model = HSModel(
        config,
        labels,
        network,
        vocab,
        tokenizer,
        pretrained_embeddings=matrix,
        ngram_vocab=ngram_vocab,
    )
    model._token_cache = token_cache
    stop_idx, cal_idx = calibration_split(
        [e.label for e in val], config.calibration_share, config.seed
    )
    val_stop, val_cal = [val[i] for i in stop_idx], [val[i] for i in cal_idx]
    tr = model._encode(model._items(train))
    va_all = model._encode(model._items(val))
    va, va_cal = va_all.subset(stop_idx), va_all.subset(cal_idx)
    y_tr = torch.as_tensor(model.label_indices([e.label for e in train]))
    y_va = model.label_indices([e.label for e in val_stop])
    history: dict[str, Any] = {
        "n_train": len(train),
        "n_val": len(val),
        "labels": len(labels),
        "n_val_stop": len(val_stop),
        "n_val_calibration": len(val_cal),
        "separate_calibration": bool(len(val) and len(stop_idx) + len(cal_idx) == len(val)),
    }
    amp = device.type == "cuda"

    # 2. image: self-supervised pre-training on all photos, then fine-tuning
    if config.uses_image:
        t1 = time.perf_counter()
        if image_init is not None:
            network.image_encoder.load_state_dict(dict(image_init))
            history["n_images"] = 0
            history["pretrain_loss"] = "image_init given"
        else:
            parts = [tr.pixels[tr.present], va_all.pixels[va_all.present]]
            if extra_images:
                extra, extra_present = decode_many(list(extra_images), config.image_size)
                parts.append(extra[extra_present])
            all_pixels = torch.cat(parts)
            history["n_images"] = int(all_pixels.shape[0])
            history["pretrain_loss"] = _pretrain(
                network.image_encoder, all_pixels, config, device, prog.step
            )
            del all_pixels, parts
        timings["pretrain_s"] = time.perf_counter() - t1
        if config.uses_text and config.finetune_epochs > 0:
            t1 = time.perf_counter()
            history["finetune_loss"] = _finetune_image(model, tr, y_tr, config, device, gen, prog)
            timings["finetune_s"] = time.perf_counter() - t1

    # 3. end-to-end training
    t1 = time.perf_counter()
    wide_params = list(network.wide.parameters()) if network.wide is not None else []
    wide_ids = {id(p) for p in wide_params}
    groups = [{"params": [p for p in network.parameters() if id(p) not in wide_ids]}]
    if wide_params:
        groups.append({"params": wide_params, "weight_decay": config.wide_weight_decay})
    optimiser = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    # OneCycleLR divides by zero below ~20 steps (its warm-up would be under one step)
    steps = max(20, n_batches * config.epochs)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.lr, total_steps=steps, pct_start=0.1
    )
    scaler = torch.amp.GradScaler("cuda", enabled=amp and not torch.cuda.is_bf16_supported())
    aux_weight = 1.0 if (config.fusion == "late" and network.multimodal) else config.aux_weight
    best_acc, best_state, best_epoch = -1.0, None, 0
    epoch_log = []
    for epoch in range(config.epochs):
        network.train()
        order = torch.randperm(len(train), generator=gen)
        total_loss = 0.0
        for batch in order.split(config.batch_size):
            idx = batch.tolist()
            inputs = model._batch(tr, idx, train=True, gen=gen)
            target = y_tr[batch].to(device)
            with _autocast(device):
                logits, _, aux = network(*inputs)
                loss = F.cross_entropy(
                    logits.float(), target, label_smoothing=config.label_smoothing
                )
                if aux_weight > 0 and aux:
                    loss = loss + aux_weight * F.cross_entropy(aux["text"].float(), target)
                    has = inputs[3]
                    if has is not None and has.any():
                        loss = loss + aux_weight * F.cross_entropy(
                            aux["image"][has].float(), target[has]
                        )
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimiser)
            torch.nn.utils.clip_grad_norm_(network.parameters(), 5.0)
            scaler.step(optimiser)
            scaler.update()
            scheduler.step()
            total_loss += float(loss.detach()) * len(idx)
            prog.step()
        entry = {"epoch": epoch + 1, "train_loss": total_loss / len(train)}
        if len(val):
            val_logits, _ = model._run(va)
            entry["val_top1"] = float(np.mean(val_logits.argmax(axis=1) == y_va))
            if config.early_stopping and entry["val_top1"] > best_acc:
                best_acc, best_epoch = entry["val_top1"], epoch + 1
                best_state = copy.deepcopy(network.state_dict())
        epoch_log.append(entry)
        log.info("epoch %s", entry)
        stalled = epoch + 1 - best_epoch >= config.patience
        if len(val) and config.early_stopping and config.patience and stalled:
            history["stopped_early"] = epoch + 1
            prog.step(n_batches * (config.epochs - epoch - 1))
            log.info(
                "early stop after epoch %d: no better validation top-1 since epoch %d",
                epoch + 1,
                best_epoch,
            )
            break
    if best_state is not None:
        network.load_state_dict(best_state)
    history["epochs"] = epoch_log
    history["best_epoch"] = best_epoch or config.epochs
    timings["train_s"] = time.perf_counter() - t1
    network.eval()

    # 4. ensemble members, 5. calibration, 6. precedents
    members = config.members
    if members and len(val):
        t1 = time.perf_counter()
        if with_companion:
            model.companion = _fit_companion(
                train, val, config, labels, device, extra_texts, keyed_vectors, prog
            )
            history["companion"] = {
                k: model.companion.history.get(k) for k in ("best_epoch", "epochs", "timings")
            }
            timings["companion_s"] = time.perf_counter() - t1
        _fit_ensemble(model, train, val, va_all, stop_idx, cal_idx, history)
        timings["ensemble_s"] = time.perf_counter() - t1
    elif not refitting:
        if members:
            history["ensemble"] = {"kind": "none", "reason": "no validation data to weigh it"}
            log.info("ensemble skipped: no validation data to choose its weight on")
        if len(val_cal):
            cal_logits = model._run(va_cal)[0]
            y_cal = model.label_indices([e.label for e in val_cal])
            model.temperature = fit_temperature(cal_logits, y_cal)
            _fit_top_calibration(model, cal_logits, y_cal)
            history["calibration"] = {
                "n": len(val_cal),
                "ece_before": ece(softmax(cal_logits, 1.0), y_cal),
                "ece_temperature": ece(softmax(cal_logits, model.temperature), y_cal),
                "ece_after": ece(model.calibrated(cal_logits), y_cal),
                "top_calibration": model.top_calibration.to_dict(),
            }
    prog.step()
    if precedents:  # the companion keeps none: precedents come from the main network
        model._index_precedents(train, model._run(tr)[1])
    timings["total_s"] = time.perf_counter() - t0
    history["timings"] = timings
    history["temperature"] = model.temperature
    history["device"] = str(device)
    model.history = history
    return model


def _fit_companion(
    train, val, config: ModelConfig, labels, device, extra_texts, keyed_vectors, prog: _Progress
) -> HSModel:
    """The companion member: a text-only network on the companion's embeddings, trained on the
    same examples with the same early stopping; each of its steps is a step of ``prog``.
    Precedents come from the main network, so it keeps none."""
    return _fit(
        train,
        val,
        config.companion_config(),
        labels,
        device,
        lambda done, total: prog.step(),
        extra_texts=extra_texts,
        keyed_vectors=keyed_vectors,
        precedents=False,
    )


def _fit_top_calibration(model: HSModel, logits: np.ndarray, labels: np.ndarray) -> None:
    """Platt-scale the top-1 confidence on held-out logits (after the temperature)."""
    if model.config.top_label_calibration:
        model.top_calibration = TopLabelCalibrator.fit(softmax(logits, model.temperature), labels)


@dataclass
class TextMembers:
    """The ensemble members fitted on texts alone (no network)."""

    svm: TfidfSvm
    knn: TfidfKnn | None
    sentence: SentenceHead | None

    def attach(self, model: HSModel) -> None:
        model.tfidf, model.knn, model.sentence = self.svm, self.knn, self.sentence


def _fit_text_members(
    model: HSModel, examples: Sequence[Example], with_knn: bool = True, with_sentence: bool = True
) -> TextMembers:
    """The TF-IDF SVM (on n-grams), and when configured (and wanted) the k-NN member on its
    features and the sentence head on the encoder's vectors, all on these texts."""
    cfg = model.config
    y = model.label_indices([e.label for e in examples])
    texts = model._texts(model._items(examples))
    svm = TfidfSvm(
        C=cfg.ensemble_c,
        seed=cfg.seed,
        min_df=cfg.ensemble_min_df,
        max_coef_mb=cfg.ensemble_max_coef_mb,
    ).fit(texts, y)
    if not np.array_equal(svm.classes_, np.arange(len(model.labels))):
        raise RuntimeError("TF-IDF member: classes do not match the model's labels")
    knn = None
    if with_knn and "knn" in cfg.members:
        knn = TfidfKnn(k=cfg.knn_k).fit(svm, texts, y, len(model.labels))
    sentence = None
    if with_sentence and "sentence" in cfg.members:
        sentence = SentenceHead(
            cfg.sentence_encoder,
            hidden=cfg.sentence_hidden,
            epochs=cfg.sentence_epochs,
            seed=cfg.seed,
        ).fit(texts, y, len(model.labels))
    return TextMembers(svm, knn, sentence)


def _fit_ensemble(
    model: HSModel,
    train: Sequence[Example],
    val: Sequence[Example],
    va_all: _Inputs,
    stop_idx: np.ndarray,
    cal_idx: np.ndarray,
    history: dict[str, Any],
) -> None:
    """Choose the mixture and the final temperature on validation; never on anything else.

    The TF-IDF members are trained on ``train``; every member scores all of ``val``. The
    mixture (member temperatures and weights) is :func:`model.calibrate.choose_mixture`'s:
    cross-fitted on the two parts of the validation split, and replaced by the best member
    alone when that member ranks better than the mixture out of fold. The final temperature is
    fitted on those out-of-fold scores of the whole validation set (twice the data of one
    part). With ``refit_members`` the
    TF-IDF members are then refitted on train + validation (more data; their scale is set by
    the member temperatures already chosen).
    """
    cfg = model.config
    members = cfg.members
    fitted = _fit_text_members(model, train)
    fitted.attach(model)
    model.members = members
    svm = fitted.svm
    neural = model._run(va_all)[0]
    scores = model.member_scores(neural, model._items(val))
    y = model.label_indices([e.label for e in val])
    separate = len(stop_idx) + len(cal_idx) == len(val)
    choice = choose_mixture(scores, y, (stop_idx, cal_idx) if separate else None)
    mixture, oof = choice.mixture, choice.oof
    model.mixture = mixture
    model.temperature = fit_temperature(oof, y)
    _fit_top_calibration(model, oof, y)
    history["ensemble"] = {
        "kind": cfg.ensemble,
        "members": list(members),
        **mixture.to_dict(),
        "n_features": int(svm.coef.shape[0]),
        "sentence_encoder": cfg.sentence_encoder,
        **{f"val_top1_{m}": t for m, t in zip(members, choice.member_top1, strict=True)},
        "val_top1_mixed_out_of_fold": choice.mixed_top1,
        "single_member": None if choice.single is None else members[choice.single],
        "cross_fitted": separate,
    }
    history["calibration"] = {
        "n": len(val),
        "out_of_fold": separate,
        "ece_before": ece(softmax(oof, 1.0), y),
        "ece_temperature": ece(softmax(oof, model.temperature), y),
        "ece_after": ece(model.calibrated(oof), y),  # in-sample for the top-label step
        "top_calibration": model.top_calibration.to_dict(),
        # diagnostics: the temperature one part alone would give (its sampling noise)
        "temperature_parts": [fit_temperature(oof[r], y[r]) for r in (stop_idx, cal_idx)]
        if separate
        else [],
    }
    # a member the mixture weighs 0 is never computed: drop it (model size, refit time). The
    # network stays (precedents, saving) and so does the SVM (it carries the TF-IDF vocabulary)
    weight = dict(zip(members, mixture.weights, strict=True))
    droppable = ("companion", "knn", "sentence")
    if weight.get("companion") == 0.0:
        model.companion = None
    if weight.get("knn") == 0.0:
        model.knn = None
    if weight.get("sentence") == 0.0:
        model.sentence = None
    history["ensemble"]["dropped"] = [m for m in droppable if weight.get(m) == 0.0]
    if cfg.refit_members:
        _fit_text_members(
            model,
            [*train, *val],
            with_knn=model.knn is not None,
            with_sentence=model.sentence is not None,
        ).attach(model)
        history["ensemble"]["refit_on"] = len(train) + len(val)
    log.info("ensemble %s", history["ensemble"])


def _finetune_image(model: HSModel, tr: _Inputs, y_tr, config, device, gen, prog) -> list[float]:
    """Supervised fine-tuning of the (pre-trained) image encoder on the target classes, with a
    temporary linear head, before the joint training."""
    encoder = model.network.image_encoder
    head = torch.nn.Linear(encoder.out_dim, len(model.labels)).to(device)
    params = list(encoder.parameters()) + list(head.parameters())
    optimiser = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    rows = tr.present.nonzero(as_tuple=True)[0]
    fp16 = device.type == "cuda" and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=fp16)
    n_batches = math.ceil(len(tr) / config.batch_size)
    losses: list[float] = []
    encoder.train()
    for _ in range(config.finetune_epochs):
        total, count = 0.0, 0
        if len(rows):
            for batch in rows[torch.randperm(len(rows), generator=gen)].split(config.batch_size):
                x = augment(to_tensor(tr.pixels[batch]), gen).to(device)
                with _autocast(device):
                    loss = F.cross_entropy(head(encoder(x)).float(), y_tr[batch].to(device))
                optimiser.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimiser)
                scaler.update()
                total += float(loss.detach()) * len(batch)
                count += len(batch)
        prog.step(n_batches)
        losses.append(total / max(count, 1))
    return losses
