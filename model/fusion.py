"""Fusion of the 512-d text and image features into one classifier, trained end to end.

- ``joint`` (the paper's joint representation, after the multimodal DBM of Srivastava &
  Salakhutdinov): the two 512-d features are concatenated and mapped by a shared hidden layer
  (Linear -> LayerNorm -> GELU) into one joint vector that the classifier reads; the joint
  vector is also the feature used to find precedents. (A first version with a separate hidden
  layer per modality before the joint layer learnt markedly slower on the fashion benchmark.)
- ``concat``: a linear classifier on the plain concatenation [text; image].
- ``late``: one classifier per modality; their log-probabilities are summed (a product of
  experts); without a photo only the text expert votes.

A case without a photo is normal: its image feature is a learned "missing image" embedding.
``modality_dropout`` p hides the photo of a share p of the training cases that have one, and
the text of another share p/2 of them (never both), so the model learns to use each modality
alone and does not lean on one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.config import Fusion

FUSIONS = tuple(f.value for f in Fusion)


class FusionModel(nn.Module):
    """Text and/or image encoders plus a fusion head. At least one encoder is required."""

    def __init__(
        self,
        n_classes: int,
        text_encoder: nn.Module | None = None,
        image_encoder: nn.Module | None = None,
        fusion: str = "joint",
        joint_dim: int = 512,
        dropout: float = 0.3,
        modality_dropout: float = 0.0,
        wide_vocab_size: int = 0,
    ) -> None:
        super().__init__()
        if text_encoder is None and image_encoder is None:
            raise ValueError("FusionModel needs a text encoder, an image encoder or both")
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; expected one of {FUSIONS}")
        if not 0.0 <= modality_dropout < 1.0:
            raise ValueError("modality_dropout must be in [0, 1)")
        self.n_classes = n_classes
        self.text_encoder = text_encoder
        self.image_encoder = image_encoder
        self.fusion = fusion
        self.modality_dropout = modality_dropout
        self.multimodal = text_encoder is not None and image_encoder is not None
        t_dim = text_encoder.out_dim if text_encoder is not None else 0
        i_dim = image_encoder.out_dim if image_encoder is not None else 0
        if image_encoder is not None:
            self.missing_image = nn.Parameter(torch.randn(i_dim) * 0.02)
        if self.multimodal:
            self.missing_text = nn.Parameter(torch.randn(t_dim) * 0.02)
        self.drop = nn.Dropout(dropout)
        if not self.multimodal:
            self.feature_dim = t_dim or i_dim
            self.head = nn.Linear(self.feature_dim, n_classes)
        elif fusion == "joint":
            self.joint = nn.Sequential(
                nn.Linear(t_dim + i_dim, joint_dim),
                nn.LayerNorm(joint_dim),
                nn.GELU(),
            )
            self.feature_dim = joint_dim
            self.head = nn.Linear(joint_dim, n_classes)
        elif fusion == "concat":
            self.feature_dim = t_dim + i_dim
            self.head = nn.Linear(self.feature_dim, n_classes)
        else:  # late
            self.feature_dim = t_dim + i_dim
            self.text_head = nn.Linear(t_dim, n_classes)
            self.image_head = nn.Linear(i_dim, n_classes)
        # "wide" part: a linear classifier on the L2-normalised TF-IDF bag of character n-grams,
        # added to the logits (wide & deep); idf weights are a buffer set by the trainer.
        self.wide = None
        if wide_vocab_size > 0:
            if text_encoder is None:
                raise ValueError("the wide n-gram part needs text inputs")
            self.wide = nn.EmbeddingBag(wide_vocab_size, n_classes, mode="sum")
            nn.init.zeros_(self.wide.weight)
            self.register_buffer("wide_idf", torch.ones(wide_vocab_size))

    def _wide_logits(self, ngram_ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        batch = offsets.shape[0]
        sizes = torch.diff(offsets, append=offsets.new_tensor([ngram_ids.shape[0]]))
        rows = torch.repeat_interleave(torch.arange(batch, device=offsets.device), sizes)
        w = self.wide_idf[ngram_ids]
        norm = torch.zeros(batch, device=w.device, dtype=w.dtype).index_add_(0, rows, w * w)
        w = w / norm.clamp_min(1e-12).sqrt()[rows]
        return self.wide(ngram_ids, offsets, per_sample_weights=w)

    # ------------------------------------------------------------------------------------
    def _image_features(
        self, images: torch.Tensor | None, has_image: torch.Tensor | None, batch: int, device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        base = self.missing_image.unsqueeze(0).expand(batch, -1)
        if images is None or has_image is None:
            return base, torch.zeros(batch, dtype=torch.bool, device=device)
        has_image = has_image.to(device)
        idx = has_image.nonzero(as_tuple=True)[0]
        if idx.numel() == 0:
            return base, has_image
        feats = self.image_encoder(images[idx])
        return base.index_put((idx,), feats.to(base.dtype)), has_image

    def forward(
        self,
        ids: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
        images: torch.Tensor | None = None,
        has_image: torch.Tensor | None = None,
        ngram_ids: torch.Tensor | None = None,
        ngram_offsets: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Returns (logits [B, C], feature [B, feature_dim], auxiliary logits by modality).

        ``images`` holds every row of the batch (rows without a photo are ignored) or None;
        ``has_image`` is a bool mask [B]; ``ngram_ids``/``ngram_offsets`` feed a text encoder
        that has a character n-gram bag.
        """
        if ids is not None:
            batch, device = ids.shape[0], ids.device
        elif images is not None:
            batch, device = images.shape[0], images.device
        else:
            raise ValueError("forward needs text ids, images or both")
        aux: dict[str, torch.Tensor] = {}

        if not self.multimodal:
            if self.text_encoder is not None:
                feature = self.text_encoder(ids, lengths, ngram_ids, ngram_offsets)
            else:
                feature, _ = self._image_features(images, has_image, batch, device)
            logits = self.head(self.drop(feature))
            if self.wide is not None:
                logits = logits + self._wide_logits(ngram_ids, ngram_offsets).to(logits.dtype)
            return logits, feature, aux

        text = self.text_encoder(ids, lengths, ngram_ids, ngram_offsets)
        image, present = self._image_features(images, has_image, batch, device)
        if self.training and self.modality_dropout > 0:
            r = torch.rand(batch, device=device)
            drop_image = present & (r < self.modality_dropout)
            drop_text = present & (r >= 1.0 - self.modality_dropout / 2) & ~drop_image
            image = torch.where(drop_image[:, None], self.missing_image.to(image.dtype), image)
            text = torch.where(drop_text[:, None], self.missing_text.to(text.dtype), text)
            present = present & ~drop_image

        if self.fusion == "joint":
            feature = self.joint(torch.cat([text, image], dim=1))
            logits = self.head(self.drop(feature))
        elif self.fusion == "concat":
            feature = torch.cat([text, image], dim=1)
            logits = self.head(self.drop(feature))
        else:
            feature = torch.cat([text, image], dim=1)
            t_logits = self.text_head(self.drop(text))
            i_logits = self.image_head(self.drop(image))
            aux = {"text": t_logits, "image": i_logits}
            weight = present.to(t_logits.dtype)[:, None]
            logits = F.log_softmax(t_logits.float(), dim=1) + weight * F.log_softmax(
                i_logits.float(), dim=1
            )
        if self.wide is not None:
            logits = logits + self._wide_logits(ngram_ids, ngram_offsets).to(logits.dtype)
        return logits, feature, aux
