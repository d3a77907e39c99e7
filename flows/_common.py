"""What every flow shares: resolving settings from parameters."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from hscode.settings import Settings, get_settings


def resolve_settings(settings_overrides: dict[str, Any] | None = None, **explicit: Any) -> Settings:
    """Settings from the environment, then ``settings_overrides``, then explicit non-None params.

    Flow parameters must stay JSON-able (deployments store them), so a flow takes plain
    overrides rather than a ``Settings`` object.
    """
    overrides: dict[str, Any] = dict(settings_overrides or {})
    overrides.update({k: v for k, v in explicit.items() if v is not None})
    return get_settings(**overrides)


def champion_info(settings: Settings) -> dict[str, Any] | None:
    """The champion's registry record (version, created_at, n_cases, data_hash, metrics...)."""
    from hscode.registry import Registry

    champion = Registry.from_settings(settings).champion()
    return None if champion is None else dataclasses.asdict(champion)


def training_due(
    champion: dict[str, Any] | None,
    trainable_cases: int,
    now: dt.datetime,
    min_new_cases: int,
    retrain_days: int,
) -> tuple[bool, str]:
    """Whether to retrain tonight, and why: no champion, enough new cases, or it is a week old."""
    if champion is None:
        return True, "no champion yet"
    trained_on = champion.get("n_cases")
    if trained_on is not None and trainable_cases - trained_on >= min_new_cases:
        return (
            True,
            f"{trainable_cases - trained_on} new cases since the champion (>= {min_new_cases})",
        )
    created = _when(champion.get("created_at"))
    if created is not None and now - created >= dt.timedelta(days=retrain_days):
        return True, f"champion is {(now - created).days} days old (>= {retrain_days})"
    return False, "champion is recent and few new cases arrived"


def _when(value: Any) -> dt.datetime | None:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return None
