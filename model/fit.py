"""``fit(train, val, config)``: train the paper's model end to end and choose on validation.

1. the main network (``model.train_loop``): word embeddings, vocabulary, image pre-training on
   every photo, end-to-end training with early stopping on the "stop" part of validation;
2. with text inputs and an ensemble, the members (``model.members``: the companion network,
   the TF-IDF SVM and k-NN vote, the sentence head) and their mixture, cross-fitted on both
   parts of validation, with the final temperature (``model.mixture``); without one, a
   temperature on the "calibration" part of validation;
3. the training cases indexed as precedents (``model.precedents``).

The validation set is split once, stratified by code (``calibration.share``). The served model
is then retrained on every case with these choices kept (``model.refit``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from model.config import MemberName, ModelConfig
from model.encoding import compose_texts, items_of
from model.familiarity import (
    MAX_COMBINER_CASES,
    MIN_BACKGROUND,
    Familiarity,
    held_out_heading,
    sample,
)
from model.hsmodel import HSModel
from model.members import FitContext
from model.members.network import companion_steps
from model.mixture import calibrate_network, fit_ensemble
from model.records import Example, RequestInput
from model.runtime import fit_jobs, resolve_device, threads
from model.train_loop import Progress, check_labelled, network_steps, train_network
from model.validation import calibration_split
from model.warm import WarmSource, warm_config


def fit(
    train: Sequence[Example],
    val: Sequence[Example],
    config: ModelConfig,
    progress: Callable[[int, int], None] | None = None,
    *,
    extra_images: Sequence[bytes | None] = (),
    image_init: Mapping[str, torch.Tensor] | None = None,
    extra_texts: Sequence[str] = (),
    keyed_vectors: Any = None,
    background: Sequence[Example] = (),
    warm_from: WarmSource | None = None,
) -> HSModel:
    """Train a model on ``train``; ``val`` picks the best epoch, the ensemble weights and
    (on a separate, stratified share ``config.calibration.share`` of it) the temperature.

    Image inputs: the encoder is pre-trained (rotation prediction) on the photos of ``train``,
    ``val`` (labels unused) and ``extra_images`` (e.g. photos of cases outside the target
    classes: the paper pre-trains on all collected images). ``image_init``, a state dict from
    :func:`model.train_loop.pretrain_image_encoder`, starts from an already pre-trained
    encoder instead and skips the pre-training.

    Partial labels (``Example.candidates``): the classes are the exact labels and every
    candidate code; a partial case trains every member on its set (the networks and the
    sentence head on the summed probability of the set, ``model.losses.set_nll``; the TF-IDF
    members on one copy per candidate, weighted 1/|set|). Validation chooses on exact labels
    only: partial cases in ``val`` are not used.

    Text inputs: the word embeddings are trained with gensim on the training texts plus
    ``extra_texts`` (unlabelled, e.g. the titles of cases outside the target classes; never
    evaluation texts). ``keyed_vectors``, gensim KeyedVectors of the configured kind trained
    beforehand, are used instead of training them; a mapping ``{kind: KeyedVectors}`` serves
    the network and the companion network alike (a kind it lacks is trained).

    ``warm_from``: a network this model's main network starts from (``model.warm``: shared
    words and codes keep their weights), trained ``warm_epochs`` instead of ``epochs``. It
    must not have learned from ``val`` or from the cases this model is tested on (the
    champion's evaluated network, with stable roles).
    """
    train, val = list(train), list(val)
    if not train:
        raise ValueError("fit needs training examples")
    check_labelled(train, "training")
    check_labelled(val, "validation")
    val = [e for e in val if not e.candidates]
    labels = class_labels(train)
    if len(labels) < 2:
        raise ValueError(f"fit needs at least two classes, got {labels}")
    device = resolve_device(config.device)
    with threads(config.num_threads):
        return _fit(
            train, val, config, labels, device, progress, extra_images, image_init,
            extra_texts, keyed_vectors, [e for e in background if e.label not in set(labels)],
            warm_from,
        )  # fmt: skip


def fit_familiarity(
    model: HSModel,
    train: Sequence[Example],
    val: Sequence[Example],
    background: Sequence[Example],
) -> Familiarity | None:
    """The familiarity model (``model.familiarity``): the detector on ``train`` against the
    background's part A, the combiner on ``val`` (held out from everything the model learned)
    against part B, whose headings neither the classes nor part A have; the served detector
    on ``train`` against both parts. None when a part is too small."""
    config = model.config
    seed = config.seed
    classes = {c[:4] for c in model.labels}
    part_a = [e for e in background if not held_out_heading(e.label)]
    part_b_all = [e for e in background if held_out_heading(e.label) and e.label[:4] not in classes]
    familiar = sample([e for e in val if not e.candidates], MAX_COMBINER_CASES, seed)
    part_b = sample(part_b_all, MAX_COMBINER_CASES, seed)
    if min(len(part_a), len(part_b), len(familiar)) < MIN_BACKGROUND:
        return None

    def texts(examples: Sequence[Example]) -> list[str]:
        return compose_texts(items_of(examples), config.uses_description)

    def labelled(examples: Sequence[Example]) -> tuple[list[str], list[str]]:
        return texts(examples), [e.accepted[0] for e in examples]

    def scored(examples: Sequence[Example]) -> tuple[list[str], list[float | None], np.ndarray]:
        requests = [RequestInput(e.key, e.title, e.description, e.image) for e in examples]
        rankings = model.rank(requests, top_k=1, n_precedents=0)
        return (
            texts(examples),
            [r.nearest_similarity for r in rankings],
            np.array([r.confidence for r in rankings]),
        )

    return Familiarity.fit(
        labelled(train),
        labelled(part_a),
        scored(familiar),
        scored(part_b),
        max_flagged=config.calibration.familiarity_max_flagged,
        background_b=labelled(part_b_all),
        seed=seed,
        jobs=fit_jobs(),
    )


def class_labels(examples: Sequence[Example]) -> list[str]:
    """The classes: every exact label and every candidate of a partial one."""
    return sorted({c for e in examples for c in e.accepted})


def _fit(
    train: list[Example],
    val: list[Example],
    config: ModelConfig,
    labels: list[str],
    device: torch.device,
    progress: Callable[[int, int], None] | None,
    extra_images: Sequence[bytes | None],
    image_init: Mapping[str, torch.Tensor] | None,
    extra_texts: Sequence[str],
    keyed_vectors: Any,
    background: Sequence[Example],
    warm_from: WarmSource | None,
) -> HSModel:
    t0 = time.perf_counter()
    net_config = config if warm_from is None else warm_config(config)
    stop_idx, cal_idx = calibration_split(
        [e.label for e in val], config.calibration.share, config.seed
    )
    val_stop, val_cal = [val[i] for i in stop_idx], [val[i] for i in cal_idx]
    with_members = bool(config.members) and len(val) > 0
    pretrain_images = [e.image for e in val] + list(extra_images) if config.uses_image else []
    n_images = sum(1 for e in train if e.image) + sum(1 for b in pretrain_images if b)
    pretrained = image_init is not None or warm_from is not None  # no pre-training steps
    total = 1 + network_steps(net_config, len(train), n_images, pretrained)
    if with_members and MemberName.COMPANION in config.members:
        total += companion_steps(config, len(train))
    prog = Progress(total, progress)

    trained = train_network(
        train,
        val_stop,
        net_config,
        labels,
        device,
        prog,
        pretrain_images=pretrain_images,
        image_init=image_init,
        extra_texts=extra_texts,
        keyed_vectors=keyed_vectors,
        warm_from=warm_from,
    )
    network = trained.network
    timings = dict(network.history.get("timings", {}))
    history: dict[str, Any] = {
        "n_train": len(train),
        "n_val": len(val),
        "labels": len(labels),
        "n_val_stop": len(val_stop),
        "n_val_calibration": len(val_cal),
        "separate_calibration": bool(len(val) and len(stop_idx) + len(cal_idx) == len(val)),
        **{k: v for k, v in network.history.items() if k != "timings"},
    }
    model = HSModel(config, labels, network)
    # the training cases are the precedents (first: the familiarity step searches them)
    model.set_precedents(train, network.run(trained.train_inputs)[1])

    def familiarity_step() -> None:
        """While validation is still held out (before members are refitted on it)."""
        if not (config.calibration.familiarity and background and val):
            return
        t1 = time.perf_counter()
        model.familiarity = fit_familiarity(model, train, val, background)
        timings["familiarity_s"] = time.perf_counter() - t1
        history["familiarity"] = (
            model.familiarity.history
            if model.familiarity is not None
            else {"skipped": f"too few background ({len(background)}) or validation cases"}
        )

    if with_members:
        t1 = time.perf_counter()
        ctx = FitContext(
            config=config,
            labels=labels,
            examples=train,
            network=network,
            device=device,
            val=val_stop,
            progress=prog,
            extra_texts=extra_texts,
            # the vectors the main network trained on the same corpus, with the same seed:
            # a companion of the same embedding kind takes them instead of training them again
            keyed_vectors=keyed_vectors
            if keyed_vectors is not None or trained.keyed_vectors is None
            else {config.network.embedding: trained.keyed_vectors},
        )
        fit_ensemble(model, ctx, val, stop_idx, cal_idx, history, before_refit=familiarity_step)
        timings["ensemble_s"] = time.perf_counter() - t1
    else:
        if config.members:
            history["ensemble"] = {"kind": "none", "reason": "no validation data to weigh it"}
        calibrate_network(model, val_cal, history)
        familiarity_step()
    prog.step()
    timings["total_s"] = time.perf_counter() - t0
    history["timings"] = timings
    history["temperature"] = model.temperature
    history["device"] = str(device)
    model.history = history
    return model
