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
_HAS_DIGIT = re.compile(r"\d")


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


class SubwordEmbedding(nn.Module):
    """fastText-style token vectors computed inside the network, fine-tuned end to end.

    A token's vector is the mean of its whole-word vector (tokens of the embedding corpus
    only) and the vectors of its hashed character n-grams (fastText's composition, gensim's
    ``min_n``..``max_n`` and bucket hash), so misspelt and unseen words get a vector from their
    pieces instead of ``<unk>``. Only the hash buckets some vocabulary token uses are kept.

    Tokens outside the vocabulary get ids ``>= len(vocab)`` from :meth:`encode` (a table of
    their n-gram rows kept with the module, not saved; cleared when it grows past
    ``oov_cap`` entries); their vectors are the mean of their known n-gram vectors.
    """

    def __init__(
        self, n_vocab: int, dim: int, n_rows: int, n_flat: int, spec: Sequence[int] = (2, 5, 1)
    ) -> None:
        """Empty module of the given shapes (load a state dict into it); see
        :meth:`from_keyed_vectors`. ``spec``: (min_n, max_n, n_buckets) of the hash."""
        super().__init__()
        self.word = nn.Embedding(n_vocab, dim)
        self.ngrams = nn.EmbeddingBag(max(1, n_rows), dim, mode="sum")
        self.register_buffer("known", torch.zeros(n_vocab))
        self.register_buffer("starts", torch.zeros(n_vocab, dtype=torch.long))
        self.register_buffer("counts", torch.zeros(n_vocab, dtype=torch.long))
        self.register_buffer("flat", torch.zeros(max(1, n_flat), dtype=torch.long))
        self.register_buffer("buckets", torch.zeros(max(1, n_rows), dtype=torch.long))
        self.register_buffer("spec", torch.tensor(list(spec), dtype=torch.long))
        self.embedding_dim = dim
        self.word_weight: float | None = None
        self.oov_cap = 200_000
        self._oov: dict[str, int] = {}
        self._oov_rows: list[list[int]] = []
        self._tables: tuple[torch.Tensor, ...] | None = None

    @classmethod
    def from_keyed_vectors(cls, vocab: Vocab, keyed_vectors: Any) -> SubwordEmbedding:
        """Initialise from gensim ``FastTextKeyedVectors`` (word and n-gram vectors)."""
        from gensim.models.fasttext import ft_ngram_hashes

        if getattr(keyed_vectors, "bucket", 0) <= 0:
            raise ValueError("SubwordEmbedding needs fastText keyed vectors (with n-gram buckets)")
        dim = int(keyed_vectors.vector_size)
        min_n, max_n, n_buckets = (
            int(keyed_vectors.min_n),
            int(keyed_vectors.max_n),
            int(keyed_vectors.bucket),
        )
        words = np.zeros((len(vocab), dim), dtype=np.float32)
        known = np.zeros(len(vocab), dtype=np.float32)
        starts, counts, flat = [], [], []
        for idx, token in enumerate(vocab.itos):
            hashes = [] if idx in (PAD, UNK) else ft_ngram_hashes(token, min_n, max_n, n_buckets)
            k = keyed_vectors.key_to_index.get(token)
            if k is not None and idx not in (PAD, UNK):
                words[idx] = keyed_vectors.vectors_vocab[k]
                known[idx] = 1.0
            starts.append(len(flat))
            counts.append(len(hashes))
            flat.extend(hashes)
        used, rows = np.unique(np.asarray(flat, dtype=np.int64), return_inverse=True)
        module = cls(len(vocab), dim, len(used), len(rows), (min_n, max_n, n_buckets))
        with torch.no_grad():
            module.word.weight.copy_(torch.from_numpy(words))
            if len(used):
                module.ngrams.weight.copy_(
                    torch.from_numpy(np.asarray(keyed_vectors.vectors_ngrams[used], np.float32))
                )
                module.buckets.copy_(torch.from_numpy(used))
                module.flat.copy_(torch.from_numpy(rows.astype(np.int64)))
            module.known.copy_(torch.from_numpy(known))
            module.starts.copy_(torch.tensor(starts, dtype=torch.long))
            module.counts.copy_(torch.tensor(counts, dtype=torch.long))
        return module

    @staticmethod
    def shapes_from_state(state: dict[str, torch.Tensor], prefix: str) -> dict[str, Any]:
        """Constructor arguments matching a saved state dict (keys under ``prefix``)."""
        return {
            "n_vocab": int(state[prefix + "word.weight"].shape[0]),
            "dim": int(state[prefix + "word.weight"].shape[1]),
            "n_rows": int(state[prefix + "ngrams.weight"].shape[0]),
            "n_flat": int(state[prefix + "flat"].shape[0]),
            "spec": state[prefix + "spec"].tolist(),
        }

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._tables = None

    # --- unseen tokens ----------------------------------------------------------------------
    def _rows_of(self, token: str) -> list[int]:
        from gensim.models.fasttext import ft_ngram_hashes

        min_n, max_n, n_buckets = (int(v) for v in self.spec.tolist())
        hashes = np.asarray(ft_ngram_hashes(token, min_n, max_n, n_buckets), dtype=np.int64)
        buckets = self.buckets.cpu().numpy()
        pos = np.clip(np.searchsorted(buckets, hashes), 0, len(buckets) - 1)
        return pos[buckets[pos] == hashes].tolist()

    def encode(self, token_lists: Sequence[Sequence[str]], stoi: dict[str, int]) -> list[list[int]]:
        """Ids per text: vocabulary ids, and ids ``>= len(vocab)`` for unseen tokens.

        Unseen tokens with a digit (literal model/part numbers: unique per product, the
        tokenizer already emits their shape and letter pieces) stay ``<unk>``: their digit
        n-grams are noise that would move the prediction.
        """
        n_vocab = self.word.num_embeddings

        def wanted(t: str) -> bool:
            return t not in stoi and not _HAS_DIGIT.search(t)

        new = dict.fromkeys(
            t for toks in token_lists for t in toks if t not in self._oov and wanted(t)
        )
        if new and len(self._oov) + len(new) > self.oov_cap:
            self._oov, self._oov_rows = {}, []
            new = dict.fromkeys(t for toks in token_lists for t in toks if wanted(t))
        for token in new:
            self._oov[token] = n_vocab + len(self._oov_rows)
            self._oov_rows.append(self._rows_of(token))
        if new:
            self._tables = None
        oov = self._oov
        return [[stoi.get(t, oov.get(t, UNK)) for t in toks] for toks in token_lists]

    def _lookup_tables(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        tables = self._tables
        if tables is None or tables[0].device != device:
            starts, counts, flat, known = self.starts, self.counts, self.flat, self.known
            if self._oov_rows:
                extra_counts = torch.tensor([len(r) for r in self._oov_rows], dtype=torch.long)
                extra_flat = torch.tensor(
                    [i for r in self._oov_rows for i in r] or [0], dtype=torch.long
                )
                extra_starts = torch.cumsum(extra_counts, 0) - extra_counts + flat.numel()
                starts = torch.cat([starts, extra_starts.to(starts.device)])
                counts = torch.cat([counts, extra_counts.to(counts.device)])
                flat = torch.cat([flat, extra_flat.to(flat.device)])
                known = torch.cat([known, known.new_zeros(len(self._oov_rows))])
            tables = tuple(t.to(device) for t in (starts, counts, flat, known))
            self._tables = tables
        return tables

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        starts_all, counts_all, flat_all, known_all = self._lookup_tables(ids.device)
        uniq, inverse = torch.unique(ids, return_inverse=True)
        counts = counts_all[uniq]
        offsets = torch.cumsum(counts, 0) - counts
        within = torch.arange(int(counts.sum()), device=ids.device) - torch.repeat_interleave(
            offsets, counts
        )
        flat = flat_all[torch.repeat_interleave(starts_all[uniq], counts) + within]
        grams = self.ngrams(flat, offsets)
        known = known_all[uniq][:, None]
        in_vocab = uniq < self.word.num_embeddings
        words = self.word(torch.where(in_vocab, uniq, torch.zeros_like(uniq)))
        n = counts[:, None].to(grams.dtype)
        if self.word_weight is None:  # fastText: the mean of the word and n-gram vectors
            vectors = (words * known + grams) / (known + n).clamp(min=1.0)
        else:  # a fixed share for the whole-word vector of known tokens
            mean_grams = grams / n.clamp(min=1.0)
            w = self.word_weight * known * (n > 0).to(grams.dtype) + known * (n == 0).to(
                grams.dtype
            )
            vectors = w * words + (1.0 - w) * mean_grams
        vectors = vectors.masked_fill((uniq == PAD)[:, None], 0.0)
        return vectors[inverse]
