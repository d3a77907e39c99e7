"""The served model: the evaluated recipe retrained on every case, choosing nothing anew.

``fit(train, val, config)`` chooses everything a recipe needs on validation: each network's
epoch (early stopping), the ensemble's members, weights and member temperatures, the final
temperature and the top-label recalibration. That model is the one that is evaluated, but it
never learns from its validation and test cases. ``refit(evaluated, examples)`` trains the same
recipe on ``examples`` (normally every trainable case) and carries over what validation chose:

- every network the mixture weighs (the main one, the companion) is trained for its best
  epoch from the evaluated run, on a full one-cycle schedule, without early stopping; a main
  network the mixture weighs 0 adds nothing to any score, so it is kept as evaluated rather
  than retrained (its features still index the precedents when there is no sentence encoder);
- the text members (SVM, and the k-NN vote and the sentence head when the mixture weighs
  them) are refitted on ``examples``;
- the mixture (members, weights, member temperatures), the final temperature and the top-label
  calibrator are copied: they were fitted on out-of-sample scores of the evaluated model, so
  they stay honest; nothing is fitted on the refit data's own, in-sample scores;
- the precedent index holds every case of ``examples``.

The refit model is what the registry serves; the evaluated model is kept beside it
(``hscode.registry``) so that a later candidate can be compared with it on cases neither used.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from model.pipeline import (
    Example,
    HSModel,
    _fit,
    _fit_text_members,
    _threads,
    _validate,
    resolve_device,
)

log = logging.getLogger(__name__)


def _best_epoch(model: HSModel) -> int:
    best = int(model.history.get("best_epoch") or 0)
    return best if best >= 1 else int(model.config.epochs)


def refit(
    evaluated: HSModel,
    examples: Sequence[Example],
    progress: Callable[[int, int], None] | None = None,
    *,
    extra_texts: Sequence[str] = (),
    extra_images: Sequence[bytes | None] = (),
) -> HSModel:
    """``evaluated``'s recipe trained on ``examples``, with its validation choices kept."""
    examples = list(examples)
    _validate(examples, "refit")
    labels = sorted({e.label for e in examples})
    if len(labels) < 2:
        raise ValueError(f"refit needs at least two classes, got {labels}")
    config = replace(evaluated.config, epochs=_best_epoch(evaluated), early_stopping=False)
    weight = (
        dict(zip(evaluated.members, evaluated.mixture.weights, strict=True))
        if evaluated.mixture is not None and evaluated.members
        else {}
    )
    # kept only when it adds nothing to any score and already knows every label of examples
    retrain_network = (
        not weight or weight.get("network", 0.0) != 0.0 or list(evaluated.labels) != labels
    )
    companion = evaluated.companion
    comp_config = (
        replace(companion.config, epochs=_best_epoch(companion), early_stopping=False)
        if companion is not None
        else None
    )
    # progress over both networks, in proportion to their epochs
    weights = [
        config.epochs if retrain_network else 0,
        comp_config.epochs if comp_config is not None else 0,
    ]
    total = float(sum(weights)) or 1.0

    def stage(offset: float, share: float) -> Callable[[int, int], None]:
        def report(done: int, n: int) -> None:
            if progress is not None:
                fraction = offset + share * (done / n if n else 1.0)
                progress(round(1000 * fraction), 1000)

        return report

    device = resolve_device(config.device)
    t0 = time.perf_counter()
    with _threads(config.num_threads):
        if retrain_network:
            model = _fit(
                examples,
                [],
                config,
                labels,
                device,
                stage(0.0, weights[0] / total),
                extra_images,
                None,
                extra_texts,
                refitting=True,
            )
        else:  # the same network object: nothing scores with it, nothing changes it
            model = copy.copy(evaluated)
            model.companion = None
        timings = {"network_s": time.perf_counter() - t0}
        if comp_config is not None:
            t1 = time.perf_counter()
            model.companion = _fit(
                examples,
                [],
                comp_config,
                labels,
                device,
                stage(weights[0] / total, weights[1] / total),
                extra_texts=extra_texts,
                precedents=False,
                refitting=True,
            )
            timings["companion_s"] = time.perf_counter() - t1
        if evaluated.mixture is not None and evaluated.members:
            t1 = time.perf_counter()
            model.members = evaluated.members
            model.mixture = copy.deepcopy(evaluated.mixture)
            if evaluated.tfidf is not None:
                _fit_text_members(
                    model,
                    examples,
                    with_knn=evaluated.knn is not None,
                    with_sentence=evaluated.sentence is not None,
                ).attach(model)
            timings["members_s"] = time.perf_counter() - t1
        if not retrain_network:
            t1 = time.perf_counter()
            model.set_precedents(examples)
            timings["precedents_s"] = time.perf_counter() - t1
    model.temperature = evaluated.temperature
    model.top_calibration = copy.deepcopy(evaluated.top_calibration)
    if progress is not None:
        progress(1000, 1000)
    history: dict[str, Any] = copy.deepcopy(evaluated.history)
    history["refit"] = {
        "n_examples": len(examples),
        "labels": len(labels),
        "epochs": config.epochs if retrain_network else None,
        "network": "retrained"
        if retrain_network
        else "kept from the evaluated model: the mixture weighs it 0",
        "companion_epochs": comp_config.epochs if comp_config is not None else None,
        "kept_from_evaluated": ["epochs", "mixture", "temperature", "top_calibration"],
        "timings": timings | {"total_s": time.perf_counter() - t0},
    }
    model.history = history
    log.info(
        "refit on %d cases (%d codes): %s%s, %.0f s",
        len(examples),
        len(labels),
        f"network {config.epochs} epochs" if retrain_network else "network kept (weight 0)",
        f", companion {comp_config.epochs}" if comp_config is not None else "",
        time.perf_counter() - t0,
    )
    return model
