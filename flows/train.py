"""Train flow: train text/image/fusion models, evaluate, register, promote if not worse than the champion; serve a refit."""

from __future__ import annotations

import dataclasses
from typing import Any

from prefect import flow

from flows._common import champion_info, resolve_settings
from tasks.cases import take_decisions
from tasks.train import announce_promotion, train_model


@flow(name="train", log_prints=True)
def train_flow(
    top_codes: int | None = None,
    inputs: str | None = None,
    epochs: int | None = None,
    force: bool = False,
    train_overrides: dict[str, Any] | None = None,
    settings_overrides: dict[str, Any] | None = None,
    announce: bool = True,
    decisions_taken: bool = False,
) -> dict[str, Any]:
    """Train a candidate on the current cases; it becomes champion only if it is not worse than
    the champion on test cases neither learned from (then it is refitted on every case).

    Args:
        top_codes: keep only the K most frequent HS10 codes (None: every code with enough cases).
        inputs: title | title+description | title+image | title+description+image.
        epochs: training epochs (None: the trainer's default).
        force: train even when the champion was trained on exactly the current cases.
        train_overrides: other ``TrainConfig`` fields (e.g. small settings for a demo).
        settings_overrides: ``Settings`` fields (e.g. ``{"device": "cuda"}``).
        announce: emit ``hscode.model.promoted`` on a promotion (which starts the score
            deployment); the nightly chain, which scores itself next, passes False.
        decisions_taken: the caller has just taken reviewers' decisions into the cases (the
            nightly chain's normalize step), so this flow does not take them again.
    """
    settings = resolve_settings(settings_overrides)
    if not decisions_taken:
        take_decisions(settings)  # every decided request is a case of this training
    if not force:
        champion = champion_info(settings)
        current = _current_snapshot(settings)
        if champion and current and champion.data_hash == current:
            print(f"champion {champion.version} was trained on this exact data; skipping")
            return {"trained": False, "reason": "no new data since the champion", "version": None}
    config = dict(train_overrides or {})
    config.update({"top_codes": top_codes, "inputs": inputs, "epochs": epochs})
    outcome = train_model(settings, config)
    announced = bool(outcome.promoted and announce)
    if announced:
        announce_promotion(outcome.version, outcome.metrics)
    return {"trained": True, "announced": announced, **dataclasses.asdict(outcome)}


def _current_snapshot(settings: Any) -> str | None:
    try:
        from hscode.cases import cases_snapshot_hash
    except ImportError:
        return None
    return cases_snapshot_hash(settings)
