"""``hscode predict``: recommend codes for a file of requests with a registered model.

Input: a request file as the scoring intake reads it
(:func:`hscode.request_rows.read_request_file`): CSV (UTF-8, header row), JSON lines or Parquet
with ``request_id`` and ``title`` and optional ``description`` and an image as ``image_path``
(relative to the input file's folder), ``image_base64`` or ``image`` bytes; the column aliases
of :data:`hscode.request_rows.COLUMN_ALIASES` are accepted. Each row is checked by
:func:`hscode.request_rows.validate_request_row`, so a file is judged the same way by
``hscode predict`` and by the intake. Output: CSV or Parquet with
``request_id,rank,hs_code,score,review`` (top-k rows per request, best first).

``digits`` below 10 (``hscode predict --digits 4``) answers at that level: the codes are
headings (or subheadings, chapters), each scored by the summed calibrated probability of its
ten-digit codes among the model's best :data:`~hscode.recommend.ROLL_UP_DEPTH`
(:func:`hscode.recommend.roll_up`), so a heading whose probability is spread over several
subheadings can rank first. The review flag and the precedents stay those of the ten-digit
answer: the code a declaration needs has ten digits.

The similar past cases behind each answer (up to ``settings.n_precedents``, the ones scoring
writes; the review flag weighs them as scoring does) go to ``<output stem>.precedents.csv``
(or ``.parquet``, as the output) beside it, one row per precedent:
``request_id,rank,case_key,hs_code,title,similarity`` and the ruling's evidence when the
model recorded it, ``reference_no,decision_date,series,reason_excerpt,case_source,ruling_url``
(the link for portal rulings only, ``hscode.evidence``); no file when no request has one.

A bad row (missing id or title, text too long (a 200,000-character CSV cell too), unreadable
image, broken JSON line, or a ``request_id`` already seen in the file: the first good
occurrence wins) does not stop the file: it is written to ``<output stem>.rejects.csv`` beside
the output as ``line,request_id,reason,reason_code`` (the message, then its
:class:`~hscode.rejects.RejectReason` code) and the other rows are predicted. ``line`` is the
1-based record number in the input: for CSV the data row (the header is not counted; a quoted
value spanning several lines is still one record), for JSON lines the non-blank line (the
reason of a broken line names its physical line), for Parquet the row. A file that cannot be read at all
(unsupported type, missing column, not UTF-8, unreadable Parquet) is a
:class:`PredictInputError` with the intake's message.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hscode.evidence import precedent_url
from hscode.hs import LEVEL_DIGITS
from hscode.recommend import (
    ROLL_UP_DEPTH,
    UNCHECKED,
    CodeCheck,
    Recommendation,
    recommend,
    roll_up,
)
from hscode.rejects import Rejection, RejectReason
from hscode.request_rows import IntakeFileError, read_request_file, validate_request_row
from hscode.review import ReviewPolicy
from hscode.settings import Settings
from hscode.storage import atomic_write
from hscode.tabular import csv_record_limit
from model.records import RequestInput

log = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".csv", ".parquet")
OUTPUT_COLUMNS = ("request_id", "rank", "hs_code", "score", "review", "tariff_edition")
PRECEDENT_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("rank", pa.int32()),
        ("case_key", pa.string()),
        ("hs_code", pa.string()),
        ("title", pa.string()),
        ("similarity", pa.float64()),
        ("reference_no", pa.string()),
        ("decision_date", pa.string()),
        ("series", pa.string()),
        ("reason_excerpt", pa.string()),
        ("case_source", pa.string()),
        ("ruling_url", pa.string()),
    ]
)
PRECEDENT_COLUMNS = tuple(PRECEDENT_SCHEMA.names)


class PredictInputError(ValueError):
    """The input file as a whole cannot be used (format, encoding, missing columns)."""


@dataclass(frozen=True, slots=True)
class RejectedRow:
    line: int  # 1-based record number in the input file (see the module docstring)
    rejection: Rejection


def _read_requests(
    input_path: Path, settings: Settings
) -> tuple[int, list[RequestInput], list[RejectedRow], dict[str, int]]:
    """(records read, good requests, rejected rows, each good request's line) of
    ``input_path``, read and checked by the intake; a ``request_id`` seen earlier in the file
    is a rejected row."""
    lines: dict[str, int] = {}
    requests: list[RequestInput] = []
    rejects: list[RejectedRow] = []
    seen: set[str] = set()
    n_rows = 0
    try:
        record_limit = csv_record_limit(settings.max_text_chars, settings.max_image_bytes)
        rows = read_request_file(input_path, max_record_chars=record_limit)
        for n_rows, row in enumerate(rows, start=1):
            checked = validate_request_row(
                row, input_path.parent, settings.max_text_chars, settings.max_image_bytes
            )
            if isinstance(checked, Rejection):
                rejects.append(RejectedRow(n_rows, checked))
            elif checked.request_id in seen:
                duplicate = Rejection(
                    checked.request_id,
                    RejectReason.DUPLICATE,
                    f"duplicate request_id {checked.request_id!r}",
                )
                rejects.append(RejectedRow(n_rows, duplicate))
            else:
                seen.add(checked.request_id)
                lines[checked.request_id] = n_rows
                requests.append(
                    RequestInput(
                        request_id=checked.request_id,
                        title=checked.title,
                        description=checked.description,
                        image=checked.image,
                    )
                )
    except IntakeFileError as exc:
        raise PredictInputError(str(exc)) from exc
    return n_rows, requests, rejects, lines


def rejects_path(output_path: Path) -> Path:
    return output_path.with_name(f"{output_path.stem}.rejects.csv")


def precedents_path(output_path: Path) -> Path:
    return output_path.with_name(f"{output_path.stem}.precedents{output_path.suffix.lower()}")


def _precedent_rows(rec: Recommendation, portal_url: str) -> list[dict[str, Any]]:
    return [
        {
            "request_id": rec.request_id,
            "rank": rank,
            "case_key": p.case_key,
            "hs_code": p.hs10,
            "title": p.title,
            "similarity": float(p.similarity),
            "reference_no": p.reference_no,
            "decision_date": p.decision_date,
            "series": p.series,
            "reason_excerpt": p.reason,
            "case_source": p.source,
            "ruling_url": precedent_url(portal_url, p),
        }
        for rank, p in enumerate(rec.precedents, start=1)
    ]


def _write_precedents(path: Path, rows: list[dict[str, Any]]) -> None:
    if path.suffix == ".parquet":
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(rows, schema=PRECEDENT_SCHEMA), sink)
        atomic_write(path, sink.getvalue().to_pybytes())
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(PRECEDENT_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row | {"similarity": f"{row['similarity']:.4f}"})
    atomic_write(path, buf.getvalue().encode("utf-8"))


def _write_output(path: Path, rows: list[dict[str, Any]]) -> None:
    table = pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("request_id", pa.string()),
                ("rank", pa.int32()),
                ("hs_code", pa.string()),
                ("score", pa.float64()),
                ("review", pa.bool_()),
                ("tariff_edition", pa.string()),
            ]
        ),
    )
    if path.suffix.lower() == ".parquet":
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        atomic_write(path, sink.getvalue().to_pybytes())
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(OUTPUT_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            row
            | {
                "score": f"{row['score']:.6f}",
                "review": str(row["review"]).lower(),
                "tariff_edition": row["tariff_edition"] or "",
            }
        )
    atomic_write(path, buf.getvalue().encode("utf-8"))


def _write_rejects(path: Path, rejects: list[RejectedRow]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["line", "request_id", "reason", "reason_code"])
    for r in rejects:
        writer.writerow([r.line, r.rejection.key or "", r.rejection.message, r.rejection.reason])
    atomic_write(path, buf.getvalue().encode("utf-8"))


def code_check(settings: Settings) -> CodeCheck:
    """The current tariff edition's codes, as scoring checks them; ``UNCHECKED`` (and a
    warning) when there is no database or no current edition."""
    from hscode.db import get_engine, has_database, migrate
    from hscode.scoring import current_code_check

    if not has_database(settings):
        log.warning("no database: predicted codes are not checked against a tariff edition")
        return UNCHECKED
    engine = get_engine(settings)
    migrate(engine)
    check = current_code_check(engine)
    if not check.active:
        log.warning(
            "no current tariff edition: predicted codes are not checked "
            "(hscode tariff load PATH --edition NAME --current)"
        )
    return check


def predict_file(
    settings: Settings,
    input_path: Path | str,
    output_path: Path | str,
    top_k: int | None = None,
    model_version: str | None = None,
    digits: int = 10,
) -> dict[str, Any]:
    """Predict every good row of ``input_path`` into ``output_path`` at ``digits`` digits
    (see the module docstring); returns a summary."""
    from hscode.registry import Registry, RegistryError
    from model.runtime import threads

    t0 = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    top_k = settings.top_k if top_k is None else int(top_k)
    if top_k < 1:
        raise PredictInputError(f"top_k must be >= 1, got {top_k}")
    if digits not in LEVEL_DIGITS:
        raise PredictInputError(f"digits must be one of {LEVEL_DIGITS}, got {digits}")
    if not input_path.is_file():
        raise PredictInputError(f"input {input_path} not found")
    if output_path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise PredictInputError(
            f"{output_path}: unsupported output format {output_path.suffix!r}; "
            f"use one of {OUTPUT_SUFFIXES}"
        )
    # the whole file is read and checked first: a bad file fails before a model is loaded
    n_rows, requests, rejects, lines = _read_requests(input_path, settings)

    registry = Registry.from_settings(settings)
    if model_version is None:
        champion = registry.champion()
        if champion is None:
            raise RegistryError("no champion model yet: run `hscode train` first")
        model_version = champion.version
    model = registry.load(model_version)
    check = code_check(settings)

    out_rows: list[dict[str, Any]] = []
    precedent_rows: list[dict[str, Any]] = []
    n_review = 0
    batch = settings.score_batch_size
    for start in range(0, len(requests), batch):
        chunk = requests[start : start + batch]
        with threads(settings.score_threads):
            recs = recommend(
                model,
                chunk,
                top_k=top_k if digits == 10 else max(top_k, ROLL_UP_DEPTH),
                n_precedents=settings.n_precedents,
                policy=ReviewPolicy.from_settings(settings),
                check=check,
            )
        for rec in recs:
            if not rec.candidates:  # none of its codes is in the current edition
                message = (
                    "none of the model's codes for this request is in the current tariff "
                    f"edition {check.edition}"
                )
                rejection = Rejection(rec.request_id, RejectReason.NO_CURRENT_CODE, message)
                rejects.append(RejectedRow(lines[rec.request_id], rejection))
                continue
            n_review += bool(rec.review)
            precedent_rows += _precedent_rows(rec, settings.portal_url)
            for rank, cand in enumerate(roll_up(rec.candidates, digits)[:top_k], start=1):
                out_rows.append(
                    {
                        "request_id": rec.request_id,
                        "rank": rank,
                        "hs_code": cand.hs10,
                        "score": float(cand.score),
                        "review": bool(rec.review),
                        "tariff_edition": check.edition,
                    }
                )
    rejects.sort(key=lambda r: r.line)
    _write_output(output_path, out_rows)
    reject_file = rejects_path(output_path)
    if rejects:
        _write_rejects(reject_file, rejects)
    else:
        reject_file.unlink(missing_ok=True)  # a stale file from an earlier run would mislead
    precedent_file = precedents_path(output_path)
    if precedent_rows:
        _write_precedents(precedent_file, precedent_rows)
    else:
        precedent_file.unlink(missing_ok=True)
    return {
        "model_version": model_version,
        "digits": digits,
        "rows": n_rows,
        "predicted": len(requests)
        - sum(r.rejection.reason == RejectReason.NO_CURRENT_CODE for r in rejects),
        "rejected": len(rejects),
        "needs_review": n_review,
        # the edition every code was checked against; None: no current edition, unchecked
        "tariff_edition": check.edition,
        "codes_checked": check.active,
        "output": str(output_path),
        "rejects_file": str(reject_file) if rejects else None,
        "precedents": len(precedent_rows),
        "precedents_file": str(precedent_file) if precedent_rows else None,
        "seconds": round(time.perf_counter() - t0, 3),
    }
