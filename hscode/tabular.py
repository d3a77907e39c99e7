"""The files people hand us: tables (CSV, JSON lines, Parquet) and the images they name.

One reader for every importer: case import (:mod:`hscode.case_import`), request intake
(:mod:`hscode.request_rows`, used by :mod:`hscode.intake` and ``hscode predict``).

Tables: :func:`open_table` reads ``.csv``, ``.tsv``, ``.jsonl`` / ``.ndjson`` / ``.json``
(JSON lines; with ``json_arrays`` also one JSON array of objects) and ``.parquet`` into
:class:`Row` objects, one per record, each with its number and place in the file
(``line 3``, ``lines 3-5`` for a quoted CSV value spanning lines, ``row 7`` in Parquet,
``item 2`` in a JSON array). A record that cannot be read (a line that is not JSON or not
an object, a CSV record with cells beyond the header when those are refused) is a row
carrying a :class:`~hscode.rejects.Rejection` with code ``unreadable_row``, and the rest
of the file goes on. A file that cannot be read at all (not UTF-8 in strict mode, an
unreadable Parquet file, a CSV record beyond its bound, an empty CSV) raises
:class:`TabularFileError` with the file's name in the message.

CSV cells may be as long as a good row can need (text plus a base64 image): the csv
module's default limit of 131,072 characters per field used to fail a whole file for one
long cell. Only a record beyond its bound (:func:`csv_record_limit`: far more than any good
row, e.g. an unclosed quote running to the end of a huge file) still fails the file.

Images: :func:`read_image_in_folder` reads a file a table names, refusing (with a
:class:`~hscode.rejects.Rejected` and its ``image_*`` code) a path that leaves the table's
folder (``..``, an absolute path, a symlink pointing out), anything that is not a regular
file (folders, pipes, devices) and files beyond a size bound.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Self

from hscode.rejects import Rejected, Rejection, RejectReason
from hscode.settings import Settings
from hscode.text import decode_text

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".parquet")
PARQUET_BATCH_ROWS = 10_000
MAX_SHOWN_PATH = 200  # characters of a refused path quoted in messages


class TabularFileError(ValueError):
    """A table file that cannot be read at all (format, encoding, a runaway CSV record)."""


# ----------------------------------------------------------------------------- CSV records


def csv_record_limit(max_text_chars: int, max_image_bytes: int) -> int:
    """The most characters one CSV record may have: twice what the largest good row needs
    (its text and a base64 image), plus room for other columns."""
    base64_chars = 4 * ((max_image_bytes + 2) // 3)
    return 2 * (max_text_chars + base64_chars) + 65_536


DEFAULT_MAX_CSV_RECORD_CHARS = csv_record_limit(
    Settings.model_fields["max_text_chars"].default,
    Settings.model_fields["max_image_bytes"].default,
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

    def __init__(self, fh: IO[str], limit: int) -> None:
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
    fh: IO[str], max_record_chars: int, *, delimiter: str = ","
) -> Iterator[tuple[int, int, list[str]]]:
    """``(first line, last line, cells)`` of each record of a CSV text stream (opened with
    ``newline=""``), the header included; blank lines are skipped.

    A cell may be as long as its record's bound: the csv module's field limit (131,072
    characters by default, process-wide) is raised to ``max_record_chars`` only while a
    record is parsed here, so other readers keep theirs. A longer record raises
    :class:`CsvRecordTooLong`; a line the csv module cannot parse raises ``csv.Error``.
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


# ----------------------------------------------------------------------------- tables


@dataclass(frozen=True, slots=True)
class Row:
    """One record of a table.

    ``number``: 1-based, the CSV data record (the header is not counted; a quoted value
    spanning lines is still one record), the JSON line (blank lines counted), the item of
    a JSON array or the Parquet row. ``where``: its place for people (``line 3``,
    ``lines 3-5``, ``row 7``, ``item 2``; CSV line numbers count the header). ``values``:
    column -> value, an empty CSV cell and a missing one are None. ``rejection``: set
    (and ``values`` empty) when the record could not be read.
    """

    number: int
    where: str
    values: dict[str, Any] = field(default_factory=dict)
    rejection: Rejection | None = None


def _unreadable(number: int, where: str, message: str) -> Row:
    return Row(number, where, {}, Rejection(None, RejectReason.UNREADABLE_ROW, message))


class Table:
    """An open table file; iterate it for its :class:`Row` objects (once).

    ``columns``: the header (CSV) or schema (Parquet) names, known before any row; None
    for JSON, whose objects each name their own keys. ``decode_errors``: bytes that were
    not UTF-8 and were replaced by U+FFFD (``decoding="replace"`` only).
    """

    def __init__(
        self,
        path: Path,
        *,
        max_record_chars: int,
        decoding: Literal["strict", "replace"],
        extra_cells: Literal["drop", "reject"],
        json_arrays: bool,
    ) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.suffix = self.path.suffix.lower()
        if self.suffix not in TABLE_SUFFIXES:
            raise TabularFileError(
                f"{self.name}: unsupported file type {self.suffix or '(none)'} "
                f"(use {', '.join(TABLE_SUFFIXES)})"
            )
        self.max_record_chars = max_record_chars
        self.decoding = decoding
        self.extra_cells = extra_cells
        self.json_arrays = json_arrays
        self.decode_errors = 0
        self.columns: tuple[str, ...] | None = None
        self._rows: Generator[Row, None, None]
        if self.suffix in (".csv", ".tsv"):
            self._rows = self._csv_rows()
        elif self.suffix == ".parquet":
            self._rows = self._parquet_rows()
        else:
            self._rows = self._json_rows()
        self._first = self._start()

    # -------------------------------------------------------------- context and iteration
    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._rows.close()  # closes the file too

    def __iter__(self) -> Iterator[Row]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        yield from self._rows

    def _start(self) -> Row | None:
        """Run the reader up to its first row, so the header / schema is known now."""
        try:
            return next(self._rows)
        except StopIteration:
            return None
        except BaseException:
            self.close()
            raise

    def _text(self, newline: str | None) -> IO[str]:
        """The file as text: streamed strictly (UTF-8, a BOM dropped), or decoded whole with
        bad bytes replaced and counted."""
        if self.decoding == "strict":
            return self.path.open(encoding="utf-8-sig", newline=newline)
        text = decode_text(self.path.read_bytes())
        self.decode_errors += text.replaced
        return io.StringIO(str(text), newline=newline)

    # -------------------------------------------------------------- CSV
    def _csv_rows(self) -> Generator[Row, None, None]:
        line = 0
        try:
            with self._text(newline="") as fh:
                records = iter_csv_records(
                    fh, self.max_record_chars, delimiter="\t" if self.suffix == ".tsv" else ","
                )
                first = next(records, None)
                if first is None:
                    raise TabularFileError(f"{self.name}: empty CSV file (no header row)")
                header = [name.strip() for name in first[2]]
                self.columns = tuple(header)
                for number, (start, end, cells) in enumerate(records, start=1):
                    line = end
                    where = f"line {start}" if end == start else f"lines {start}-{end}"
                    extra = len(cells) - len(header)
                    if extra > 0 and self.extra_cells == "reject":
                        message = f"{where}: {extra} cells beyond the header's {len(header)}"
                        yield _unreadable(number, where, message)
                        continue
                    # cells beyond the header are dropped, missing ones are None (as DictReader)
                    values: dict[str, Any] = dict.fromkeys(header)
                    values.update((k, v if v != "" else None) for k, v in zip(header, cells))
                    yield Row(number, where, values)
        except UnicodeDecodeError as exc:
            raise TabularFileError(f"{self.name}: not UTF-8 text ({exc.reason})") from exc
        except CsvRecordTooLong as exc:
            raise TabularFileError(f"{self.name}: {exc}") from None
        except csv.Error as exc:
            raise TabularFileError(f"{self.name}: malformed CSV after line {line} ({exc})") from exc

    # -------------------------------------------------------------- JSON
    def _json_rows(self) -> Generator[Row, None, None]:
        try:
            with self._text(newline=None) as fh:
                lines: Iterator[str] = fh
                first_line = 1
                if self.json_arrays:  # peek at the first character: "[" starts an array
                    head = fh.read(1)
                    while head and head.isspace():
                        first_line += head == "\n"
                        head = fh.read(1)
                    if head == "[":
                        yield from self._json_array("[" + fh.read())
                        return
                    lines = itertools.chain([head + fh.readline()], fh)
                for number, line in enumerate(lines, start=first_line):
                    if not line.strip():
                        continue
                    where = f"line {number}"
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as exc:
                        yield _unreadable(number, where, f"{where}: invalid JSON ({exc.msg})")
                        continue
                    if not isinstance(record, dict):
                        yield _unreadable(number, where, f"{where}: not a JSON object")
                        continue
                    yield Row(number, where, record)
        except UnicodeDecodeError as exc:
            raise TabularFileError(f"{self.name}: not UTF-8 text ({exc.reason})") from exc

    def _json_array(self, text: str) -> Iterator[Row]:
        """A plain JSON array of objects (the kcs_hs_chatbot files): one document."""
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise TabularFileError(f"{self.name}: not a JSON array ({exc})") from None
        if not isinstance(items, list):
            raise TabularFileError(f"{self.name}: not a JSON array")
        for number, item in enumerate(items, start=1):
            where = f"item {number}"
            if isinstance(item, dict):
                yield Row(number, where, item)
            else:
                yield _unreadable(number, where, f"{where}: not a JSON object")

    # -------------------------------------------------------------- Parquet
    def _parquet_rows(self) -> Generator[Row, None, None]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(self.path)
            self.columns = tuple(parquet.schema_arrow.names)
            number = 0
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
                for values in batch.to_pylist():
                    number += 1
                    yield Row(number, f"row {number}", values)
        except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
            raise TabularFileError(f"{self.name}: unreadable Parquet ({exc})") from exc


def open_table(
    path: Path | str,
    *,
    max_record_chars: int = DEFAULT_MAX_CSV_RECORD_CHARS,
    decoding: Literal["strict", "replace"] = "strict",
    extra_cells: Literal["drop", "reject"] = "drop",
    json_arrays: bool = False,
) -> Table:
    """Open a table file (see the module docstring); use as ``with open_table(p) as t:``.

    ``decoding``: ``strict`` refuses a file that is not UTF-8 (the request intake);
    ``replace`` reads it whole, replacing and counting bad bytes (case import).
    ``extra_cells``: CSV cells beyond the header are dropped, or reject their record.
    ``json_arrays``: a JSON file may also be one array of objects. The header / schema is
    read here, so a file unreadable from its start fails now, the rest while iterating.
    """
    return Table(
        Path(path),
        max_record_chars=max_record_chars,
        decoding=decoding,
        extra_cells=extra_cells,
        json_arrays=json_arrays,
    )


# ----------------------------------------------------------------------------- named files


def read_image_in_folder(
    spec: str, folder: Path | None, max_bytes: int, *, allow_outside: bool = False
) -> bytes:
    """The bytes of the image file ``spec`` names, read only inside ``folder``.

    ``spec`` is relative to ``folder``; an absolute path, a ``..`` or a symlink leading
    out of it is refused (``image_path_outside``) unless ``allow_outside`` (a trusted
    file). Without a folder any path is read (relative to the working directory, ``~``
    expanded). Only a regular file is read (``image_missing`` for anything else: nothing
    there, a folder, a pipe, a device), at most ``max_bytes`` (``image_too_large``); a
    path the OS refuses (a NUL byte, a name too long, a symlink loop) is
    ``image_path_bad``. Whether the bytes are an image is the caller's check.
    Raises :class:`~hscode.rejects.Rejected`.
    """
    shown = repr(spec[:MAX_SHOWN_PATH])
    try:
        candidate = Path(spec)
        if folder is None:
            resolved = candidate.expanduser().resolve()
        else:
            base = folder.resolve()
            if candidate.is_absolute() and not allow_outside:
                raise Rejected(
                    RejectReason.IMAGE_PATH_OUTSIDE,
                    f"image path outside the file's folder (absolute): {shown}",
                )
            # resolve() follows symlinks: a link inside the folder to a file outside leaves it
            resolved = (base / candidate).resolve()
            if not allow_outside and not resolved.is_relative_to(base):
                raise Rejected(
                    RejectReason.IMAGE_PATH_OUTSIDE,
                    f"image path outside the file's folder: {shown}",
                )
        if not resolved.is_file():  # devices, pipes and folders are not images
            raise Rejected(
                RejectReason.IMAGE_MISSING, f"unreadable image: {shown} not found (or not a file)"
            )
        size = resolved.stat().st_size
        if size > max_bytes:
            raise Rejected(
                RejectReason.IMAGE_TOO_LARGE,
                f"image too large ({shown} has {size} bytes > {max_bytes})",
            )
        with resolved.open("rb") as fh:
            data = fh.read(max_bytes + 1)  # the file may have grown since stat()
    except Rejected:
        raise
    except (OSError, ValueError, RuntimeError) as exc:  # NUL bytes, long names, link loops
        raise Rejected(
            RejectReason.IMAGE_PATH_BAD, f"unreadable image: path {shown} unusable ({exc})"
        ) from None
    if len(data) > max_bytes:
        raise Rejected(
            RejectReason.IMAGE_TOO_LARGE, f"image too large (more than {max_bytes} bytes)"
        )
    return data
