"""External case files in and out of the ``cases`` dataset: ``hscode cases import`` / ``export``.

Import reads a CSV, TSV, JSON-lines (or JSON array) or Parquet file with the shared table
reader (:mod:`hscode.tabular`), maps its columns to ours (:data:`IMPORT_COLUMNS`), builds
each row with :func:`hscode.case_records.make_case`, reads and verifies the images it names
(inside the file's folder) and upserts the good rows in chunks
(:func:`hscode.cases.upsert_cases`). A bad row is a :class:`~hscode.rejects.Rejection` with
its code, recorded in the reject log; the rest goes on. Export writes the dataset as CSV
(for spreadsheets) or Parquet with :data:`EXPORT_COLUMNS`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hscode.case_records import make_case
from hscode.cases import UpsertReport, read_cases, upsert_cases
from hscode.hs import format_hs10
from hscode.objectstore import images_location
from hscode.rejects import Rejected, Rejection, record_rejects
from hscode.settings import Settings
from hscode.storage import atomic_write, image_problem, sha256_bytes
from hscode.tabular import MAX_SHOWN_PATH, Row, csv_record_limit, open_table, read_image_in_folder
from hscode.text import clean_text

log = logging.getLogger(__name__)

IMPORT_CHUNK_ROWS = 20_000


# --------------------------------------------------------------------------- import


@dataclass(slots=True)
class ImportReport:
    read: int  # data rows found in the file
    imported: int  # rows that passed validation (duplicates within the file collapse on upsert)
    rejected: int
    reasons: Counter = field(default_factory=Counter)
    upsert: UpsertReport | None = None
    decode_errors: int = 0  # undecodable bytes replaced by U+FFFD (CSV / JSON lines)


IMPORT_COLUMNS = ("hs_code", "title", "description", "image_path", "case_id", "decision_date")
_REQUIRED_IMPORT = ("hs_code", "title")


def parse_column_map(spec: str | None) -> dict[str, str]:
    """``"hs_code=hscode,title=name"`` (the CLI's ``--columns``) -> ``{'hs_code': 'hscode', ...}``."""
    mapping: dict[str, str] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        ours, sep, theirs = part.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise ValueError(f"column mapping {part!r} is not OURS=THEIRS")
        if ours.strip() not in IMPORT_COLUMNS:
            raise ValueError(f"unknown import column {ours.strip()!r}; known: {IMPORT_COLUMNS}")
        mapping[ours.strip()] = theirs.strip()
    return mapping


def _cell(value: object) -> str | None:
    """A file cell as text; numbers keep their digits (no '.0', no lost leading zero added)."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):  # NaN from pandas-written files
            return None
        if value.is_integer():
            return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value).strip()
    return text or None


def _row_key(prefix: str, values: Mapping[str, str | None]) -> str:
    if values.get("case_id"):
        return f"{prefix}:{values['case_id']}"
    content = json.dumps(
        [values.get("title"), values.get("hs_code"), values.get("description")], ensure_ascii=False
    )
    return f"{prefix}:{hashlib.sha256(content.encode()).hexdigest()[:20]}"


def _load_image(
    settings: Settings, folder: Path, spec: str, allow_absolute: bool
) -> tuple[bytes, str]:
    """Read (inside ``folder`` unless ``allow_absolute``) and fully decode one image; return
    (bytes, sha256) or raise :class:`~hscode.rejects.Rejected`."""
    data = read_image_in_folder(
        spec, folder, settings.max_image_bytes, allow_outside=allow_absolute
    )
    problem = image_problem(data)
    if problem is not None:
        reason, detail = problem
        raise Rejected(reason, f"image {spec[:MAX_SHOWN_PATH]!r} cannot be used ({detail})")
    return data, sha256_bytes(data)


def import_cases(
    settings: Settings,
    path: Path,
    source: str | None = None,
    *,
    column_map: Mapping[str, str] | None = None,
    allow_absolute: bool = False,
    chunk_rows: int = IMPORT_CHUNK_ROWS,
) -> ImportReport:
    """Add an external case file (CSV, TSV, JSON lines or array, Parquet) to the dataset.

    ``column_map`` maps our column names to the file's (``{'hs_code': 'hscode',
    'title': 'name'}``). Bad rows are rejected with their reason code (and recorded in
    the reject log, ``where`` = ``<file name>#<row number>``); the rest of the file goes
    on. Images are read inside the file's folder (anywhere with ``allow_absolute``),
    verified and stored once by content hash. Bytes that are not UTF-8 are replaced and
    counted (``decode_errors``). Re-importing the same file changes nothing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"case file {path} not found")
    mapping = {name: name for name in IMPORT_COLUMNS}
    for ours, theirs in (column_map or {}).items():
        if ours not in IMPORT_COLUMNS:
            raise ValueError(f"unknown import column {ours!r}; known: {IMPORT_COLUMNS}")
        mapping[ours] = theirs
    prefix = source or f"import:{path.stem}"
    folder = path.parent
    report = ImportReport(read=0, imported=0, rejected=0)
    rejects: list[Rejection] = []
    chunk: list[dict[str, Any]] = []
    upserts: list[UpsertReport] = []
    fetched_at = datetime.now(UTC)
    image_store = images_location(settings)

    def flush() -> None:
        if chunk:
            upserts.append(upsert_cases(settings, chunk))
            chunk.clear()
        if rejects:
            record_rejects(settings, rejects)
            rejects.clear()

    def reject(rejection: Rejection, key: str, n: int) -> None:
        report.rejected += 1
        report.reasons[rejection.reason] += 1
        rejects.append(replace(rejection, key=key, source=prefix, where=f"{path.name}#{n}"))

    record_limit = csv_record_limit(settings.max_text_chars, settings.max_image_bytes)
    with open_table(
        path,
        max_record_chars=record_limit,
        decoding="replace",
        extra_cells="reject",
        json_arrays=True,
    ) as table:
        rows: Iterable[Row] = table
        if table.columns is not None:
            fields = set(table.columns)
        else:  # JSON: the columns are every key any object has
            rows = list(table)
            fields = {name for row in rows for name in row.values}
        missing = [
            f"{ours} (column {mapping[ours]!r})"
            for ours in _REQUIRED_IMPORT
            if mapping[ours] not in fields
        ]
        if missing:
            raise ValueError(
                f"{path}: missing required columns {missing}; file has {sorted(fields)}"
            )
        for row in rows:
            n = row.number
            report.read += 1
            if row.rejection is not None:
                reject(row.rejection, f"{prefix}:row{n}", n)
                continue
            values = {ours: _cell(row.values.get(theirs)) for ours, theirs in mapping.items()}
            key = _row_key(prefix, values)
            try:
                images: list[tuple[bytes, str]] = []
                for spec in re.split(r"[;|]", values["image_path"] or ""):
                    if spec.strip():
                        images.append(_load_image(settings, folder, spec.strip(), allow_absolute))
                case = make_case(
                    case_key=key,
                    source=prefix,
                    title_raw=values["title"],
                    hs_raw=values["hs_code"],
                    decision_date=values["decision_date"],
                    description_raw=values["description"],
                    image_hashes=[digest for _, digest in images],
                    image_count=len(images) if images else None,
                    fetched_at=fetched_at,
                    raw_ref=f"{path.name}#{n}",
                    max_text_chars=settings.max_text_chars,
                )
            except Rejected as exc:
                reject(exc.rejection(key), key, n)
                continue
            for data, _ in images:  # stored only once the row is known to be good
                image_store.put_blob(data)
            chunk.append(case)
            report.imported += 1
            if len(chunk) >= chunk_rows:
                flush()
        report.decode_errors = table.decode_errors
    flush()
    if upserts:
        report.upsert = UpsertReport(
            inserted=sum(u.inserted for u in upserts),
            updated=sum(u.updated for u in upserts),
            unchanged=sum(u.unchanged for u in upserts),
            total=upserts[-1].total,
            received=sum(u.received for u in upserts),
            partitions_written=tuple(sorted({y for u in upserts for y in u.partitions_written})),
        )
    log.info("imported %s as %s: %s", path, prefix, report)
    return report


# --------------------------------------------------------------------------- export

EXPORT_COLUMNS = (
    "case_id",
    "hs_code",
    "title",
    "description",
    "decision_date",
    "hs10",
    "hs6",
    "hs4",
    "source",
    "series",
    "reference_no",
    "office",
    "multi_code",
    "image_count",
)


def _export_table(table: pa.Table) -> pa.Table:
    hs_code = [
        format_hs10(hs10) if hs10 else (clean_text(raw) or None)
        for hs10, raw in zip(table["hs10"].to_pylist(), table["hs_raw"].to_pylist(), strict=True)
    ]
    images = pc.list_value_length(table["image_hashes"]).cast(pa.int32())
    columns = {
        "case_id": table["case_key"],
        "hs_code": pa.array(hs_code, pa.string()),
        "title": table["title"],
        "description": table["description"],
        "decision_date": table["decision_date"],
        "hs10": table["hs10"],
        "hs6": table["hs6"],
        "hs4": table["hs4"],
        "source": table["source"],
        "series": table["series"],
        "reference_no": table["reference_no"],
        "office": table["office"],
        "multi_code": table["multi_code"],
        "image_count": pc.if_else(pc.is_null(table["image_count"]), images, table["image_count"]),
    }
    return pa.table(columns)


def export_cases(settings: Settings, path: Path) -> int:
    """Write the dataset as CSV (UTF-8 with BOM, for spreadsheets) or Parquet; return row count."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"{path}: export to .csv or .parquet, not {suffix!r}")
    table = _export_table(read_cases(settings))
    if suffix == ".parquet":
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        data = sink.getvalue().to_pybytes()
    else:
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer)
        writer.writerow(table.column_names)
        pylists = [table[c].to_pylist() for c in table.column_names]
        for row in zip(*pylists, strict=True):
            writer.writerow(
                ["" if v is None else v.isoformat() if isinstance(v, date) else v for v in row]
            )
        data = ("\ufeff" + buffer.getvalue()).encode("utf-8")
    atomic_write(path, data)
    log.info("exported %d cases to %s", table.num_rows, path)
    return table.num_rows
