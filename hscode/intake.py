"""Request intake: rows, files (CSV, JSON lines, Parquet) and the inbox folder -> ``requests``.

Idempotent on ``request_id``: a request already present is left as it is (counted as a
duplicate). Invalid rows (no id, empty title, oversize text, unreadable or oversize image)
are refused with a :class:`~hscode.rejects.Rejection` (its code in
``intake_rejects.reason_code``, its message in ``intake_rejects.reason``) and the rest goes
on; a row read from a file has its place in the message (``line 3: text too long (...)``;
``row 7`` for Parquet). Files are read and rows checked by :mod:`hscode.request_rows` (as
``hscode predict`` does). A file that cannot be read at all is an
:class:`~hscode.request_rows.IntakeFileError`; in the inbox it is moved to ``inbox/failed``
with a ``.reason.txt`` beside it, while good files go to ``inbox/done``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from hscode.rejects import Rejection, RejectReason
from hscode.request_rows import (
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_MAX_TEXT_CHARS,
    IntakeFileError,
    ValidRequest,
    read_request_file,
    validate_request_row,
)
from hscode.settings import Settings
from hscode.tabular import DEFAULT_MAX_CSV_RECORD_CHARS, csv_record_limit

log = logging.getLogger(__name__)

# Files still being written into the inbox (write then rename) are left alone.
PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")
CHUNK_ROWS = 10_000
MAX_SAMPLE_REJECTS = 20


@dataclass
class IntakeSummary:
    source: str | None = None
    received: int = 0
    inserted: int = 0
    duplicates: int = 0
    # the first few duplicate request ids (already in the database, or repeated in the file)
    duplicate_ids: list[str] = field(default_factory=list)
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # reject reason code -> count
    rejects: list[Rejection] = field(default_factory=list)  # the first few
    files: int = 0  # inbox only: files looked at
    files_done: list[str] = field(default_factory=list)
    files_failed: dict[str, str] = field(default_factory=dict)  # file name -> reason

    def as_dict(self) -> dict[str, Any]:
        data = {
            "source": self.source,
            "received": self.received,
            "inserted": self.inserted,
            "duplicates": self.duplicates,
            "duplicate_ids": list(self.duplicate_ids),
            "rejected": self.rejected,
            "reasons": dict(self.reasons),
            "rejects": [r.as_dict() for r in self.rejects],
        }
        if self.files or self.files_done or self.files_failed:  # an inbox import
            data.update(
                files=self.files,
                files_done=list(self.files_done),
                files_failed=dict(self.files_failed),
            )
        return data

    def add(self, other: IntakeSummary) -> None:
        self.received += other.received
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        room = MAX_SAMPLE_REJECTS - len(self.duplicate_ids)
        if room > 0:
            self.duplicate_ids.extend(other.duplicate_ids[:room])
        self.rejected += other.rejected
        for reason, n in other.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + n
        room = MAX_SAMPLE_REJECTS - len(self.rejects)
        if room > 0:
            self.rejects.extend(other.rejects[:room])


# ----------------------------------------------------------------- writing


def submit_requests(
    engine: Engine,
    rows: Iterable[Mapping[str, Any] | Rejection],
    *,
    source: str | None = None,
    settings: Settings | None = None,
    base_dir: Path | None = None,
) -> IntakeSummary:
    """Validate and insert request rows (``request_id``, ``title``, optional ``description``,
    ``image`` bytes, ``image_path`` or ``image_base64``), or rejections already made (the
    lines :func:`~hscode.request_rows.read_request_file` could not read). Idempotent on
    ``request_id``.

    Limits come from ``settings`` (``max_text_chars``, ``max_image_bytes``), else the
    Settings defaults. ``image_path`` values are relative to ``base_dir`` when given.
    """
    max_text = settings.max_text_chars if settings else DEFAULT_MAX_TEXT_CHARS
    max_image = settings.max_image_bytes if settings else DEFAULT_MAX_IMAGE_BYTES
    summary = IntakeSummary(source=source)
    chunk: list[Mapping[str, Any] | Rejection] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK_ROWS:
            summary.add(_submit_chunk(engine, chunk, source, base_dir, max_text, max_image))
            chunk = []
    if chunk or summary.received == 0:
        summary.add(_submit_chunk(engine, chunk, source, base_dir, max_text, max_image))
    return summary


def _submit_chunk(
    engine: Engine,
    rows: list[Mapping[str, Any] | Rejection],
    source: str | None,
    base_dir: Path | None,
    max_text: int,
    max_image: int,
) -> IntakeSummary:
    summary = IntakeSummary(source=source, received=len(rows))
    valid: dict[str, ValidRequest] = {}
    rejects: list[Rejection] = []
    repeated: list[str] = []
    for row in rows:
        if not isinstance(row, Mapping | Rejection):
            rejects.append(
                Rejection(
                    None,
                    RejectReason.UNREADABLE_ROW,
                    "row is not a record",
                    source,
                    row={"row": str(row)[:300]},
                )
            )
            continue
        checked = validate_request_row(row, base_dir, max_text, max_image)
        if isinstance(checked, Rejection):
            rejects.append(replace(checked, source=source))
        elif checked.request_id in valid:
            repeated.append(checked.request_id)
        else:
            valid[checked.request_id] = checked
    if not valid and not rejects:
        summary.duplicates = len(repeated)
        summary.duplicate_ids = repeated[:MAX_SAMPLE_REJECTS]
        return summary
    with engine.begin() as conn:
        new_ids: set[str] = set()
        if valid:
            cursor = conn.connection.cursor()
            try:
                cursor.execute(
                    "create temp table _intake_stage (request_id text, title text, "
                    "description text, image bytea, image_sha256 text) on commit drop"
                )
                with cursor.copy(
                    "copy _intake_stage (request_id, title, description, image, image_sha256) "
                    "from stdin"
                ) as copy:
                    for v in valid.values():
                        copy.write_row(
                            (v.request_id, v.title, v.description, v.image, v.image_sha256)
                        )
                cursor.execute(
                    "insert into requests (request_id, title, description, image, image_sha256, source) "
                    "select request_id, title, description, image, image_sha256, %s from _intake_stage "
                    "on conflict (request_id) do nothing returning request_id",
                    (source,),
                )
                new_ids = {row[0] for row in cursor.fetchall()}
            finally:
                cursor.close()
        if rejects:
            conn.execute(
                text(
                    """
                    insert into intake_rejects (request_id, source, reason, reason_code, row_data)
                    select cast(:rid as text), cast(:src as text), cast(:reason as text),
                           cast(:code as text), cast(:row as jsonb)
                    where not exists (
                        select 1 from intake_rejects
                         where request_id is not distinct from cast(:rid as text)
                           and source is not distinct from cast(:src as text)
                           and reason = cast(:reason as text))
                    """
                ),
                [
                    {
                        "rid": r.key,
                        "src": source,
                        "reason": r.located_message,
                        "code": str(r.reason),
                        "row": json.dumps(r.row, ensure_ascii=False, default=str)
                        if r.row is not None
                        else None,
                    }
                    for r in rejects
                ],
            )
    summary.inserted = len(new_ids)
    known = [rid for rid in valid if rid not in new_ids]
    summary.duplicates = len(known) + len(repeated)
    summary.duplicate_ids = [*known, *repeated][:MAX_SAMPLE_REJECTS]
    summary.rejected = len(rejects)
    summary.reasons = {str(code): n for code, n in Counter(r.reason for r in rejects).items()}
    summary.rejects = rejects[:MAX_SAMPLE_REJECTS]
    return summary


# ----------------------------------------------------------------- files


def import_requests(
    engine: Engine,
    path: Path | str,
    *,
    settings: Settings | None = None,
    source: str | None = None,
) -> IntakeSummary:
    """Import a CSV / JSON-lines / Parquet request file; image paths are relative to it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"request file {path} not found")
    record_limit = (
        csv_record_limit(settings.max_text_chars, settings.max_image_bytes)
        if settings
        else DEFAULT_MAX_CSV_RECORD_CHARS
    )
    return submit_requests(
        engine,
        read_request_file(path, max_record_chars=record_limit),
        source=source or f"file:{path.name}",
        settings=settings,
        base_dir=path.parent,
    )


def import_inbox(settings: Settings, engine: Engine) -> IntakeSummary:
    """Import every request file in ``settings.inbox_dir``; move each to ``done/`` or ``failed/``.

    Writers should drop files atomically (write ``name.tmp`` then rename); dot-files and
    partial files are skipped. Database errors propagate and leave the file in place, so a
    retry re-imports it (idempotent).
    """
    inbox = settings.inbox_dir
    summary = IntakeSummary(source=f"inbox:{inbox}")
    if not inbox.is_dir():
        return summary
    done_dir, failed_dir = inbox / "done", inbox / "failed"
    for path in sorted(p for p in inbox.iterdir() if p.is_file()):
        if path.name.startswith(".") or path.suffix.lower() in PARTIAL_SUFFIXES:
            continue
        summary.files += 1
        try:
            file_summary = import_requests(
                engine, path, settings=settings, source=f"inbox:{path.name}"
            )
        except IntakeFileError as exc:
            reason = str(exc)
            moved = _move(path, failed_dir)
            moved.with_name(moved.name + ".reason.txt").write_text(reason + "\n", encoding="utf-8")
            summary.files_failed[path.name] = reason
            log.warning("inbox file %s failed: %s", path.name, reason)
            continue
        summary.add(file_summary)
        _move(path, done_dir)
        summary.files_done.append(path.name)
    return summary


def _move(path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if target.exists():
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        target = folder / f"{path.stem}.{stamp}{path.suffix}"
    shutil.move(str(path), target)
    return target
