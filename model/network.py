"""A trained network with what it needs to read inputs: vocabulary, tokenizer, n-grams.

:class:`Network` is one BiLSTM text encoder and/or VGG image encoder with its fusion head
(``model.fusion.FusionModel``) plus its encoding: the main network of a model and the
companion member are both ``Network``s. It encodes cases, runs them in batches (raw logits
and L2-normalised features), and saves / loads itself as plain files in a folder of its own
(``weights.pt`` state dict, ``vocab.json``, ``ngrams.json``, ``embeddings.npy``); the rest of
what defines it (config, tokenizer, history) goes into the model's manifest
(``model.artifact``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from model.config import ModelConfig
from model.encoding import (
    SEP_TOKEN,
    CachedTokenizer,
    EncodedInputs,
    Item,
    compose_texts,
    pad,
)
from model.fusion import FusionModel
from model.image import ImageEncoder, augment, decode_many, to_tensor
from model.runtime import autocast, resolve_device
from model.text import UNK, SubwordEmbedding, TextEncoder, Vocab, char_ngrams
from model.tokenize import Tokenizer


class Network:
    """A trained ``FusionModel`` over ``n_classes`` codes and its input encoding."""

    def __init__(
        self,
        config: ModelConfig,
        module: FusionModel,
        vocab: Vocab | None,
        tokenizer: Tokenizer,
        ngram_vocab: Vocab | None = None,
        pretrained_embeddings: np.ndarray | None = None,
        token_cache: CachedTokenizer | None = None,
    ) -> None:
        self.config = config
        self.module = module.eval()
        self.vocab = vocab
        self.tokenizer = tokenizer
        self.ngram_vocab = ngram_vocab
        self.pretrained_embeddings = pretrained_embeddings
        self.token_cache = token_cache or CachedTokenizer(tokenizer)
        self.history: dict[str, Any] = {}

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    @property
    def feature_dim(self) -> int:
        return self.module.feature_dim

    def share_tokens(self, other: Network) -> None:
        """Use ``other``'s token cache when both tokenise alike (a request is tokenised once
        for both networks)."""
        if other.tokenizer.to_config() == self.tokenizer.to_config():
            self.token_cache = other.token_cache

    # --- encoding ---------------------------------------------------------------------------
    def encode(self, items: Sequence[Item]) -> EncodedInputs:
        cfg, net = self.config, self.config.network
        ids = None
        if cfg.uses_text:
            title_tokens = self.token_cache([t if isinstance(t, str) else "" for t, _, _ in items])
            if cfg.uses_description:
                desc_tokens = self.token_cache(
                    [d if isinstance(d, str) else "" for _, d, _ in items]
                )
                token_lists = [
                    (a + [SEP_TOKEN] + b) if b else a
                    for a, b in zip(title_tokens, desc_tokens, strict=True)
                ]
            else:
                token_lists = title_tokens
            stoi = self.vocab.stoi
            token_lists = [toks[: net.max_len] for toks in token_lists]
            embedding = self.module.text_encoder.embedding
            if isinstance(embedding, SubwordEmbedding):
                ids = [row or [UNK] for row in embedding.encode(token_lists, stoi)]
            else:
                ids = [[stoi.get(t, UNK) for t in toks] or [UNK] for toks in token_lists]
        bags = None
        if cfg.uses_text and self.ngram_vocab is not None:
            gstoi = self.ngram_vocab.stoi
            bags = [
                [
                    gstoi[g]
                    for g in char_ngrams(text, net.char_ngram_min, net.char_ngram_max)
                    if g in gstoi
                ]
                or [UNK]
                for text in compose_texts(items, cfg.uses_description)
            ]
        pixels = present = None
        if cfg.uses_image:
            pixels, present = decode_many([img for _, _, img in items], cfg.image.image_size)
        return EncodedInputs(ids, pixels, present, bags)

    def batch(self, data: EncodedInputs, idx: Sequence[int], train: bool = False, gen=None):
        """The module's forward arguments for rows ``idx`` of ``data``, on its device."""
        ids = lengths = images = has_image = bag_ids = bag_offsets = None
        dev = self.device
        if data.ids is not None:
            ids, lengths = pad([data.ids[i] for i in idx])
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

    def run(self, data: EncodedInputs, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """Raw logits [N, C] and L2-normalised features [N, D], in input order."""
        n = len(data)
        logits = np.zeros((n, self.module.n_classes), dtype=np.float32)
        feats = np.zeros((n, self.feature_dim), dtype=np.float32)
        if n == 0:
            return logits, feats
        # Similar lengths together: less padding for the LSTM.
        order = (
            np.argsort([len(s) for s in data.ids], kind="stable")
            if data.ids is not None
            else np.arange(n)
        )
        self.module.eval()
        with torch.inference_mode(), autocast(self.device):
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                out, feat, _ = self.module(*self.batch(data, idx))
                logits[idx] = out.float().cpu().numpy()
                feats[idx] = F.normalize(feat.float(), dim=1).cpu().numpy()
        return logits, feats

    def logits(self, items: Sequence[Item]) -> np.ndarray:
        return self.run(self.encode(items))[0]

    # --- persistence ------------------------------------------------------------------------
    def save(self, directory: Path) -> dict[str, Any]:
        """Write the arrays into ``directory``; return the manifest entry that describes it."""
        directory.mkdir(parents=True, exist_ok=True)
        vocab = self.vocab.to_dict() if self.vocab is not None else None
        (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), "utf-8")
        ngrams = directory / "ngrams.json"
        ngrams.unlink(missing_ok=True)
        if self.ngram_vocab is not None:
            ngrams.write_text(json.dumps(self.ngram_vocab.to_dict(), ensure_ascii=False), "utf-8")
        state = {k: v.detach().cpu() for k, v in self.module.state_dict().items()}
        torch.save(state, directory / "weights.pt")
        emb = directory / "embeddings.npy"
        emb.unlink(missing_ok=True)
        if self.pretrained_embeddings is not None:
            np.save(emb, self.pretrained_embeddings, allow_pickle=False)
        return {
            "config": self.config.to_dict(),
            "n_classes": self.module.n_classes,
            "tokenizer": self.tokenizer.to_config(),
            "history": self.history,
        }

    @classmethod
    def load(cls, directory: Path, entry: Mapping[str, Any], device: str = "cpu") -> Network:
        config = ModelConfig.from_dict(entry["config"])
        vocab_data = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
        vocab = Vocab.from_dict(vocab_data) if vocab_data else None
        ngram_path = directory / "ngrams.json"
        ngram_vocab = (
            Vocab.from_dict(json.loads(ngram_path.read_text(encoding="utf-8")))
            if ngram_path.is_file()
            else None
        )
        state = torch.load(directory / "weights.pt", map_location="cpu", weights_only=True)
        module = build_module(config, int(entry["n_classes"]), vocab, None, ngram_vocab, state)
        module.load_state_dict(state)
        module.to(resolve_device(device))
        emb_path = directory / "embeddings.npy"
        network = cls(
            config,
            module,
            vocab,
            Tokenizer.from_config(entry["tokenizer"]),
            ngram_vocab=ngram_vocab,
            pretrained_embeddings=np.load(emb_path) if emb_path.is_file() else None,
        )
        network.history = dict(entry.get("history") or {})
        return network


def build_module(
    config: ModelConfig,
    n_classes: int,
    vocab: Vocab | None,
    matrix: np.ndarray | None,
    ngram_vocab: Vocab | None = None,
    state: Mapping[str, torch.Tensor] | None = None,
) -> FusionModel:
    """The untrained module; with ``state`` (a saved state dict) shaped to load it."""
    net, img = config.network, config.image
    text_encoder = image_encoder = None
    if config.uses_text:
        if matrix is None:
            matrix = np.zeros((len(vocab), net.embed_dim), dtype=np.float32)
        text_encoder = TextEncoder(
            matrix,
            hidden=net.hidden,
            layers=net.lstm_layers,
            out_dim=net.feature_dim,
            dropout=net.dropout,
            ngram_vocab_size=len(ngram_vocab) if ngram_vocab is not None else 0,
            ngram_dim=net.ngram_dim,
        )
        prefix = "text_encoder.embedding."
        if state is not None and prefix + "flat" in state:
            text_encoder.embedding = SubwordEmbedding(
                **SubwordEmbedding.shapes_from_state(dict(state), prefix)
            )
    if config.uses_image:
        image_encoder = ImageEncoder(
            cfg=img.vgg_cfg,
            width=img.vgg_width,
            out_dim=net.feature_dim,
            dropout=net.dropout,
        )
    return FusionModel(
        n_classes,
        text_encoder=text_encoder,
        image_encoder=image_encoder,
        fusion=img.fusion,
        joint_dim=net.feature_dim,
        dropout=net.dropout,
        modality_dropout=img.modality_dropout,
        wide_vocab_size=len(ngram_vocab) if (net.wide and ngram_vocab is not None) else 0,
    )
