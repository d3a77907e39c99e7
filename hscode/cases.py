"""The Parquet ``cases`` dataset: reading and upserting it.

Cases are built by :func:`hscode.case_records.make_case`; external files come in and go out
through :mod:`hscode.case_import`; :mod:`hscode.case_report` describes the dataset. Records
that cannot become cases are :class:`~hscode.rejects.Rejection` objects, recorded in the
reject log (:func:`hscode.rejects.record_rejects`) by :func:`upsert_cases`.

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

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from hscode.case_records import parse_fetched_at
from hscode.code_status import CurrentTariff, code_statuses
from hscode.objectstore import Location, cases_location
from hscode.rejects import Rejection, record_rejects
from hscode.schema import CASE_COLUMNS, CASE_SCHEMA, DERIVED_COLUMNS, SCHEMA_VERSION
from hscode.settings import Settings

log = logging.getLogger(__name__)

PART_FILE = "part-0.parquet"
# differ between re-fetches of the same case, or derived from the rest (the code status)
_NON_CONTENT = ("fetched_at", "raw_ref", "schema_version", *DERIVED_COLUMNS)
_NON_NULLABLE = tuple(f.name for f in CASE_SCHEMA if not f.nullable)


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
    rejects: Iterable[Rejection] = (),
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
        if prior is None or _fetched_key(parse_fetched_at(row["fetched_at"])) >= _fetched_key(
            parse_fetched_at(prior["fetched_at"])
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
            if changed and winner["hs10"] == old_row["hs10"]:
                # the derived code status still holds: it depends on the code alone
                for column in DERIVED_COLUMNS:
                    if winner[column] is None:
                        winner[column] = old_row[column]
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


@dataclass(frozen=True)
class RestatusReport:
    edition: str
    cases: int  # cases in the dataset
    derived: int  # rows whose status was (re)derived and written
    by_status: dict[str, int]  # every case's status now, multi-code and code-less as unknown
    partitions: tuple[int, ...]  # partitions rewritten


def restatus_cases(settings: Settings, tariff: CurrentTariff) -> RestatusReport:
    """Derive every case's code status against ``tariff`` (the current edition) and store it
    with the case: rows already derived against this edition are kept; the rest (new cases,
    a changed code, a new edition, files of an older schema) are rewritten, partition by
    partition, under the writer lock. Re-running it writes nothing."""
    cases = cases_location(settings)
    by_status: Counter[str] = Counter()
    derived = 0
    rewritten: list[int] = []
    with _writer_lock(cases):
        files = _partition_files(cases)
        n_cases = 0
        for year, path in sorted(files.items()):
            table = _read_files(cases, [path])
            n_cases += table.num_rows
            codes = table["hs10"].to_pylist()
            results = code_statuses(codes, tariff)
            by_status.update(str(r.status) for r in results)
            stale = [
                i
                for i, (edition, status, version) in enumerate(
                    zip(
                        table["code_edition"].to_pylist(),
                        table["code_status"].to_pylist(),
                        table["schema_version"].to_pylist(),
                        strict=True,
                    )
                )
                if edition != tariff.edition
                or status != results[i].status
                or version != SCHEMA_VERSION
            ]
            if not stale:
                continue
            derived += len(stale)
            n = table.num_rows
            table = (
                table.set_column(
                    table.schema.get_field_index("code_status"),
                    "code_status",
                    pa.array([str(r.status) for r in results], pa.string()),
                )
                .set_column(
                    table.schema.get_field_index("code_candidates"),
                    "code_candidates",
                    pa.array([list(r.candidates) for r in results], pa.list_(pa.string())),
                )
                .set_column(
                    table.schema.get_field_index("code_edition"),
                    "code_edition",
                    pa.array([tariff.edition] * n, pa.string()),
                )
                .set_column(
                    table.schema.get_field_index("schema_version"),
                    "schema_version",
                    pa.array([SCHEMA_VERSION] * n, pa.int32()),
                )
            )
            _write_partition(cases, year, table)
            rewritten.append(year)
    report = RestatusReport(tariff.edition, n_cases, derived, dict(by_status), tuple(rewritten))
    log.info("code statuses against %s: %s", tariff.edition, report)
    return report
