"""The ``model_versions`` table: each registered version with its metrics, one champion.

The registry (``hscode.registry``) is the truth about versions and the champion; these rows
mirror it for the analysts' views and the scoring runs that reference a version.
"""

from __future__ import annotations

import json
import math
from typing import Any

from sqlalchemy import Engine, text


def record_model_version(
    engine: Engine, version: str, metrics: dict[str, Any] | None = None, champion: bool = False
) -> None:
    """Upsert a model version with its metrics; ``champion=True`` makes it the only champion.

    ``champion=False`` on the current champion demotes it (the registry states the truth).
    Empty ``metrics`` keep the metrics already recorded.
    """
    if not version:
        raise ValueError("model version must be a non-empty string")
    payload = json.dumps(metrics or {}, ensure_ascii=False, default=str, allow_nan=False)
    with engine.begin() as conn:
        if champion:
            # serialise promotions: the partial unique index allows one champion only
            conn.execute(text("lock table model_versions in share row exclusive mode"))
            conn.execute(
                text(
                    "update model_versions set champion = false, updated_at = now() "
                    "where champion and version <> :v"
                ),
                {"v": version},
            )
        conn.execute(
            text(
                """
                insert into model_versions (version, metrics, champion, promoted_at)
                values (:v, cast(:m as jsonb), :c, case when :c then now() end)
                on conflict (version) do update set
                    metrics = case when excluded.metrics = '{}'::jsonb
                                   then model_versions.metrics else excluded.metrics end,
                    champion = excluded.champion,
                    promoted_at = case
                        when excluded.champion and not model_versions.champion then now()
                        else model_versions.promoted_at end,
                    updated_at = now()
                """
            ),
            {"v": version, "m": payload, "c": champion},
        )


def _finite_json(value: Any) -> Any:
    """``value`` with NaN / infinite floats as None (jsonb has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    return value


def sync_registry_versions(engine: Engine, registry: Any) -> int:
    """Record every version of the model registry in ``model_versions``; returns how many.

    ``model_leaderboard`` reads this table, so a version trained but not promoted is listed
    too, with its metrics. The registry is the truth: its champion is flagged (the others
    not), a version gets ``promoted_at`` from the registry's last promotion (or rollback) to
    it, ``registered_at`` from its creation. Versions the registry does not know (recorded
    by other means) keep their rows; without a champion in the registry no flag changes.

    ``registry``: a :class:`hscode.registry.Registry` (``list_versions()``, ``history()``).
    """
    versions = list(registry.list_versions())
    if not versions:
        return 0
    became_champion: dict[str, str | None] = {}
    for event in registry.history():
        if event.get("action") in ("promote", "rollback") and event.get("version"):
            became_champion[str(event["version"])] = str(event.get("at") or "") or None
    champion = next((v.version for v in versions if v.champion), None)
    rows = [
        {
            "v": v.version,
            "m": json.dumps(_finite_json(dict(v.metrics or {})), ensure_ascii=False, default=str),
            "c": v.version == champion,
            "has_champion": champion is not None,
            "created": v.created_at or None,
            "promoted": became_champion.get(v.version),
        }
        for v in versions
    ]
    with engine.begin() as conn:
        conn.execute(text("lock table model_versions in share row exclusive mode"))
        if champion is not None:
            conn.execute(
                text(
                    "update model_versions set champion = false, updated_at = now() "
                    "where champion and version <> :v"
                ),
                {"v": champion},
            )
        conn.execute(
            text(
                """
                insert into model_versions (version, metrics, champion, registered_at,
                                            promoted_at)
                values (:v, cast(:m as jsonb), :c,
                        coalesce(cast(:created as timestamptz), now()),
                        coalesce(cast(:promoted as timestamptz), case when :c then now() end))
                on conflict (version) do update set
                    metrics = case when excluded.metrics = '{}'::jsonb
                                   then model_versions.metrics else excluded.metrics end,
                    champion = case when :has_champion then excluded.champion
                                    else model_versions.champion end,
                    registered_at = least(model_versions.registered_at, excluded.registered_at),
                    promoted_at = coalesce(
                        cast(:promoted as timestamptz),
                        case when excluded.champion and not model_versions.champion then now()
                             else model_versions.promoted_at end),
                    updated_at = now()
                """
            ),
            rows,
        )
    return len(rows)


def ensure_model_version(engine: Engine, version: str) -> None:
    """Make sure a model version row exists (no metrics, not champion) without touching others."""
    with engine.begin() as conn:
        conn.execute(
            text("insert into model_versions (version) values (:v) on conflict do nothing"),
            {"v": version},
        )
