"""Train a model on the cases dataset, evaluate it honestly, register it, promote it if not worse.

``train_and_register(settings, config)``:
  1. reads the cases dataset and hashes its snapshot;
  2. keeps trainable cases (one clean 10-digit code, a title) and selects the classes
     (the ``top_codes`` most frequent codes at ``level``, among codes with at least
     ``min_cases_per_code`` cases);
  3. gives every case a stable role (``hscode.evaluation.assign_roles``): a hash of its
     normalised title picks train / validation / test, identical titles together, and the
     newest decisions (``recent_days``) are the out-of-time test;
  4. fits ``model.fit.fit`` on train (validation picks the epochs, the mixture and the
     calibration): the EVALUATED model; evaluates it on test, by decision month too;
  5. compares it with the champion's evaluated model on the test cases neither used, with a
     paired 95% interval, and promotes it when it is not worse with confidence
     (``promotion_margin``), or when there is no champion;
  6. a promoted candidate is refitted on every selected case (``model.refit``: the epochs,
     mixture and calibration chosen on validation are kept): the SERVED model. The registry
     keeps both, the metrics describe the evaluated one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from hscode.evaluation import (
    Comparison,
    accuracy_by_month,
    assign_roles,
    compare,
    gate,
    grouped_folds,
    grouped_stratified_split,
    topk_hits_many,
)
from hscode.evidence import case_evidence
from hscode.review_cases import CASE_SOURCE
from hscode.selection import LEVELS, Selection, load_examples
from hscode.settings import Settings
from model.config import TRAINABLE_INPUTS, Companion, MemberName, ModelConfig

if TYPE_CHECKING:  # the model's heavy imports (torch) load only when a model is trained
    from hscode.registry import ModelVersion, Registry
    from model.hsmodel import HSModel
    from model.records import Example
    from model.warm import WarmSource

log = logging.getLogger(__name__)

# TrainConfig fields passed straight to ModelConfig (by their flat names) when set
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
    # promoted when the 95% interval of (candidate - champion) top-1 on the cases neither
    # used lies above -promotion_margin (not worse with confidence)
    promotion_margin: float = 0.02
    # the newest decisions (days before the newest decision date) are the out-of-time test;
    # 0: none (roles by title hash only)
    recent_days: int = 30
    refit: bool = True  # a promoted candidate is refitted on every selected case and served
    # train every member, whatever the champion's mixture weighed (see ``choose_recipe``)
    full: bool = False
    # the main network continues the champion's (``model.warm``, ``warm_recipe``) instead of
    # training from scratch. Off by default: on two nights of the ghko99 names (K = 100,
    # docs/benchmarks.md section 16c) it showed no gain (0.14-0.45 points of top-3 lost)
    warm: bool = False
    # model overrides (None: ModelConfig's default)
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
        if self.inputs not in TRAINABLE_INPUTS:
            allowed = tuple(str(m) for m in TRAINABLE_INPUTS)
            raise ValueError(f"unknown inputs {self.inputs!r}; expected one of {allowed}")
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
        if self.promotion_margin < 0:
            raise ValueError("promotion_margin must be >= 0")
        if self.recent_days < 0:
            raise ValueError("recent_days must be >= 0 (0: no out-of-time test)")


@dataclass
class TrainOutcome:
    version: str
    promoted: bool
    reason: str
    metrics: dict[str, Any]
    report: dict[str, Any] | None = None


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


# ------------------------------------------------------------------ training


def model_config(settings: Settings, config: TrainConfig) -> ModelConfig:
    values: dict[str, Any] = {
        "inputs": config.inputs,
        "seed": settings.seed if config.seed is None else config.seed,
        "device": config.device or settings.device,
        # the served model is refitted on every case anyway: refitting the evaluated model's
        # members on train + validation as well would only add a third fit of each
        "refit_members": not config.refit,
    }
    if config.epochs is not None:
        values["epochs"] = config.epochs
    for name in MODEL_OVERRIDES:
        value = getattr(config, name)
        if value is not None:
            values[name] = value
    return ModelConfig.from_flat(**values)


# ------------------------------------------------------------------ the recipe

# members a training may leave out while the champion's full run weighed them 0: the
# companion network (the second BiLSTM, the costliest member to train: 258 of 1,421 s at
# every code, docs/benchmarks.md section 10e); the main network is the model's backbone
SKIPPABLE = (MemberName.COMPANION,)


@dataclass(frozen=True)
class Recipe:
    """What a training trains. ``full``: every member; otherwise the members in ``skipped``,
    which the full run of ``full_since`` weighed 0, are left out until ``full_recipe_days``
    have passed."""

    full: bool
    reason: str
    full_since: str  # ISO date of the full run whose weights decided the skips
    skipped: tuple[str, ...] = ()
    zero_weight: tuple[str, ...] = ()  # skippable members that full run weighed 0
    warm_from: str | None = None  # the champion version whose main network it continues
    scratch_since: str = ""  # ISO date of the from-scratch network its warm chain began with

    def apply(self, mconfig: ModelConfig) -> ModelConfig:
        if MemberName.COMPANION in self.skipped:
            return mconfig.with_flat(companion=Companion.NONE)
        return mconfig

    def after(self, model: HSModel) -> Recipe:
        """The recipe as recorded with the trained model: a full run notes which skippable
        members its mixture weighed 0; a light run carries its full run's finding."""
        if not self.full:
            return self
        weights = model.weights()
        zero = tuple(str(m) for m in SKIPPABLE if m in weights and weights[m] == 0.0)
        return dataclasses.replace(self, zero_weight=zero)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {
            "skipped": list(self.skipped),
            "zero_weight": list(self.zero_weight),
        }


def choose_recipe(
    champion_info: dict[str, Any] | None, config: TrainConfig, days: int, today: dt.date
) -> Recipe:
    """Full, or light: without the members the champion's last full run weighed 0, while
    that run is younger than ``days`` (``Settings.full_recipe_days``)."""
    iso = today.isoformat()
    if config.full:
        return Recipe(True, "full: asked for (--full)", iso)
    if champion_info is None:
        return Recipe(True, "full: no champion yet", iso)
    recorded = champion_info.get("recipe")
    if not recorded:
        return Recipe(True, "full: the champion records no recipe", iso)
    since = dt.date.fromisoformat(recorded["full_since"])
    age = (today - since).days
    if age >= days:
        return Recipe(True, f"full: the last full run was {age} days ago (every {days})", iso)
    zero = tuple(recorded.get("zero_weight") or ())
    if not zero:
        return Recipe(True, "full: the last full run weighed every skippable member", iso)
    return Recipe(
        False,
        f"light: {', '.join(zero)} left out, weighed 0 by the full run of {since.isoformat()} "
        f"(a full run re-checks every {days} days)",
        since.isoformat(),
        skipped=zero,
        zero_weight=zero,
    )


def warm_recipe(
    recipe: Recipe,
    config: TrainConfig,
    mconfig: ModelConfig,
    champion: ModelVersion | None,
    days: int,
    today: dt.date,
) -> Recipe:
    """With ``--warm`` the main network continues the champion's (``model.warm``) while the
    chain of warm starts behind it began less than ``days`` ago, the network has the same
    shape and ``--full`` is not given; otherwise it trains from scratch and a new chain
    begins. The reason says which."""
    from model.warm import incompatibility

    def cold(why: str) -> Recipe:
        reason = f"{recipe.reason}; network from scratch ({why})"
        return dataclasses.replace(recipe, scratch_since=today.isoformat(), reason=reason)

    if config.full:
        return cold("--full")
    if not config.warm:
        return cold("no --warm")
    if champion is None:
        return cold("no champion")
    since = (champion.info.get("recipe") or {}).get("scratch_since")
    if not since:
        return cold("the champion records no network chain")
    age = (today - dt.date.fromisoformat(since)).days
    if age >= days:
        return cold(f"its chain began {age} days ago, every {days}")
    previous = champion.info.get("config")
    why = incompatibility(ModelConfig.from_dict(previous), mconfig) if previous else "no config"
    if why is not None:
        return cold(f"another network: {why}")
    return dataclasses.replace(
        recipe,
        warm_from=champion.version,
        scratch_since=since,
        reason=f"{recipe.reason}; network continues {champion.version}'s",
    )


def _warm_source(registry: Registry, recipe: Recipe, evaluated: bool) -> WarmSource | None:
    """The main network of the recipe's ``warm_from`` version (evaluated or served)."""
    if recipe.warm_from is None:
        return None
    from model.artifact import load_network
    from model.warm import WarmSource

    path = registry.model_dir(recipe.warm_from, evaluated=evaluated)
    network, labels = load_network(path)
    return WarmSource(network, tuple(labels))


def split_roles(selection: Selection, config: TrainConfig):
    """(train, val, test, roles): the selection's examples by their stable roles."""
    examples = selection.examples
    dates = selection.dates or [None] * len(examples)
    roles = assign_roles(
        [e.title for e in examples],
        [e.label for e in examples],
        dates,
        test_fraction=config.test_fraction,
        val_fraction=config.val_fraction,
        recent_days=config.recent_days,
    )
    pick = lambda idx: [examples[i] for i in idx]
    # validation chooses on exact labels: a partial one (a split code) trains instead
    val = [i for i in roles.val if not examples[i].candidates]
    train = [*roles.train, *(i for i in roles.val if examples[i].candidates)]
    return pick(train), pick(val), pick(roles.test), roles


def _test_details(model: HSModel, test: Sequence[Example]) -> dict[str, Any]:
    probs = model.predict_proba(test)
    top = probs.argmax(axis=1)
    labels = model.labels
    return {
        "confidence": [float(probs[i, j]) for i, j in enumerate(top)],
        "y_true": [e.label for e in test],
        "y_pred": [labels[j] for j in top],
        "correct": [labels[j] in e.accepted for j, e in zip(top, test, strict=True)],
        "keys": [e.key for e in test],
    }


def drift_baseline(model: HSModel, test: Sequence[Example], settings: Settings) -> dict[str, float]:
    """The test figures each scoring run is compared with (``score_runs``, ``hscode.scoring``),
    computed as scoring computes them: ``test_mean_confidence``, the mean rank-1 score of the
    model's ranking (familiarity included); ``test_review_rate``, the share the review policy
    (``settings.review_threshold``, ``settings.n_precedents`` precedents) sends to a human;
    ``test_unseen_token_share``, the share of the test cases' tokens not in the vocabulary
    the model trained on (``HSModel.token_counts``). No tariff check: the test cases' codes
    are the trained (current) ones."""
    from hscode.review import ReviewPolicy
    from model.records import RequestInput

    policy = ReviewPolicy.from_settings(settings)
    requests = [RequestInput(e.key, e.title, e.description, e.image) for e in test]
    confidence: list[float] = []
    reviewed = 0
    step = settings.score_batch_size
    for start in range(0, len(requests), step):
        chunk = requests[start : start + step]
        for ranking in model.rank(chunk, top_k=1, n_precedents=settings.n_precedents):
            confidence.append(ranking.confidence)
            reviewed += policy.assess(ranking)[0]
    counts = model.token_counts(test)
    tokens = int(counts[0].sum()) if counts is not None else 0
    figures = {
        "test_mean_confidence": float(np.mean(confidence)) if confidence else None,
        "test_review_rate": reviewed / len(requests) if requests else None,
        "test_unseen_token_share": float(counts[1].sum()) / tokens if tokens else None,
    }
    return {k: v for k, v in figures.items() if v is not None}


def _flat_metrics(evaluation: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {
        f"{prefix}{k}": v
        for k, v in evaluation.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _compare_with_champion(
    registry: Any, candidate: HSModel, test: Sequence[Example], config: TrainConfig, seed: int
) -> tuple[bool, str, Comparison | None]:
    """(promote?, why, the comparison): the candidate's evaluated model against the champion's
    evaluated model (its served one when it keeps none) on the test cases the champion never
    used (the keys of its precedent index: its training and validation cases)."""
    champion = registry.champion()
    if champion is None:
        return True, "promoted: first model, no champion yet", None
    try:
        champion_model = registry.load(champion.version, evaluated=True)
    except Exception as exc:  # noqa: BLE001 - an unloadable champion should not block a new one
        return True, f"promoted: champion {champion.version} could not be loaded ({exc})", None
    champ_len = {len(label) for label in champion_model.labels}
    cand_len = {len(label) for label in candidate.labels}
    if champ_len != cand_len:
        return (
            False,
            (
                f"not promoted: not comparable, champion {champion.version} predicts "
                f"{sorted(champ_len)}-digit codes, the candidate {sorted(cand_len)}-digit codes; "
                "promote by hand if wanted"
            ),
            None,
        )
    used = set(champion_model.precedents.keys)
    comparison = compare(candidate, champion_model, champion.version, test, used, seed=seed)
    promote, reason = gate(comparison, config.promotion_margin)
    return promote, reason, comparison


def _cross_validate(
    examples: Sequence[Example],
    config: TrainConfig,
    mconfig: ModelConfig,
    seed: int,
    stages: _Stages,
) -> dict[str, Any]:
    from model.fit import fit

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
    """Train on the current cases, evaluate, register; promote when first or not worse; serve
    a promoted candidate refitted on every case."""
    from hscode.cases import cases_snapshot_hash
    from hscode.registry import Registry
    from model.fit import class_labels, fit
    from model.refit import refit, retrains_network

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
    train, val, test, roles = split_roles(selection, config)
    if not val or not test:
        raise NotEnoughDataError(
            f"too few cases to hold out validation and test sets: {len(examples)} cases in "
            f"{selection.n_classes} classes (train {len(train)}, val {len(val)}, test {len(test)})"
        )
    registry = Registry.from_settings(settings)
    champion = registry.champion()
    today = dt.datetime.now(dt.UTC).date()
    recipe = choose_recipe(
        champion.info if champion is not None else None, config, settings.full_recipe_days, today
    )
    mconfig = recipe.apply(model_config(settings, config))
    recipe = warm_recipe(recipe, config, mconfig, champion, settings.full_recipe_days, today)
    log.info("recipe: %s", recipe.reason)
    # the champion's evaluated network learned from its train cases only: with stable roles,
    # none of this run's validation or test cases (its served one learned from every case)
    warm = _warm_source(registry, recipe, evaluated=True)
    n_folds = config.folds or 0
    # stage 0: the evaluated model; 1..k: CV folds; then evaluation; last: the refit
    refit_weight = 1.3 if config.refit else 0.0
    stages = _Stages(progress, [1.0] * (1 + n_folds) + [0.1, refit_weight])
    eval_stage, refit_stage = 1 + n_folds, 2 + n_folds

    t_fit = time.perf_counter()
    model = fit(
        train,
        val,
        mconfig,
        progress=stages.for_stage(0),
        background=selection.background,
        warm_from=warm,
    )
    fit_seconds = time.perf_counter() - t_fit
    stages.finish(0)
    recipe = recipe.after(model)
    model.set_precedents(train + val)  # everything the evaluated model learned from
    # each precedent's ruling (reference, date, series, shortened reason) kept in the index
    evidence = case_evidence(settings, (e.key for e in examples))
    model.precedents.attach_evidence(evidence)

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
            "n_test_recent": len(roles.recent),
            "n_review_cases": selection.sources.get(CASE_SOURCE, 0),
            "fit_seconds": fit_seconds,
        }
    )
    # out of time: the test cases decided in the newest window, and every test case by month
    dates = selection.dates or [None] * len(examples)
    test_dates = [dates[i] for i in roles.test]
    hits = topk_hits_many(model, test, (1, 3))
    hits1, hits3 = hits[1], hits[3]
    recent = set(roles.recent)
    recent_rows = [row for row, i in enumerate(roles.test) if i in recent]
    if recent_rows:
        metrics["test_recent_top1"] = float(np.mean(hits1[recent_rows]))
        metrics["test_recent_top3"] = float(np.mean(hits3[recent_rows]))
    by_month = accuracy_by_month(test_dates, hits1.tolist(), hits3.tolist())
    if cv is not None:
        metrics.update({f"cv_{k}": v for k, v in cv["mean"].items()})
    metrics.update(drift_baseline(model, test, settings))
    stages.finish(eval_stage)

    promote, reason, comparison = _compare_with_champion(registry, model, test, config, seed)
    if comparison is not None:
        metrics["champion_test_top1"] = comparison.champion_top1
        metrics["champion_test_top3"] = comparison.champion_top3
        metrics["compared_n"] = comparison.n
        metrics["compared_diff_top1"] = comparison.diff_top1
    log.info("gate: %s", reason)

    if promote and config.refit:
        t_refit = time.perf_counter()
        # the champion's network is read only when the refit retrains the main network
        warm = (
            _warm_source(registry, recipe, evaluated=False)
            if retrains_network(model, class_labels(examples))
            else None
        )
        served = refit(  # logs its time
            model, examples, progress=stages.for_stage(refit_stage), warm_from=warm
        )
        served.precedents.attach_evidence(evidence)
        metrics["refit_seconds"] = time.perf_counter() - t_refit
        served_info = {
            "model": "refit",
            "why": "promoted: the evaluated recipe retrained on every selected case",
            "n_examples": len(examples),
            "epochs": served.history["refit"]["epochs"],
            "companion_epochs": served.history["refit"]["companion_epochs"],
        }
    else:
        served = model
        served_info = {
            "model": "evaluated",
            "why": "not refitted (refit off)" if promote else "not promoted, so not refitted",
            "n_examples": len(train) + len(val),
        }
    metrics["train_seconds"] = time.perf_counter() - t_start
    stages.finish(len(stages.bounds) - 2)

    report = {
        "test": _test_details(model, test)
        | {"coverage": evaluation.get("coverage"), "by_month": by_month},
        "history": getattr(model, "history", None),
        "selection": {
            "level": config.level,
            "top_codes": config.top_codes,
            "min_cases_per_code": config.min_cases_per_code,
            "n_classes": selection.n_classes,
            "dropped": selection.dropped,
            "missing_images": selection.missing_images,
            "labels": list(model.labels),
            # remapped cases trained as their current successor; split and moved ones still
            # as their decided (old) code
            "code_status": selection.code_status,
            "largest_not_current": selection.largest_not_current,
            # reviewers' decisions are cases of source "review" (hscode.review_cases)
            "sources": selection.sources,
        },
        "split": roles.summary() | {"seed": seed},
        "comparison": {
            "promoted": promote,
            "reason": reason,
            "margin": config.promotion_margin,
            **(comparison.to_dict() if comparison is not None else {"n": 0, "keys": []}),
        },
        "served": served_info,
        "recipe": recipe.to_dict(),
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
        # the edition whose codes it learned (None: statuses were not derived); a new current
        # edition makes training due (flows._common.training_due)
        "tariff_edition": selection.code_edition,
        "metrics_describe": "the evaluated model, on its held-out test cases",
        "served": served_info,
        "gate": {"promoted": promote, "reason": reason},
        "recipe": recipe.to_dict(),
    }
    evaluated = model if served is not model else None
    version = registry.register(served, metrics, info, evaluated=evaluated)
    served.version = model.version = version
    registry.write_report(version, report)
    if promote:
        registry.promote(version, reason=reason)
    log.info("model %s registered (%s): %s", version, "promoted" if promote else "kept", reason)
    return TrainOutcome(
        version=version, promoted=promote, reason=reason, metrics=metrics, report=report
    )


def train_config_fields() -> tuple[str, ...]:
    return tuple(f.name for f in fields(TrainConfig))
