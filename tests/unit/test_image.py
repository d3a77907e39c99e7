"""model.image: VGG-family encoder, decoding of case photos, rotation pre-training."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
import torch
from PIL import Image

from model.image import (
    ImageEncoder,
    augment,
    decode_image,
    decode_many,
    pretrain_rotation,
    to_tensor,
    vgg_layout,
)
from model.synthetic import draw_product


def _png(size=(30, 20), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (128,) * len(mode)).save(buf, format="PNG")
    return buf.getvalue()


def test_vgg_layouts():
    assert vgg_layout("A") == [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
    assert vgg_layout("d", 0.25)[:3] == [16, 16, "M"]  # VGG16 at quarter width
    assert vgg_layout("tiny", 0.1)[0] == 4  # never below 4 channels
    with pytest.raises(ValueError, match="unknown VGG config"):
        vgg_layout("Z")
    with pytest.raises(ValueError, match="width"):
        vgg_layout("A", 0)


@pytest.mark.parametrize(("cfg", "width", "size"), [("tiny", 0.5, 16), ("A", 0.0625, 32)])
def test_encoder_gives_512d_features(cfg, width, size):
    enc = ImageEncoder(cfg=cfg, width=width, out_dim=512)
    out = enc(torch.randn(2, 3, size, size))
    assert out.shape == (2, 512) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in enc.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="smaller than"):
        enc(torch.randn(1, 3, enc.min_size // 2, enc.min_size // 2))


def test_decode_image_variants():
    arr = decode_image(_png((30, 20)), 16)
    assert arr.shape == (16, 16, 3) and arr.dtype == np.uint8
    assert arr[0, 0].tolist() == [255, 255, 255]  # letter-boxed on white
    assert arr[8, 8].tolist() == [128, 128, 128]
    assert decode_image(_png((8, 8), "L"), 16).shape == (16, 16, 3)  # grayscale -> RGB
    assert decode_image(_png((8, 8), "RGBA"), 16).shape == (16, 16, 3)
    jpeg = draw_product("slab", random.Random(0), 40)
    assert decode_image(jpeg, 24).shape == (24, 24, 3)
    assert decode_image(None, 16) is None and decode_image(b"", 16) is None
    assert decode_image(b"not an image at all", 16) is None
    assert decode_image(jpeg[: len(jpeg) // 3], 16) is None  # truncated upload


def test_decode_many_and_tensor_helpers():
    pixels, present = decode_many([_png(), None, b"junk"], 16)
    assert pixels.shape == (3, 3, 16, 16) and pixels.dtype == torch.uint8
    assert present.tolist() == [True, False, False]
    assert pixels[1].sum() == 0
    x = to_tensor(pixels)
    assert x.dtype == torch.float32 and abs(float(x[0].mean())) < 3
    g = torch.Generator().manual_seed(0)
    assert augment(x, g).shape == x.shape


def test_rotation_pretraining_learns():
    rng = random.Random(0)
    blobs = [draw_product(rng.choice(["slab", "screen", "wedge"]), rng, 24) for _ in range(256)]
    pixels, present = decode_many(blobs, 24)
    assert present.all()
    torch.manual_seed(2)
    enc = ImageEncoder(cfg="tiny", width=0.5, out_dim=32)
    losses = pretrain_rotation(enc, pixels, epochs=12, batch_size=32, lr=1e-2, seed=2)
    assert len(losses) == 12
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.2
    assert np.mean(losses[-3:]) < np.log(4) - 0.2  # clearly better than chance
    assert pretrain_rotation(enc, pixels[:0], epochs=3) == []
