"""Tariff editions: tariff files -> ``tariff_editions`` / ``tariff_edition_codes`` (and the
derived ``tariff`` table the analyst views join); HS correlation tables -> ``tariff_correlations``.

Reads the Korean tariff table as published in ``hstable.json`` (``품목번호``, ``한글품명``,
``영문품명``; codes at 4-10 digits) and the HSK code list ``hsk_codes.csv`` (``hs10``,
``품목명``, ``상위설명``, ``영문품목명``), or any CSV / JSON list with ``hs10`` or ``code``,
``name_ko``, ``name_en``.

Every file is loaded as an EDITION (``sql/007_tariff_editions.sql``): the codes it has and
their names in it. Loading an edition again replaces its codes (a corrected file drops the
codes it no longer has); loading the same content again changes nothing. At most one
edition is current: loading with ``current=True`` makes it so and the previous current one
not; without it a new edition is not current and an existing one keeps its standing.
Without a name a file's edition is named after its stem (``hsk_codes``), rows loaded from
code go to :data:`DEFAULT_ROWS_EDITION`. Codes loaded before editions existed are the
edition ``legacy``. The ``tariff`` table is rebuilt after every change (``tariff_refresh()``
in SQL): the current edition's names for its codes, older names only for codes it lacks.

Correlations (:func:`load_correlations`): six-digit pairs from an older HS edition's code to
a newer one's, in the layout of the UN's HS2022 tables as carried in
``hs_correlations/hs2022_correlations.csv`` (``hs2022``, ``old_version``, ``old_hs6``,
``relationship``) or with our own columns (``from_edition``, ``from_code``, ``to_edition``,
``to_code``, optional ``relationship``). A bad row is a :class:`Rejection`; the rest goes on.

Reading editions back: :mod:`hscode.tariff_editions`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text

from hscode.rejects import Rejected, Rejection, RejectReason

_CODE_KEYS = ("hs10", "code", "품목번호", "hs_code", "hscode")
_NAME_KO_KEYS = ("name_ko", "한글품명", "품목명", "name")
_NAME_EN_KEYS = ("name_en", "영문품명", "영문품목명")
_PATH_KEYS = ("parent_path", "상위설명")
_NON_DIGIT = re.compile(r"\D")

DEFAULT_ROWS_EDITION = "unnamed"  # rows loaded from code without an edition name
LEGACY_EDITION = "legacy"  # codes loaded before editions existed (sql/007)
MAX_EDITION_CHARS = 100
_EDITION_NAME = re.compile(rf"^\w[\w.\-]{{0,{MAX_EDITION_CHARS - 1}}}$")
_NOT_EDITION_CHAR = re.compile(r"[^\w.\-]+")
MAX_REJECTS_KEPT = 20  # rejections a summary carries (all are counted)


class TariffFileError(ValueError):
    """A tariff (or correlation) file that cannot be read."""


class UnknownEditionError(ValueError):
    """An edition name no loaded edition has."""


@dataclass
class TariffSummary:
    received: int = 0
    loaded: int = 0  # codes of the edition
    rejected: int = 0
    by_level: dict[int, int] = field(default_factory=dict)  # code length -> codes loaded
    rejects: list[Rejection] = field(default_factory=list)  # first few
    edition: str | None = None
    is_current: bool = False  # the edition is the current one after this load
    previous_current: str | None = None  # the edition this load made not current
    unchanged: bool = False  # the edition already had exactly these codes and names


def _first(row: Mapping[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        value = row.get(key)
        if value is not None and str(value).strip() != "":
            return value
    return None


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    value = " ".join(str(value).replace("\x00", "").split())
    return value or None


def normalize_code(value: Any) -> str | None:
    """``3207.20-9000`` -> ``3207209000``; None unless 2 to 10 digits remain."""
    if value is None:
        return None
    digits = _NON_DIGIT.sub("", str(value))
    return digits if 2 <= len(digits) <= 10 else None


def check_edition_name(name: object) -> str:
    """An edition name, stripped: letters, digits, ``_ . -`` (up to 100, starting with a
    letter, digit or ``_``); anything else is a ``ValueError`` saying so."""
    value = str(name).strip() if name is not None else ""
    if not _EDITION_NAME.match(value):
        raise ValueError(
            f"edition name {value[:MAX_EDITION_CHARS]!r}: use letters, digits, _ . - "
            f"(at most {MAX_EDITION_CHARS}, not starting with . or -)"
        )
    return value


def edition_from_path(path: Path | str) -> str:
    """The edition name a file gets when none is given: its stem (``hsk_codes.csv`` ->
    ``hsk_codes``), characters an edition name cannot have replaced by ``_``."""
    stem = _NOT_EDITION_CHAR.sub("_", Path(path).stem).lstrip(".-")[:MAX_EDITION_CHARS]
    return stem or DEFAULT_ROWS_EDITION


def _digest(rows: Iterable[tuple[str, str | None, str | None, str | None]]) -> str:
    """The content of an edition (its codes and names, in code order) as one sha256."""
    digest = hashlib.sha256()
    for row in sorted(rows):
        digest.update(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()


def _make_current(conn: Connection, edition: str) -> str | None:
    """Make ``edition`` the current one; returns the one it replaced (None: none, or itself)."""
    previous = conn.execute(text("select name from tariff_editions where is_current")).scalar()
    if previous == edition:
        return None
    # clear first: a unique index allows one current edition at a time
    conn.execute(text("update tariff_editions set is_current = false where is_current"))
    conn.execute(
        text("update tariff_editions set is_current = true where name = :n"), {"n": edition}
    )
    return previous


def _lock_editions(conn: Connection) -> None:
    """Loads and switches one at a time (readers are not blocked)."""
    conn.execute(text("lock table tariff_editions in share row exclusive mode"))


def load_tariff_rows(
    engine: Engine,
    rows: Iterable[Mapping[str, Any]],
    edition: str = DEFAULT_ROWS_EDITION,
    *,
    current: bool = False,
    source_file: str | None = None,
) -> TariffSummary:
    """Load tariff rows (``hs10`` or ``code``, ``name_ko``, ``name_en``, optional
    ``parent_path``) as the codes of ``edition``, replacing what it had; rows without a
    2-10 digit code are rejected with the reason. ``current``: make it the current edition.

    Nothing is written when no row has a code, or when the edition already has exactly
    these codes and names (then only ``current`` may still switch editions).
    """
    edition = check_edition_name(edition)
    summary = TariffSummary(edition=edition)
    clean: dict[str, tuple[str, str | None, str | None, str | None]] = {}
    for row in rows:
        summary.received += 1
        raw = _first(row, _CODE_KEYS)
        code = normalize_code(raw)
        if code is None:
            summary.rejected += 1
            if len(summary.rejects) < MAX_REJECTS_KEPT:
                summary.rejects.append(
                    Rejection(
                        None if raw is None else str(raw),
                        RejectReason.BAD_CODE,
                        "no 2-10 digit code",
                        where=f"row {summary.received}",
                    )
                )
            continue
        clean[code] = (
            code,
            _clean(_first(row, _NAME_KO_KEYS)),
            _clean(_first(row, _NAME_EN_KEYS)),
            _clean(_first(row, _PATH_KEYS)),
        )
    summary.loaded = len(clean)
    summary.by_level = dict(sorted(Counter(len(code) for code in clean).items()))
    if not clean:
        return summary
    digest = _digest(clean.values())
    with engine.begin() as conn:
        _lock_editions(conn)
        before = conn.execute(
            text("select content_sha256, is_current from tariff_editions where name = :n"),
            {"n": edition},
        ).first()
        changed = before is None or before.content_sha256 != digest
        if changed:
            _write_edition(conn, edition, clean, digest, source_file)
        previous = _make_current(conn, edition) if current else None
        switched = current and (before is None or not before.is_current)
        if changed or switched:
            conn.execute(text("select tariff_refresh()"))
    summary.unchanged = not changed
    summary.is_current = current or (before is not None and before.is_current)
    summary.previous_current = previous
    return summary


def _write_edition(
    conn: Connection,
    edition: str,
    clean: Mapping[str, tuple[str, str | None, str | None, str | None]],
    digest: str,
    source_file: str | None,
) -> None:
    conn.execute(
        text(
            """
            insert into tariff_editions
                (name, loaded_at, source_file, code_count, hs10_count, content_sha256)
            values (:n, now(), :f, :codes, :hs10, :sha)
            on conflict (name) do update set
                loaded_at = now(),
                source_file = excluded.source_file,
                code_count = excluded.code_count,
                hs10_count = excluded.hs10_count,
                content_sha256 = excluded.content_sha256
            """
        ),
        {
            "n": edition,
            "f": source_file,
            "codes": len(clean),
            "hs10": sum(len(code) == 10 for code in clean),
            "sha": digest,
        },
    )
    conn.execute(text("delete from tariff_edition_codes where edition = :n"), {"n": edition})
    cursor = conn.connection.cursor()
    try:
        with cursor.copy(
            "copy tariff_edition_codes (edition, code, name_ko, name_en, parent_path) from stdin"
        ) as copy:
            for values in clean.values():
                copy.write_row((edition, *values))
    finally:
        cursor.close()


def set_current_edition(engine: Engine, edition: str) -> str | None:
    """Make a loaded edition the current one; returns the one it replaced (None when there
    was none or it already was current). An unknown name is an :class:`UnknownEditionError`."""
    edition = check_edition_name(edition)
    with engine.begin() as conn:
        _lock_editions(conn)
        found = conn.execute(
            text("select is_current from tariff_editions where name = :n"), {"n": edition}
        ).first()
        if found is None:
            raise UnknownEditionError(f"no tariff edition named {edition!r}")
        previous = _make_current(conn, edition)
        if not found.is_current:
            conn.execute(text("select tariff_refresh()"))
    return previous


def read_tariff_file(path: Path) -> list[dict[str, Any]]:
    """Rows of a tariff JSON (a list of objects) or CSV (UTF-8, header row) file."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8-sig"))
            if isinstance(data, dict):  # {"rows": [...]} or {code: name}
                data = data.get("rows", [{"code": k, "name_ko": v} for k, v in data.items()])
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise TariffFileError(f"{path.name}: expected a JSON list of objects")
            return data
        if suffix == ".csv":
            with path.open(encoding="utf-8-sig", newline="") as fh:
                reader = csv.DictReader(fh)
                header = set(reader.fieldnames or [])
                if not header & set(_CODE_KEYS):
                    raise TariffFileError(
                        f"{path.name}: no code column (one of {', '.join(_CODE_KEYS)})"
                    )
                return list(reader)
    except UnicodeDecodeError as exc:
        raise TariffFileError(f"{path.name}: not UTF-8 text ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise TariffFileError(f"{path.name}: invalid JSON ({exc.msg}, line {exc.lineno})") from exc
    raise TariffFileError(f"{path.name}: unsupported tariff file type (use .json or .csv)")


def load_tariff(
    engine: Engine, path: Path | str, edition: str | None = None, *, current: bool = False
) -> TariffSummary:
    """Load a tariff file (``hstable.json``, ``hsk_codes.csv`` or our own columns) as the
    edition ``edition`` (default: the file's stem, :func:`edition_from_path`); ``current``:
    make it the current edition. A file without a single valid code is an error (an empty
    edition, made current, would make every code obsolete)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tariff file {path} not found")
    name = check_edition_name(edition) if edition is not None else edition_from_path(path)
    summary = load_tariff_rows(
        engine, read_tariff_file(path), name, current=current, source_file=path.name
    )
    if summary.loaded == 0:
        raise TariffFileError(f"{path.name}: no row with a 2-10 digit code; nothing loaded")
    return summary


# ----------------------------------------------------------------------------- correlations

_CORRELATION_NEW_CODE = re.compile(r"^hs(\d{4})$", re.IGNORECASE)  # the UN layout: hs2022
_CORRELATION_OLD_EDITION_KEYS = ("old_version", "old_edition")
_CORRELATION_OLD_CODE_KEYS = ("old_hs6", "old_code")
_SIX_DIGITS = re.compile(r"^[0-9]{6}$")


@dataclass
class CorrelationSummary:
    received: int = 0
    loaded: int = 0  # distinct pairs in the input
    rejected: int = 0
    duplicates: int = 0  # rows repeating a pair already read (the last one counts)
    added: int = 0  # pairs new to the table
    changed: int = 0  # pairs whose relationship changed
    removed: int = 0  # pairs of the same edition pairs that the input no longer has
    by_editions: dict[str, int] = field(default_factory=dict)  # "HS2017->HS2022" -> pairs
    rejects: list[Rejection] = field(default_factory=list)  # first few


_Pair = tuple[str, str, str, str]  # from_edition, from_code, to_edition, to_code


def _correlation_row(values: Mapping[str, Any]) -> tuple[_Pair, str | None]:
    """One correlation row -> its pair and relationship; :class:`Rejected` says why not."""
    lowered = {str(k).strip().lower(): v for k, v in values.items()}
    if "from_code" in lowered or "to_code" in lowered:
        fields = (
            lowered.get("from_edition"),
            lowered.get("from_code"),
            lowered.get("to_edition"),
            lowered.get("to_code"),
        )
    else:
        new = next((k for k in lowered if _CORRELATION_NEW_CODE.match(k)), None)
        if new is None:
            raise Rejected(RejectReason.UNREADABLE_ROW, "no correlation columns")
        fields = (
            _first(lowered, _CORRELATION_OLD_EDITION_KEYS),
            _first(lowered, _CORRELATION_OLD_CODE_KEYS),
            new.upper(),
            lowered[new],
        )
    from_edition, from_code, to_edition, to_code = (_clean(v) for v in fields)
    editions = (_correlation_edition("from", from_edition), _correlation_edition("to", to_edition))
    codes = (_six_digits("from", from_code), _six_digits("to", to_code))
    return (editions[0], codes[0], editions[1], codes[1]), _clean(lowered.get("relationship"))


def _correlation_edition(side: str, edition: str | None) -> str:
    if edition is None:
        raise Rejected(RejectReason.EMPTY_KEY, f"no {side} edition")
    if len(edition) > MAX_EDITION_CHARS:
        raise Rejected(
            RejectReason.OVERSIZE_TEXT, f"{side} edition name beyond {MAX_EDITION_CHARS} characters"
        )
    return edition


def _six_digits(side: str, raw: str | None) -> str:
    code = _NON_DIGIT.sub("", raw or "")
    if not _SIX_DIGITS.match(code):
        shown = "missing" if raw is None else repr(raw[:40])
        raise Rejected(RejectReason.BAD_CODE, f"{side} code {shown} is not six digits")
    return code


def load_correlation_rows(
    engine: Engine,
    rows: Iterable[Mapping[str, Any] | tuple[str, Mapping[str, Any] | Rejection]],
    *,
    source_file: str | None = None,
) -> CorrelationSummary:
    """Load six-digit correlation rows (see the module docstring) into
    ``tariff_correlations``. Each row is a mapping, or ``(where, mapping)`` with its place in
    the file (or ``(where, Rejection)`` for a record the reader could not read).

    For each (from edition, to edition) pair the input has, the table then holds exactly
    the input's pairs: re-loading is idempotent, a corrected file drops pairs it lost;
    other edition pairs are left alone.
    """
    summary = CorrelationSummary()
    pairs: dict[_Pair, str | None] = {}

    def refuse(rejection: Rejection) -> None:
        summary.rejected += 1
        if len(summary.rejects) < MAX_REJECTS_KEPT:
            summary.rejects.append(rejection)

    for item in rows:
        summary.received += 1
        where, values = item if isinstance(item, tuple) else (f"row {summary.received}", item)
        if isinstance(values, Rejection):
            refuse(values)
            continue
        try:
            pair, relationship = _correlation_row(values)
        except Rejected as exc:
            refuse(exc.rejection(None, source_file, where))
            continue
        if pair in pairs:
            summary.duplicates += 1
        pairs[pair] = relationship
    summary.loaded = len(pairs)
    summary.by_editions = dict(sorted(Counter(f"{p[0]}->{p[2]}" for p in pairs).items()))
    if not pairs:
        return summary
    with engine.begin() as conn:
        conn.execute(text("lock table tariff_correlations in share row exclusive mode"))
        conn.execute(
            text(
                "create temp table _correlation_stage (from_edition text, from_code text, "
                "to_edition text, to_code text, relationship text) on commit drop"
            )
        )
        cursor = conn.connection.cursor()
        try:
            with cursor.copy(
                "copy _correlation_stage (from_edition, from_code, to_edition, to_code, "
                "relationship) from stdin"
            ) as copy:
                for pair, relationship in pairs.items():
                    copy.write_row((*pair, relationship))
        finally:
            cursor.close()
        summary.removed = conn.execute(
            text(
                """
                with gone as (
                    delete from tariff_correlations c
                     where (c.from_edition, c.to_edition) in
                           (select distinct from_edition, to_edition from _correlation_stage)
                       and not exists (
                           select 1 from _correlation_stage s
                            where (s.from_edition, s.from_code, s.to_edition, s.to_code)
                                = (c.from_edition, c.from_code, c.to_edition, c.to_code))
                    returning 1)
                select count(*) from gone
                """
            )
        ).scalar_one()
        counts = conn.execute(
            text(
                """
                with up as (
                    insert into tariff_correlations as c
                        (from_edition, from_code, to_edition, to_code, relationship,
                         source_file)
                    select from_edition, from_code, to_edition, to_code, relationship, :f
                      from _correlation_stage
                    on conflict (from_edition, from_code, to_edition, to_code) do update set
                        relationship = excluded.relationship,
                        source_file = excluded.source_file,
                        loaded_at = now()
                     where c.relationship is distinct from excluded.relationship
                    returning (xmax = 0) as inserted)
                select count(*) filter (where inserted) as added,
                       count(*) filter (where not inserted) as changed
                  from up
                """
            ),
            {"f": source_file},
        ).one()
    summary.added, summary.changed = counts.added, counts.changed
    return summary


def load_correlations(engine: Engine, path: Path | str) -> CorrelationSummary:
    """Load a correlation file (CSV, TSV, JSON lines or a JSON array, Parquet; the layout
    of ``hs2022_correlations.csv`` or our own columns) into ``tariff_correlations``."""
    from hscode.tabular import TabularFileError, open_table

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"correlation file {path} not found")
    try:
        with open_table(path, json_arrays=True) as table:
            if table.columns is not None:
                names = {c.strip().lower() for c in table.columns}
                if not ({"from_code", "to_code"} & names) and not any(
                    _CORRELATION_NEW_CODE.match(c) for c in names
                ):
                    raise TariffFileError(
                        f"{path.name}: no correlation columns (hs2022, old_version, old_hs6; "
                        "or from_edition, from_code, to_edition, to_code)"
                    )
            rows = [
                (row.where, row.rejection if row.rejection is not None else row.values)
                for row in table
            ]
    except TabularFileError as exc:
        raise TariffFileError(str(exc)) from exc
    return load_correlation_rows(engine, rows, source_file=path.name)
