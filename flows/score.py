"""Score flow: inbox -> requests table; pending requests -> predictions with the champion."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from flows._common import resolve_settings
from tasks.score import import_inbox, resolve_champion, score_pending_requests


@flow(name="score", log_prints=True)
def score_flow(
    batch_size: int | None = None,
    model_version: str | None = None,
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Import new request files from the inbox, then score every pending request.

    The champion is resolved once, so a promotion during the run cannot mix two models
    in one backlog.

    Args:
        batch_size: requests per scoring batch (None: ``settings.score_batch_size``).
        model_version: score with this registered version instead of the champion.
        settings_overrides: other ``Settings`` fields.
    """
    settings = resolve_settings(settings_overrides)
    intake = import_inbox(settings)
    version = model_version or resolve_champion(settings)
    if version is None:
        print("no champion model yet: requests stay pending until one is trained")
        return {"intake": intake, "model_version": None, "scored": 0, "reason": "no champion"}
    run_id = flow_run.get_id()
    summary = score_pending_requests(settings, version, batch_size, str(run_id) if run_id else None)
    return {"intake": intake, "model_version": version, **summary}
