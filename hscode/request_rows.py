"""Request rows: reading a request file and checking each row, without a database.

What the scoring intake (:mod:`hscode.intake`) and ``hscode predict`` (:mod:`hscode.predict`)
share, so a file is judged the same way by both: :func:`read_request_file` (CSV, JSON
lines, Parquet through :mod:`hscode.tabular`), :func:`validate_request_row` (a
:class:`ValidRequest` or a :class:`~hscode.rejects.Rejection` with its code), the column
aliases, and the text and image checks the scorer repeats on rows put in by SQL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hscode.rejects import Rejected, Rejection, RejectReason
from hscode.settings import Settings
from hscode.storage import image_problem
from hscode.tabular import (
    DEFAULT_MAX_CSV_RECORD_CHARS,
    TabularFileError,
    open_table,
    read_image_in_folder,
)

SUPPORTED_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".parquet")
MAX_REQUEST_ID_CHARS = 200
# The key under which read_request_file gives a row's place in its file ("line 3", "row 7").
WHERE_KEY = "__where__"
# Defaults for callers without settings: the Settings field defaults (not the environment).
DEFAULT_MAX_TEXT_CHARS: int = Settings.model_fields["max_text_chars"].default
DEFAULT_MAX_IMAGE_BYTES: int = Settings.model_fields["max_image_bytes"].default

# Column names accepted for each field (case-insensitive), ours first.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "request_id": ("request_id", "id", "requestid", "request"),
    "title": ("title", "name", "product_name", "품명"),
    "description": ("description", "desc", "물품설명"),
    "image": ("image", "image_bytes"),
    "image_path": ("image_path", "image_file"),
    "image_base64": ("image_base64", "image_b64"),
}

# Why a check refused something: the code and the message for people.
Problem = tuple[RejectReason, str]


class IntakeFileError(TabularFileError):
    """A request file that cannot be read (format, encoding, missing columns)."""


@dataclass(frozen=True, slots=True)
class ValidRequest:
    request_id: str
    title: str
    description: str | None
    image: bytes | None
    image_sha256: str | None


# ----------------------------------------------------------------- checks


def image_bytes_problem(data: bytes, max_bytes: int) -> Problem | None:
    """Why an image is refused (oversize / not decodable), or None when it is fine."""
    if len(data) > max_bytes:
        return RejectReason.IMAGE_TOO_LARGE, f"image too large ({len(data)} bytes > {max_bytes})"
    if not data:
        return RejectReason.IMAGE_CORRUPT, "unreadable image: empty"
    problem = image_problem(data, full_decode=False)
    if problem is None:
        return None
    reason, detail = problem
    if reason is RejectReason.IMAGE_TOO_LARGE:
        return reason, f"image too large ({detail})"
    return reason, f"unreadable image: {detail}"


def text_problem(title: str, description: str | None, max_chars: int) -> Problem | None:
    """Why a request's text is refused, or None."""
    if not title.strip():
        return RejectReason.EMPTY_TITLE, "empty title"
    n = len(title) + len(description or "")
    if n > max_chars:
        return RejectReason.OVERSIZE_TEXT, f"text too long ({n} chars > {max_chars})"
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):  # NaN from data frames
        return None
    return str(value).replace("\x00", "")  # Postgres text cannot hold NUL


def _field(row: Mapping[str, Any], name: str) -> Any:
    for alias in COLUMN_ALIASES[name]:
        if alias in row:
            return row[alias]
    return None


def row_for_log(row: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-able, size-bounded copy of a row for the rejects table (no image bytes)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, (bytes, bytearray, memoryview)):
            out[str(key)] = f"<{len(value)} bytes>"
        elif isinstance(value, str):
            out[str(key)] = value if len(value) <= 300 else value[:300] + "..."
        elif value is None or isinstance(value, (int, float, bool)):
            out[str(key)] = None if isinstance(value, float) and math.isnan(value) else value
        else:
            out[str(key)] = str(value)[:300]
    return out


def validate_request_row(
    row: Mapping[str, Any] | Rejection,
    base_dir: Path | None,
    max_text_chars: int,
    max_image_bytes: int,
) -> ValidRequest | Rejection:
    """Check one request row (column names per :data:`COLUMN_ALIASES`, case-insensitive).

    Returns the cleaned request (``request_id``, ``title``, ``description``, ``image`` bytes,
    ``image_sha256``) or a :class:`~hscode.rejects.Rejection`: ``key`` the request_id (None
    when there is none), ``reason`` its code, ``message`` for people, ``row`` a bounded copy
    of the row. ``image_path`` is read inside ``base_dir`` (when given); ``image`` bytes and
    ``image_base64`` are accepted too. A Rejection (a line :func:`read_request_file` could
    not read) is returned as it is. The row's place in its file (:data:`WHERE_KEY`, set by
    :func:`read_request_file`) becomes the rejection's ``where``. Never raises for bad data.
    Used by the scoring intake and by ``hscode predict``.
    """
    if isinstance(row, Rejection):
        return row
    row = {str(k).strip().lower(): v for k, v in row.items()}
    where = row.pop(WHERE_KEY, None)
    where = str(where) if where is not None else None

    def reject(request_id: str | None, reason: RejectReason, message: str) -> Rejection:
        return Rejection(request_id, reason, message, where=where, row=row_for_log(row))

    request_id = (_text(_field(row, "request_id")) or "").strip()
    if not request_id:
        return reject(None, RejectReason.EMPTY_KEY, "missing request_id")
    if len(request_id) > MAX_REQUEST_ID_CHARS:
        return reject(
            request_id[:MAX_REQUEST_ID_CHARS], RejectReason.KEY_TOO_LONG, "request_id too long"
        )
    title = (_text(_field(row, "title")) or "").strip()
    description = _text(_field(row, "description"))
    description = description.strip() or None if description is not None else None
    problem = text_problem(title, description, max_text_chars)
    if problem:
        return reject(request_id, *problem)

    image: bytes | None = None
    raw = _field(row, "image")
    if isinstance(raw, (bytes, bytearray, memoryview)):
        image = bytes(raw)
    elif raw not in (None, ""):
        return reject(
            request_id,
            RejectReason.IMAGE_CORRUPT,
            "image must be bytes (use image_path or image_base64)",
        )
    b64 = _text(_field(row, "image_base64"))
    if image is None and b64:
        try:
            image = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            return reject(
                request_id, RejectReason.IMAGE_CORRUPT, f"unreadable image: bad base64 ({exc})"
            )
    path_value = _text(_field(row, "image_path"))
    if image is None and path_value and path_value.strip():
        try:
            image = read_image_in_folder(path_value.strip(), base_dir, max_image_bytes)
        except Rejected as exc:
            return reject(request_id, exc.reason, exc.detail)
    if image is not None:
        problem = image_bytes_problem(image, max_image_bytes)
        if problem:
            return reject(request_id, *problem)
    return ValidRequest(
        request_id,
        title,
        description,
        image,
        hashlib.sha256(image).hexdigest() if image is not None else None,
    )


# ----------------------------------------------------------------- files


def _require_columns(path: Path, columns: Iterable[str]) -> None:
    present = {str(c).strip().lower() for c in columns}
    for name in ("request_id", "title"):
        if not present & set(COLUMN_ALIASES[name]):
            raise IntakeFileError(
                f"{path.name}: no {name} column (accepted: {', '.join(COLUMN_ALIASES[name])})"
            )


def read_request_file(
    path: Path, *, max_record_chars: int = DEFAULT_MAX_CSV_RECORD_CHARS
) -> Iterator[dict[str, Any] | Rejection]:
    """Rows of a CSV (UTF-8, header row), JSON-lines or Parquet request file.

    Each row is a dict carrying its place in the file under :data:`WHERE_KEY` (``line 3``,
    ``lines 3-5`` for a quoted value spanning lines, ``row 7`` in Parquet; line numbers
    count the header). A JSON line that is not an object is a
    :class:`~hscode.rejects.Rejection` (``unreadable_row``, its line in the message) so
    the row is rejected while the rest of the file goes on. A CSV cell may be any length
    up to ``max_record_chars`` for its whole record; a longer record, a file that is not
    UTF-8, an unreadable Parquet file or one without request_id / title columns is an
    :class:`IntakeFileError`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise IntakeFileError(
            f"{path.name}: unsupported file type {suffix or '(none)'} "
            f"(use {', '.join(SUPPORTED_SUFFIXES)})"
        )
    try:
        with open_table(path, max_record_chars=max_record_chars, decoding="strict") as table:
            checked = table.columns is not None
            if table.columns is not None:
                _require_columns(path, table.columns)
            for row in table:
                if row.rejection is not None:
                    yield row.rejection
                    continue
                if not checked:  # JSON lines: the first object names the columns
                    _require_columns(path, row.values)
                    checked = True
                yield {**row.values, WHERE_KEY: row.where}
    except IntakeFileError:
        raise
    except TabularFileError as exc:
        raise IntakeFileError(str(exc)) from exc
