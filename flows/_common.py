"""What every flow shares: resolving settings from parameters."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hscode.settings import Settings, get_settings

if TYPE_CHECKING:
    from hscode.registry import ModelVersion


@dataclass(frozen=True)
class TrainingDecision:
    """Whether to retrain tonight, and why (in words, for the log and the event)."""

    due: bool
    why: str


def resolve_settings(settings_overrides: dict[str, Any] | None = None, **explicit: Any) -> Settings:
    """Settings from the environment, then ``settings_overrides``, then explicit non-None params.

    Flow parameters must stay JSON-able (deployments store them), so a flow takes plain
    overrides rather than a ``Settings`` object.
    """
    overrides: dict[str, Any] = dict(settings_overrides or {})
    overrides.update({k: v for k, v in explicit.items() if v is not None})
    return get_settings(**overrides)


def champion_info(settings: Settings) -> ModelVersion | None:
    """The champion's registry record (version, created_at, n_cases, data_hash, metrics...)."""
    from hscode.registry import Registry

    return Registry.from_settings(settings).champion()


def training_due(
    champion: ModelVersion | None,
    trainable_cases: int,
    now: dt.datetime,
    min_new_cases: int,
    retrain_days: int,
    current_edition: str | None = None,
) -> TrainingDecision:
    """Whether to retrain tonight, and why: no champion, a new current tariff edition (the
    champion learned another one's codes), enough new cases, or it is a week old."""
    if champion is None:
        return TrainingDecision(True, "no champion yet")
    learned = champion.info.get("tariff_edition")
    if current_edition is not None and learned != current_edition:
        return TrainingDecision(
            True,
            f"the current tariff edition is {current_edition}; the champion learned "
            f"{learned or 'the decided codes'}",
        )
    trained_on = champion.n_cases
    if trained_on is not None and trainable_cases - trained_on >= min_new_cases:
        return TrainingDecision(
            True,
            f"{trainable_cases - trained_on} new cases since the champion (>= {min_new_cases})",
        )
    created = _when(champion.created_at)
    if created is not None and now - created >= dt.timedelta(days=retrain_days):
        return TrainingDecision(
            True, f"champion is {(now - created).days} days old (>= {retrain_days})"
        )
    return TrainingDecision(False, "champion is recent and few new cases arrived")


def _when(value: Any) -> dt.datetime | None:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return None
