"""Local emulator of the CLIP portal's wire format, with fault injection (see clip-portal.md).

Names are loaded lazily so ``python -m emulator.server`` does not import the
server module twice.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Corpus": "emulator.corpus",
    "EmulatorCase": "emulator.corpus",
    "demo_corpus": "emulator.corpus",
    "kcs_corpus": "emulator.corpus",
    "EmulatorServer": "emulator.server",
    "serve": "emulator.server",
}

__all__ = ["Corpus", "EmulatorCase", "EmulatorServer", "demo_corpus", "kcs_corpus", "serve"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'emulator' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
