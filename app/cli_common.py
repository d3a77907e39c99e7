"""What every ``hscode`` subcommand module shares: exit codes, the expected-failure error,
settings and engine from the arguments, the terminal progress bar and summary printing."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from hscode.progress import progress_args
from hscode.summaries import jsonable

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_NOT_RUNNING = 3  # `db status`: no server (as `systemctl status` for an inactive unit)


class CliError(Exception):
    """An expected failure: printed as one line, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


class ProgressBar:
    """``progress(done, total)`` callback drawing a bar on stderr (only on a terminal)."""

    def __init__(self, label: str, stream: Any = None, min_interval_s: float = 0.2) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.min_interval_s = min_interval_s
        self._last = 0.0
        self._started = time.monotonic()
        self._drawn = False

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        if not self.enabled:
            return
        done, total, what = progress_args(args, kwargs)
        now = time.monotonic()
        finished = total is not None and done >= total
        if not finished and now - self._last < self.min_interval_s:
            return
        self._last = now
        elapsed = now - self._started
        if total:
            frac = min(1.0, done / total)
            bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
            line = f"\r{self.label} [{bar}] {done}/{total} {elapsed:5.0f}s {what}"
        else:
            line = f"\r{self.label} {done} {elapsed:5.0f}s {what}"
        # pad so a shorter line fully overwrites the previous one
        line = line.ljust(getattr(self, "_width", 0))
        self._width = len(line)
        self.stream.write(line)
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def settings_for(args: argparse.Namespace, **overrides: Any) -> Any:
    """Settings from the environment, the global ``--data-dir``/``--storage-url`` and the
    command's own non-None options."""
    from hscode.settings import get_settings

    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    if getattr(args, "storage_url", None) is not None:
        overrides["storage_url"] = args.storage_url
    return get_settings(**{k: v for k, v in overrides.items() if v is not None})


def migrated_engine(settings: Any) -> Any:
    """The database engine, its schema brought up to date."""
    from hscode.db import get_engine, migrate

    engine = get_engine(settings)
    migrate(engine)
    return engine


def print_summary(title: str, summary: Any) -> None:
    data = jsonable(summary)
    print(f"{title}:")
    if isinstance(data, dict):
        for key, value in data.items():
            shown = (
                json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value
            )
            print(f"  {key}: {shown}")
    else:
        print(f"  {data}")


def with_progress(label: str, fn: Callable[[Callable[..., None]], Any]) -> Any:
    """``fn(bar)`` with a terminal progress bar, closed (its line ended) however ``fn`` ends."""
    bar = ProgressBar(label)
    try:
        return fn(bar)
    finally:
        bar.close()
