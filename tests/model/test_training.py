"""Training flow: class selection, grouped split, train -> register -> promote only if not worse."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from hscode.case_records import make_case, synthetic_case_records
from hscode.cases import upsert_cases
from hscode.evaluation import grouped_folds, grouped_stratified_split
from hscode.registry import Registry
from hscode.selection import load_examples
from hscode.training import SMOKE_TRAIN as TINY
from hscode.training import (
    NotEnoughDataError,
    TrainConfig,
    split_roles,
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


def test_train_registers_and_promotes_first_then_keeps_a_worse_one(settings, monkeypatch) -> None:
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
    # the served model is refitted on every case, so the evaluated model's members are not
    # refitted on train + val as well (a third fit): its val_top1 is measured on val
    ensemble = registry.load(first.version).history["ensemble"]
    assert "refit_on" not in ensemble
    assert champion.n_cases == 120 and champion.data_hash and champion.inputs == "title"
    loaded = registry.load(first.version)
    assert loaded.version == first.version
    assert registry.load(first.version) is loaded  # cached
    # the evaluation details behind the report's plots are kept with the version
    stored = registry.read_report(first.version)
    assert stored is not None and stored["test"]["y_true"] == list(first.report["test"]["y_true"])
    from hscode import reports

    assert set(reports.training_plots(stored)) >= {"reliability", "accuracy_coverage"}

    # a deliberately broken candidate on the same data: its label map is rotated, so it
    # answers a wrong code for every case
    import model.fit as fit_module

    real_fit = fit_module.fit

    def broken_fit(*args, **kwargs):
        fitted = real_fit(*args, **kwargs)
        fitted.labels = fitted.labels[1:] + fitted.labels[:1]
        fitted._label_index = {label: i for i, label in enumerate(fitted.labels)}
        return fitted

    monkeypatch.setattr(fit_module, "fit", broken_fit)
    worse = train_and_register(settings, TrainConfig(**TINY))
    assert not worse.promoted
    assert "could be worse than the champion" in worse.reason and "neither model" in worse.reason
    comparison = worse.report["comparison"]
    assert comparison["n"] == worse.metrics["n_test"]  # same data: every test case is fair
    assert comparison["champion_top1"] > comparison["candidate_top1"]
    assert comparison["diff_top1_low"] <= comparison["diff_top1"] <= comparison["diff_top1_high"]
    assert registry.get(worse.version).info["gate"]["reason"] == worse.reason
    assert registry.get(worse.version).info["served"]["model"] == "evaluated"
    assert registry.champion().version == first.version
    assert [v.version for v in registry.list_versions()] == [first.version, worse.version]


def test_comparison_uses_only_cases_the_champion_never_learned_from(settings) -> None:
    """Reproduces the old gate's leak (a fresh shuffle per snapshot puts the champion's
    training cases in the candidate's test set) and shows the stable roles end it."""
    _write_cases(settings, 150)
    config = TrainConfig(**TINY)
    v1_selection = load_examples(settings, config)
    v1_train, v1_val, v1_test, _ = split_roles(v1_selection, config)
    v1_titles = [e.title for e in v1_selection.examples]
    v1_labels = [e.label for e in v1_selection.examples]
    old_keep, _ = grouped_stratified_split(v1_titles, v1_labels, 0.2, seed=13)
    v1 = train_and_register(settings, config)
    registry = Registry(settings.model_registry_dir)
    v1_evaluated = registry.load(v1.version, evaluated=True)
    v1_served = registry.load(v1.version)
    # the served model learned from every case; the evaluated one from train + validation
    assert set(v1_served.precedents.keys) == {e.key for e in v1_selection.examples}
    assert v1.metrics["n_selected"] == len(v1_served.precedents.keys)
    assert set(v1_evaluated.precedents.keys) == {e.key for e in v1_train + v1_val}
    assert registry.get(v1.version).info["served"]["model"] == "refit"

    upsert_cases(settings, synthetic_case_records(8, seed=7, prefix="new"))  # ~5% more
    v2_selection = load_examples(settings, config)
    # the old protocol: a fresh seeded shuffle of the grown snapshot
    titles = [e.title for e in v2_selection.examples]
    labels = [e.label for e in v2_selection.examples]
    _, old_test = grouped_stratified_split(titles, labels, 0.2, seed=13)
    old_v1_trained = {v1_selection.examples[i].key for i in old_keep}
    old_test_keys = {v2_selection.examples[i].key for i in old_test}
    assert old_test_keys & old_v1_trained  # the leak: the champion trained on these

    v2 = train_and_register(settings, config)
    comparison = v2.report["comparison"]
    keys = set(comparison["keys"])
    assert keys and comparison["n"] == len(keys)
    assert not keys & {e.key for e in v1_train + v1_val}  # training, validation, calibration
    assert not keys & set(v1_evaluated.precedents.keys)  # precedents
    assert keys <= {e.key for e in v1_test} | {f"new-{i}" for i in range(8)}
    assert comparison["excluded_champion_used"] == v2.metrics["n_test"] - len(keys)
    stored = registry.read_report(v2.version)
    assert stored is not None and set(stored["comparison"]["keys"]) == keys
    assert stored["comparison"]["reason"] == v2.reason
    assert registry.get(v2.version).info["gate"]["reason"] == v2.reason
    from hscode import reports

    markdown = reports.training_report_markdown(
        v2.version, v2.metrics, v2.promoted, v2.reason, stored
    )
    assert "## Comparison with the champion" in markdown
    assert f"On {len(keys)} test cases neither model learned from" in markdown
    assert "**Served model:**" in markdown


def test_recipe_leaves_out_what_the_last_full_run_weighed_zero() -> None:
    from datetime import date

    from hscode.training import choose_recipe

    today = date(2026, 12, 2)
    config = TrainConfig(**TINY)
    assert choose_recipe(None, config, 7, today).full  # no champion
    assert choose_recipe({}, config, 7, today).reason == "full: the champion records no recipe"
    weighed_zero = {"recipe": {"full_since": "2026-11-30", "zero_weight": ["companion"]}}
    light = choose_recipe(weighed_zero, config, 7, today)
    assert not light.full and light.skipped == ("companion",)
    assert light.full_since == "2026-11-30" and "weighed 0 by the full run of 2026-11-30" in (
        light.reason
    )
    assert light.apply(model_config_of(config)).ensemble.companion == "none"
    # a week after the full run, a full run re-checks; --full forces one; so does a champion
    # whose full run weighed the companion
    old = {"recipe": {"full_since": "2026-11-25", "zero_weight": ["companion"]}}
    assert choose_recipe(old, config, 7, today).reason == (
        "full: the last full run was 7 days ago (every 7)"
    )
    forced = TrainConfig(**TINY, full=True)
    assert choose_recipe(weighed_zero, forced, 7, today).reason == "full: asked for (--full)"
    weighed = {"recipe": {"full_since": "2026-11-30", "zero_weight": []}}
    assert choose_recipe(weighed, config, 7, today).full
    assert choose_recipe(weighed_zero, config, 0, today).full  # 0 days: always full


def test_the_network_continues_the_champion_until_its_chain_is_due_from_scratch() -> None:
    from datetime import date

    from hscode.registry import ModelVersion
    from hscode.training import Recipe, warm_recipe

    today = date(2026, 12, 2)
    config = TrainConfig(**TINY, warm=True)
    mconfig = model_config_of(config)
    recipe = Recipe(False, "light", "2026-11-30")

    def champion(since: str, **overrides) -> ModelVersion:
        info = {
            "recipe": {"scratch_since": since},
            "config": mconfig.with_flat(**overrides).to_dict(),
        }
        return ModelVersion("v0003", "2026-12-01T00:00:00Z", info=info)

    warm = warm_recipe(recipe, config, mconfig, champion("2026-11-28"), 7, today)
    assert warm.warm_from == "v0003" and warm.scratch_since == "2026-11-28"
    assert warm.reason == "light; network continues v0003's"
    cases = {
        "its chain began 7 days ago, every 7": (config, champion("2026-11-25")),
        "--full": (TrainConfig(**TINY, full=True, warm=True), champion("2026-11-28")),
        "no --warm": (TrainConfig(**TINY), champion("2026-11-28")),
        "no champion": (config, None),
        "the champion records no network chain": (config, champion("")),
        "another network: hidden 24 -> 16": (config, champion("2026-11-28", hidden=24)),
    }
    for why, (cfg, champ) in cases.items():
        cold = warm_recipe(recipe, cfg, mconfig, champ, 7, today)
        assert cold.warm_from is None and cold.scratch_since == "2026-12-02", why
        assert cold.reason == f"light; network from scratch ({why})"


def model_config_of(config: TrainConfig):
    from hscode.settings import Settings
    from hscode.training import model_config

    return model_config(Settings(_env_file=None), config)


def test_a_light_run_skips_the_companion_the_champion_weighed_zero(settings) -> None:
    _write_cases(settings, 120)
    first = train_and_register(settings, TrainConfig(**TINY))
    recipe = first.report["recipe"]
    assert recipe["full"] and recipe["reason"].startswith("full: no champion yet")
    assert recipe["warm_from"] is None and recipe["scratch_since"] == recipe["full_since"]
    weights = Registry(settings.model_registry_dir).load(first.version, evaluated=True).weights()
    # on these cases (seeded) the mixture weighs the companion 0, which this test exercises
    assert weights["companion"] == 0.0 and recipe["zero_weight"] == ["companion"]
    second = train_and_register(settings, TrainConfig(**TINY, warm=True))
    light = second.report["recipe"]
    assert not light["full"] and light["skipped"] == ["companion"]
    assert light["full_since"] == recipe["full_since"]  # carried from the full run
    evaluated = Registry(settings.model_registry_dir).load(second.version, evaluated=True)
    assert "companion" not in evaluated.member_names and "companion" not in evaluated.history
    stored = Registry(settings.model_registry_dir).get(second.version).info["recipe"]
    assert stored == light
    # with --warm the main network continues the champion's evaluated one (model.warm)
    assert light["warm_from"] == first.version and "continues" in light["reason"]
    assert evaluated.history["warm_start"]["known_codes"] == len(evaluated.labels)
    assert len(evaluated.history["epochs"]) <= evaluated.config.network.warm_epochs
    cold = train_and_register(settings, TrainConfig(**TINY)).report["recipe"]
    assert cold["warm_from"] is None and cold["reason"].endswith("from scratch (no --warm)")
