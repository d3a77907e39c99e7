"""Nightly chain: crawl -> normalize -> train when due -> score."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows._common import TrainingDecision, champion_info, resolve_settings, training_due
from flows.crawl import crawl_flow
from flows.normalize import normalize_flow
from flows.score import score_flow
from flows.train import train_flow
from hscode.settings import Settings


@task(name="decide-training", tags=["train"], cache_policy=NO_CACHE)
def decide_training(settings: Settings, min_new_cases: int, retrain_days: int) -> TrainingDecision:
    from hscode.db import get_engine
    from hscode.tariff_editions import current_edition
    from tasks.cases import count_trainable_cases

    return training_due(
        champion_info(settings),
        count_trainable_cases.fn(settings),
        dt.datetime.now(dt.UTC),
        min_new_cases,
        retrain_days,
        current_edition=current_edition(get_engine(settings)),
    )


@flow(name="nightly", log_prints=True)
def nightly_flow(
    since: dt.date | None = None,
    until: dt.date | None = None,
    series: list[str] | None = None,
    portal_url: str | None = None,
    train: str = "auto",
    min_new_cases: int = 200,
    retrain_days: int = 7,
    top_codes: int | None = None,
    inputs: str | None = None,
    epochs: int | None = None,
    train_overrides: dict[str, Any] | None = None,
    batch_size: int | None = None,
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The nightly chain. Each step is its own subflow run, so each shows up on its own.

    Args:
        since: first decision date to crawl (default: the crawl's recrawl window).
        until: last decision date to crawl (default: today).
        series: portal series to crawl: any of ordinary, council, committee (default: all).
        portal_url: base URL of the portal or of an emulator (default: settings).
        train: ``auto`` (when due), ``always`` or ``never``.
        min_new_cases: new trainable cases since the champion that make training due.
        retrain_days: champion age that makes training due.
        top_codes: train on the K most frequent codes only (default: every code).
        inputs: the model's inputs, e.g. ``title+description`` (default: the trainer's).
        epochs: training epochs (default: the trainer's).
        train_overrides: other ``TrainConfig`` fields for the train flow.
        batch_size: passed to the score flow.
        settings_overrides: ``Settings`` fields for every step (e.g. ``data_dir``).
    """
    if train not in ("auto", "always", "never"):
        raise ValueError(f"train must be auto, always or never, not {train!r}")
    overrides = dict(settings_overrides or {})
    if portal_url:
        overrides["portal_url"] = portal_url
    settings = resolve_settings(overrides)
    summary: dict[str, Any] = {"data_dir": str(settings.data_dir)}
    summary["crawl"] = crawl_flow(
        since=since, until=until, series=series, settings_overrides=overrides
    )
    # the chain trains and scores itself: its steps announce nothing that would start the
    # train or the score deployment a second time
    summary["normalize"] = normalize_flow(settings_overrides=overrides, announce_training_due=False)
    if train == "auto":
        decision = decide_training(settings, min_new_cases, retrain_days)
    else:
        decision = TrainingDecision(train == "always", f"train={train}")
    due, why = decision.due, decision.why
    print(f"training {'due' if due else 'not due'}: {why}")
    summary["train"] = (
        train_flow(
            top_codes=top_codes,
            inputs=inputs,
            epochs=epochs,
            force=train == "always",
            train_overrides=train_overrides,
            settings_overrides=overrides,
            announce=False,
            decisions_taken=True,  # normalize_flow just took them
        )
        if due
        else {"trained": False, "reason": why}
    )
    summary["score"] = score_flow(batch_size=batch_size, settings_overrides=overrides)
    return summary
