"""From cases to model inputs: the one text composition, cached tokens, batch-ready arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from model.records import Example, RequestInput
from model.text import PAD
from model.tokenize import Tokenizer

# (title, description, image bytes) of one case or request
Item = tuple[str, str | None, bytes | None]
SEP_TOKEN = "<sep>"


def items_of(examples: Sequence[Example | RequestInput]) -> list[Item]:
    return [(e.title, e.description, e.image) for e in examples]


def compose_text(title: object, description: object, with_description: bool) -> str:
    """What every text member and the n-gram bag read: the title, plus " | description" when
    the model uses descriptions and there is one. Non-strings count as empty."""
    text = title if isinstance(title, str) else ""
    if with_description and isinstance(description, str) and description:
        return f"{text} | {description}"
    return text


def compose_texts(items: Sequence[Item], with_description: bool) -> list[str]:
    return [compose_text(t, d, with_description) for t, d, _ in items]


def title_texts(items: Sequence[Item]) -> list[str]:
    """Titles alone (the precedent space compares titles on both sides)."""
    return [t if isinstance(t, str) else "" for t, _, _ in items]


class CachedTokenizer:
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


class EncodedInputs:
    """Encoded batch-ready inputs of N cases: token ids (lists), n-gram bags, decoded pixels."""

    def __init__(
        self,
        ids: list[list[int]] | None,
        pixels: torch.Tensor | None,
        present: torch.Tensor | None,
        bags: list[list[int]] | None = None,
    ) -> None:
        self.ids = ids
        self.pixels = pixels
        self.present = present
        self.bags = bags

    def subset(self, idx: Sequence[int]) -> EncodedInputs:
        idx = [int(i) for i in idx]
        sel = torch.as_tensor(idx, dtype=torch.long)
        return EncodedInputs(
            None if self.ids is None else [self.ids[i] for i in idx],
            None if self.pixels is None else self.pixels[sel],
            None if self.present is None else self.present[sel],
            None if self.bags is None else [self.bags[i] for i in idx],
        )

    def __len__(self) -> int:
        if self.ids is not None:
            return len(self.ids)
        return 0 if self.pixels is None else int(self.pixels.shape[0])


def pad(seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max((len(s) for s in seqs), default=1) or 1
    ids = np.full((len(seqs), width), PAD, dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    return torch.from_numpy(ids), torch.from_numpy(lengths)
