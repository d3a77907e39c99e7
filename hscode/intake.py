"""Request intake: rows, files (CSV, JSON lines, Parquet) and the inbox folder -> ``requests``.

Idempotent on ``request_id``: a request already present is left as it is (counted as a
duplicate). Invalid rows (no id, empty title, oversize text, unreadable or oversize image)
are refused with a reason, recorded in ``intake_rejects``, and the rest goes on; a row read
from a file has its place in the reason (``line 3: text too long (...)``; ``row 7`` for
Parquet). A file that cannot be read at all is an :class:`IntakeFileError`; in the inbox it
is moved to ``inbox/failed`` with a ``.reason.txt`` beside it, while good files go to
``inbox/done``.

CSV cells may be as long as a good row can need (text plus a base64 image): the csv
module's default limit of 131,072 characters per field used to fail the whole file for one
long cell. Only a record beyond :func:`csv_record_limit` (far more than any good row, e.g.
an unclosed quote running to the end of a huge file) still fails the file, with its line.
"""

from __future__ import annotations

import base64
import binascii
import csv
import datetime as dt
import hashlib
import json
import logging
import math
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from hscode.settings import Settings
from hscode.storage import image_problem

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".parquet")
# Files still being written into the inbox (write then rename) are left alone.
PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")
CHUNK_ROWS = 10_000
MAX_REQUEST_ID_CHARS = 200
MAX_SAMPLE_REJECTS = 20
# The key under which the file readers give a row's place in its file ("line 3", "row 7").
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


class IntakeFileError(ValueError):
    """A request file that cannot be read (format, encoding, missing columns)."""


@dataclass
class IntakeSummary:
    source: str | None = None
    received: int = 0
    inserted: int = 0
    duplicates: int = 0
    # the first few duplicate request ids (already in the database, or repeated in the file)
    duplicate_ids: list[str] = field(default_factory=list)
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # reject reason kind -> count
    rejects: list[dict[str, Any]] = field(default_factory=list)  # first few, with reasons
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
            "rejects": list(self.rejects),
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


@dataclass(frozen=True, slots=True)
class ValidRequest:
    request_id: str
    title: str
    description: str | None
    image: bytes | None
    image_sha256: str | None


@dataclass(frozen=True, slots=True)
class RejectedRequest:
    request_id: str | None
    reason: str
    kind: str
    row: dict[str, Any]
    where: str | None = None  # the row's place in its file ("line 3"), when read from one

    @property
    def located_reason(self) -> str:
        """The reason with the row's place in its file in front, when known."""
        return f"{self.where}: {self.reason}" if self.where else self.reason


# ----------------------------------------------------------------- validation


def check_image(data: bytes, max_bytes: int) -> str | None:
    """Why an image is refused (oversize / not decodable), or None when it is fine."""
    if len(data) > max_bytes:
        return f"image too large ({len(data)} bytes > {max_bytes})"
    if not data:
        return "unreadable image: empty"
    problem = image_problem(data, full_decode=False)
    if problem is None:
        return None
    kind, detail = problem
    return f"image too large ({detail})" if kind == "too_large" else f"unreadable image: {detail}"


def read_image_path(
    spec: str, base_dir: Path | None, max_bytes: int
) -> tuple[bytes | None, str | None]:
    """Read a request's image file: inside ``base_dir`` only (when given), a regular file,
    at most ``max_bytes``. Returns (bytes, None) or (None, why it was refused)."""
    try:
        path = Path(spec)
        if base_dir is not None:
            folder = base_dir.resolve()
            # resolve() follows symlinks: a link inside the folder to a file outside leaves it
            resolved = (folder / path).resolve()
            if not resolved.is_relative_to(folder):
                return None, f"image path outside the request file's folder: {spec[:200]!r}"
        else:
            resolved = path.expanduser().resolve()
        if not resolved.is_file():  # devices, pipes and folders are not images
            return None, f"unreadable image: {spec[:200]!r} not found (or not a file)"
        with resolved.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except (OSError, ValueError, RuntimeError) as exc:  # NUL bytes, long names, link loops
        return None, f"unreadable image: path {spec[:200]!r} unusable ({exc})"
    if len(data) > max_bytes:
        return None, f"image too large (more than {max_bytes} bytes)"
    return data, None


def check_text(title: str, description: str | None, max_chars: int) -> str | None:
    """Why a request's text is refused, or None."""
    if not title.strip():
        return "empty title"
    n = len(title) + len(description or "")
    if n > max_chars:
        return f"text too long ({n} chars > {max_chars})"
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):  # NaN from data frames
        return None
    value = str(value).replace("\x00", "")  # Postgres text cannot hold NUL
    return value


def _field(row: Mapping[str, Any], name: str) -> Any:
    for alias in COLUMN_ALIASES[name]:
        if alias in row:
            return row[alias]
    return None


def _row_for_log(row: Mapping[str, Any]) -> dict[str, Any]:
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
    row: Mapping[str, Any], base_dir: Path | None, max_text_chars: int, max_image_bytes: int
) -> ValidRequest | RejectedRequest:
    """Check one request row (column names per :data:`COLUMN_ALIASES`, case-insensitive).

    Returns the cleaned request (``request_id``, ``title``, ``description``, ``image`` bytes,
    ``image_sha256``) or a reject with its ``request_id`` (None when there is none), a
    human-readable ``reason`` and a short ``kind``. ``image_path`` is read inside ``base_dir``
    (when given); ``image`` bytes and ``image_base64`` are accepted too. A ``__error__`` row
    (a line :func:`read_request_file` could not parse) is a reject. The row's place in its
    file (:data:`WHERE_KEY`, set by :func:`read_request_file`) becomes the reject's ``where``.
    Never raises for bad data. Used by the scoring intake and by ``hscode predict``.
    """
    row = {str(k).strip().lower(): v for k, v in row.items()}
    where = row.pop(WHERE_KEY, None)
    where = str(where) if where is not None else None

    def reject(request_id: str | None, reason: str, kind: str) -> RejectedRequest:
        return RejectedRequest(request_id, reason, kind, _row_for_log(row), where)

    if "__error__" in row:  # a line of a file that could not be parsed
        return reject(None, str(row["__error__"]), "invalid JSON")
    request_id = (_text(_field(row, "request_id")) or "").strip()
    if not request_id:
        return reject(None, "missing request_id", "missing request_id")
    if len(request_id) > MAX_REQUEST_ID_CHARS:
        return reject(
            request_id[:MAX_REQUEST_ID_CHARS], "request_id too long", "request_id too long"
        )
    title = (_text(_field(row, "title")) or "").strip()
    description = _text(_field(row, "description"))
    description = description.strip() or None if description is not None else None
    problem = check_text(title, description, max_text_chars)
    if problem:
        return reject(request_id, problem, problem.split(" (")[0])

    image: bytes | None = None
    raw = _field(row, "image")
    if isinstance(raw, (bytes, bytearray, memoryview)):
        image = bytes(raw)
    elif raw not in (None, ""):
        return reject(
            request_id, "image must be bytes (use image_path or image_base64)", "unreadable image"
        )
    b64 = _text(_field(row, "image_base64"))
    if image is None and b64:
        try:
            image = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            return reject(request_id, f"unreadable image: bad base64 ({exc})", "unreadable image")
    path_value = _text(_field(row, "image_path"))
    if image is None and path_value and path_value.strip():
        image, problem = read_image_path(path_value.strip(), base_dir, max_image_bytes)
        if problem:
            return reject(request_id, problem, problem.split(" (")[0].split(":")[0])
    if image is not None:
        problem = check_image(image, max_image_bytes)
        if problem:
            return reject(request_id, problem, problem.split(" (")[0].split(":")[0])
    return ValidRequest(
        request_id,
        title,
        description,
        image,
        hashlib.sha256(image).hexdigest() if image is not None else None,
    )


# ----------------------------------------------------------------- writing


def submit_requests(
    engine: Engine,
    rows: Iterable[Mapping[str, Any]],
    *,
    source: str | None = None,
    settings: Settings | None = None,
    base_dir: Path | None = None,
) -> IntakeSummary:
    """Validate and insert request rows (``request_id``, ``title``, optional ``description``,
    ``image`` bytes, ``image_path`` or ``image_base64``). Idempotent on ``request_id``.

    Limits come from ``settings`` (``max_text_chars``, ``max_image_bytes``), else the
    Settings defaults. ``image_path`` values are relative to ``base_dir`` when given.
    """
    max_text = settings.max_text_chars if settings else DEFAULT_MAX_TEXT_CHARS
    max_image = settings.max_image_bytes if settings else DEFAULT_MAX_IMAGE_BYTES
    summary = IntakeSummary(source=source)
    chunk: list[Mapping[str, Any]] = []
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
    rows: list[Mapping[str, Any]],
    source: str | None,
    base_dir: Path | None,
    max_text: int,
    max_image: int,
) -> IntakeSummary:
    summary = IntakeSummary(source=source, received=len(rows))
    valid: dict[str, ValidRequest] = {}
    rejects: list[RejectedRequest] = []
    repeated: list[str] = []
    for row in rows:
        if not isinstance(row, Mapping):
            rejects.append(
                RejectedRequest(
                    None, "row is not a record", "row is not a record", {"row": str(row)[:300]}
                )
            )
            continue
        checked = validate_request_row(row, base_dir, max_text, max_image)
        if isinstance(checked, RejectedRequest):
            rejects.append(checked)
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
                    insert into intake_rejects (request_id, source, reason, row_data)
                    select cast(:rid as text), cast(:src as text), cast(:reason as text),
                           cast(:row as jsonb)
                    where not exists (
                        select 1 from intake_rejects
                         where request_id is not distinct from cast(:rid as text)
                           and source is not distinct from cast(:src as text)
                           and reason = cast(:reason as text))
                    """
                ),
                [
                    {
                        "rid": r.request_id,
                        "src": source,
                        "reason": r.located_reason,
                        "row": json.dumps(r.row, ensure_ascii=False, default=str),
                    }
                    for r in rejects
                ],
            )
    summary.inserted = len(new_ids)
    known = [rid for rid in valid if rid not in new_ids]
    summary.duplicates = len(known) + len(repeated)
    summary.duplicate_ids = [*known, *repeated][:MAX_SAMPLE_REJECTS]
    summary.rejected = len(rejects)
    summary.reasons = dict(Counter(r.kind for r in rejects))
    summary.rejects = [
        {"request_id": r.request_id, "reason": r.located_reason}
        for r in rejects[:MAX_SAMPLE_REJECTS]
    ]
    return summary


# ----------------------------------------------------------------- files


def csv_record_limit(max_text_chars: int, max_image_bytes: int) -> int:
    """The most characters one CSV record may have: twice what the largest good row needs
    (its text and a base64 image), plus room for other columns."""
    base64_chars = 4 * ((max_image_bytes + 2) // 3)
    return 2 * (max_text_chars + base64_chars) + 65_536


DEFAULT_MAX_CSV_RECORD_CHARS = csv_record_limit(DEFAULT_MAX_TEXT_CHARS, DEFAULT_MAX_IMAGE_BYTES)


def read_request_file(
    path: Path, *, max_record_chars: int = DEFAULT_MAX_CSV_RECORD_CHARS
) -> Iterator[dict[str, Any]]:
    """Rows of a CSV (UTF-8, header row), JSON-lines or Parquet request file.

    Each row carries its place in the file under :data:`WHERE_KEY` (``line 3``, ``lines 3-5``
    for a quoted value spanning lines, ``row 7`` in Parquet; line numbers count the header).
    A JSON line that is not an object is yielded as ``{"__error__": reason}`` so the row is
    rejected while the rest of the file goes on. A CSV cell may be any length up to
    ``max_record_chars`` for its whole record; a longer record is an :class:`IntakeFileError`.
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        yield from _read_csv(path, max_record_chars)
    elif suffix in (".jsonl", ".ndjson"):
        yield from _read_jsonl(path)
    elif suffix == ".parquet":
        yield from _read_parquet(path)
    else:
        raise IntakeFileError(
            f"{path.name}: unsupported file type {suffix or '(none)'} "
            f"(use {', '.join(SUPPORTED_SUFFIXES)})"
        )


def _require_columns(path: Path, columns: Iterable[str]) -> None:
    present = {str(c).strip().lower() for c in columns}
    for name in ("request_id", "title"):
        if not present & set(COLUMN_ALIASES[name]):
            raise IntakeFileError(
                f"{path.name}: no {name} column (accepted: {', '.join(COLUMN_ALIASES[name])})"
            )


class CsvRecordTooLong(ValueError):
    """A CSV record longer than its bound (``line``: the line it starts on)."""

    def __init__(self, line: int, limit: int) -> None:
        super().__init__(
            f"the record starting at line {line} is longer than {limit} characters "
            "(an unclosed quote?); nothing after it was read"
        )
        self.line, self.limit = line, limit


class _Overflow(Exception):
    pass


class _BoundedLines:
    """The lines of a text stream for ``csv.reader``, at most ``limit`` characters per
    record (``used`` is reset before each record), so one record never fills the memory."""

    def __init__(self, fh: Any, limit: int) -> None:
        self.fh, self.limit, self.used = fh, limit, 0

    def __iter__(self) -> _BoundedLines:
        return self

    def __next__(self) -> str:
        line = self.fh.readline(self.limit - self.used + 1)
        if not line:
            raise StopIteration
        self.used += len(line)
        if self.used > self.limit:
            raise _Overflow
        return line


def iter_csv_records(
    fh: Any, max_record_chars: int, *, delimiter: str = ","
) -> Iterator[tuple[int, int, list[str]]]:
    """``(first line, last line, cells)`` of each record of a CSV text stream (opened with
    ``newline=""``), the header included; blank lines are skipped.

    A cell may be as long as its record's bound: the csv module's field limit (131,072
    characters by default, process-wide) is raised to ``max_record_chars`` only while a
    record is parsed here, so other readers keep theirs. A longer record raises
    :class:`CsvRecordTooLong`; a line the csv module cannot parse raises ``csv.Error``.
    Shared by the request intake (and so ``hscode predict``) and ``hscode cases import``.
    """
    lines = _BoundedLines(fh, max_record_chars)
    reader = csv.reader(lines, delimiter=delimiter)
    while True:
        start = reader.line_num + 1
        lines.used = 0
        previous = csv.field_size_limit(max_record_chars + 1)
        try:
            record = next(reader)
        except StopIteration:
            return
        except _Overflow:
            raise CsvRecordTooLong(start, max_record_chars) from None
        finally:
            csv.field_size_limit(previous)
        if record:
            yield start, reader.line_num, record


def _read_csv(path: Path, max_record_chars: int) -> Iterator[dict[str, Any]]:
    line = 0
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            records = iter_csv_records(fh, max_record_chars)
            first = next(records, None)
            if first is None:
                raise IntakeFileError(f"{path.name}: empty CSV file (no header row)")
            header = first[2]
            _require_columns(path, header)
            for start, end, cells in records:
                line = end
                # cells beyond the header are dropped, missing ones are None (as DictReader)
                row: dict[str, Any] = dict.fromkeys(header)
                row.update((k, v if v != "" else None) for k, v in zip(header, cells))
                row[WHERE_KEY] = f"line {start}" if end == start else f"lines {start}-{end}"
                yield row
    except UnicodeDecodeError as exc:
        raise IntakeFileError(f"{path.name}: not UTF-8 text ({exc.reason})") from exc
    except CsvRecordTooLong as exc:
        raise IntakeFileError(f"{path.name}: {exc}") from None
    except csv.Error as exc:
        raise IntakeFileError(f"{path.name}: malformed CSV after line {line} ({exc})") from exc


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    checked = False
    try:
        with path.open(encoding="utf-8-sig") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield {"__error__": f"line {number}: invalid JSON ({exc.msg})"}
                    continue
                if not isinstance(record, dict):
                    yield {"__error__": f"line {number}: not a JSON object"}
                    continue
                if not checked:
                    _require_columns(path, record.keys())
                    checked = True
                record[WHERE_KEY] = f"line {number}"
                yield record
    except UnicodeDecodeError as exc:
        raise IntakeFileError(f"{path.name}: not UTF-8 text ({exc.reason})") from exc


def _read_parquet(path: Path) -> Iterator[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        _require_columns(path, parquet.schema_arrow.names)
        number = 0
        for batch in parquet.iter_batches(batch_size=CHUNK_ROWS):
            for row in batch.to_pylist():
                number += 1
                row[WHERE_KEY] = f"row {number}"
                yield row
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise IntakeFileError(f"{path.name}: unreadable Parquet ({exc})") from exc


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
