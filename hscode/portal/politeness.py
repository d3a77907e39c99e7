"""Politeness shared by every client and process using one ``state_dir``.

* ``RateLimiter``: the request rate as a tiny file-locked "next slot" clock per origin;
* ``crawl_slot``: at most settings.max_concurrent_crawls crawls at once (``CrawlBusy``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from hscode.settings import Settings


class CrawlBusy(RuntimeError):
    """settings.max_concurrent_crawls crawls already hold a slot."""


_PROCESS_LOCK = threading.Lock()


class RateLimiter:
    """A shared "next free slot" clock in a file, so all processes together keep the rate."""

    def __init__(self, state_dir: Path, origin: str, rate: float) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        tag = hashlib.sha256(origin.encode()).hexdigest()[:16]
        self.path = state_dir / f"ratelimit-{tag}.clock"
        self.interval = 1.0 / rate

    def _update(self, fn: Callable[[float, float], tuple[float, float]]) -> float:
        """Under the file lock: (now, next_free) -> (wait, new_next_free); returns wait."""
        with _PROCESS_LOCK, open(self.path, "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                fh.seek(0)
                raw = fh.read().strip()
                try:
                    next_free = float(raw) if raw else 0.0
                except ValueError:
                    next_free = 0.0
                wait, new_next = fn(time.time(), next_free)
                fh.seek(0)
                fh.truncate()
                fh.write(repr(new_next).encode())
                fh.flush()
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return wait

    def slow_down(self, interval: float) -> None:
        self.interval = max(self.interval, interval)

    def acquire(self) -> float:
        """Reserve the next slot and sleep until it; returns the seconds waited."""

        def take(now: float, next_free: float) -> tuple[float, float]:
            slot = max(now, next_free)
            return slot - now, slot + self.interval

        wait = self._update(take)
        if wait > 0:
            time.sleep(wait)
        return wait

    def defer(self, seconds: float) -> None:
        """Nobody sends before now + seconds (Retry-After applies to the whole origin)."""
        self._update(lambda now, nxt: (0.0, max(nxt, now + seconds)))


@contextlib.contextmanager
def crawl_slot(settings: Settings) -> Iterator[int]:
    """Hold one of settings.max_concurrent_crawls slots (file locks, released on exit or death)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    for slot in range(settings.max_concurrent_crawls):
        fh = open(settings.state_dir / f"crawl-slot-{slot}.lock", "a+b")  # noqa: SIM115
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            continue
        try:
            yield slot
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()
        return
    raise CrawlBusy(
        f"{settings.max_concurrent_crawls} crawl(s) already running against {settings.state_dir}"
    )
