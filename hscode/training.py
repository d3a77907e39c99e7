"""Train a model on the cases dataset, evaluate it, register it, promote it if it is better.

``train_and_register(settings, config)``:
  1. reads the cases dataset and hashes its snapshot;
  2. keeps trainable cases (one clean 10-digit code, a title) and selects the classes
     (the ``top_codes`` most frequent codes at ``level``, among codes with at least
     ``min_cases_per_code`` cases);
  3. splits train / validation / test, stratified by code, identical titles on one side,
     seeded (optionally also a k-fold cross-validation of the same recipe, for the report);
  4. fits ``model.pipeline.fit`` (validation picks the epoch and the temperature);
  5. evaluates on test, registers the version, and promotes it when there is no champion or
     it beats the champion on the same test cases.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import re
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from hscode.settings import Settings

log = logging.getLogger(__name__)

LEVELS = {"hs10": 10, "hs6": 6, "hs4": 4, "hs2": 2}
INPUT_MODES = ("title", "title+description", "title+image", "title+description+image")
# TrainConfig fields passed straight to model.pipeline.ModelConfig when set
MODEL_OVERRIDES = (
    "embedding",
    "tokenizer",
    "embed_dim",
    "embed_epochs",
    "hidden",
    "batch_size",
    "lr",
    "max_len",
    "image_size",
    "vgg_cfg",
    "vgg_width",
    "pretrain_epochs",
    "finetune_epochs",
    "fusion",
    "modality_dropout",
    "label_smoothing",
    "num_threads",
)
MIN_TRAIN_CASES = 10


class NotEnoughDataError(ValueError):
    """Too few trainable cases (or classes) to train and evaluate a model."""


# A few batches on CPU: the training config of the tests and of the fault benchmark, which
# check the plumbing (registry, scoring, crash recovery), not the accuracy. ``TrainConfig``
# keyword arguments, JSON-able (bench_faults passes it to a child process).
SMOKE_TRAIN: dict[str, Any] = {
    "inputs": "title",
    "epochs": 3,
    "embed_dim": 16,
    "embed_epochs": 2,
    "hidden": 16,
    "batch_size": 16,
    "max_len": 12,
    "device": "cpu",
    "num_threads": 1,
}


@dataclass
class TrainConfig:
    top_codes: int | None = None  # K most frequent codes; None: every code with enough cases
    min_cases_per_code: int = 3
    inputs: str = "title+description"
    epochs: int | None = None  # None: the model's default
    level: str = "hs10"  # hs10 | hs6 | hs4 | hs2: the code level the model predicts
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    folds: int | None = None  # also run k-fold CV of the same recipe (reported, not registered)
    seed: int | None = None  # None: settings.seed
    device: str | None = None  # None: settings.device
    min_improvement: float = 0.0  # top-1 margin a candidate needs over the champion
    # model overrides (None: model.pipeline.ModelConfig's default)
    embedding: str | None = None
    tokenizer: str | None = None
    embed_dim: int | None = None
    embed_epochs: int | None = None
    hidden: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    max_len: int | None = None
    image_size: int | None = None
    vgg_cfg: str | None = None
    vgg_width: float | None = None
    pretrain_epochs: int | None = None
    finetune_epochs: int | None = None
    fusion: str | None = None
    modality_dropout: float | None = None
    label_smoothing: float | None = None
    num_threads: int | None = None

    def __post_init__(self) -> None:
        if self.inputs not in INPUT_MODES:
            raise ValueError(f"unknown inputs {self.inputs!r}; expected one of {INPUT_MODES}")
        if self.level not in LEVELS:
            raise ValueError(f"unknown level {self.level!r}; expected one of {tuple(LEVELS)}")
        if self.top_codes is not None and self.top_codes < 2:
            raise ValueError("top_codes must be >= 2 (a classifier needs two classes)")
        if self.min_cases_per_code < 2:
            raise ValueError("min_cases_per_code must be >= 2 (one to train, one to test)")
        if not (0.0 < self.test_fraction < 0.9 and 0.0 < self.val_fraction < 0.9):
            raise ValueError("test_fraction and val_fraction must be in (0, 0.9)")
        if self.test_fraction + self.val_fraction >= 0.9:
            raise ValueError("test_fraction + val_fraction leave too little to train on")
        if self.folds is not None and self.folds < 2:
            raise ValueError("folds must be >= 2")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError("epochs must be >= 1")


@dataclass
class TrainOutcome:
    version: str
    promoted: bool
    reason: str
    metrics: dict[str, Any]
    report: dict[str, Any] | None = None


@dataclass
class Selection:
    """The labelled examples chosen for training, with what was left out and why."""

    examples: list[Any]
    n_cases: int  # trainable cases in the dataset (single 10-digit code)
    n_classes: int
    dropped: dict[str, int] = field(default_factory=dict)
    missing_images: int = 0


# ------------------------------------------------------------------ progress


class _Stages:
    """Maps the progress of several stages (fits, evaluations) onto one (done, total) scale."""

    SCALE = 1000

    def __init__(self, callback: Callable[..., None] | None, weights: Sequence[float]) -> None:
        self.callback = callback
        total = float(sum(weights))
        self.bounds = np.cumsum([0.0, *weights]) / total
        self.stage = 0

    def _emit(self, fraction: float) -> None:
        if self.callback is None:
            return
        try:
            self.callback(round(fraction * self.SCALE), self.SCALE)
        except Exception as exc:  # noqa: BLE001 - progress must never fail the training
            log.debug("progress callback failed: %s", exc)

    def for_stage(self, stage: int) -> Callable[[int, int], None]:
        lo, hi = self.bounds[stage], self.bounds[stage + 1]

        def report(done: int, total: int) -> None:
            self._emit(lo + (hi - lo) * (done / total if total else 1.0))

        return report

    def finish(self, stage: int) -> None:
        self._emit(self.bounds[stage + 1])


# ------------------------------------------------------------------ data


def title_key(title: str) -> str:
    """What makes two titles 'identical' for the split: case, width and spacing ignored."""
    text = unicodedata.normalize("NFKC", title or "").casefold()
    return re.sub(r"\s+", " ", text).strip()


def load_examples(settings: Settings, config: TrainConfig) -> Selection:
    """Trainable cases of the selected classes as ``model.pipeline.Example``s."""
    from hscode.cases import read_cases
    from hscode.objectstore import Location, images_location
    from model.pipeline import Example

    table = read_cases(
        settings,
        columns=["case_key", "hs10", "multi_code", "title", "description", "image_hashes"],
    )
    rows = table.to_pylist()
    digits = LEVELS[config.level]
    trainable = [r for r in rows if r["hs10"] and not r["multi_code"]]
    dropped = {"no_single_hs10": len(rows) - len(trainable)}
    with_title = [r for r in trainable if (r["title"] or "").strip()]
    dropped["empty_title"] = len(trainable) - len(with_title)

    counts = Counter(r["hs10"][:digits] for r in with_title)
    eligible = {c for c, n in counts.items() if n >= config.min_cases_per_code}
    ranked = sorted(eligible, key=lambda c: (-counts[c], c))
    chosen = set(ranked[: config.top_codes] if config.top_codes else ranked)
    selected = [r for r in with_title if r["hs10"][:digits] in chosen]
    dropped["rare_code"] = sum(counts[c] for c in set(counts) - eligible)
    dropped["outside_top_codes"] = sum(counts[c] for c in eligible - chosen)

    selected.sort(key=lambda r: r["case_key"])
    # Each case's first readable image; fetched in rounds of one image per case, so object
    # storage answers many requests at once and a missing image falls back to the next.
    found: dict[int, bytes] = {}
    missing_images = 0
    if "image" in config.inputs:
        store = images_location(settings)
        todo = {i: list(r["image_hashes"] or []) for i, r in enumerate(selected)}
        todo = {i: hashes for i, hashes in todo.items() if hashes}
        while todo:
            wanted: dict[int, str] = {}
            for i, hashes in todo.items():
                try:
                    wanted[i] = Location.blob_rel(hashes[0])
                except ValueError:
                    wanted[i] = ""
            got = store.read_many(rel for rel in wanted.values() if rel)
            for i, rel in wanted.items():
                image = got.get(rel) if rel else None
                if isinstance(image, bytes):
                    found[i] = image
                    del todo[i]
                    continue
                missing_images += 1
                todo[i].pop(0)
                if not todo[i]:
                    del todo[i]
    examples = [
        Example(
            key=r["case_key"],
            title=r["title"],
            description=r["description"] if "description" in config.inputs else None,
            image=found.get(i),
            label=r["hs10"][:digits],
        )
        for i, r in enumerate(selected)
    ]
    return Selection(
        examples=examples,
        n_cases=len(trainable),
        n_classes=len(chosen),
        dropped=dropped,
        missing_images=missing_images,
    )


def _title_strata(
    titles: Sequence[str], labels: Sequence[str]
) -> tuple[dict[str, list[int]], dict[str, list[str]]]:
    """Rows grouped by normalised title, and each group's key filed under its majority label
    (ties: the smallest label), so a split can keep identical titles on one side."""
    groups: dict[str, list[int]] = defaultdict(list)
    for idx, title in enumerate(titles):
        groups[title_key(title)].append(idx)
    strata: dict[str, list[str]] = defaultdict(list)
    for key, members in groups.items():
        votes = Counter(labels[i] for i in members).most_common()
        strata[min(label for label, n in votes if n == votes[0][1])].append(key)
    return groups, strata


def grouped_stratified_split(
    titles: Sequence[str], labels: Sequence[str], fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """(keep, held_out) indices: ~``fraction`` of each label held out, stratified by label,
    every group of identical titles entirely on one side, and never a label's last group."""
    groups, strata = _title_strata(titles, labels)
    rng = random.Random(seed)
    held: list[int] = []
    for label in sorted(strata):
        keys = sorted(strata[label])
        rng.shuffle(keys)
        total = sum(len(groups[k]) for k in keys)
        target, taken = fraction * total, 0
        for key in keys[:-1]:  # the last group always stays: every label keeps training data
            size = len(groups[key])
            if taken + size / 2 > target:
                continue
            held.extend(groups[key])
            taken += size
    held_set = set(held)
    keep = [i for i in range(len(titles)) if i not in held_set]
    return keep, sorted(held_set)


def grouped_folds(
    titles: Sequence[str], labels: Sequence[str], folds: int, seed: int
) -> list[list[int]]:
    """``folds`` disjoint test folds, stratified by label, identical titles in one fold."""
    groups, strata = _title_strata(titles, labels)
    rng = random.Random(seed)
    out: list[list[int]] = [[] for _ in range(folds)]
    offset = 0
    for label in sorted(strata):
        keys = sorted(strata[label])
        rng.shuffle(keys)
        for j, key in enumerate(keys):
            out[(offset + j) % folds].extend(groups[key])
        offset += len(keys)  # rotate so small classes do not all start in fold 0
    return [sorted(f) for f in out]


# ------------------------------------------------------------------ training


def model_config(settings: Settings, config: TrainConfig) -> Any:
    from model.pipeline import ModelConfig

    values: dict[str, Any] = {
        "inputs": config.inputs,
        "seed": settings.seed if config.seed is None else config.seed,
        "device": config.device or settings.device,
    }
    if config.epochs is not None:
        values["epochs"] = config.epochs
    for name in MODEL_OVERRIDES:
        value = getattr(config, name)
        if value is not None:
            values[name] = value
    return ModelConfig(**values)


def _split(examples: Sequence[Any], config: TrainConfig, seed: int):
    titles = [e.title for e in examples]
    labels = [e.label for e in examples]
    rest, test = grouped_stratified_split(titles, labels, config.test_fraction, seed)
    val_share = config.val_fraction / (1.0 - config.test_fraction)
    r_titles = [titles[i] for i in rest]
    r_labels = [labels[i] for i in rest]
    train_pos, val_pos = grouped_stratified_split(r_titles, r_labels, val_share, seed + 1)
    pick = lambda idx: [examples[i] for i in idx]
    return pick([rest[i] for i in train_pos]), pick([rest[i] for i in val_pos]), pick(test)


def _test_details(model: Any, test: Sequence[Any]) -> dict[str, Any]:
    probs = model.predict_proba(test)
    top = probs.argmax(axis=1)
    labels = model.labels
    return {
        "confidence": [float(probs[i, j]) for i, j in enumerate(top)],
        "y_true": [e.label for e in test],
        "y_pred": [labels[j] for j in top],
        "correct": [labels[j] == e.label for j, e in zip(top, test, strict=True)],
        "keys": [e.key for e in test],
    }


def _flat_metrics(evaluation: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {
        f"{prefix}{k}": v
        for k, v in evaluation.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _compare_with_champion(
    registry: Any,
    candidate_model: Any,
    test: Sequence[Any],
    metrics: dict[str, Any],
    config: TrainConfig,
) -> tuple[bool, str, dict[str, Any] | None]:
    """(promote?, why, champion's metrics on the candidate's test set)."""
    champion = registry.champion()
    if champion is None:
        return True, "first model: no champion yet", None
    try:
        champion_model = registry.load(champion.version)
    except Exception as exc:  # noqa: BLE001 - an unloadable champion should not block a new one
        return True, f"champion {champion.version} could not be loaded ({exc})", None
    champ_len = {len(label) for label in champion_model.labels}
    cand_len = {len(label) for label in candidate_model.labels}
    if champ_len != cand_len:
        return (
            False,
            (
                f"not comparable: champion {champion.version} predicts {sorted(champ_len)}-digit "
                f"codes, the candidate {sorted(cand_len)}-digit codes; promote by hand if wanted"
            ),
            None,
        )
    champ_eval = champion_model.evaluate(list(test))
    c1, c3 = metrics["test_top1"], metrics.get("test_top3", 0.0)
    h1, h3 = champ_eval["top1"], champ_eval.get("top3", 0.0)
    summary = (
        f"on the same {len(test)} test cases: candidate top-1 {c1:.4f} / top-3 {c3:.4f}, "
        f"champion {champion.version} top-1 {h1:.4f} / top-3 {h3:.4f}"
    )
    better = c1 > h1 + config.min_improvement + 1e-12 or (
        config.min_improvement == 0.0 and abs(c1 - h1) <= 1e-12 and c3 > h3 + 1e-12
    )
    verdict = "beats the champion " if better else "does not beat the champion "
    return better, verdict + summary, champ_eval


def _cross_validate(
    examples: Sequence[Any], config: TrainConfig, mconfig: Any, seed: int, stages: _Stages
) -> dict[str, Any]:
    from model.pipeline import fit

    titles = [e.title for e in examples]
    labels = [e.label for e in examples]
    folds = grouped_folds(titles, labels, config.folds or 0, seed)
    results = []
    for f, test_idx in enumerate(folds):
        test_set = set(test_idx)
        rest = [i for i in range(len(examples)) if i not in test_set]
        r_titles = [titles[i] for i in rest]
        r_labels = [labels[i] for i in rest]
        train_pos, val_pos = grouped_stratified_split(
            r_titles, r_labels, config.val_fraction, seed + 100 + f
        )
        train = [examples[rest[i]] for i in train_pos]
        val = [examples[rest[i]] for i in val_pos]
        test = [examples[i] for i in test_idx]
        model = fit(train, val, mconfig, progress=stages.for_stage(1 + f))
        evaluation = model.evaluate(test)
        results.append(
            {k: v for k, v in evaluation.items() if isinstance(v, (int, float))}
            | {"fold": f, "n_train": len(train), "n_test": len(test)}
        )
        stages.finish(1 + f)
    keys = [
        k for k in ("top1", "top3", "top5", "hs6_top1", "hs4_top1", "ece_after") if k in results[0]
    ]
    return {
        "folds": results,
        "mean": {k: float(np.mean([r[k] for r in results])) for k in keys},
        "std": {k: float(np.std([r[k] for r in results])) for k in keys},
    }


def train_and_register(
    settings: Settings,
    config: TrainConfig | None = None,
    progress: Callable[..., None] | None = None,
) -> TrainOutcome:
    """Train on the current cases, evaluate, register; promote when first or better."""
    from hscode.cases import cases_snapshot_hash
    from hscode.registry import Registry
    from model.pipeline import fit

    config = config or TrainConfig()
    seed = settings.seed if config.seed is None else config.seed
    t_start = time.perf_counter()
    data_hash = cases_snapshot_hash(settings)
    selection = load_examples(settings, config)
    examples = selection.examples
    if selection.n_classes < 2 or len(examples) < MIN_TRAIN_CASES:
        raise NotEnoughDataError(
            f"too few cases to train: {len(examples)} cases in {selection.n_classes} classes "
            f"with >= {config.min_cases_per_code} cases per {config.level} code "
            f"({selection.n_cases} trainable cases in the dataset; need >= {MIN_TRAIN_CASES} "
            f"cases in >= 2 classes). Import or crawl more cases, or lower min_cases_per_code."
        )
    train, val, test = _split(examples, config, seed)
    if not val or not test:
        raise NotEnoughDataError(
            f"too few cases to hold out validation and test sets: {len(examples)} cases in "
            f"{selection.n_classes} classes (train {len(train)}, val {len(val)}, test {len(test)})"
        )
    mconfig = model_config(settings, config)
    n_folds = config.folds or 0
    # stage 0: the model that is registered; stages 1..k: CV folds; last: evaluation
    stages = _Stages(progress, [1.0] * (1 + n_folds) + [0.1])

    t_fit = time.perf_counter()
    model = fit(train, val, mconfig, progress=stages.for_stage(0))
    fit_seconds = time.perf_counter() - t_fit
    stages.finish(0)
    model.set_precedents(train + val)

    cv = _cross_validate(examples, config, mconfig, seed, stages) if n_folds else None

    evaluation = model.evaluate(test)
    # once the ensemble members are refitted on train + val, scoring val is in-sample: report
    # the out-of-fold figure the mixture was chosen with instead
    ensemble = model.history.get("ensemble") or {}
    val_top1 = ensemble.get("val_top1_mixed_out_of_fold") if "refit_on" in ensemble else None
    if val_top1 is None:
        val_top1 = model.evaluate(val)["top1"]
    metrics: dict[str, Any] = _flat_metrics(evaluation, "test_")
    metrics.update(
        {
            "val_top1": val_top1,
            "ece_before": evaluation["ece_before"],
            "ece_after": evaluation["ece_after"],
            "n_cases": selection.n_cases,
            "n_selected": len(examples),
            "n_classes": selection.n_classes,
            "n_train": len(train),
            "n_val": len(val),
            "n_test": len(test),
            "fit_seconds": fit_seconds,
        }
    )
    if cv is not None:
        metrics.update({f"cv_{k}": v for k, v in cv["mean"].items()})

    registry = Registry.from_settings(settings)
    promote, reason, champion_eval = _compare_with_champion(registry, model, test, metrics, config)
    if champion_eval is not None:
        metrics["champion_test_top1"] = champion_eval["top1"]
        metrics["champion_test_top3"] = champion_eval.get("top3")
    metrics["train_seconds"] = time.perf_counter() - t_start
    stages.finish(len(stages.bounds) - 2)

    report = {
        "test": _test_details(model, test) | {"coverage": evaluation.get("coverage")},
        "history": getattr(model, "history", None),
        "selection": {
            "level": config.level,
            "top_codes": config.top_codes,
            "min_cases_per_code": config.min_cases_per_code,
            "n_classes": selection.n_classes,
            "dropped": selection.dropped,
            "missing_images": selection.missing_images,
            "labels": list(model.labels),
        },
        "split": {"train": len(train), "val": len(val), "test": len(test), "seed": seed},
        "comparison": {
            "promoted": promote,
            "reason": reason,
            "champion": champion_eval
            and {k: v for k, v in champion_eval.items() if isinstance(v, (int, float))},
        },
        "cv": cv,
    }
    info = {
        "n_cases": selection.n_cases,
        "data_hash": data_hash,
        "inputs": config.inputs,
        "level": config.level,
        "config": mconfig.to_dict(),
        "train_config": dataclasses.asdict(config),
        "split": report["split"],
        "selection": {k: v for k, v in report["selection"].items() if k != "labels"},
    }
    version = registry.register(model, metrics, info)
    model.version = version
    registry.write_report(version, report)
    if promote:
        registry.promote(version, reason=reason)
    log.info("model %s registered (%s): %s", version, "promoted" if promote else "kept", reason)
    return TrainOutcome(
        version=version, promoted=promote, reason=reason, metrics=metrics, report=report
    )


def train_config_fields() -> tuple[str, ...]:
    return tuple(f.name for f in fields(TrainConfig))
