"""Bench-only text classifiers built from the model/ text pieces.

- ``BiLstmClassifier``: the paper's recipe (gensim word2vec or fastText embeddings -> BiLSTM ->
  512-d feature -> linear head), trained with AdamW + one-cycle LR and label smoothing.
  With ``subword=True`` the word vectors are computed *inside* the network from the fastText
  character n-gram buckets (word vector + hashed n-gram vectors, averaged, exactly as fastText
  does) and all of it is fine-tuned end to end, so misspelt and unseen words ('mechenical',
  'leafcrushed') get a vector instead of <unk>.
- ``ensemble_probs``: geometric mixture of temperature-calibrated member distributions, with the
  weights and temperatures chosen on a validation split (never on test).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from gensim.models.fasttext import ft_ngram_hashes
from torch import nn
from torch.nn import functional as F

from model.embeddings import train_embeddings
from model.text import PAD, UNK, TextEncoder, Vocab, embedding_matrix, encode_batch


class SubwordEmbedding(nn.Module):
    """fastText-style token vectors: mean of the word vector (if known) and its n-gram vectors."""

    def __init__(self, vocab: Vocab, keyed_vectors, n_known: int) -> None:
        super().__init__()
        dim = int(keyed_vectors.vector_size)
        buckets = int(keyed_vectors.bucket)
        words = np.zeros((len(vocab), dim), dtype=np.float32)
        known = np.zeros(len(vocab), dtype=np.float32)
        starts, counts, flat = [], [], []
        for idx, token in enumerate(vocab.itos):
            hashes = (
                []
                if idx in (PAD, UNK)
                else list(ft_ngram_hashes(token, keyed_vectors.min_n, keyed_vectors.max_n, buckets))
            )
            k = keyed_vectors.key_to_index.get(token)
            # only training-corpus tokens (ids < n_known) keep a trainable whole-word vector
            if k is not None and idx < n_known:
                words[idx] = keyed_vectors.vectors_vocab[k]
                known[idx] = 1.0
            starts.append(len(flat))
            counts.append(len(hashes))
            flat.extend(hashes)
        # keep only the hash buckets some vocab token uses (gensim allocates ~1M of them)
        used, flat = np.unique(np.asarray(flat, dtype=np.int64), return_inverse=True)
        flat = flat.tolist()
        self.word = nn.Embedding.from_pretrained(torch.from_numpy(words), freeze=False)
        self.ngrams = nn.EmbeddingBag.from_pretrained(
            torch.from_numpy(np.asarray(keyed_vectors.vectors_ngrams[used], dtype=np.float32)),
            freeze=False,
            mode="sum",
        )
        self.register_buffer("known", torch.from_numpy(known))
        self.register_buffer("starts", torch.tensor(starts, dtype=torch.long))
        self.register_buffer("counts", torch.tensor(counts, dtype=torch.long))
        self.register_buffer("flat", torch.tensor(flat or [0], dtype=torch.long))
        self.embedding_dim = dim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        uniq, inverse = torch.unique(ids, return_inverse=True)
        counts = self.counts[uniq]
        offsets = torch.cumsum(counts, 0) - counts
        # positions of every n-gram of every unique token, concatenated
        within = torch.arange(int(counts.sum()), device=ids.device) - torch.repeat_interleave(
            offsets, counts
        )
        flat = self.flat[torch.repeat_interleave(self.starts[uniq], counts) + within]
        grams = self.ngrams(flat, offsets)
        known = self.known[uniq][:, None]
        denom = (known + counts[:, None].float()).clamp(min=1.0)
        vectors = (self.word(uniq) * known + grams) / denom
        vectors = vectors.masked_fill((uniq == PAD)[:, None], 0.0)
        return vectors[inverse]


@dataclass
class LstmConfig:
    embedding: str = "fasttext"  # fasttext | word2vec
    subword: bool = False  # compute token vectors from n-grams inside the net (fastText only)
    embed_dim: int = 128
    embed_epochs: int = 10
    hidden: int = 256  # 2 x 256 = the paper's 512-d BiLSTM state
    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    dropout: float = 0.3
    max_len: int = 32
    seed: int = 13


class BiLstmClassifier:
    def __init__(self, config: LstmConfig) -> None:
        self.config = config
        self.vocab: Vocab | None = None
        self.encoder: TextEncoder | None = None
        self.head: nn.Linear | None = None
        self.n_classes = 0
        self.history: list[dict] = []

    def fit(
        self,
        train_tokens: Sequence[Sequence[str]],
        y: np.ndarray,
        n_classes: int,
        extra_corpus: Sequence[Sequence[str]] = (),
        inference_tokens: Sequence[Sequence[str]] = (),
        val: tuple[Sequence[Sequence[str]], np.ndarray] | None = None,
        log: Callable[[str], None] = print,
        keyed_vectors=None,
    ) -> BiLstmClassifier:
        """Train. ``extra_corpus``: unlabelled text for the embeddings only.

        ``keyed_vectors``: embeddings trained beforehand (then ``extra_corpus`` is unused).
        ``inference_tokens``: texts to be scored later; with fastText their unseen tokens get
        vocab rows built from n-grams learnt on the training corpus (no labels, no fitting on
        them) - what fastText does for out-of-vocabulary words at inference time.
        """
        cfg = self.config
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        kv = keyed_vectors
        if kv is None:
            kv = train_embeddings(
                [*train_tokens, *extra_corpus],
                kind=cfg.embedding,
                dim=cfg.embed_dim,
                epochs=cfg.embed_epochs,
                seed=cfg.seed,
                workers=1,
            )
        vocab = Vocab.build(train_tokens)
        n_known = len(vocab)
        if cfg.embedding == "fasttext":
            for tokens in inference_tokens:
                for token in tokens:
                    vocab.add(token)
        self.vocab = vocab
        matrix = embedding_matrix(vocab, kv, seed=cfg.seed)
        encoder = TextEncoder(matrix, hidden=cfg.hidden, dropout=cfg.dropout)
        if cfg.subword:
            if cfg.embedding != "fasttext":
                raise ValueError("subword=True needs fastText embeddings")
            encoder.embedding = SubwordEmbedding(vocab, kv, n_known)
        self.encoder = encoder
        self.head = nn.Linear(encoder.out_dim, n_classes)
        self.n_classes = n_classes
        params = [*encoder.parameters(), *self.head.parameters()]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps = cfg.epochs * ((len(train_tokens) + cfg.batch_size - 1) // cfg.batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
        y_t = torch.as_tensor(y, dtype=torch.long)
        for epoch in range(cfg.epochs):
            t0 = time.perf_counter()
            encoder.train()
            self.head.train()
            order = rng.permutation(len(train_tokens))
            total = 0.0
            for start in range(0, len(order), cfg.batch_size):
                batch = order[start : start + cfg.batch_size]
                ids, lengths = encode_batch(vocab, [train_tokens[i] for i in batch], cfg.max_len)
                logits = self.head(encoder(ids, lengths))
                loss = F.cross_entropy(logits, y_t[batch], label_smoothing=cfg.label_smoothing)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(batch)
            entry = {
                "epoch": epoch + 1,
                "loss": total / len(order),
                "seconds": time.perf_counter() - t0,
            }
            if val is not None:
                logits = self.logits(val[0])
                entry["val_top1"] = float(np.mean(logits.argmax(1) == val[1]))
            self.history.append(entry)
            log(
                f"    epoch {epoch + 1}/{cfg.epochs} "
                + " ".join(f"{k}={v:.4f}" for k, v in entry.items() if k != "epoch")
            )
        return self

    @torch.no_grad()
    def logits(self, tokens: Sequence[Sequence[str]], batch_size: int = 512) -> np.ndarray:
        assert self.encoder is not None and self.head is not None and self.vocab is not None
        self.encoder.eval()
        self.head.eval()
        out = []
        for start in range(0, len(tokens), batch_size):
            ids, lengths = encode_batch(
                self.vocab, tokens[start : start + batch_size], self.config.max_len
            )
            out.append(self.head(self.encoder(ids, lengths)).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.n_classes), dtype=np.float32)


def log_softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = scores / temperature
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def fit_temperature(scores: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising validation NLL (golden-section search on log T)."""

    def nll(log_t: float) -> float:
        lp = log_softmax(scores, float(np.exp(log_t)))
        return float(-lp[np.arange(len(y)), y].mean())

    lo, hi = np.log(0.01), np.log(100.0)
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(b)
    return float(np.exp((lo + hi) / 2))


@dataclass
class Ensemble:
    """log p = sum_i w_i * log softmax(s_i / T_i), renormalised; weights sum to 1."""

    temperatures: list[float]
    weights: list[float]

    @classmethod
    def fit(cls, val_scores: Sequence[np.ndarray], y: np.ndarray, grid: int = 11) -> Ensemble:
        temps = [fit_temperature(s, y) for s in val_scores]
        logps = [log_softmax(s, t) for s, t in zip(val_scores, temps, strict=True)]
        best: tuple[float, float, list[float]] | None = None
        for weights in _simplex(len(logps), grid):
            lp = sum(w * p for w, p in zip(weights, logps, strict=True))
            order = np.argsort(-lp, axis=1)[:, :3]
            top1 = float(np.mean(order[:, 0] == y))
            top3 = float(np.mean((order == y[:, None]).any(axis=1)))
            key = (top1 + top3, top1)
            if best is None or key > best[:2]:
                best = (key[0], key[1], list(weights))
        assert best is not None
        return cls(temperatures=temps, weights=best[2])

    def log_probs(self, scores: Sequence[np.ndarray]) -> np.ndarray:
        lp = sum(
            w * log_softmax(s, t)
            for w, s, t in zip(self.weights, scores, self.temperatures, strict=True)
        )
        return log_softmax(lp)


def _simplex(n: int, grid: int) -> list[tuple[float, ...]]:
    steps = grid - 1
    out: list[tuple[float, ...]] = []

    def rec(prefix: tuple[int, ...], left: int) -> None:
        if len(prefix) == n - 1:
            out.append(tuple(x / steps for x in (*prefix, left)))
            return
        for i in range(left + 1):
            rec((*prefix, i), left - i)

    rec((), steps)
    return out


def knn_scores(
    train_x, train_y: np.ndarray, x, n_classes: int, k: int = 10, chunk: int = 1024
) -> np.ndarray:
    """Similarity-weighted vote of the ``k`` nearest training rows (cosine on sparse features).

    Scores are log(eps + sum of squared similarities per class), so they behave like logits
    in the ensemble.
    """
    from sklearn.preprocessing import normalize

    train_x = normalize(train_x)
    x = normalize(x)
    out = np.zeros((x.shape[0], n_classes), dtype=np.float64)
    for start in range(0, x.shape[0], chunk):
        sims = (x[start : start + chunk] @ train_x.T).toarray()
        kk = min(k, sims.shape[1])
        near = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        near_sims = np.take_along_axis(sims, near, axis=1)
        rows = np.repeat(np.arange(sims.shape[0]), kk)
        np.add.at(out[start : start + chunk], (rows, train_y[near].ravel()), near_sims.ravel() ** 2)
    return np.log(out + 1e-3)
