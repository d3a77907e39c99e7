"""Warm start: a new network begins from a trained one instead of from random weights.

A nightly training sees mostly the same cases as the night before, plus a few new ones, new
words and now and then a new code. :func:`warm_start` copies a trained network's weights into
a freshly built module whose vocabulary and classes may differ:

- a weight indexed by the vocabulary (the word embeddings, the n-gram bag) is copied row by
  row for the tokens both vocabularies have; a new token keeps its fresh initialisation (its
  fastText vector);
- a weight indexed by the classes (the output layers, the wide n-gram layer) is copied for the
  codes both know; a new code keeps its random initialisation;
- every other weight (the BiLSTM, the projection, the image encoder) is copied when its shape
  is the same, and kept fresh otherwise (another size of network: nothing to continue).

What it copied is returned, for the training history. The caller then trains fewer epochs
(``NetworkConfig.warm_epochs``); a full run from scratch on a schedule keeps the recipe honest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from model.config import ModelConfig
from model.network import Network
from model.text import Vocab

# state-dict keys whose first axis is a vocabulary, and which one
_VOCAB_ROWS = {"text_encoder.embedding.weight": "words", "text_encoder.ngram_bag.weight": "ngrams"}
# prefixes of the layers whose first axis is the classes
_CLASS_ROWS = ("head.", "text_head.", "image_head.")
_WIDE = "wide.weight"  # [n-gram vocabulary, classes]
# computed from this run's data (the n-grams' idf), never carried over
_FROM_DATA = ("wide_idf",)


@dataclass(frozen=True)
class WarmSource:
    """A trained network to continue, and the codes its output layer scores."""

    network: Network
    labels: tuple[str, ...]


def _index(new: Vocab | Sequence[str] | None, old: Vocab | Sequence[str] | None) -> np.ndarray:
    """For each entry of ``new``, its position in ``old`` (-1: not there)."""
    new_items = list(new.itos if isinstance(new, Vocab) else new or [])
    old_items = list(old.itos if isinstance(old, Vocab) else old or [])
    where = {item: i for i, item in enumerate(old_items)}
    return np.array([where.get(item, -1) for item in new_items], dtype=np.int64)


def _copy_rows(
    target: torch.Tensor, source: torch.Tensor, rows: np.ndarray, cols: np.ndarray | None = None
) -> int:
    """``target[i] = source[rows[i]]`` where ``rows[i] >= 0`` (and the same for columns when
    ``cols`` is given); the number of rows copied."""
    if len(rows) != target.shape[0] or (cols is not None and len(cols) != target.shape[1]):
        raise ValueError("index length does not match the weight")
    if source.shape[1:] != target.shape[1:] and cols is None:
        return 0
    keep = torch.as_tensor(np.flatnonzero(rows >= 0))
    src = torch.as_tensor(rows[rows >= 0])
    if cols is None:
        target[keep] = source[src].to(target.dtype)
    else:
        keep_c = torch.as_tensor(np.flatnonzero(cols >= 0))
        src_c = torch.as_tensor(cols[cols >= 0])
        target[keep[:, None], keep_c[None, :]] = source[src[:, None], src_c[None, :]].to(
            target.dtype
        )
    return len(keep)


def warm_start(network: Network, labels: Sequence[str], source: WarmSource) -> dict[str, Any]:
    """Copy ``source``'s weights into ``network`` (untrained, built for ``labels``) where
    they mean the same thing; return what was copied and what was kept fresh."""
    previous = source.network
    why = incompatibility(previous.config, network.config)
    if why is not None:
        raise ValueError(f"cannot warm-start from that network: {why}")
    maps = {
        "words": _index(network.vocab, previous.vocab),
        "ngrams": _index(network.ngram_vocab, previous.ngram_vocab),
        "classes": _index(labels, source.labels),
    }
    old = previous.module.state_dict()
    state = network.module.state_dict()
    copied, fresh = [], []
    with torch.no_grad():
        for key, value in state.items():
            source = old.get(key)
            if source is None or key in _FROM_DATA:
                fresh.append(key)
                continue
            if key in _VOCAB_ROWS:
                done = _copy_rows(value, source, maps[_VOCAB_ROWS[key]])
            elif key == _WIDE:
                done = _copy_rows(value, source, maps["ngrams"], maps["classes"])
            elif key.startswith(_CLASS_ROWS):
                done = _copy_rows(value, source, maps["classes"])
            elif source.shape == value.shape:
                value.copy_(source.to(value.dtype))
                done = 1
            else:
                done = 0
            (copied if done else fresh).append(key)
    network.module.load_state_dict(state)
    return {
        "copied": len(copied),
        "fresh": fresh,
        "known_words": int((maps["words"] >= 0).sum()),
        "new_words": int((maps["words"] < 0).sum()),
        "known_codes": int((maps["classes"] >= 0).sum()),
        "new_codes": int((maps["classes"] < 0).sum()),
    }


# the network's shape: a network differing in any of these cannot be continued
ARCHITECTURE = (
    "embedding",
    "subword",
    "tokenizer",
    "embed_dim",
    "hidden",
    "lstm_layers",
    "feature_dim",
    "char_ngram_max",
    "char_ngram_min",
    "ngram_dim",
    "wide",
)


def incompatibility(previous: ModelConfig, config: ModelConfig) -> str | None:
    """Why a network trained with ``previous`` cannot warm-start one of ``config``; None
    when it can."""
    if previous.inputs != config.inputs:
        return f"inputs {previous.inputs} -> {config.inputs}"
    if config.network.subword:  # its lookup tables are built for one vocabulary
        return "subword embeddings are not continued"
    for name in ARCHITECTURE:
        before, now = getattr(previous.network, name), getattr(config.network, name)
        if before != now:
            return f"{name} {before} -> {now}"
    if config.uses_image:
        for name in ("vgg_cfg", "vgg_width", "fusion"):
            before, now = getattr(previous.image, name), getattr(config.image, name)
            if before != now:
                return f"{name} {before} -> {now}"
    return None


def warm_config(config: ModelConfig) -> ModelConfig:
    """``config`` with a warm start's number of epochs."""
    return replace(config, network=replace(config.network, epochs=config.network.warm_epochs))
