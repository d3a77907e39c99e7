"""Reviewers' decisions: record them, import files of them, read the review queue.

A decision is a person's ten-digit code for a request (``sql/009_decisions.sql``: the
append-only ``decisions`` table; ``current_decisions`` is the latest per request, a later
decision superseding an earlier one while the history stays). What a decision must be is
defined once, in SQL, by ``record_decision()``: the request exists, the code is ten digits
once dots, spaces and hyphens are removed, and it is a ten-digit code of the current tariff
edition. Every path goes through it: :func:`record_decision` here (``hscode review
decide``), :func:`import_decisions` (``hscode review import``) and the reviewers' own
``select decide(request_id, code, note)`` in psql. A refusal is a :class:`DecisionRefused`
with its :class:`~hscode.rejects.RejectReason` (mapped from the function's SQLSTATE):
``malformed_code``, ``not_current_code``, ``unknown_request``, ``no_current_edition``,
``oversize_text``.

Recording a decision identical to the request's current one (same code, note, source and
decided_by) writes nothing and returns the current one, so re-importing a file changes
nothing.

Decision files (:func:`import_decisions`): CSV with the header
``request_id,hs_code[,note,decided_by]`` or JSON lines with those keys (names are
case-insensitive; other columns are ignored and listed in the report). Each row is
recorded in its own savepoint: a bad row (unknown request, malformed or non-current code, a
missing field, a line that is not JSON, a request already decided by an earlier row of the
same file) is reported with its row number and reason, written to the intake reject log
(``intake_rejects``, ``record_kind = 'decision'``, source ``decisions:<file name>``), and
the rest go on. The file is processed in transactions of :data:`CHUNK_ROWS` rows: if the
database fails midway the chunks before stay recorded, and importing the file again
records the rest. Without a current tariff edition nothing can be checked: the import
stops with ``no_current_edition`` instead of refusing every row.

No Prefect here; the engine is :func:`hscode.db.get_engine`'s.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from hscode.rejects import Rejection, RejectReason
from hscode.request_rows import row_for_log
from hscode.tabular import Row, TabularFileError, open_table

REVIEW_SOURCE = "review"  # decided one at a time (hscode review decide, decide() in SQL)
IMPORT_SOURCE = "import"  # from a decisions file
SOURCES = (REVIEW_SOURCE, IMPORT_SOURCE)
SUPPORTED_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json")  # .json: lines, or one array
FILE_COLUMNS = ("request_id", "hs_code", "note", "decided_by")
REQUIRED_COLUMNS = ("request_id", "hs_code")
CHUNK_ROWS = 500  # rows per transaction of an import
REJECT_SOURCE_PREFIX = "decisions:"  # intake_rejects.source of a refused file row

# record_decision()'s SQLSTATEs (sql/009) -> reason codes
SQLSTATE_REASONS: dict[str, RejectReason] = {
    "HS001": RejectReason.MALFORMED_CODE,
    "HS002": RejectReason.NOT_CURRENT_CODE,
    "HS003": RejectReason.UNKNOWN_REQUEST,
    "HS004": RejectReason.NO_CURRENT_EDITION,
    "HS005": RejectReason.OVERSIZE_TEXT,
}


class DecisionRefused(ValueError):
    """``record_decision()`` refused a decision: ``reason`` its code, ``message`` the
    database's words for people, ``hint`` what to do (may be None)."""

    def __init__(self, reason: RejectReason, message: str, hint: str | None = None) -> None:
        super().__init__(f"{message} ({hint})" if hint else message)
        self.reason = RejectReason(reason)
        self.message = message
        self.hint = hint


class DecisionFileError(ValueError):
    """A decisions file that cannot be read (type, encoding, missing columns, broken CSV)."""


@dataclass(frozen=True, slots=True)
class RecordedDecision:
    """The request's current decision after a call. ``recorded`` False: the call was
    identical to it and wrote nothing."""

    decision_id: int
    request_id: str
    hs10: str
    tariff_edition: str  # the current edition the code was checked against
    recorded: bool


@dataclass(frozen=True, slots=True)
class RowRejection:
    """A refused row of a decisions file: ``row`` its number (1-based data row; a JSON line
    counts blank lines), ``where`` its place (``line 3``)."""

    row: int
    where: str
    request_id: str | None
    reason: RejectReason
    message: str


@dataclass
class DecisionImportReport:
    """What an import did: every row is recorded, unchanged (identical to the current
    decision) or rejected; ``rejects`` lists every rejected row."""

    file: str
    source: str
    rows: int = 0
    recorded: int = 0
    unchanged: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # reason code -> rejected rows
    rejects: list[RowRejection] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)  # not a decisions-file column


# ----------------------------------------------------------------- one decision


def _refusal(exc: DBAPIError) -> DecisionRefused | None:
    """The refusal a database error is, when it is one of record_decision()'s."""
    orig = getattr(exc, "orig", None)
    reason = SQLSTATE_REASONS.get(getattr(orig, "sqlstate", None) or "")
    if reason is None:
        return None
    diag = getattr(orig, "diag", None)
    message = getattr(diag, "message_primary", None) or str(orig).strip().splitlines()[0]
    return DecisionRefused(reason, message, getattr(diag, "message_hint", None))


def _record(
    conn: Connection,
    request_id: str,
    code: str,
    note: str | None,
    decided_by: str,
    source: str,
) -> RecordedDecision:
    try:
        row = conn.execute(
            text(
                "select decision_id, recorded, hs10, tariff_edition"
                " from record_decision(:rid, :code, :note, :by, :source)"
            ),
            {"rid": request_id, "code": code, "note": note, "by": decided_by, "source": source},
        ).one()
    except DBAPIError as exc:
        refused = _refusal(exc)
        if refused is None:
            raise
        raise refused from None
    return RecordedDecision(
        int(row.decision_id), request_id, row.hs10, row.tariff_edition, bool(row.recorded)
    )


def _check_caller(decided_by: str, source: str) -> str:
    if source not in SOURCES:
        raise ValueError(f"decision source {source!r}: use one of {', '.join(SOURCES)}")
    who = (decided_by or "").strip()
    if not who:
        raise ValueError("a decision needs decided_by (who decided)")
    return who


def record_decision(
    engine: Engine,
    request_id: str,
    code: str,
    note: str | None = None,
    *,
    decided_by: str,
    source: str = REVIEW_SOURCE,
) -> RecordedDecision:
    """Record that ``decided_by`` decided ``code`` for ``request_id`` (validated by SQL's
    ``record_decision()``, see the module docstring); returns the request's current
    decision. Raises :class:`DecisionRefused` with its reason, ``ValueError`` for a bad
    ``source`` or an empty ``decided_by``."""
    who = _check_caller(decided_by, source)
    with engine.begin() as conn:
        return _record(conn, request_id, code, _clean(note), who, source)


def _clean(value: str | None) -> str | None:
    """Text for Postgres (no NUL), stripped; empty is None."""
    if value is None:
        return None
    return str(value).replace("\x00", "").strip() or None


# ----------------------------------------------------------------- decisions files


class _RowProblem(Exception):
    def __init__(self, reason: RejectReason, message: str, request_id: str | None = None):
        super().__init__(message)
        self.reason, self.message, self.request_id = reason, message, request_id


def _field(values: Mapping[str, Any], name: str) -> str | None:
    value = values.get(name)
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise _RowProblem(
            RejectReason.UNREADABLE_ROW, f"{name} is not text but {type(value).__name__}"
        )
    return _clean(str(value))


def _check_header(path: Path, columns: Sequence[str], report: DecisionImportReport) -> None:
    names = [str(c).strip().lower() for c in columns]
    for name in REQUIRED_COLUMNS:
        if name not in names:
            raise DecisionFileError(
                f"{path.name}: no {name} column (a decisions file has the columns "
                f"{', '.join(REQUIRED_COLUMNS)} and optionally note, decided_by)"
            )
    _note_ignored(names, report)


def _note_ignored(names: Sequence[str], report: DecisionImportReport) -> None:
    for name in names:
        if name not in FILE_COLUMNS and name not in report.ignored_columns:
            report.ignored_columns.append(name)


def import_decisions(
    engine: Engine,
    path: Path | str,
    *,
    decided_by_default: str,
    source: str = IMPORT_SOURCE,
) -> DecisionImportReport:
    """Record every row of a decisions file (see the module docstring); ``decided_by`` of a
    row without one is ``decided_by_default``. Returns the report; a file that cannot be
    read raises ``FileNotFoundError`` / :class:`DecisionFileError`, no current tariff
    edition raises :class:`DecisionRefused` (``no_current_edition``)."""
    default_by = _check_caller(decided_by_default, source)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"decisions file {path} not found")
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise DecisionFileError(
            f"{path.name}: unsupported file type {path.suffix or '(none)'} "
            f"(use {', '.join(SUPPORTED_SUFFIXES)}: CSV or JSON lines)"
        )
    report = DecisionImportReport(file=str(path), source=source)
    taken: dict[str, str] = {}  # request_id -> the place of the row that decided it
    try:
        with open_table(path, decoding="strict", extra_cells="reject", json_arrays=True) as table:
            if table.columns is not None:
                _check_header(path, table.columns, report)
            chunk: list[Row] = []
            for row in table:
                chunk.append(row)
                if len(chunk) >= CHUNK_ROWS:
                    _import_chunk(engine, path, chunk, default_by, source, taken, report)
                    chunk = []
            if chunk:
                _import_chunk(engine, path, chunk, default_by, source, taken, report)
    except TabularFileError as exc:
        done = f" ({report.rows} rows before it were processed)" if report.rows else ""
        raise DecisionFileError(f"{exc}{done}") from exc
    return report


def _import_chunk(
    engine: Engine,
    path: Path,
    rows: list[Row],
    default_by: str,
    source: str,
    taken: dict[str, str],
    report: DecisionImportReport,
) -> None:
    """One transaction: each row in its own savepoint, then the chunk's rejects logged."""
    rejected: list[tuple[Row, _RowProblem]] = []
    recorded = unchanged = 0
    newly_taken: dict[str, str] = {}
    with engine.begin() as conn:
        for row in rows:
            _note_ignored([str(k).strip().lower() for k in row.values], report)
            try:
                outcome = _import_row(conn, row, default_by, source, {**taken, **newly_taken})
            except _RowProblem as problem:
                rejected.append((row, problem))
                continue
            newly_taken[outcome.request_id] = row.where
            if outcome.recorded:
                recorded += 1
            else:
                unchanged += 1
        if rejected:
            _log_rejects(conn, path, rejected)
    # counted once the chunk is committed
    taken.update(newly_taken)
    report.rows += len(rows)
    report.recorded += recorded
    report.unchanged += unchanged
    report.rejected += len(rejected)
    for reason, n in Counter(str(p.reason) for _, p in rejected).items():
        report.reasons[reason] = report.reasons.get(reason, 0) + n
    report.rejects.extend(
        RowRejection(row.number, row.where, p.request_id, p.reason, p.message)
        for row, p in rejected
    )


def _import_row(
    conn: Connection, row: Row, default_by: str, source: str, taken: Mapping[str, str]
) -> RecordedDecision:
    """Record one row, or raise :class:`_RowProblem`; no current edition propagates."""
    if row.rejection is not None:  # a line that is not JSON / not an object, extra cells
        message = row.rejection.message.removeprefix(f"{row.where}: ")
        raise _RowProblem(row.rejection.reason, message)
    values = {str(k).strip().lower(): v for k, v in row.values.items()}
    request_id = _field(values, "request_id")
    if request_id is None:
        raise _RowProblem(RejectReason.EMPTY_KEY, "missing request_id")
    code = _field(values, "hs_code")
    if code is None:
        raise _RowProblem(RejectReason.EMPTY_HS_CODE, "missing hs_code", request_id)
    note = _field(values, "note")
    decided_by = _field(values, "decided_by") or default_by
    if request_id in taken:
        raise _RowProblem(
            RejectReason.DUPLICATE,
            f"request {request_id} was already decided by {taken[request_id]} of this file "
            "(the first row for a request is the one taken)",
            request_id,
        )
    try:
        with conn.begin_nested():
            return _record(conn, request_id, code, note, decided_by, source)
    except DecisionRefused as refused:
        if refused.reason is RejectReason.NO_CURRENT_EDITION:
            raise
        raise _RowProblem(refused.reason, refused.message, request_id) from None


def _log_rejects(conn: Connection, path: Path, rejected: list[tuple[Row, _RowProblem]]) -> None:
    """Into the intake reject log, once per (request, file, message): a re-import adds none."""
    source = f"{REJECT_SOURCE_PREFIX}{path.name}"
    conn.execute(
        text(
            """
            insert into intake_rejects
                   (request_id, source, reason, reason_code, row_data, record_kind)
            select cast(:rid as text), cast(:src as text), cast(:reason as text),
                   cast(:code as text), cast(:row as jsonb), 'decision'
            where not exists (
                select 1 from intake_rejects
                 where request_id is not distinct from cast(:rid as text)
                   and source is not distinct from cast(:src as text)
                   and reason = cast(:reason as text)
                   and record_kind = 'decision')
            """
        ),
        [
            {
                "rid": problem.request_id,
                "src": source,
                "reason": Rejection(
                    problem.request_id, problem.reason, problem.message, source, row.where
                ).located_message,
                "code": str(problem.reason),
                "row": json.dumps(row_for_log(row.values), ensure_ascii=False, default=str),
            }
            for row, problem in rejected
        ],
    )


# ----------------------------------------------------------------- the review queue


@dataclass(frozen=True, slots=True)
class TopCode:
    rank: int
    hs10: str
    hs10_display: str
    score: float
    name_ko: str | None
    name_en: str | None


@dataclass(frozen=True, slots=True)
class QueuedRequest:
    """A request of the ``review_queue`` view (the champion flagged it for review), with the
    champion's top codes and the precedents behind them (``latest_precedents`` rows as
    they are: case_key, hs10, case_title, similarity and the ruling's evidence where the
    database has it), and its current decision when it has one."""

    request_id: str
    title: str
    received_at: dt.datetime
    model_version: str
    confidence: float
    review_reason: str | None
    conflicting_precedents: bool
    top_codes: list[TopCode]
    precedents: list[dict[str, Any]]
    decided_hs10: str | None = None
    decided_by: str | None = None


def review_queue(
    engine: Engine, limit: int = 50, *, include_decided: bool = False
) -> list[QueuedRequest]:
    """The review queue, least confident first (then oldest): at most ``limit`` requests;
    requests that already have a decision are left out unless ``include_decided``."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    with engine.connect() as conn:
        queue = (
            conn.execute(
                text(
                    """
                    select q.request_id, q.title, q.received_at, q.model_version,
                           q.confidence, q.review_reason, q.conflicting_precedents,
                           d.hs10 as decided_hs10, d.decided_by
                      from review_queue q
                      left join current_decisions d on d.request_id = q.request_id
                     where cast(:all as boolean) or d.request_id is null
                     order by q.confidence, q.received_at, q.request_id
                     limit :limit
                    """
                ),
                {"all": include_decided, "limit": int(limit)},
            )
            .mappings()
            .all()
        )
        ids = [q["request_id"] for q in queue]
        if not ids:
            return []
        codes: dict[str, list[TopCode]] = {rid: [] for rid in ids}
        for r in conn.execute(
            text(
                "select request_id, rank, hs10, hs10_display, score, hs10_name_ko, hs10_name_en"
                " from latest_predictions where request_id = any(:ids) order by request_id, rank"
            ),
            {"ids": ids},
        ):
            codes[r.request_id].append(
                TopCode(
                    int(r.rank),
                    r.hs10,
                    r.hs10_display,
                    float(r.score),
                    r.hs10_name_ko,
                    r.hs10_name_en,
                )
            )
        precedents: dict[str, list[dict[str, Any]]] = {rid: [] for rid in ids}
        for p in conn.execute(
            text(
                "select * from latest_precedents where request_id = any(:ids)"
                " order by request_id, rank"
            ),
            {"ids": ids},
        ).mappings():
            shown = {
                k: v for k, v in p.items() if k not in ("request_id", "model_version", "run_id")
            }
            precedents[p["request_id"]].append(shown)
    return [
        QueuedRequest(
            request_id=q["request_id"],
            title=q["title"],
            received_at=q["received_at"],
            model_version=q["model_version"],
            confidence=float(q["confidence"]),
            review_reason=q["review_reason"],
            conflicting_precedents=bool(q["conflicting_precedents"]),
            top_codes=codes[q["request_id"]],
            precedents=precedents[q["request_id"]],
            decided_hs10=q["decided_hs10"],
            decided_by=q["decided_by"],
        )
        for q in queue
    ]
