"""Text branch: vocabulary, embedding matrix, batching and the BiLSTM encoder (512-d feature).

Pure PyTorch/numpy; no I/O. The encoder follows the paper (word embeddings -> bidirectional
LSTM) with max+mean pooling over time, which is steadier than the last hidden state on short,
noisy product names.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

PAD, UNK = 0, 1
PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"


class Vocab:
    """Token <-> id map; id 0 is padding, id 1 the unknown token."""

    def __init__(self, tokens: Sequence[str] = ()) -> None:
        self.itos: list[str] = [PAD_TOKEN, UNK_TOKEN]
        self.stoi: dict[str, int] = {PAD_TOKEN: PAD, UNK_TOKEN: UNK}
        for token in tokens:
            self.add(token)

    def add(self, token: str) -> int:
        idx = self.stoi.get(token)
        if idx is None:
            idx = len(self.itos)
            self.itos.append(token)
            self.stoi[token] = idx
        return idx

    @classmethod
    def build(
        cls,
        token_lists: Iterable[Sequence[str]],
        min_count: int = 1,
        max_size: int | None = None,
    ) -> Vocab:
        """Most frequent first (ties broken alphabetically so builds are reproducible)."""
        counts = Counter(t for tokens in token_lists for t in tokens)
        ranked = sorted(
            (
                tok
                for tok, n in counts.items()
                if n >= min_count and tok not in (PAD_TOKEN, UNK_TOKEN)
            ),
            key=lambda tok: (-counts[tok], tok),
        )
        if max_size is not None:
            ranked = ranked[: max(0, max_size - 2)]
        return cls(ranked)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self.stoi.get(t, UNK) for t in tokens]

    def to_dict(self) -> dict[str, Any]:
        return {"itos": list(self.itos)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocab:
        itos = list(data["itos"])
        if itos[:2] != [PAD_TOKEN, UNK_TOKEN]:
            raise ValueError("vocab dict must start with the <pad> and <unk> tokens")
        return cls(itos[2:])


def embedding_matrix(vocab: Vocab, keyed_vectors: Any, seed: int = 13) -> np.ndarray:
    """Rows aligned with the vocab; padding row zero.

    fastText vectors exist for any token (built from its subwords); for word2vec, tokens the
    embeddings never saw get a small random vector so they stay trainable and distinct.
    """
    dim = int(keyed_vectors.vector_size)
    rng = np.random.default_rng(seed)
    matrix = np.zeros((len(vocab), dim), dtype=np.float32)
    has_subwords = hasattr(keyed_vectors, "get_vector") and getattr(keyed_vectors, "bucket", 0) > 0
    known = [t for t in vocab.itos[2:] if t in keyed_vectors.key_to_index]
    # Random rows on the same scale as the trained ones, so they neither dominate nor vanish.
    scale = float(np.std(keyed_vectors[known])) if known else 0.1
    for idx, token in enumerate(vocab.itos):
        if idx == PAD:
            continue
        if token in keyed_vectors.key_to_index or (has_subwords and idx != UNK):
            matrix[idx] = keyed_vectors.get_vector(token)
        else:
            matrix[idx] = rng.normal(0.0, scale, dim)
    return matrix


def encode_batch(
    vocab: Vocab, token_lists: Sequence[Sequence[str]], max_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad/truncate to a batch: ids LongTensor[B, T] and lengths LongTensor[B] (>= 1).

    An empty text becomes a single <unk> so the LSTM always sees one step.
    """
    if max_len < 1:
        raise ValueError("max_len must be >= 1")
    encoded = [vocab.encode(tokens)[:max_len] or [UNK] for tokens in token_lists]
    width = max((len(e) for e in encoded), default=1)
    ids = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, seq in enumerate(encoded):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    lengths = torch.tensor([len(e) for e in encoded], dtype=torch.long)
    return ids, lengths


_SPACES = re.compile(r"\s+")


def char_ngrams(text: str, n_min: int = 1, n_max: int = 4, max_chars: int = 300) -> list[str]:
    """Distinct character n-grams of the lower-cased, NFKC-normalised text, words padded with
    spaces (like scikit-learn's ``char_wb``). Sorted, so the result is deterministic."""
    text = _SPACES.sub(" ", unicodedata.normalize("NFKC", text or "").lower()).strip()
    if not text:
        return []
    padded = f" {text[:max_chars]} "
    grams = {
        padded[i : i + n]
        for n in range(n_min, n_max + 1)
        for i in range(len(padded) - n + 1)
        if padded[i : i + n].strip()
    }
    return sorted(grams)


class TextEncoder(nn.Module):
    """Embeddings -> BiLSTM (packed) -> max+mean pooling -> projection to ``out_dim``.

    With ``ngram_vocab_size > 0`` a bag of character n-grams (mean of learned n-gram vectors,
    like the fastText classifier) is concatenated to the pooled BiLSTM states before the
    projection: it sees spelling variants, compounds and model-number pieces that the word
    sequence misses.
    """

    def __init__(
        self,
        embedding_matrix: np.ndarray,
        hidden: int = 256,
        layers: int = 1,
        out_dim: int = 512,
        dropout: float = 0.2,
        freeze_embeddings: bool = False,
        ngram_vocab_size: int = 0,
        ngram_dim: int = 128,
    ) -> None:
        super().__init__()
        weights = torch.as_tensor(np.asarray(embedding_matrix, dtype=np.float32))
        if weights.ndim != 2:
            raise ValueError("embedding_matrix must be 2-D [vocab, dim]")
        self.embedding = nn.Embedding.from_pretrained(
            weights, freeze=freeze_embeddings, padding_idx=PAD
        )
        self.embed_dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(
            input_size=weights.shape[1],
            hidden_size=hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.ngram_bag = (
            nn.EmbeddingBag(ngram_vocab_size, ngram_dim, mode="mean", padding_idx=PAD)
            if ngram_vocab_size > 0
            else None
        )
        bag_dim = ngram_dim if self.ngram_bag is not None else 0
        self.projection = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(4 * hidden + bag_dim, out_dim),
            nn.LayerNorm(out_dim),
            nn.GELU(),
        )
        self.out_dim = out_dim

    def forward(
        self,
        ids: torch.Tensor,
        lengths: torch.Tensor,
        ngram_ids: torch.Tensor | None = None,
        ngram_offsets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``ngram_ids``/``ngram_offsets``: flat n-gram ids and per-row start offsets (the
        ``nn.EmbeddingBag`` layout); required when the encoder has an n-gram bag."""
        lengths = lengths.clamp(min=1)
        x = self.embed_dropout(self.embedding(ids))
        packed = pack_padded_sequence(
            x, lengths.detach().cpu(), batch_first=True, enforce_sorted=False
        )
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        mask = (
            torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]
        ).unsqueeze(-1)
        maxed = out.masked_fill(~mask, float("-inf")).max(dim=1).values
        mean = (out * mask).sum(dim=1) / lengths[:, None].to(out.dtype)
        parts = [maxed, mean]
        if self.ngram_bag is not None:
            if ngram_ids is None or ngram_offsets is None:
                raise ValueError("this TextEncoder has an n-gram bag: pass ngram_ids and offsets")
            parts.append(self.ngram_bag(ngram_ids, ngram_offsets).to(maxed.dtype))
        return self.projection(torch.cat(parts, dim=1))
