"""Losses shared by the networks and the sentence head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def partial_mask(sets: Sequence[Sequence[int]], n_classes: int) -> torch.Tensor | None:
    """[len(sets), n_classes] bool with each row's partial-label classes (an exact row: an
    empty set, all False); None when no row has a set, so :func:`mixed_loss` is plain
    cross-entropy."""
    if not any(sets):
        return None
    mask = torch.zeros(len(sets), n_classes, dtype=torch.bool)
    for row, classes in enumerate(sets):
        if classes:
            mask[row, list(classes)] = True
    return mask


def set_nll(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Per row, minus the log of the probability summed over the ``allowed`` classes
    ([N, C] bool): a partial label rewards probability on any code of its set, and sends no
    gradient to how it is shared among them. One allowed class: plain cross-entropy."""
    masked = logits.masked_fill(~allowed, float("-inf"))
    return torch.logsumexp(logits, dim=1) - torch.logsumexp(masked, dim=1)


def mixed_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    allowed: torch.Tensor | None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Mean loss over a batch of exact labels (``target`` >= 0: cross-entropy with label
    smoothing) and partial ones (``target`` -1, their sets in ``allowed``: :func:`set_nll`).
    Without partial rows (``allowed`` None) it is exactly ``F.cross_entropy``."""
    if allowed is None:
        return F.cross_entropy(logits, target, label_smoothing=label_smoothing)
    exact = target >= 0
    total = logits.new_zeros(())
    if exact.any():
        total = total + F.cross_entropy(
            logits[exact], target[exact], label_smoothing=label_smoothing, reduction="sum"
        )
    partial = ~exact
    if partial.any():
        total = total + set_nll(logits[partial], allowed[partial]).sum()
    return total / len(target)
