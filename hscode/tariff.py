"""Tariff code names -> the ``tariff`` table (used by the analyst views).

Reads the Korean tariff table as published in ``hstable.json`` (``품목번호``, ``한글품명``,
``영문품명``; codes at 4-10 digits) and the HSK code list ``hsk_codes.csv`` (``hs10``,
``품목명``, ``상위설명``, ``영문품목명``), or any CSV / JSON list with ``hs10`` or ``code``,
``name_ko``, ``name_en``. Loading is an upsert on the code: re-loading is idempotent and a
later file fills names an earlier one lacked.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from hscode.rejects import Rejection, RejectReason

_CODE_KEYS = ("hs10", "code", "품목번호", "hs_code", "hscode")
_NAME_KO_KEYS = ("name_ko", "한글품명", "품목명", "name")
_NAME_EN_KEYS = ("name_en", "영문품명", "영문품목명")
_PATH_KEYS = ("parent_path", "상위설명")
_NON_DIGIT = re.compile(r"\D")


class TariffFileError(ValueError):
    """A tariff file that cannot be read."""


@dataclass
class TariffSummary:
    received: int = 0
    loaded: int = 0
    rejected: int = 0
    by_level: dict[int, int] = field(default_factory=dict)  # code length -> rows loaded
    rejects: list[Rejection] = field(default_factory=list)  # first few


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


def load_tariff_rows(engine: Engine, rows: Iterable[Mapping[str, Any]]) -> TariffSummary:
    """Upsert tariff rows (``hs10`` or ``code``, ``name_ko``, ``name_en``, optional
    ``parent_path``); rows without a 2-10 digit code are rejected with the reason."""
    summary = TariffSummary()
    clean: dict[str, tuple[str, str | None, str | None, str | None]] = {}
    for row in rows:
        summary.received += 1
        raw = _first(row, _CODE_KEYS)
        code = normalize_code(raw)
        if code is None:
            summary.rejected += 1
            if len(summary.rejects) < 20:
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
    if clean:
        with engine.begin() as conn:
            cursor = conn.connection.cursor()
            try:
                cursor.execute(
                    "create temp table _tariff_stage (code text, name_ko text, name_en text, "
                    "parent_path text) on commit drop"
                )
                with cursor.copy(
                    "copy _tariff_stage (code, name_ko, name_en, parent_path) from stdin"
                ) as copy:
                    for values in clean.values():
                        copy.write_row(values)
                cursor.execute(
                    """
                    insert into tariff (code, name_ko, name_en, parent_path)
                    select code, name_ko, name_en, parent_path from _tariff_stage
                    on conflict (code) do update set
                        name_ko = coalesce(excluded.name_ko, tariff.name_ko),
                        name_en = coalesce(excluded.name_en, tariff.name_en),
                        parent_path = coalesce(excluded.parent_path, tariff.parent_path),
                        loaded_at = now()
                    """
                )
            finally:
                cursor.close()
    summary.loaded = len(clean)
    summary.by_level = dict(sorted(Counter(len(code) for code in clean).items()))
    return summary


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


def load_tariff(engine: Engine, path: Path | str) -> TariffSummary:
    """Load a tariff file (``hstable.json``, ``hsk_codes.csv`` or our own columns)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tariff file {path} not found")
    return load_tariff_rows(engine, read_tariff_file(path))
