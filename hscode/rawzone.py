"""The raw zone: every portal response as received, content-addressed, with a manifest.

Layout under ``root``::

    blobs/ab/abcdef...      response bodies, stored once by sha256 (hscode.storage.put_blob)
    manifest.jsonl          one JSON object per line, append-only

A manifest line is either a response (``kind`` = screen | robots | list | detail | image)
or a verdict (``kind`` = verdict) saying whether a stored body parsed cleanly. The body is
written (atomically) before its manifest line, and every line is flushed and fsynced on
its own, so a SIGKILL loses at most the line in flight; readers skip a torn last line and
writers terminate it before appending.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hscode.storage import blob_path, put_blob

log = logging.getLogger(__name__)

RESPONSE_KINDS = ("screen", "robots", "list", "detail", "image")


@dataclass(frozen=True, slots=True)
class RawEntry:
    url: str
    method: str
    params: dict[str, Any]
    status: int
    fetched_at: str  # ISO 8601, UTC
    sha256: str
    content_type: str | None
    series: str | None
    kind: str
    rrdc_no: str | None = None
    size: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fetched_dt(self) -> datetime:
        return datetime.fromisoformat(self.fetched_at)


def _utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def list_page_key(series: str, params: dict[str, Any]) -> tuple[str, str, str, str, str]:
    """What identifies a list page: series, date window, page number and page size."""
    return (
        series,
        str(params.get("stDt", "")),
        str(params.get("edDt", "")),
        str(params.get("pageIndex", "")),
        str(params.get("pageUnit", "")),
    )


_HEX = frozenset("0123456789abcdef")


def _check_entry(entry: RawEntry) -> None:
    """Reject manifest records that could not have been written by ``put`` (TypeError/ValueError).

    The sha256 becomes a file path (``blobs/ab/abcd...``): anything but 64 hex digits
    (``../../etc/passwd``) is refused here, so no reader ever opens it.
    """
    if not isinstance(entry.sha256, str) or len(entry.sha256) != 64 or set(entry.sha256) - _HEX:
        raise ValueError(f"sha256 {entry.sha256!r} is not a sha256 hex digest")
    if entry.kind not in RESPONSE_KINDS:
        raise ValueError(f"kind {entry.kind!r} unknown")
    for name in ("url", "method", "fetched_at"):
        if not isinstance(getattr(entry, name), str):
            raise TypeError(f"{name} is not text")
    datetime.fromisoformat(entry.fetched_at)
    for name in ("rrdc_no", "series", "content_type"):
        if getattr(entry, name) is not None and not isinstance(getattr(entry, name), str):
            raise TypeError(f"{name} is not text")
    if not isinstance(entry.params, dict) or not isinstance(entry.extra, dict):
        raise TypeError("params / extra are not objects")


class RawZone:
    """Append-only store of portal responses with resume lookups.

    The in-memory index is built from the manifest on open and kept current by ``put``
    and ``mark``; one crawl process writes at a time (see ``hscode.crawl``), readers
    in other processes see a consistent prefix.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.manifest_path = self.root / "manifest.jsonl"
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._entries: list[RawEntry] = []
        self._verdicts: dict[str, tuple[bool, str | None]] = {}
        self._details: dict[str, list[RawEntry]] = {}  # rrdc_no -> status-200 details
        self._images: dict[str, RawEntry] = {}  # url -> newest status-200 image
        self.torn_lines = 0
        self.malformed_records = 0  # parseable lines with impossible fields (tampering, bugs)
        for record in self._read_lines():
            self._index(record)

    # ---- reading -----------------------------------------------------------------
    def _read_lines(self) -> Iterator[dict[str, Any]]:
        if not self.manifest_path.exists():
            return
        with self.manifest_path.open("rb") as fh:
            lines = fh.read().split(b"\n")
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError):
                # A torn line is what a kill mid-write leaves; anything else is logged loudly.
                self.torn_lines += 1
                log.warning(
                    "raw zone %s: skipping unreadable manifest line %d", self.manifest_path, n
                )
                continue
            if isinstance(record, dict):
                yield record

    def _index(self, record: dict[str, Any]) -> None:
        kind = record.get("kind")
        if kind == "verdict":
            sha = record.get("sha256")
            if isinstance(sha, str):
                self._verdicts[sha] = (bool(record.get("ok")), record.get("reason"))
            return
        try:
            entry = RawEntry(
                url=record["url"],
                method=record.get("method", "GET"),
                params=record.get("params") or {},
                status=int(record["status"]),
                fetched_at=record["fetched_at"],
                sha256=record["sha256"],
                content_type=record.get("content_type"),
                series=record.get("series"),
                kind=record["kind"],
                rrdc_no=record.get("rrdc_no"),
                size=int(record.get("size") or 0),
                extra=record.get("extra") or {},
            )
            _check_entry(entry)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning(
                "raw zone %s: skipping malformed manifest record (%s): %.300r",
                self.manifest_path,
                exc,
                record,
            )
            self.malformed_records += 1
            return
        self._add(entry)

    def _add(self, entry: RawEntry) -> None:
        self._entries.append(entry)
        if entry.status != 200:
            return
        if entry.kind == "detail" and entry.rrdc_no:
            self._details.setdefault(entry.rrdc_no, []).append(entry)
        elif entry.kind == "image":
            old = self._images.get(entry.url)
            if old is None or entry.fetched_at >= old.fetched_at:
                self._images[entry.url] = entry

    @property
    def entries(self) -> list[RawEntry]:
        return list(self._entries)

    def body(self, entry_or_sha: RawEntry | str) -> bytes:
        sha = entry_or_sha if isinstance(entry_or_sha, str) else entry_or_sha.sha256
        return blob_path(self.blobs, sha).read_bytes()

    def verdict(self, sha: str) -> tuple[bool, str | None] | None:
        """(ok, reason) once a body was parsed, None when never judged."""
        return self._verdicts.get(sha)

    # ---- writing -----------------------------------------------------------------
    def _append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n"
        fd = os.open(self.manifest_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            # Terminate a torn last line left by a killed writer, so ours stays readable.
            size = os.fstat(fd).st_size
            if size:
                with self.manifest_path.open("rb") as fh:
                    fh.seek(size - 1)
                    if fh.read(1) != b"\n":
                        os.write(fd, b"\n")
            os.write(fd, line)  # one write per line: O_APPEND keeps it whole between processes
            os.fsync(fd)
        finally:
            os.close(fd)

    def put(
        self,
        *,
        url: str,
        method: str,
        params: dict[str, Any] | None,
        status: int,
        body: bytes,
        content_type: str | None,
        series: str | None,
        kind: str,
        rrdc_no: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> RawEntry:
        """Store a response body and append its manifest line; returns the entry."""
        if kind not in RESPONSE_KINDS:
            raise ValueError(f"unknown raw-zone kind {kind!r}; expected one of {RESPONSE_KINDS}")
        sha = put_blob(self.blobs, body)
        entry = RawEntry(
            url=url,
            method=method.upper(),
            params=dict(params or {}),
            status=int(status),
            fetched_at=_utcnow(),
            sha256=sha,
            content_type=content_type,
            series=series,
            kind=kind,
            rrdc_no=rrdc_no,
            size=len(body),
            extra=dict(extra or {}),
        )
        with self._lock:
            self._append(asdict(entry))
            self._add(entry)
        return entry

    def mark(self, sha: str, ok: bool, reason: str | None = None) -> None:
        """Record whether a stored body parsed cleanly (a cache: bodies can always be re-parsed)."""
        if self._verdicts.get(sha) == (ok, reason):
            return
        record = {"kind": "verdict", "sha256": sha, "ok": ok, "reason": reason, "at": _utcnow()}
        with self._lock:
            self._append(record)
            self._verdicts[sha] = (ok, reason)

    # ---- resume lookups ----------------------------------------------------------
    def details(self, rrdc_no: str | None = None) -> list[RawEntry]:
        """Detail responses with status 200, newest first."""
        if rrdc_no is None:
            found = [e for entries in self._details.values() for e in entries]
        else:
            found = list(self._details.get(rrdc_no, ()))
        return sorted(found, key=lambda e: e.fetched_at, reverse=True)

    def latest_good_detail(self, rrdc_no: str) -> RawEntry | None:
        """The newest detail for a case whose body was judged good."""
        for entry in self.details(rrdc_no):
            v = self._verdicts.get(entry.sha256)
            if v is not None and v[0]:
                return entry
        return None

    def image(self, url: str) -> RawEntry | None:
        """The newest image stored with status 200 for a URL."""
        return self._images.get(url)

    def good_list_pages(self) -> dict[tuple[str, str, str, str, str], RawEntry]:
        """List pages whose body was judged good, keyed by ``list_page_key``; newest wins."""
        pages: dict[tuple[str, str, str, str, str], RawEntry] = {}
        for e in self._entries:
            if e.kind != "list" or e.status != 200 or e.series is None:
                continue
            v = self._verdicts.get(e.sha256)
            if v is None or not v[0]:
                continue
            key = list_page_key(e.series, e.params)
            if key not in pages or e.fetched_at >= pages[key].fetched_at:
                pages[key] = e
        return pages
