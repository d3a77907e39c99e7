"""The Parquet ``cases`` dataset: validation, upsert, read, import, export, quality report.

Layout: ``<settings.cases_url>/decision_year=YYYY/part-0.parquet`` (year 0 = unknown),
every file written with ``CASE_SCHEMA`` in one piece: through a temp file and
``os.replace`` on a local folder, one PUT on object storage (``hscode.objectstore``), so
readers never see a half-written file. On a local folder one writer at a time (a file
lock); object storage cannot be locked across machines, so there the one writer is the
normalize/import step (one crawl worker, Prefect concurrency limits), and readers resolve
the rare duplicate a concurrent move could leave (newest wins, see below).

Upsert rules:
- the case key is the identity; the newest ``fetched_at`` wins, ties go to the
  incoming record; a missing ``fetched_at`` is older than any timestamp;
- a record whose content (everything but ``fetched_at`` and ``raw_ref``) equals the
  stored one is "unchanged" and the stored row is kept, so re-running a crawl,
  a normalize or an import rewrites nothing;
- a record whose decision year changed moves partitions. The partition gaining
  it is written before the one losing it, so a crash in between leaves a
  duplicate (which ``read_cases`` resolves, newest wins, and the next upsert
  heals) rather than a lost case.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from hscode.hs import format_hs10, parse_hs
from hscode.objectstore import Location, cases_location, images_location
from hscode.schema import CASE_COLUMNS, CASE_SCHEMA, SCHEMA_VERSION, SERIES
from hscode.settings import Settings
from hscode.storage import atomic_write, image_problem, sha256_bytes
from hscode.text import clean_text, decode_text, title_key

log = logging.getLogger(__name__)

DEFAULT_MAX_TEXT_CHARS = 20_000  # same as Settings.max_text_chars
IMPORT_CHUNK_ROWS = 20_000
PART_FILE = "part-0.parquet"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_DATE = re.compile(r"(\d{4})[-./]?(\d{2})[-./]?(\d{2})(?:[T ][\d:.+\-Z]*)?")
_NON_CONTENT = ("fetched_at", "raw_ref")  # differ between re-fetches of the same case
_NON_NULLABLE = tuple(f.name for f in CASE_SCHEMA if not f.nullable)


# --------------------------------------------------------------------------- validation


class CaseRejected(ValueError):
    """A record that cannot become a case. ``reason`` is a short stable code for counting."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def parse_decision_date(value: object) -> date | None:
    """``date``/``datetime``, ``'YYYY-MM-DD'``, ``'YYYYMMDD'`` (also ``.`` or ``/``) or empty."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if not text:
        return None
    match = _DATE.fullmatch(text)
    if not match:
        raise CaseRejected("bad_date", f"unreadable decision date {text!r}")
    try:
        parsed = date(*(int(g) for g in match.groups()))
    except ValueError as exc:
        raise CaseRejected("bad_date", f"impossible decision date {text!r}: {exc}") from None
    if not 1900 <= parsed.year <= 2100:
        raise CaseRejected("bad_date", f"implausible decision year in {text!r}")
    return parsed


def _parse_fetched_at(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())  # 3.11 reads "Z"
        except ValueError:
            raise CaseRejected("bad_fetched_at", f"unreadable fetch time {value!r}") from None
    # Naive times are taken as UTC: the crawler records UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _check_length(name: str, text: str | None, limit: int) -> None:
    if text is not None and len(text) > limit:
        raise CaseRejected("oversize_text", f"{name} has {len(text)} characters (limit {limit})")


def make_case(
    *,
    case_key: str,
    source: str,
    title_raw: str | None,
    hs_raw: str | None,
    series: str | None = None,
    reference_no: str | None = None,
    decision_date: date | str | None = None,
    office: str | None = None,
    description_raw: str | None = None,
    decision_reason: str | None = None,
    image_hashes: Sequence[str] = (),
    image_count: int | str | None = None,
    fetched_at: datetime | str | None = None,
    raw_ref: str | None = None,
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
) -> dict[str, Any]:
    """Validate and clean one case into a ``CASE_SCHEMA`` row, or raise ``CaseRejected``.

    Unclear or multi-code values are kept (null hs10..hs2, ``multi_code`` set when
    several codes are named): the portal decided them, we just do not guess.
    """
    key = (case_key or "").strip() if isinstance(case_key, str) else str(case_key or "").strip()
    if not key:
        raise CaseRejected("empty_key", "case_key is empty")
    source = (source or "").strip()
    if not source:
        raise CaseRejected("empty_source", f"case {key}: source is empty")
    if series is not None and series not in SERIES:
        raise CaseRejected("bad_series", f"case {key}: series {series!r} not in {SERIES}")

    # Raw inputs are bounded too: a 10 MB "title" full of tags is junk, not a case.
    for name, raw in (
        ("title", title_raw),
        ("description", description_raw),
        ("decision_reason", decision_reason),
        ("hs_code", hs_raw),
    ):
        if raw is not None and len(str(raw)) > 4 * max_text_chars:
            raise CaseRejected(
                "oversize_text", f"case {key}: raw {name} has {len(str(raw))} characters"
            )

    title = clean_text(title_raw)
    if not title:
        raise CaseRejected(
            "empty_title", f"case {key}: no product name after cleaning {title_raw!r}"
        )
    hs_text = "" if hs_raw is None else str(hs_raw)
    if not clean_text(hs_text):
        raise CaseRejected("empty_hs_code", f"case {key}: decided code is empty")
    description = clean_text(description_raw) or None
    reason = clean_text(decision_reason) or None
    for name, text in (("title", title), ("description", description), ("decision_reason", reason)):
        _check_length(name, text, max_text_chars)

    try:
        decided = parse_decision_date(decision_date)
    except CaseRejected as exc:
        raise CaseRejected(exc.reason, f"case {key}: {exc.detail}") from None

    hashes: list[str] = []
    for digest in image_hashes or ():
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise CaseRejected(
                "bad_image_hash", f"case {key}: {digest!r} is not a sha256 hex digest"
            )
        if digest not in hashes:
            hashes.append(digest)

    count: int | None
    if image_count is None or image_count == "":
        count = None
    else:
        try:
            count = int(image_count)
        except (TypeError, ValueError):
            raise CaseRejected(
                "bad_image_count", f"case {key}: image count {image_count!r}"
            ) from None
        if count < 0:
            raise CaseRejected("bad_image_count", f"case {key}: negative image count {count}")

    code = parse_hs(hs_text)
    return {
        "case_key": key,
        "source": source,
        "series": series,
        "reference_no": clean_text(reference_no) or None,
        "decision_date": decided,
        "decision_year": decided.year if decided else 0,
        "office": clean_text(office) or None,
        "hs_raw": hs_text,
        "hs10": code.hs10 if not code.multi else None,
        "hs6": code.hs6 if not code.multi else None,
        "hs4": code.hs4 if not code.multi else None,
        "hs2": code.hs2 if not code.multi else None,
        "multi_code": code.multi,
        "title": title,
        "title_raw": None if title_raw is None else str(title_raw),
        "description": description,
        "description_raw": None if description_raw is None else str(description_raw),
        "decision_reason": reason,
        "image_hashes": hashes,
        "image_count": count,
        "fetched_at": _parse_fetched_at(fetched_at),
        "raw_ref": None if raw_ref is None else str(raw_ref),
        "schema_version": SCHEMA_VERSION,
    }


# --------------------------------------------------------------------------- rejects


@dataclass(frozen=True, slots=True)
class Reject:
    """A record that did not become a case, with why and where it came from."""

    source: str
    key: str
    reason: str
    raw_ref: str | None = None
    detail: str | None = None


def synthetic_case_records(
    n: int,
    seed: int = 0,
    prefix: str = "syn",
    source: str = "import:test",
    decision_date: str | None = "2024-01-15",
) -> list[dict]:
    """``n`` synthetic cases (``model.synthetic``, no photos) as records for
    :func:`upsert_cases`, keys ``{prefix}-{i}``: the data tests and benchmarks train on."""
    from model.synthetic import make_cases

    return [
        make_case(
            case_key=f"{prefix}-{i}",
            source=source,
            title_raw=e.title,
            hs_raw=e.label,
            description_raw=e.description,
            decision_date=decision_date,
        )
        for i, e in enumerate(make_cases(n, seed=seed, with_images=0.0))
    ]


def record_rejects(settings: Settings, rejects: Iterable[Reject]) -> int:
    """Append rejects as JSON lines to ``rejects_dir/YYYY-MM-DD.jsonl`` (UTC day)."""
    now = datetime.now(UTC)
    lines = [
        json.dumps({**asdict(r), "at": now.isoformat()}, ensure_ascii=False) + "\n" for r in rejects
    ]
    if not lines:
        return 0
    settings.rejects_dir.mkdir(parents=True, exist_ok=True)
    path = settings.rejects_dir / f"{now.date().isoformat()}.jsonl"
    # One O_APPEND write per batch: concurrent writers interleave whole batches, not lines.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, "".join(lines).encode("utf-8"))
    finally:
        os.close(fd)
    return len(lines)


def read_rejects(
    settings: Settings, since: date | None = None, dedupe: bool = True
) -> list[Reject]:
    """All recorded rejects (from ``since`` on). A record rejected again on a re-run counts once."""
    if not settings.rejects_dir.is_dir():
        return []
    seen: dict[tuple, Reject] = {}
    out: list[Reject] = []
    for path in sorted(settings.rejects_dir.glob("*.jsonl")):
        if since is not None and path.stem < since.isoformat():
            continue
        for n, line in enumerate(
            path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
        ):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                reject = Reject(
                    source=row["source"],
                    key=row["key"],
                    reason=row["reason"],
                    raw_ref=row.get("raw_ref"),
                    detail=row.get("detail"),
                )
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("skipping unreadable reject line %s:%d (%s)", path, n, exc)
                continue
            if dedupe:
                seen[(reject.source, reject.key, reject.reason, reject.raw_ref)] = reject
            else:
                out.append(reject)
    return list(seen.values()) if dedupe else out


# --------------------------------------------------------------------------- dataset I/O


@dataclass(frozen=True, slots=True)
class UpsertReport:
    inserted: int  # new case keys
    updated: int  # existing keys whose content changed (possibly moving partitions)
    unchanged: int  # same content, or older than the stored record
    total: int  # rows in the dataset after the upsert
    received: int = 0  # records passed in (before de-duplicating the batch)
    partitions_written: tuple[int, ...] = ()  # decision years rewritten (or removed)


def _partition_path(year: int) -> str:
    return f"decision_year={int(year)}/{PART_FILE}"


def _partition_files(cases: Location) -> dict[int, str]:
    files: dict[int, str] = {}
    for rel in cases.glob(f"decision_year=*/{PART_FILE}"):
        folder = rel.split("/", 1)[0]
        try:
            files[int(folder.split("=", 1)[1])] = rel
        except ValueError:
            log.warning("ignoring unexpected partition folder %s/%s", cases.url, folder)
    return dict(sorted(files.items()))


@contextmanager
def _writer_lock(cases: Location) -> Iterator[None]:
    with cases.lock() as cases_dir:
        if cases_dir is not None:
            # Under the lock any temp file is an orphan of a crashed writer.
            for orphan in cases_dir.glob("decision_year=*/.tmp-*"):
                orphan.unlink(missing_ok=True)
        yield


@contextmanager
def _reader_lock(cases: Location) -> Iterator[None]:
    """Shared lock so a read never straddles a writer's partition moves."""
    with cases.lock(shared=True):
        yield


def _read_files(
    cases: Location, files: Sequence[str], columns: Sequence[str] | None = None
) -> pa.Table:
    if not files:
        table = CASE_SCHEMA.empty_table()
        return table.select(list(columns)) if columns is not None else table
    # Explicit schema: files written before a column was added read it as null.
    return ds.dataset(
        [cases.arrow_path(f) for f in files],
        schema=CASE_SCHEMA,
        format="parquet",
        filesystem=cases.arrow_fs,
    ).to_table(columns=list(columns) if columns is not None else None)


def _newest_per_key(table: pa.Table) -> pa.Table:
    """Keep one row per case key, the newest ``fetched_at`` (only needed after a crash)."""
    if table.num_rows == 0 or pc.count_distinct(table["case_key"]).as_py() == table.num_rows:
        return table
    # Missing fetch times count as the oldest.
    fetched = pc.fill_null(
        table["fetched_at"],
        pa.scalar(datetime(1, 1, 1, tzinfo=UTC), CASE_SCHEMA.field("fetched_at").type),
    )
    order = pc.sort_indices(
        pa.table({"k": table["case_key"], "f": fetched, "i": pa.array(np.arange(table.num_rows))}),
        sort_keys=[("k", "ascending"), ("f", "descending"), ("i", "descending")],
    )
    keys = table["case_key"].take(order).to_numpy(zero_copy_only=False)
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    log.warning(
        "cases dataset holds %d duplicate rows (interrupted upsert?); newest kept",
        int((~first).sum()),
    )
    return table.take(pa.array(np.sort(order.to_numpy()[first])))


def read_cases(settings: Settings, columns: Sequence[str] | None = None) -> pa.Table:
    """The whole dataset with ``CASE_SCHEMA`` (empty table when there is none)."""
    wanted = list(columns) if columns is not None else list(CASE_COLUMNS)
    unknown = [c for c in wanted if c not in CASE_COLUMNS]
    if unknown:
        raise ValueError(f"unknown case columns {unknown}; known: {list(CASE_COLUMNS)}")
    needed = list(dict.fromkeys([*wanted, "case_key", "fetched_at"]))
    cases = cases_location(settings)
    if not cases.exists():
        return _read_files(cases, [], wanted)
    with _reader_lock(cases):
        files = list(_partition_files(cases).values())
        table = _read_files(cases, files, needed)
    return _newest_per_key(table).select(wanted)


def cases_snapshot_hash(settings: Settings) -> str:
    """A stable sha256 of the dataset content, independent of file layout and row order."""
    table = read_cases(settings)
    table = table.take(pc.sort_indices(table, sort_keys=[("case_key", "ascending")]))
    digest = hashlib.sha256(f"cases-v{SCHEMA_VERSION}:{table.num_rows}\n".encode())
    for name in CASE_COLUMNS:
        digest.update(name.encode() + b"\x00")
        digest.update(json.dumps(table[name].to_pylist(), default=str, ensure_ascii=False).encode())
    return digest.hexdigest()


def _to_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=CASE_SCHEMA)


def _check_record(record: Mapping[str, Any]) -> dict[str, Any]:
    extra = set(record) - set(CASE_COLUMNS)
    if extra:
        raise ValueError(f"case {record.get('case_key')!r} has unknown fields {sorted(extra)}")
    row = {name: record.get(name) for name in CASE_COLUMNS}
    if row["schema_version"] is None:
        row["schema_version"] = SCHEMA_VERSION
    if row["decision_year"] is None:
        row["decision_year"] = row["decision_date"].year if row["decision_date"] else 0
    missing = [n for n in _NON_NULLABLE if row[n] is None or row[n] == ""]
    if missing:
        raise ValueError(
            f"case {row['case_key']!r} lacks required fields {missing}; build it with make_case"
        )
    return row


def _fetched_key(value: datetime | None) -> datetime:
    return value if value is not None else datetime.min.replace(tzinfo=UTC)


def _write_partition(cases: Location, year: int, table: pa.Table) -> None:
    rel = _partition_path(year)
    if table.num_rows == 0:
        cases.delete(rel)
        return
    table = table.take(pc.sort_indices(table, sort_keys=[("case_key", "ascending")]))
    sink = pa.BufferOutputStream()
    pq.write_table(table.cast(CASE_SCHEMA), sink, compression="zstd")
    cases.write_bytes(rel, sink.getvalue().to_pybytes())


def upsert_cases(
    settings: Settings,
    records: Iterable[Mapping[str, Any]],
    rejects: Iterable[Reject] = (),
) -> UpsertReport:
    """Merge records into the dataset (see the module docstring for the rules).

    ``rejects`` (records the caller could not turn into cases) are recorded after the
    cases are written, so one call persists a whole normalize batch.
    """
    received = 0
    batch: dict[str, dict[str, Any]] = {}
    for record in records:
        received += 1
        row = _check_record(record)
        prior = batch.get(row["case_key"])
        # Ties go to the later record of the batch: it is the more recent observation.
        if prior is None or _fetched_key(_parse_fetched_at(row["fetched_at"])) >= _fetched_key(
            _parse_fetched_at(prior["fetched_at"])
        ):
            batch[row["case_key"]] = row
    cases = cases_location(settings)
    with _writer_lock(cases):
        files = _partition_files(cases)
        if not batch:
            total = _read_files(cases, list(files.values()), ["case_key"]).num_rows
            record_rejects(settings, rejects)
            return UpsertReport(0, 0, 0, total, received)
        # Canonical Python values (tz-aware datetimes, dates, lists) for comparing with stored rows.
        incoming = {r["case_key"]: r for r in _to_table(list(batch.values())).to_pylist()}
        keys = pa.array(list(incoming), pa.string())

        # Where do the incoming keys live now? Only key/year columns of every file are read.
        located: dict[int, pa.Table] = {}
        for year, path in files.items():
            key_col = pq.read_table(
                cases.arrow_path(path), columns=["case_key"], filesystem=cases.arrow_fs
            )["case_key"]
            if pc.any(pc.is_in(key_col, value_set=keys)).as_py():
                located[year] = _read_files(cases, [path])
        stored: dict[str, tuple[dict[str, Any], list[int]]] = {}
        for year, table in located.items():
            hits = table.filter(pc.is_in(table["case_key"], value_set=keys)).to_pylist()
            for row in hits:
                prev = stored.get(row["case_key"])
                if prev is None:
                    stored[row["case_key"]] = (row, [year])
                else:  # duplicate across partitions left by a crash: keep the newest
                    best = (
                        row
                        if _fetched_key(row["fetched_at"]) > _fetched_key(prev[0]["fetched_at"])
                        else prev[0]
                    )
                    stored[row["case_key"]] = (best, [*prev[1], year])

        inserted = updated = unchanged = 0
        add: dict[int, list[dict[str, Any]]] = {}
        remove: dict[int, set[str]] = {}
        for key, row in incoming.items():
            old = stored.get(key)
            if old is None:
                inserted += 1
                add.setdefault(row["decision_year"], []).append(row)
                continue
            old_row, old_years = old
            healed = len(old_years) > 1
            if _fetched_key(row["fetched_at"]) < _fetched_key(old_row["fetched_at"]):
                winner, changed = old_row, False  # stale incoming record
            else:
                winner = row
                changed = any(row[c] != old_row[c] for c in CASE_COLUMNS if c not in _NON_CONTENT)
                if not changed:
                    winner = old_row  # keep the stored row: nothing to rewrite
            if changed:
                updated += 1
            else:
                unchanged += 1
            if changed or healed:
                for year in old_years:
                    remove.setdefault(year, set()).add(key)
                add.setdefault(winner["decision_year"], []).append(winner)

        # Gaining partitions first, losing ones after: a crash leaves a duplicate, never a loss.
        gaining = sorted(add)
        losing = sorted(set(remove) - set(add))
        for year in [*gaining, *losing]:
            base = located.get(year)
            if base is None and year in files:
                base = _read_files(cases, [files[year]])
            if base is None:
                base = CASE_SCHEMA.empty_table()
            drop = remove.get(year, set())
            if drop:
                base = base.filter(
                    pc.invert(
                        pc.is_in(base["case_key"], value_set=pa.array(sorted(drop), pa.string()))
                    )
                )
            new = _to_table(add.get(year, []))
            _write_partition(cases, year, pa.concat_tables([base, new]))
        total = _read_files(cases, list(_partition_files(cases).values()), ["case_key"]).num_rows
    report = UpsertReport(inserted, updated, unchanged, total, received, (*gaining, *losing))
    record_rejects(settings, rejects)
    log.info("upserted cases into %s: %s", cases.url, report)
    return report


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


def _read_import_rows(
    path: Path, counts: Counter, max_record_chars: int
) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """Yield (row number, row or None, problem) so a bad line rejects one row, not the file.

    CSV is read by the request intake's reader (:func:`hscode.intake.iter_csv_records`): a
    long cell is read whole and judged by the row checks (``title_too_long``...), not a
    parse error that used to reject its row and read the rest of a quoted cell as rows.
    """
    from hscode.intake import CsvRecordTooLong, iter_csv_records

    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        text = decode_text(path.read_bytes())
        counts["decode_errors"] += text.replaced
        records = iter_csv_records(
            io.StringIO(str(text), newline=""),
            max_record_chars,
            delimiter="\t" if suffix == ".tsv" else ",",
        )
        try:
            first = next(records, None)
            if first is None:
                return
            fields = [f.strip() for f in first[2]]
            yield 0, {"__fields__": fields}, None
            for n, (start, _end, cells) in enumerate(records, 1):
                if len(cells) > len(fields):
                    extra = len(cells) - len(fields)
                    yield n, None, f"row {n} (line {start}) has {extra} cells beyond the header"
                    continue
                row: dict[str, Any] = dict.fromkeys(fields)
                row.update(zip(fields, cells))
                yield n, row, None
        except (CsvRecordTooLong, csv.Error) as exc:
            raise ValueError(f"{path}: not readable as CSV: {exc}") from None
    elif suffix in (".jsonl", ".ndjson", ".json"):
        text = decode_text(path.read_bytes())
        counts["decode_errors"] += text.replaced
        fields: dict[str, None] = {}
        rows: list[tuple[int, dict[str, Any] | None, str | None]] = []
        if str(text).lstrip().startswith("["):
            # A plain JSON array of objects (as the kcs_hs_chatbot files are): one document.
            try:
                items = json.loads(str(text))
            except ValueError as exc:
                raise ValueError(f"{path}: not a JSON array ({exc})") from None
            lines = [json.dumps(item, ensure_ascii=False) for item in items]
        else:
            lines = str(text).splitlines()
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                rows.append((n, None, f"line {n} is not JSON ({exc.msg})"))
                continue
            if not isinstance(obj, dict):
                rows.append((n, None, f"line {n} is not a JSON object"))
                continue
            fields.update(dict.fromkeys(obj))
            rows.append((n, obj, None))
        yield 0, {"__fields__": list(fields)}, None
        yield from rows
    elif suffix == ".parquet":
        table = pq.read_table(path)
        yield 0, {"__fields__": table.column_names}, None
        for start in range(0, table.num_rows, IMPORT_CHUNK_ROWS):
            for n, row in enumerate(table.slice(start, IMPORT_CHUNK_ROWS).to_pylist(), start + 1):
                yield n, row, None
    else:
        raise ValueError(
            f"{path}: unsupported case file type {suffix!r} (use .csv, .jsonl or .parquet)"
        )


def _load_image(
    settings: Settings, folder: Path, spec: str, allow_absolute: bool
) -> tuple[bytes, str]:
    """Read and verify one image; return (bytes, sha256) or raise CaseRejected."""
    limit = settings.max_image_bytes
    try:
        candidate = Path(spec)
        if candidate.is_absolute():
            if not allow_absolute:
                raise CaseRejected(
                    "image_path_outside", f"absolute image path {spec!r} not allowed for this file"
                )
            resolved = candidate.resolve()
        else:
            # resolve() follows symlinks: a link inside the folder to a file outside leaves it.
            resolved = (folder / candidate).resolve()
            if not allow_absolute and not resolved.is_relative_to(folder.resolve()):
                raise CaseRejected(
                    "image_path_outside", f"image path {spec!r} leaves the file's folder"
                )
        if not resolved.is_file():
            raise CaseRejected("image_missing", f"image {spec!r} not found (or not a file)")
        size = resolved.stat().st_size
        if size > limit:
            raise CaseRejected(
                "image_too_large", f"image {spec!r} has {size} bytes (limit {limit})"
            )
        with resolved.open("rb") as fh:
            data = fh.read(limit + 1)  # the file may have grown since stat()
    except CaseRejected:
        raise
    except (OSError, ValueError, RuntimeError) as exc:  # NUL bytes, name too long, link loops
        raise CaseRejected(
            "image_path_bad", f"image path {spec[:200]!r} unusable ({exc})"
        ) from None
    if len(data) > limit:
        raise CaseRejected("image_too_large", f"image {spec!r} has more than {limit} bytes")
    problem = image_problem(data)
    if problem is not None:
        kind, detail = problem
        raise CaseRejected(f"image_{kind}", f"image {spec!r} cannot be used ({detail})")
    return data, sha256_bytes(data)


def _row_key(prefix: str, values: Mapping[str, str | None]) -> str:
    if values.get("case_id"):
        return f"{prefix}:{values['case_id']}"
    content = json.dumps(
        [values.get("title"), values.get("hs_code"), values.get("description")], ensure_ascii=False
    )
    return f"{prefix}:{hashlib.sha256(content.encode()).hexdigest()[:20]}"


def import_cases(
    settings: Settings,
    path: Path,
    source: str | None = None,
    *,
    column_map: Mapping[str, str] | None = None,
    allow_absolute: bool = False,
    chunk_rows: int = IMPORT_CHUNK_ROWS,
) -> ImportReport:
    """Add an external case file (CSV, JSON lines or Parquet) to the dataset.

    ``column_map`` maps our column names to the file's (``{'hs_code': 'hscode',
    'title': 'name'}``). Bad rows are rejected with their reason (and recorded);
    the rest of the file goes on. Images are verified and stored once by content
    hash. Re-importing the same file changes nothing.
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
    counts: Counter = Counter()
    report = ImportReport(read=0, imported=0, rejected=0)
    rejects: list[Reject] = []
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

    def reject(key: str, reason: str, detail: str, n: int) -> None:
        report.rejected += 1
        report.reasons[reason] += 1
        rejects.append(Reject(prefix, key, reason, f"{path.name}#{n}", detail))

    from hscode.intake import csv_record_limit

    record_limit = csv_record_limit(settings.max_text_chars, settings.max_image_bytes)
    rows = _read_import_rows(path, counts, record_limit)
    header = next(rows, None)
    fields = set(header[1]["__fields__"]) if header and header[1] else set()
    missing = [
        f"{ours} (column {mapping[ours]!r})"
        for ours in _REQUIRED_IMPORT
        if mapping[ours] not in fields
    ]
    if missing:
        raise ValueError(f"{path}: missing required columns {missing}; file has {sorted(fields)}")
    for n, row, problem in rows:
        report.read += 1
        if row is None:
            reject(f"{prefix}:row{n}", "unreadable_row", problem or "unreadable", n)
            continue
        values = {ours: _cell(row.get(theirs)) for ours, theirs in mapping.items()}
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
        except CaseRejected as exc:
            reject(key, exc.reason, exc.detail, n)
            continue
        for data, _ in images:  # stored only once the row is known to be good
            image_store.put_blob(data)
        chunk.append(case)
        report.imported += 1
        if len(chunk) >= chunk_rows:
            flush()
    flush()
    report.decode_errors = counts["decode_errors"]
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


# --------------------------------------------------------------------------- quality report


@dataclass(frozen=True, slots=True)
class QualityReport:
    metrics: dict[str, Any]
    markdown: str


def _counts(values: Iterable[Any]) -> dict[str, int]:
    return {
        str(k): v for k, v in sorted(Counter(values).items(), key=lambda kv: (-kv[1], str(kv[0])))
    }


def quality_report(
    settings: Settings,
    table: pa.Table | None = None,
    rejects: Sequence[Reject] | None = None,
    *,
    top_n: int = 20,
    min_cases: Sequence[int] = (5, 10, 50, 100),
) -> QualityReport:
    """Counts, rejects and code distribution of the dataset, as metrics and markdown."""
    if table is None:
        table = read_cases(settings)
    if rejects is None:
        rejects = read_rejects(settings)
    cols = {
        c: table[c].to_pylist()
        for c in (
            "source",
            "series",
            "decision_year",
            "hs10",
            "hs6",
            "hs2",
            "multi_code",
            "title",
            "description",
        )
    }
    n = table.num_rows
    image_counts = pc.list_value_length(table["image_hashes"]).to_pylist()
    hs10 = [c for c in cols["hs10"] if c]
    code_counts = Counter(hs10)
    unclear = sum(
        1 for h6, multi in zip(cols["hs6"], cols["multi_code"], strict=True) if not h6 and not multi
    )

    # Label noise: one normalised title decided under different 10-digit codes.
    codes_by_title: dict[str, set[str]] = {}
    rows_by_title: Counter = Counter()
    for title, code in zip(cols["title"], cols["hs10"], strict=True):
        if code:
            key = title_key(title)
            codes_by_title.setdefault(key, set()).add(code)
            rows_by_title[key] += 1
    conflicts = {t: c for t, c in codes_by_title.items() if len(c) > 1}
    conflict_examples = [
        {"title": t, "codes": sorted(c), "cases": rows_by_title[t]}
        for t, c in sorted(conflicts.items(), key=lambda kv: (-rows_by_title[kv[0]], kv[0]))[:10]
    ]

    metrics: dict[str, Any] = {
        "cases": n,
        "by_source": _counts(cols["source"]),
        "by_series": _counts(s or "none" for s in cols["series"]),
        "by_year": {str(y): c for y, c in sorted(Counter(cols["decision_year"]).items())},
        "multi_code": sum(bool(m) for m in cols["multi_code"]),
        "unclear_code": unclear,
        "with_hs10": len(hs10),
        "with_description": sum(1 for d in cols["description"] if d),
        "with_images": sum(1 for c in image_counts if c),
        "rejects": len(rejects),
        "rejects_by_reason": _counts(r.reason for r in rejects),
        "distinct_hs10": len(code_counts),
        "distinct_hs6": len({c for c in cols["hs6"] if c}),
        "top_codes": [{"hs10": c, "cases": k} for c, k in code_counts.most_common(top_n)],
        "codes_with_at_least": {
            str(m): sum(1 for k in code_counts.values() if k >= m) for m in min_cases
        },
        "by_chapter": {c: k for c, k in sorted(Counter(h for h in cols["hs2"] if h).items())},
        "conflicting_titles": len(conflicts),
        "conflicting_title_cases": sum(rows_by_title[t] for t in conflicts),
        "conflict_examples": conflict_examples,
    }
    return QualityReport(metrics, _markdown(metrics))


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(m: dict[str, Any]) -> str:
    def table(head: tuple[str, str], items: Iterable[tuple[Any, Any]]) -> list[str]:
        rows = [f"| {head[0]} | {head[1]} |", "|---|---:|"]
        rows += [f"| {_md_escape(str(k))} | {v} |" for k, v in items]
        return rows if len(rows) > 2 else rows + ["| (none) | 0 |"]

    lines = [
        "# Cases data quality",
        "",
        (
            f"- cases: **{m['cases']}**; with a 10-digit code: {m['with_hs10']}; "
            f"multi-code: {m['multi_code']}; unclear code: {m['unclear_code']}"
        ),
        f"- with description: {m['with_description']}; with images: {m['with_images']}",
        f"- distinct codes: {m['distinct_hs10']} (10-digit), {m['distinct_hs6']} (6-digit); "
        + ", ".join(f"with >= {k} cases: {v}" for k, v in m["codes_with_at_least"].items()),
        f"- rejects: {m['rejects']}",
        (
            f"- titles decided under different codes (label noise): {m['conflicting_titles']} "
            f"titles, {m['conflicting_title_cases']} cases"
        ),
        "",
        "## By source",
        *table(("source", "cases"), m["by_source"].items()),
        "",
        "## By series",
        *table(("series", "cases"), m["by_series"].items()),
        "",
        "## By decision year (0 = unknown)",
        *table(("year", "cases"), m["by_year"].items()),
        "",
        "## Rejects by reason",
        *table(("reason", "records"), m["rejects_by_reason"].items()),
        "",
        "## Top codes",
        *table(("hs10", "cases"), ((format_hs10(t["hs10"]), t["cases"]) for t in m["top_codes"])),
        "",
        "## By chapter",
        *table(("chapter", "cases"), m["by_chapter"].items()),
        "",
        "## Conflicting titles (examples)",
        "| title | codes | cases |",
        "|---|---|---:|",
        *[
            f"| {_md_escape(e['title'][:80])} | {', '.join(format_hs10(c) for c in e['codes'])} | {e['cases']} |"
            for e in m["conflict_examples"]
        ],
        "",
    ]
    return "\n".join(lines)
