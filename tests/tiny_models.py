"""The tiny network recipe the model tests train with (seconds on one thread), shared."""

from __future__ import annotations

from typing import Any

# ModelConfig.from_flat names; a test adds or overrides what it exercises
TINY_NETWORK: dict[str, Any] = {
    "embed_dim": 16,
    "embed_epochs": 2,
    "hidden": 16,
    "feature_dim": 32,
    "epochs": 3,
    "batch_size": 16,
    "lr": 5e-3,
    "num_threads": 1,
}
