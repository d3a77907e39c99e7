"""The ensemble chosen on validation: members fitted, mixture cross-fitted, temperature.

:func:`fit_ensemble` fits every configured member in mixture order (``model.members``) on the
training cases; every member scores all of validation. The mixture (member temperatures and
weights) is :func:`model.calibrate.choose_mixture`'s: cross-fitted on the two parts of the
validation split, and replaced by the best member alone when that member ranks better than
the mixture out of fold. The final temperature and the top-label recalibration are fitted on
those out-of-fold scores of the whole validation set (twice the data of one part). A member
the mixture weighs 0 is dropped (never computed, not saved) unless a kept member needs it.
With ``refit_members`` the members that choose nothing on validation are then refitted on
train + validation (more data; their scale is set by the member temperatures already chosen).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from model.calibrate import TopLabelCalibrator, choose_mixture, ece, fit_temperature, softmax
from model.config import MemberName
from model.encoding import items_of
from model.hsmodel import HSModel
from model.members import REGISTRY, Batch, FitContext, Member, kind_of
from model.records import Example

log = logging.getLogger(__name__)


def fit_members(
    names: Sequence[MemberName], ctx: FitContext, seconds: dict[str, float] | None = None
) -> dict[MemberName, Member]:
    """Fit the named members on ``ctx.examples``, in order (a member sees those before it);
    each one's wall time goes to ``seconds`` (by name) when given."""
    for name in names:
        t0 = time.perf_counter()
        ctx.fitted[name] = kind_of(name).fit(ctx)
        if seconds is not None:
            seconds[str(name)] = time.perf_counter() - t0
    return {name: ctx.fitted[name] for name in names}


def refit_members(
    previous: dict[MemberName, Member],
    ctx: FitContext,
    seconds: dict[str, float] | None = None,
) -> dict[MemberName, Member]:
    """Each of ``previous``'s members trained again on ``ctx.examples`` (mixture order);
    each one's wall time goes to ``seconds`` (by name) when given."""
    for name, member in previous.items():
        t0 = time.perf_counter()
        ctx.fitted[name] = kind_of(name).refit(member, ctx)
        if seconds is not None:
            seconds[str(name)] = time.perf_counter() - t0
    return dict(ctx.fitted)


def fit_top_calibration(model: HSModel, logits: np.ndarray, labels: np.ndarray) -> None:
    """Platt-scale the top-1 confidence on held-out logits (after the temperature)."""
    if model.config.calibration.top_label:
        model.top_calibration = TopLabelCalibrator.fit(softmax(logits, model.temperature), labels)


def calibrate_network(model: HSModel, cal: Sequence[Example], history: dict[str, Any]) -> None:
    """Without an ensemble: temperature and top-label step on the network's logits of the
    calibration part of validation."""
    if not cal:
        return
    logits = model.neural_logits(cal)
    y = model.label_indices([e.label for e in cal])
    model.temperature = fit_temperature(logits, y)
    fit_top_calibration(model, logits, y)
    history["calibration"] = {
        "n": len(cal),
        "ece_before": ece(softmax(logits, 1.0), y),
        "ece_temperature": ece(softmax(logits, model.temperature), y),
        "ece_after": ece(model.calibrated(logits), y),
        "top_calibration": model.top_calibration.to_dict(),
    }


def fit_ensemble(
    model: HSModel,
    ctx: FitContext,
    val: Sequence[Example],
    stop_idx: np.ndarray,
    cal_idx: np.ndarray,
    history: dict[str, Any],
    before_refit: Callable[[], None] | None = None,
) -> None:
    """Choose the mixture and the final temperature on validation; never on anything else.
    ``before_refit`` runs once the model is complete and before members are refitted on
    train + validation (``refit_members``): the last moment validation is held out."""
    cfg = model.config
    names = cfg.members
    model.member_names = names
    # wall seconds of each step: every member's fit, scoring validation, choosing the mixture
    seconds: dict[str, float] = {}
    model.members = fit_members(names, ctx, seconds)
    t0 = time.perf_counter()
    companion = model.member(MemberName.COMPANION)
    if companion is not None:  # recorded before a weight of 0 drops it
        history["companion"] = {
            k: companion.network.history.get(k) for k in ("best_epoch", "epochs", "timings")
        }
    sentence = model.member(MemberName.SENTENCE)
    if sentence is not None:
        history["sentence"] = {
            "best_epoch": sentence.head.best_epoch,
            "epochs": sentence.head.epochs_run,
        }
    items = items_of(val)
    batch = Batch(items, cfg.uses_description, model.network.logits(items))
    scores = model.member_scores(batch)
    seconds["score_validation"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    y = model.label_indices([e.label for e in val])
    separate = len(stop_idx) + len(cal_idx) == len(val)
    choice = choose_mixture(scores, y, (stop_idx, cal_idx) if separate else None)
    mixture, oof = choice.mixture, choice.oof
    model.mixture = mixture
    model.temperature = fit_temperature(oof, y)
    fit_top_calibration(model, oof, y)
    seconds["mixture_and_calibration"] = time.perf_counter() - t0
    svm = model.member(MemberName.SVM)
    history["ensemble"] = {
        "kind": str(cfg.ensemble.kind),
        "members": [str(n) for n in names],
        **mixture.to_dict(),
        "n_features": int(svm.svm.coef.shape[0]) if svm is not None else None,
        "sentence_encoder": str(cfg.ensemble.sentence_encoder),
        **{f"val_top1_{m}": t for m, t in zip(names, choice.member_top1, strict=True)},
        "val_top1_mixed_out_of_fold": choice.mixed_top1,
        "single_member": None if choice.single is None else str(names[choice.single]),
        "cross_fitted": separate,
    }
    history["calibration"] = {
        "n": len(val),
        "out_of_fold": separate,
        "ece_before": ece(softmax(oof, 1.0), y),
        "ece_temperature": ece(softmax(oof, model.temperature), y),
        "ece_after": ece(model.calibrated(oof), y),  # in-sample for the top-label step
        "top_calibration": model.top_calibration.to_dict(),
        # diagnostics: the temperature one part alone would give (its sampling noise)
        "temperature_parts": [fit_temperature(oof[r], y[r]) for r in (stop_idx, cal_idx)]
        if separate
        else [],
    }
    history["ensemble"]["dropped"] = drop_unweighted(model)
    if before_refit is not None:
        before_refit()
    if cfg.ensemble.refit_members:
        again = {n: m for n, m in model.members.items() if REGISTRY[n].on_all_validation}
        if again:
            more = FitContext(
                config=cfg,
                labels=model.labels,
                examples=[*ctx.examples, *val],
                network=model.network,
                device=ctx.device,
                fitted=dict(model.members),
            )
            again_s: dict[str, float] = {}
            model.members.update(refit_members(again, more, again_s))
            history["ensemble"]["refit_on"] = len(more.examples)
            seconds |= {f"{name}_on_train_and_validation": v for name, v in again_s.items()}
    history["ensemble"]["seconds"] = seconds
    log.info("ensemble %s", history["ensemble"])


def drop_unweighted(model: HSModel) -> list[str]:
    """Drop the members the mixture weighs 0 (the network stays: it is the model's backbone),
    unless a kept member requires them; return their names."""
    weights = model.weights()
    keep = {n for n in model.members if n == MemberName.NETWORK or weights.get(n, 0.0) != 0.0}
    for name in list(keep):
        keep.update(REGISTRY[name].requires)
    dropped = [n for n in model.members if n not in keep]
    for name in dropped:
        del model.members[name]
    return [str(n) for n in dropped]
