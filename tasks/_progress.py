"""A progress callback that mirrors long domain work into a Prefect progress artifact."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.logging import get_run_logger

from hscode.progress import progress_args


class ArtifactProgress:
    """``progress(done, total)`` callback; throttled so it never slows the work it reports."""

    def __init__(self, key: str, description: str, min_interval_s: float = 2.0) -> None:
        self.key = key
        self.description = description
        self.min_interval_s = min_interval_s
        self._artifact_id: UUID | None = None
        self._last = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        done, total, what = progress_args(args, kwargs)
        now = time.monotonic()
        finished = total is not None and done >= total
        if not finished and now - self._last < self.min_interval_s:
            return
        self._last = now
        percent = 100.0 * done / total if total else 0.0
        try:
            if self._artifact_id is None:
                self._artifact_id = create_progress_artifact(
                    progress=percent, key=self.key, description=self.description
                )
            else:
                update_progress_artifact(
                    self._artifact_id, progress=percent, description=what or None
                )
        except Exception as exc:  # noqa: BLE001 - reporting must never fail the work it reports on
            get_run_logger().debug("progress artifact %s not updated: %s", self.key, exc)
