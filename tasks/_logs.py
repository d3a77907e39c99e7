"""Send the domain's own log lines (``hscode``, ``model``) to the Prefect run's log, so a
training's epochs, early stopping and gate verdict show in the UI while it runs.

The lines go to the API only (Prefect's ``APILogHandler``, under their own logger names):
the console already prints them once through the process's logging setup.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from prefect.logging.handlers import APILogHandler

DOMAIN_LOGGERS = ("hscode", "model")


@contextlib.contextmanager
def relay_logs(names: tuple[str, ...] = DOMAIN_LOGGERS) -> Iterator[None]:
    """While inside (a task or flow run), INFO and above from these loggers also go to the
    run's log in the Prefect API."""
    handler = APILogHandler(level=logging.INFO)
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        if lg.level == logging.NOTSET or lg.level > logging.INFO:
            lg.setLevel(logging.INFO)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
