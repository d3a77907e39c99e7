"""model.fusion: joint / concat / late fusion of text and image features, missing photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.fusion import FusionModel
from model.image import ImageEncoder
from model.text import TextEncoder


def _model(fusion="joint", modality_dropout=0.0, text=True, image=True) -> FusionModel:
    torch.manual_seed(0)
    t = (
        TextEncoder(
            np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32), hidden=8, out_dim=32
        )
        if text
        else None
    )
    i = ImageEncoder(cfg="tiny", width=0.25, out_dim=32) if image else None
    return FusionModel(5, t, i, fusion=fusion, joint_dim=16, modality_dropout=modality_dropout)


def _batch(n=4):
    ids = torch.randint(2, 20, (n, 6))
    lengths = torch.tensor([6, 3, 1, 4][:n])
    images = torch.randn(n, 3, 16, 16)
    has = torch.tensor([True, False, True, False][:n])
    return ids, lengths, images, has


@pytest.mark.parametrize(("fusion", "dim"), [("joint", 16), ("concat", 64), ("late", 64)])
def test_shapes(fusion, dim):
    model = _model(fusion).eval()
    logits, feature, aux = model(*_batch())
    assert logits.shape == (4, 5) and feature.shape == (4, dim) == (4, model.feature_dim)
    assert set(aux) == ({"text", "image"} if fusion == "late" else set())


@pytest.mark.parametrize("fusion", ["joint", "concat", "late"])
def test_missing_photo_uses_learned_embedding(fusion):
    model = _model(fusion).eval()
    ids, lengths, images, has = _batch()
    a, _, _ = model(ids, lengths, images, has)
    b, _, _ = model(ids, lengths, torch.randn_like(images) * 9, has)
    # rows without a photo ignore whatever pixels sit in their slot; rows with one do not
    torch.testing.assert_close(a[~has], b[~has])
    assert not torch.allclose(a[has], b[has])
    none, _, _ = model(ids, lengths, None, None)
    torch.testing.assert_close(none[~has], a[~has])
    if fusion == "late":  # a missing photo simply does not vote
        return
    # the missing-image embedding is trained
    model.train()
    model(ids, lengths, images, has)[0].sum().backward()
    assert model.missing_image.grad is not None and model.missing_image.grad.abs().sum() > 0


def test_late_fusion_without_photo_is_text_only():
    model = _model("late").eval()
    ids, lengths, images, has = _batch()
    logits, _, aux = model(ids, lengths, images, has)
    text_lp = torch.log_softmax(aux["text"], 1)
    torch.testing.assert_close(logits[~has], text_lp[~has])


def test_modality_dropout_only_in_training():
    model = _model("joint", modality_dropout=0.5)
    n = 400
    ids = torch.randint(2, 20, (n, 5))
    lengths = torch.full((n,), 5)
    has = torch.ones(n, dtype=torch.bool)
    images, other = torch.randn(n, 3, 16, 16), torch.randn(n, 3, 16, 16)

    def photo_ignored(train: bool) -> float:
        model.train(train)
        torch.manual_seed(5)  # same dropout draws in both calls
        a = model(ids, lengths, images, has)[1]
        torch.manual_seed(5)
        b = model(ids, lengths, other, has)[1]
        return float(torch.isclose(a, b).all(dim=1).float().mean())

    assert photo_ignored(False) == 0.0  # inference always uses the photo
    assert 0.4 < photo_ignored(True) < 0.6  # training hides it for about half the cases


def test_single_modality_and_errors():
    text_only = _model(image=False).eval()
    logits, feature, _ = text_only(*_batch()[:2])
    assert logits.shape == (4, 5) and feature.shape == (4, 32)
    image_only = _model(text=False).eval()
    _, _, images, has = _batch()
    logits, feature, _ = image_only(images=images, has_image=has)
    assert logits.shape == (4, 5)
    with pytest.raises(ValueError, match="needs a text encoder"):
        FusionModel(3)
    with pytest.raises(ValueError, match="unknown fusion"):
        _model("sum")
    with pytest.raises(ValueError, match="modality_dropout"):
        _model(modality_dropout=1.0)
    with pytest.raises(ValueError, match="needs text ids"):
        text_only()
