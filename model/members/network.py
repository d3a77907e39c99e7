"""The members that are networks: the main network itself, and the companion network.

``network``: the model's main network (``model.train_loop``); its scores are its logits,
computed once per batch by the composed model (they also index precedents when there is no
sentence encoder). ``companion``: a second, text-only network on other embeddings
(``ModelConfig.companion_config``): two networks disagree more than one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from model.config import MemberName, ModelConfig
from model.members.base import Batch, FitContext, LoadContext, MemberKind, register
from model.network import Network
from model.train_loop import Progress, network_steps, train_network


class NetworkMember:
    name: ClassVar[MemberName] = MemberName.NETWORK

    def __init__(self, network: Network) -> None:
        self.network = network

    def scores(self, batch: Batch) -> np.ndarray:
        if batch.network_logits is None:
            return self.network.logits(batch.items)
        return batch.network_logits

    def save(self, directory: Path) -> dict[str, Any]:
        return {}  # the main network is saved by the model (model.artifact)


register(
    MemberKind(
        name=MemberName.NETWORK,
        fit=lambda ctx: NetworkMember(ctx.network),
        refit=lambda previous, ctx: NetworkMember(ctx.network),
        load=lambda entry, ctx: NetworkMember(ctx.network),
        on_all_validation=False,
    )
)


class CompanionMember:
    name: ClassVar[MemberName] = MemberName.COMPANION
    PATH = "companion"

    def __init__(self, network: Network) -> None:
        self.network = network

    def scores(self, batch: Batch) -> np.ndarray:
        return self.network.logits(batch.items)

    def save(self, directory: Path) -> dict[str, Any]:
        return {"path": self.PATH, **self.network.save(directory / self.PATH)}


def companion_steps(config: ModelConfig, n_train: int) -> int:
    """Progress steps of the companion's training (its own one-step wrap-up included)."""
    return network_steps(config.companion_config(), n_train, 0, True) + 1


def _train(config: ModelConfig, ctx: FitContext) -> CompanionMember:
    n_steps = network_steps(config, len(ctx.examples), 0, True)
    outer = ctx.progress
    progress = Progress(n_steps, (lambda done, total: outer.step()) if outer else None)
    network = train_network(
        ctx.examples,
        ctx.val,
        config,
        ctx.labels,
        ctx.device,
        progress,
        extra_texts=ctx.extra_texts,
        keyed_vectors=ctx.keyed_vectors,
    ).network
    if outer is not None:
        outer.step()
    network.share_tokens(ctx.network)
    return CompanionMember(network)


def best_epoch(network: Network) -> int:
    """The epoch validation chose for ``network`` (every epoch when it chose none)."""
    best = int(network.history.get("best_epoch") or 0)
    return best if best >= 1 else int(network.config.network.epochs)


def fixed_epochs(config: ModelConfig, epochs: int) -> ModelConfig:
    """``config`` trained for exactly ``epochs`` (no early stopping): a refit's recipe."""
    return replace(config, network=replace(config.network, epochs=epochs, early_stopping=False))


def _refit(previous: CompanionMember, ctx: FitContext) -> CompanionMember:
    return _train(fixed_epochs(previous.network.config, best_epoch(previous.network)), ctx)


def _load(entry: Mapping[str, Any], ctx: LoadContext) -> CompanionMember:
    path = ctx.directory / entry.get("path", CompanionMember.PATH)
    if not (path / "weights.pt").is_file():
        raise ValueError(f"model at {ctx.directory}: the mixture needs its companion/ network")
    network = Network.load(path, entry, device=ctx.device)
    network.share_tokens(ctx.network)
    return CompanionMember(network)


register(
    MemberKind(
        name=MemberName.COMPANION,
        fit=lambda ctx: _train(ctx.config.companion_config(), ctx),
        refit=_refit,
        load=_load,
        on_all_validation=False,
    )
)
