"""Ensemble members, one module each, registered in mixture order (``model.members.base``)."""

from model.members import heading, nearest, network, sentence, tfidf  # noqa: F401  (each registers its kinds)
from model.members.base import REGISTRY, Batch, FitContext, LoadContext, Member, kind_of

__all__ = ["REGISTRY", "Batch", "FitContext", "LoadContext", "Member", "kind_of"]
