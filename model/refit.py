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
  them) are refitted on ``examples``, the sentence head for the epochs validation chose;
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
from typing import Any

from model.config import MemberName
from model.fit import class_labels
from model.hsmodel import HSModel
from model.members import FitContext
from model.members.network import CompanionMember, best_epoch, fixed_epochs
from model.mixture import refit_members
from model.records import Example
from model.runtime import resolve_device, threads
from model.train_loop import Progress, check_labelled, network_steps, train_network
from model.warm import WarmSource

log = logging.getLogger(__name__)


def retrains_network(evaluated: HSModel, labels: Sequence[str]) -> bool:
    """Whether :func:`refit` on cases of these class ``labels`` retrains the main network: it
    is kept only when it adds nothing to any score and already knows every label."""
    weight = evaluated.weights()
    return not weight or weight.get(MemberName.NETWORK, 0.0) != 0.0 or evaluated.labels != labels


def refit(
    evaluated: HSModel,
    examples: Sequence[Example],
    progress: Callable[[int, int], None] | None = None,
    *,
    extra_texts: Sequence[str] = (),
    extra_images: Sequence[bytes | None] = (),
    warm_from: WarmSource | None = None,
) -> HSModel:
    """``evaluated``'s recipe trained on ``examples``, with its validation choices kept.

    An evaluated network that was warm-started (``model.warm``) trained only a few epochs, so
    its retraining starts warm too: from ``warm_from``, normally the champion's served network
    (trained on every case the night before), which is then required."""
    examples = list(examples)
    check_labelled(examples, "refit")
    labels = class_labels(examples)
    if len(labels) < 2:
        raise ValueError(f"refit needs at least two classes, got {labels}")
    config = fixed_epochs(evaluated.config, best_epoch(evaluated.network))
    retrain_network = retrains_network(evaluated, labels)
    companion = evaluated.member(MemberName.COMPANION)
    companion_epochs = best_epoch(companion.network) if companion is not None else 0
    # progress over both networks, in proportion to their epochs
    shares = [config.network.epochs if retrain_network else 0, companion_epochs]
    total = float(sum(shares)) or 1.0

    def stage(offset: float, share: float) -> Callable[[int, int], None]:
        def report(done: int, n: int) -> None:
            if progress is not None:
                fraction = offset + share * (done / n if n else 1.0)
                progress(round(1000 * fraction), 1000)

        return report

    warm = None
    if retrain_network and "warm_start" in evaluated.network.history:
        if warm_from is None:
            raise ValueError(
                "the evaluated network was warm-started: its refit needs warm_from, the "
                "model it continued (its few epochs from scratch would be a worse network)"
            )
        warm = warm_from
    device = resolve_device(config.device)
    t0 = time.perf_counter()
    timings: dict[str, Any] = {}
    with threads(config.num_threads):
        if retrain_network:
            n_images = sum(1 for e in examples if e.image) + sum(1 for b in extra_images if b)
            steps = network_steps(config, len(examples), n_images, False)
            trained = train_network(
                examples,
                [],
                config,
                labels,
                device,
                Progress(steps, stage(0.0, shares[0] / total)),
                pretrain_images=list(extra_images) if config.uses_image else [],
                extra_texts=extra_texts,
                warm_from=warm,
            )
            network = trained.network
            model = HSModel(config, labels, network)
        else:  # the same network object: nothing scores with it, nothing changes it
            network = evaluated.network
            model = HSModel(evaluated.config, labels, network)
        timings["network_s"] = time.perf_counter() - t0
        if evaluated.member_names:
            t1 = time.perf_counter()
            comp_share = shares[1] / total
            ctx = FitContext(
                config=model.config,
                labels=labels,
                examples=examples,
                network=network,
                device=device,
                progress=_companion_progress(
                    companion, len(examples), stage(shares[0] / total, comp_share)
                ),
                extra_texts=extra_texts,
            )
            model.member_names = evaluated.member_names
            model.mixture = copy.deepcopy(evaluated.mixture)
            member_s: dict[str, float] = {}
            model.members = refit_members(dict(evaluated.members), ctx, member_s)
            timings["members_s"] = time.perf_counter() - t1
            timings["member_s"] = member_s
        t1 = time.perf_counter()
        if retrain_network:
            model.set_precedents(examples, network.run(trained.train_inputs)[1])
        else:
            model.set_precedents(examples)
        timings["precedents_s"] = time.perf_counter() - t1
    model.temperature = evaluated.temperature
    model.top_calibration = copy.deepcopy(evaluated.top_calibration)
    # the familiarity model is kept: its detector learned the training cases, its combiner
    # and floor need held-out cases, which a refit on every case no longer has
    model.familiarity = copy.deepcopy(evaluated.familiarity)
    if progress is not None:
        progress(1000, 1000)
    history: dict[str, Any] = copy.deepcopy(evaluated.history)
    history["refit"] = {
        "n_examples": len(examples),
        "labels": len(labels),
        "epochs": config.network.epochs if retrain_network else None,
        "network": ("retrained, warm" if warm else "retrained")
        if retrain_network
        else "kept from the evaluated model: the mixture weighs it 0",
        "companion_epochs": companion_epochs or None,
        "kept_from_evaluated": [
            "epochs",
            "mixture",
            "temperature",
            "top_calibration",
            "familiarity",
        ],
        "timings": timings | {"total_s": time.perf_counter() - t0},
    }
    model.history = history
    log.info(
        "refit on %d cases (%d codes): %s%s, %.0f s",
        len(examples),
        len(labels),
        f"network {config.network.epochs} epochs" if retrain_network else "network kept (weight 0)",
        f", companion {companion_epochs}" if companion is not None else "",
        time.perf_counter() - t0,
    )
    return model


def _companion_progress(
    companion: CompanionMember | None, n_examples: int, report: Callable[[int, int], None]
) -> Progress | None:
    """Progress of the companion's retraining (the only member that trains in steps)."""
    if companion is None:
        return None
    recipe = fixed_epochs(companion.network.config, best_epoch(companion.network))
    return Progress(network_steps(recipe, n_examples, 0, True) + 1, report)
