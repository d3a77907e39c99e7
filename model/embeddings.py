"""Word embeddings trained with gensim on the case corpus (the paper's word2vec / fastText)."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence

from gensim.models import FastText, Word2Vec
from gensim.models.keyedvectors import KeyedVectors

log = logging.getLogger(__name__)

KINDS = ("fasttext", "word2vec")


def stable_hash(text: str) -> int:
    """Process-independent hash for gensim's per-word vector seeding (Python's ``hash`` of a str
    changes from process to process, which would make training irreproducible)."""
    return zlib.crc32(text.encode("utf-8"))


def fasttext_buckets(n_tokens: int) -> int:
    """Hash buckets for subword n-grams: gensim's 2M default wastes ~1 GB on a small corpus."""
    return min(2_000_000, max(20_000, 20 * n_tokens))


def train_embeddings(
    token_lists: Sequence[Sequence[str]],
    kind: str = "fasttext",
    dim: int = 128,
    epochs: int = 10,
    min_count: int = 1,
    seed: int = 13,
    workers: int = 2,
    window: int = 5,
    sg: int = 1,
) -> KeyedVectors:
    """Train skip-gram embeddings on tokenized texts; returns the KeyedVectors.

    For ``kind='fasttext'`` the result is a ``FastTextKeyedVectors`` that also gives vectors
    for out-of-vocabulary words, built from their character n-grams. With ``workers=1`` the
    result is identical from run to run and process to process for the same ``seed``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown embedding kind {kind!r}; expected one of {KINDS}")
    sentences = [list(tokens) for tokens in token_lists if len(tokens) > 0]
    if not sentences:
        raise ValueError("cannot train embeddings: every text tokenized to nothing")
    n_tokens = sum(len(s) for s in sentences)
    common = {
        "vector_size": dim,
        "window": window,
        "min_count": min_count,
        "sg": sg,
        "seed": seed,
        "workers": workers,
        "epochs": epochs,
        "hashfxn": stable_hash,
    }
    if kind == "fasttext":
        model = FastText(
            sentences=sentences, min_n=2, max_n=5, bucket=fasttext_buckets(n_tokens), **common
        )
    else:
        model = Word2Vec(sentences=sentences, **common)
    log.info(
        "trained %s embeddings: %d sentences, %d tokens, %d words, dim %d",
        kind,
        len(sentences),
        n_tokens,
        len(model.wv.index_to_key),
        dim,
    )
    return model.wv
