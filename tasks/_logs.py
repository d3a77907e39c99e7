"""Relay the domain's own log lines (``hscode``, ``model``) into the Prefect run's log, so a
training's epochs, early stopping and gate verdict show in the UI while it runs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from prefect.logging import get_run_logger

DOMAIN_LOGGERS = ("hscode", "model")


class _Relay(logging.Handler):
    def __init__(self, target: logging.LoggerAdapter | logging.Logger) -> None:
        super().__init__(logging.INFO)
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.target.log(record.levelno, "%s: %s", record.name, record.getMessage())
        except Exception:  # noqa: BLE001 - a log line must never fail the task
            self.handleError(record)


@contextlib.contextmanager
def relay_logs(names: tuple[str, ...] = DOMAIN_LOGGERS) -> Iterator[None]:
    """While inside, INFO and above from these loggers also go to the run logger."""
    relay = _Relay(get_run_logger())
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(relay)
        if lg.level == logging.NOTSET or lg.level > logging.INFO:
            lg.setLevel(logging.INFO)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(relay)
            lg.setLevel(level)
