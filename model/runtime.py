"""Where and how the model computes: device, threads, seeds, mixed precision, JSON safety."""

from __future__ import annotations

import contextlib
import functools
import math
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Torch intra-op threads set to ``n`` inside the block (``None``: left as they are)."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_jobs() -> int:
    """Threads for a fit outside torch (the SVMs' ``fit_one_vs_rest``): the torch threads the
    enclosing :func:`threads` block set, so one setting sizes every stage of a fit."""
    return torch.get_num_threads()


@functools.cache
def cpu_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AMX or AVX-512 BF16, read from
    ``/proc/cpuinfo``; False where there is none). There a bf16 product with fp32 accumulation
    is several times faster than an fp32 one (docs/benchmarks.md section 17); elsewhere the
    callers keep fp32 (bf16 without these units was not measured)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return re.search(r"\b(amx_bf16|avx512_bf16)\b", flags) is not None


def matmul_dtype() -> torch.dtype:
    """The precision of the CPU's big inference products (the sentence encoder, the nearest
    case, the precedent search): bf16 (fp32 accumulation) where :func:`cpu_bf16`, else fp32.
    A bf16 cosine is within about 2e-3 of the fp32 one."""
    return torch.bfloat16 if cpu_bf16() else torch.float32


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def adamw(params: Any, lr: float, weight_decay: float = 0.0) -> torch.optim.AdamW:
    """The one optimiser of every network, head and encoder: AdamW in its fused kernel (one
    pass over each parameter, on the CPU and on CUDA). The default (``foreach``) kernel reads
    and writes every tensor several times: on tensors of the companion's embedding tables
    (27.8 M parameters) a step took 158 ms against 13 ms fused; in the companion's epoch the
    optimiser took 24 of 41 s before, 2.6 of 20 s after (docs/benchmarks.md section 19a). The same update either way; ``weight_decay=0`` is Adam."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 (or fp16) autocast on CUDA; nothing on the CPU."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    """A loss scaler for fp16 on CUDA; disabled (a no-op) on the CPU and with bf16."""
    fp16 = device.type == "cuda" and not torch.cuda.is_bf16_supported()
    return torch.amp.GradScaler("cuda", enabled=fp16)


def json_safe(value: Any) -> Any:
    """NaN/inf -> None (strict JSON and Postgres JSONB reject NaN), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value
