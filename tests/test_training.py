"""Training flow: class selection, grouped split, train -> register -> promote only if better."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from hscode.cases import make_case, synthetic_case_records, upsert_cases
from hscode.registry import Registry
from hscode.training import SMOKE_TRAIN as TINY
from hscode.training import (
    NotEnoughDataError,
    TrainConfig,
    grouped_folds,
    grouped_stratified_split,
    load_examples,
    train_and_register,
)


def _write_cases(settings, n: int, seed: int = 0, prefix: str = "syn") -> list[dict]:
    records = synthetic_case_records(n, seed, prefix)
    upsert_cases(settings, records)
    return records


def test_split_is_grouped_stratified_and_seeded() -> None:
    titles = [f"item {i // 2}" for i in range(200)]  # every title twice
    labels = [str((i // 2) % 4) for i in range(200)]  # duplicates share their label
    keep, held = grouped_stratified_split(titles, labels, 0.25, seed=3)
    assert sorted(keep + held) == list(range(200))
    assert not {titles[i] for i in keep} & {titles[i] for i in held}
    per_label = Counter(labels[i] for i in held)
    assert set(per_label) == {"0", "1", "2", "3"}
    assert all(10 <= n <= 16 for n in per_label.values())  # ~25% of 50 each
    assert grouped_stratified_split(titles, labels, 0.25, seed=3) == (keep, held)
    assert grouped_stratified_split(titles, labels, 0.25, seed=4) != (keep, held)

    folds = grouped_folds(titles, labels, 5, seed=1)
    assert sorted(i for f in folds for i in f) == list(range(200))
    for f in folds:
        rest = set(range(200)) - set(f)
        assert not {titles[i] for i in f} & {titles[i] for i in rest}


def test_class_selection(settings) -> None:
    records = _write_cases(settings, 40)
    # one code with a single case is dropped as rare; a multi-code case is not trainable
    upsert_cases(
        settings,
        [
            make_case(
                case_key="rare-1", source="import:test", title_raw="희귀 물품", hs_raw="9999999999"
            ),
            make_case(
                case_key="multi-1",
                source="import:test",
                title_raw="세트 물품",
                hs_raw="① 6110.20-0000 ② 6108.91-0000",
            ),
        ],
    )
    selection = load_examples(settings, TrainConfig(inputs="title", min_cases_per_code=2))
    assert selection.n_cases == len(records) + 1
    assert selection.n_classes == 5
    assert selection.dropped["rare_code"] == 1 and selection.dropped["no_single_hs10"] == 1
    top2 = load_examples(settings, TrainConfig(inputs="title", top_codes=2))
    assert top2.n_classes == 2 and len({e.label for e in top2.examples}) == 2
    hs4 = load_examples(settings, TrainConfig(inputs="title", level="hs4"))
    assert all(len(e.label) == 4 for e in hs4.examples)


def test_too_few_cases_is_a_clear_error(settings) -> None:
    _write_cases(settings, 4)
    with pytest.raises(NotEnoughDataError, match="too few cases to train"):
        train_and_register(settings, TrainConfig(**TINY))
    with pytest.raises(ValueError, match="unknown inputs"):
        TrainConfig(inputs="photo")


def test_train_registers_and_promotes_first_then_keeps_a_worse_one(settings) -> None:
    _write_cases(settings, 120)
    calls: list[tuple[int, int]] = []
    first = train_and_register(
        settings, TrainConfig(**TINY), progress=lambda d, t: calls.append((d, t))
    )
    assert first.promoted and "first model" in first.reason
    for key in ("test_top1", "test_top3", "ece_after", "n_cases", "n_train", "n_test"):
        assert key in first.metrics
    assert first.metrics["n_cases"] == 120
    assert calls and calls[-1][0] == calls[-1][1]  # progress reaches 100%
    assert all(b[0] >= a[0] for a, b in itertools.pairwise(calls))
    assert (
        first.report is not None and len(first.report["test"]["y_true"]) == first.metrics["n_test"]
    )

    registry = Registry(settings.model_registry_dir)
    champion = registry.champion()
    assert champion is not None and champion.version == first.version
    # the members were refitted on train + val, so val_top1 is the out-of-fold mixture's
    ensemble = registry.load(first.version).history["ensemble"]
    assert "refit_on" in ensemble
    assert first.metrics["val_top1"] == ensemble["val_top1_mixed_out_of_fold"]
    assert champion.n_cases == 120 and champion.data_hash and champion.inputs == "title"
    loaded = registry.load(first.version)
    assert loaded.version == first.version
    assert registry.load(first.version) is loaded  # cached
    # the evaluation details behind the report's plots are kept with the version
    stored = registry.read_report(first.version)
    assert stored is not None and stored["test"]["y_true"] == list(first.report["test"]["y_true"])
    from hscode import reports

    assert set(reports.training_plots(stored)) >= {"reliability", "accuracy_coverage"}

    # a deliberately crippled candidate (one epoch, tiny embedding) on the same data
    worse = train_and_register(
        settings, TrainConfig(**(TINY | {"epochs": 1, "embed_dim": 2, "hidden": 2, "lr": 1e-5}))
    )
    assert not worse.promoted
    assert "does not beat the champion" in worse.reason and "same" in worse.reason
    assert worse.metrics["champion_test_top1"] >= worse.metrics["test_top1"]
    assert registry.champion().version == first.version
    assert [v.version for v in registry.list_versions()] == [first.version, worse.version]
