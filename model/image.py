"""Image branch: a VGG-family encoder (512-d feature), image decoding and the paper's regime.

The paper trains VGGNet directly (poor) and, better, pre-trains it on ALL collected case images
before fine-tuning on the target classes. Case images have no labels beyond the code of their own
case, and many belong to codes outside the target classes, so pre-training here is
self-supervised: predict which of four rotations (0/90/180/270 degrees) was applied. That needs
no labels, uses every image (validation and unlabelled ones too) and teaches shape and
orientation features that the fine-tuning then reuses.

The encoder is torchvision's VGG feature stack (``torchvision.models.vgg.make_layers`` with the
standard ``cfgs`` A/B/D/E = VGG11/13/16/19), with a width multiplier and any input size, followed
by global average pooling and a projection to ``out_dim``. Weights are always initialised
randomly: nothing is downloaded.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import nn
from torchvision.models.vgg import cfgs as VGG_CFGS
from torchvision.models.vgg import make_layers

from model.runtime import adamw

log = logging.getLogger(__name__)

# Extra small stacks for tests and CPU benchmarks, in the same notation as torchvision's cfgs.
EXTRA_CFGS: dict[str, list[int | str]] = {
    "tiny": [16, "M", 32, "M", 64, "M"],
    "small": [32, "M", 64, "M", 128, 128, "M", 256, 256, "M"],
}
# Per-channel statistics used to normalise pixels (ImageNet's; only a fixed affine rescale here).
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def vgg_layout(cfg: str, width: float = 1.0) -> list[int | str]:
    """Layer list for a named VGG config ('A', 'B', 'D', 'E', 'tiny', 'small') scaled by ``width``."""
    key = cfg.upper() if cfg.upper() in VGG_CFGS else cfg.lower()
    base = VGG_CFGS.get(key) or EXTRA_CFGS.get(key)
    if base is None:
        names = sorted(VGG_CFGS) + sorted(EXTRA_CFGS)
        raise ValueError(f"unknown VGG config {cfg!r}; expected one of {names}")
    if width <= 0:
        raise ValueError("VGG width multiplier must be > 0")
    return [v if v == "M" else max(4, round(int(v) * width)) for v in base]


def min_input_size(layout: Sequence[int | str]) -> int:
    return 2 ** sum(1 for v in layout if v == "M")


class ImageEncoder(nn.Module):
    """VGG conv stack -> global average pool -> Linear -> LayerNorm -> GELU: ``out_dim`` features."""

    def __init__(
        self,
        cfg: str = "A",
        width: float = 1.0,
        out_dim: int = 512,
        batch_norm: bool = True,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        layout = vgg_layout(cfg, width)
        self.layout = layout
        self.features = make_layers(layout, batch_norm=batch_norm)
        channels = [v for v in layout if v != "M"][-1]
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.projection = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(int(channels), out_dim),
            nn.LayerNorm(out_dim),
            nn.GELU(),
        )
        self.out_dim = out_dim
        self.min_size = min_input_size(layout)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images``: float [B, 3, H, W], already normalised (see :func:`to_tensor`)."""
        if images.shape[-1] < self.min_size or images.shape[-2] < self.min_size:
            raise ValueError(
                f"input {tuple(images.shape[-2:])} is smaller than this VGG's minimum "
                f"{self.min_size}x{self.min_size}"
            )
        return self.projection(self.pool(self.features(images)))


# --- decoding ---------------------------------------------------------------------------------
def decode_image(data: bytes | None, size: int) -> np.ndarray | None:
    """Raw JPEG/PNG bytes -> uint8 [size, size, 3] (RGB, letter-boxed on white), or None.

    Unreadable, empty or truncated bytes give None (the caller treats the case as having no
    photo), never an exception: one bad upload must not fail a batch.
    """
    if not data:
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        log.debug("unreadable image (%d bytes): %s", len(data), exc)
        return None
    w, h = rgb.size
    if w < 1 or h < 1:
        return None
    # Keep the aspect ratio: pad to a square on white (catalogue and case photos are mostly on
    # a light background), then resize.
    side = max(w, h)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(rgb, ((side - w) // 2, (side - h) // 2))
    canvas = canvas.resize((size, size), Image.Resampling.BILINEAR)
    return np.array(canvas, dtype=np.uint8)


def decode_many(blobs: Sequence[bytes | None], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode a list of blobs: uint8 [N, 3, size, size] (zeros where missing) and a bool mask."""
    out = torch.zeros((len(blobs), 3, size, size), dtype=torch.uint8)
    present = torch.zeros(len(blobs), dtype=torch.bool)
    for i, blob in enumerate(blobs):
        arr = decode_image(blob, size)
        if arr is not None:
            out[i] = torch.from_numpy(arr).permute(2, 0, 1)
            present[i] = True
    return out, present


def to_tensor(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> normalised float [B, 3, H, W] on the same device."""
    x = pixels.float().div_(255.0)
    return (x - MEAN.to(x.device)) / STD.to(x.device)


def augment(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Cheap batched augmentation on normalised images: random horizontal flip and a random
    translation of up to 1/8 of the side (reflect padding then crop)."""
    b, _, h, w = x.shape
    flip = torch.rand(b, generator=generator) < 0.5
    x = torch.where(flip.to(x.device).view(b, 1, 1, 1), x.flip(-1), x)
    pad = max(1, h // 8)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).tolist()
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).tolist()
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])


# --- pre-training -----------------------------------------------------------------------------
def pretrain_rotation(
    encoder: ImageEncoder,
    pixels: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 2e-3,
    device: torch.device | str = "cpu",
    seed: int = 13,
    amp: bool = False,
    progress: Callable[[], None] | None = None,
) -> list[float]:
    """Self-supervised pre-training on unlabelled images: predict the rotation (0/90/180/270).

    ``pixels``: uint8 [N, 3, S, S] (square, so rotations keep the shape). Returns the mean loss
    per epoch. The rotation head is discarded afterwards; the encoder keeps its weights.
    """
    if pixels.shape[0] == 0 or epochs <= 0:
        return []
    device = torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    head = nn.Linear(encoder.out_dim, 4).to(device)
    params = list(encoder.parameters()) + list(head.parameters())
    optimiser = adamw(params, lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(pixels.shape[0] / batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps)
    scaler = torch.amp.GradScaler("cuda", enabled=amp and device.type == "cuda")
    encoder.train()
    losses: list[float] = []
    for _ in range(epochs):
        order = torch.randperm(pixels.shape[0], generator=generator)
        total, count = 0.0, 0
        for batch in order.split(batch_size):
            x = augment(to_tensor(pixels[batch]), generator)
            k = torch.randint(0, 4, (x.shape[0],), generator=generator)
            rotated = torch.stack([torch.rot90(img, int(r), dims=(1, 2)) for img, r in zip(x, k)])
            rotated, k = rotated.to(device), k.to(device)
            with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
                loss = F.cross_entropy(head(encoder(rotated)), k)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            scheduler.step()
            total += float(loss.detach()) * x.shape[0]
            count += x.shape[0]
            if progress is not None:
                progress()
        losses.append(total / max(count, 1))
        log.info("rotation pre-training epoch %d: loss %.4f", len(losses), losses[-1])
    return losses
