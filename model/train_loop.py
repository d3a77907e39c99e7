"""Training one network: tokens, word embeddings, vocabulary, image pre-training, epochs.

:func:`train_network` is the whole loop for one :class:`model.network.Network` (the main
network and the companion member alike):

1. tokenise (Kiwi morphemes + model-number shapes) the training texts; train word embeddings
   with gensim on them (+ unlabelled ``extra_texts``), or take ``keyed_vectors`` trained
   beforehand; build the vocabulary (and the character n-gram vocabulary when configured).
   With fastText and ``subword`` the embedding layer composes word + hashed n-gram vectors;
2. images: pre-train the VGG encoder self-supervised (rotation prediction) on every photo
   given (training, validation and extra photos, labels unused), then fine-tune it on the
   target classes;
3. train end to end with AdamW and a one-cycle schedule, keeping the epoch with the best
   top-1 on ``val`` and stopping after ``patience`` epochs without a better one.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from model.config import Embedding, ModelConfig
from model.embeddings import train_embeddings
from model.encoding import SEP_TOKEN, CachedTokenizer, EncodedInputs, compose_text, items_of
from model.image import ImageEncoder, augment, decode_many, pretrain_rotation, to_tensor
from model.losses import mixed_loss, partial_mask
from model.network import Network, build_module
from model.records import Example
from model.runtime import adamw, autocast, grad_scaler, resolve_device, seed_everything, threads
from model.text import SubwordEmbedding, Vocab, char_ngrams, embedding_matrix
from model.tokenize import Tokenizer
from model.warm import WarmSource, warm_start

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Steps done of ``total``, reported to ``callback(done, total)``."""

    total: int
    callback: Callable[[int, int], None] | None
    done: int = 0
    history: dict[str, Any] = field(default_factory=dict)

    def step(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        if self.callback is not None:
            self.callback(self.done, self.total)


@dataclass
class TrainedNetwork:
    """A trained network and its encoded training inputs (their features index precedents
    without encoding the training cases again)."""

    network: Network
    train_inputs: EncodedInputs
    # the word vectors it was trained on: given, or trained here (None without text); the
    # companion network reuses them (``model.fit``) instead of training the same vectors again
    keyed_vectors: Any = None


def network_steps(config: ModelConfig, n_train: int, n_images: int, image_init: bool) -> int:
    """The progress steps :func:`train_network` reports for these sizes."""
    n_batches = math.ceil(n_train / config.network.batch_size)
    total = 1 + n_batches * config.network.epochs
    if config.uses_image:
        if not image_init:
            total += math.ceil(n_images / config.network.batch_size) * config.image.pretrain_epochs
        if config.uses_text:
            total += n_batches * config.image.finetune_epochs
    return total


@dataclass
class Targets:
    """Training targets: a class index per row, -1 for a partial label, whose classes are in
    ``sets`` (``None`` when no row is partial)."""

    y: torch.Tensor
    sets: list[tuple[int, ...]] | None
    n_classes: int

    @classmethod
    def of(cls, examples: Sequence[Example], labels: Sequence[str]) -> Targets:
        index = {lab: i for i, lab in enumerate(labels)}
        y = [-1 if e.candidates else index[e.label] for e in examples]
        sets = [tuple(index[c] for c in e.candidates) for e in examples]
        partial = any(e.candidates for e in examples)
        return cls(torch.as_tensor(y, dtype=torch.long), sets if partial else None, len(labels))

    def allowed(self, rows: Sequence[int], device: torch.device) -> torch.Tensor | None:
        """[len(rows), C] bool of the partial rows' classes; None when none of them is."""
        if self.sets is None:
            return None
        mask = partial_mask([self.sets[i] for i in rows], self.n_classes)
        return None if mask is None else mask.to(device)


def check_labelled(examples: Sequence[Example], name: str) -> None:
    for e in examples:
        if not isinstance(e.label, str) or not e.label:
            raise ValueError(f"{name} example {e.key!r} has no label")


def train_network(
    train: Sequence[Example],
    val: Sequence[Example],
    config: ModelConfig,
    labels: Sequence[str],
    device: torch.device,
    progress: Progress,
    *,
    pretrain_images: Sequence[bytes | None] = (),
    image_init: Mapping[str, torch.Tensor] | None = None,
    extra_texts: Sequence[str] = (),
    keyed_vectors: Any = None,
    warm_from: WarmSource | None = None,
) -> TrainedNetwork:
    """A network trained on ``train``; ``val`` picks its epoch (empty: every epoch is run).
    ``pretrain_images``: photos besides the training ones for the rotation pre-training.
    ``warm_from``: a trained network to start from (``model.warm``); its image encoder is
    taken as pre-trained."""
    net_cfg = config.network
    t0 = time.perf_counter()
    seed_everything(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    tokenizer = Tokenizer(mode=net_cfg.tokenizer)
    token_cache = CachedTokenizer(tokenizer)
    timings: dict[str, float] = {}
    history: dict[str, Any] = {}

    # 1. text: tokens, embeddings, vocabulary
    vocab = matrix = ngram_vocab = kv = ngram_idf = None
    if config.uses_text:
        corpus = list(token_cache([e.title or "" for e in train]))
        if config.uses_description:
            corpus += [t for t in token_cache([e.description or "" for e in train]) if t]
        kv = _keyed_vectors(keyed_vectors, config)
        if kv is None:
            extra = [t for t in token_cache([x for x in extra_texts if isinstance(x, str)]) if t]
            kv = train_embeddings(
                corpus + extra,
                kind=net_cfg.embedding,
                dim=net_cfg.embed_dim,
                epochs=net_cfg.embed_epochs,
                seed=config.seed,
                workers=1,
            )
        vocab = Vocab.build(corpus)
        if config.uses_description:
            vocab.add(SEP_TOKEN)
        matrix = embedding_matrix(vocab, kv, seed=config.seed)
        if net_cfg.char_ngram_max > 0:
            ngram_vocab, ngram_idf = _ngram_vocab(train, config)
        timings["embeddings_s"] = time.perf_counter() - t0
    progress.step()

    module = build_module(config, len(labels), vocab, matrix, ngram_vocab)
    if config.uses_text and net_cfg.subword:
        module.text_encoder.embedding = SubwordEmbedding.from_keyed_vectors(vocab, kv)
    if module.wide is not None:
        module.wide_idf.copy_(torch.from_numpy(ngram_idf))
    network = Network(
        config,
        module.to(device),
        vocab,
        tokenizer,
        ngram_vocab=ngram_vocab,
        pretrained_embeddings=matrix,
        token_cache=token_cache,
    )
    if warm_from is not None:
        history["warm_start"] = warm_start(network, labels, warm_from)
    index = {lab: i for i, lab in enumerate(labels)}
    tr = network.encode(items_of(train))
    va = network.encode(items_of(val))
    y_tr = Targets.of(train, labels)
    y_va = np.array([index.get(e.label, -1) for e in val], dtype=np.int64)

    # 2. image: self-supervised pre-training on all photos, then fine-tuning
    if config.uses_image:
        t1 = time.perf_counter()
        if warm_from is not None:  # the encoder it continues was pre-trained
            history["n_images"] = 0
            history["pretrain_loss"] = "warm start"
        elif image_init is not None:
            module.image_encoder.load_state_dict(dict(image_init))
            history["n_images"] = 0
            history["pretrain_loss"] = "image_init given"
        else:
            parts = [tr.pixels[tr.present]]
            if pretrain_images:
                extra, extra_present = decode_many(list(pretrain_images), config.image.image_size)
                parts.append(extra[extra_present])
            all_pixels = torch.cat(parts)
            history["n_images"] = int(all_pixels.shape[0])
            history["pretrain_loss"] = pretrain(
                module.image_encoder, all_pixels, config, device, progress.step
            )
            del all_pixels, parts
        timings["pretrain_s"] = time.perf_counter() - t1
        if config.uses_text and config.image.finetune_epochs > 0:
            t1 = time.perf_counter()
            history["finetune_loss"] = _finetune_image(
                network, tr, y_tr, len(labels), gen, progress
            )
            timings["finetune_s"] = time.perf_counter() - t1

    # 3. end-to-end training
    t1 = time.perf_counter()
    history.update(_epochs(network, tr, y_tr, va, y_va, gen, progress))
    timings["train_s"] = time.perf_counter() - t1
    network.module.eval()
    history["timings"] = timings
    network.history = history
    return TrainedNetwork(network, tr, kv)


def _keyed_vectors(keyed_vectors: Any, config: ModelConfig) -> Any:
    """The given vectors of the configured kind (a mapping ``{kind: vectors}`` or vectors),
    checked; ``None`` when there are none to use."""
    kv = keyed_vectors
    if isinstance(kv, Mapping):
        kv = kv.get(config.network.embedding)
    if kv is None:
        return None
    is_fasttext = getattr(kv, "bucket", 0) > 0
    if is_fasttext != (config.network.embedding == Embedding.FASTTEXT):
        raise ValueError(f"keyed_vectors are not {config.network.embedding} vectors")
    if int(kv.vector_size) != config.network.embed_dim:
        raise ValueError(
            f"keyed_vectors have dim {kv.vector_size}, config.embed_dim {config.network.embed_dim}"
        )
    return kv


def _ngram_vocab(train: Sequence[Example], config: ModelConfig) -> tuple[Vocab, np.ndarray]:
    """The character n-gram vocabulary and its smoothed idf (as scikit-learn's)."""
    net = config.network
    texts = [compose_text(e.title, e.description, config.uses_description) for e in train]
    gram_lists = [char_ngrams(t, net.char_ngram_min, net.char_ngram_max) for t in texts]
    vocab = Vocab.build(gram_lists, min_count=net.ngram_min_count)
    df = Counter(g for grams in gram_lists for g in grams)
    n_docs = len(gram_lists)
    idf = np.array(
        [0.0, 0.0] + [math.log((1 + n_docs) / (1 + df[g])) + 1.0 for g in vocab.itos[2:]],
        dtype=np.float32,
    )
    return vocab, idf


def _epochs(
    network: Network,
    tr: EncodedInputs,
    y_tr: Targets,
    va: EncodedInputs,
    y_va: np.ndarray,
    gen: torch.Generator,
    progress: Progress,
) -> dict[str, Any]:
    config, net_cfg, module = network.config, network.config.network, network.module
    device = network.device
    n_batches = math.ceil(len(tr) / net_cfg.batch_size)
    wide_params = list(module.wide.parameters()) if module.wide is not None else []
    wide_ids = {id(p) for p in wide_params}
    groups = [{"params": [p for p in module.parameters() if id(p) not in wide_ids]}]
    if wide_params:
        groups.append({"params": wide_params, "weight_decay": net_cfg.wide_weight_decay})
    optimiser = adamw(groups, lr=net_cfg.lr, weight_decay=net_cfg.weight_decay)
    # OneCycleLR divides by zero below ~20 steps (its warm-up would be under one step)
    steps = max(20, n_batches * net_cfg.epochs)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=net_cfg.lr, total_steps=steps, pct_start=0.1
    )
    scaler = grad_scaler(device)
    late = config.image.fusion == "late" and module.multimodal
    aux_weight = 1.0 if late else config.image.aux_weight
    best_acc, best_state, best_epoch = -1.0, None, 0
    history: dict[str, Any] = {}
    epoch_log = []
    for epoch in range(net_cfg.epochs):
        module.train()
        total_loss = 0.0
        for batch in torch.randperm(len(tr), generator=gen).split(net_cfg.batch_size):
            idx = batch.tolist()
            inputs = network.batch(tr, idx, train=True, gen=gen)
            target = y_tr.y[batch].to(device)
            allowed = y_tr.allowed(idx, device)
            with autocast(device):
                logits, _, aux = module(*inputs)
                loss = mixed_loss(logits.float(), target, allowed, net_cfg.label_smoothing)
                if aux_weight > 0 and aux:
                    loss = loss + aux_weight * mixed_loss(aux["text"].float(), target, allowed)
                    has = inputs[3]
                    if has is not None and has.any():
                        part = None if allowed is None else allowed[has]
                        loss = loss + aux_weight * mixed_loss(
                            aux["image"][has].float(), target[has], part
                        )
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimiser)
            torch.nn.utils.clip_grad_norm_(module.parameters(), 5.0)
            scaler.step(optimiser)
            scaler.update()
            scheduler.step()
            total_loss += float(loss.detach()) * len(idx)
            progress.step()
        entry = {"epoch": epoch + 1, "train_loss": total_loss / len(tr)}
        if len(va):
            val_logits, _ = network.run(va)
            entry["val_top1"] = float(np.mean(val_logits.argmax(axis=1) == y_va))
            if net_cfg.early_stopping and entry["val_top1"] > best_acc:
                best_acc, best_epoch = entry["val_top1"], epoch + 1
                best_state = copy.deepcopy(module.state_dict())
        epoch_log.append(entry)
        log.info("epoch %s", entry)
        stalled = epoch + 1 - best_epoch >= net_cfg.patience
        if len(va) and net_cfg.early_stopping and net_cfg.patience and stalled:
            history["stopped_early"] = epoch + 1
            progress.step(n_batches * (net_cfg.epochs - epoch - 1))
            log.info(
                "early stop after epoch %d: no better validation top-1 since epoch %d",
                epoch + 1,
                best_epoch,
            )
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    history["epochs"] = epoch_log
    history["best_epoch"] = best_epoch or net_cfg.epochs
    return history


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
    net, img = config.network, config.image
    with threads(config.num_threads):
        seed_everything(config.seed)
        pixels, present = decode_many(list(images), img.image_size)
        pixels = pixels[present]
        encoder = ImageEncoder(img.vgg_cfg, img.vgg_width, net.feature_dim, dropout=net.dropout)
        encoder = encoder.to(device)
        total = math.ceil(len(pixels) / net.batch_size) * img.pretrain_epochs
        prog = Progress(total, progress)
        pretrain(encoder, pixels, config, device, prog.step)
    return {k: v.detach().cpu() for k, v in encoder.state_dict().items()}


def pretrain(
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
        epochs=config.image.pretrain_epochs,
        batch_size=config.network.batch_size,
        lr=config.network.lr,
        device=device,
        seed=config.seed,
        amp=device.type == "cuda",
        progress=progress,
    )


def _finetune_image(
    network: Network,
    tr: EncodedInputs,
    y_tr: Targets,
    n_classes: int,
    gen: torch.Generator,
    progress: Progress,
) -> list[float]:
    """Supervised fine-tuning of the (pre-trained) image encoder on the target classes, with a
    temporary linear head, before the joint training."""
    config, device = network.config, network.device
    net = config.network
    encoder = network.module.image_encoder
    head = torch.nn.Linear(encoder.out_dim, n_classes).to(device)
    params = list(encoder.parameters()) + list(head.parameters())
    optimiser = adamw(params, lr=net.lr, weight_decay=net.weight_decay)
    rows = tr.present.nonzero(as_tuple=True)[0]
    scaler = grad_scaler(device)
    n_batches = math.ceil(len(tr) / net.batch_size)
    losses: list[float] = []
    encoder.train()
    for _ in range(config.image.finetune_epochs):
        total, count = 0.0, 0
        if len(rows):
            for batch in rows[torch.randperm(len(rows), generator=gen)].split(net.batch_size):
                x = augment(to_tensor(tr.pixels[batch]), gen).to(device)
                with autocast(device):
                    loss = mixed_loss(
                        head(encoder(x)).float(),
                        y_tr.y[batch].to(device),
                        y_tr.allowed(batch.tolist(), device),
                    )
                optimiser.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimiser)
                scaler.update()
                total += float(loss.detach()) * len(batch)
                count += len(batch)
        progress.step(n_batches)
        losses.append(total / max(count, 1))
    return losses
