"""What every flow shares: resolving settings from parameters."""

from __future__ import annotations

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
    """The champion's version and what it was trained on, or None without a champion."""
    from hscode.registry import Registry

    registry = Registry(settings.model_registry_dir)
    champion = registry.champion()
    if champion is None:
        return None
    info = _as_dict(champion)
    version = info.get("version") or (champion if isinstance(champion, str) else None)
    if version is not None and len(info) <= 1:
        # champion() returned only a name: read the version's record
        for entry in registry.list_versions():
            entry_info = _as_dict(entry)
            if entry_info.get("version") == version:
                info = entry_info
                break
    info["version"] = version
    return info


def _as_dict(obj: Any) -> dict[str, Any]:
    import dataclasses

    if isinstance(obj, str):
        return {"version": obj}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    if isinstance(obj, dict):
        return dict(obj)
    return dict(getattr(obj, "__dict__", {}))


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
    trained_on = _int(champion, "n_cases", "n_train_cases", "train_cases", "trainable_cases")
    if trained_on is not None and trainable_cases - trained_on >= min_new_cases:
        return (
            True,
            f"{trainable_cases - trained_on} new cases since the champion (>= {min_new_cases})",
        )
    created = _when(champion.get("created_at") or champion.get("trained_at"))
    if created is not None and now - created >= dt.timedelta(days=retrain_days):
        return True, f"champion is {(now - created).days} days old (>= {retrain_days})"
    return False, "champion is recent and few new cases arrived"


def _int(info: dict[str, Any], *keys: str) -> int | None:
    for scope in (info, info.get("metrics") or {}, info.get("data") or {}):
        for key in keys:
            if isinstance(scope, dict) and isinstance(scope.get(key), int):
                return int(scope[key])
    return None


def _when(value: Any) -> dt.datetime | None:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return None
