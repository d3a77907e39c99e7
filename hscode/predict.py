"""``hscode predict``: recommend codes for a file of requests with a registered model.

Input: CSV, JSONL or Parquet with ``request_id,title`` and optional ``description,image_path``
(a relative image path is read relative to the input file). Output: CSV or Parquet with
``request_id,rank,hs_code,score,review`` (top-k rows per request, best first).

A bad row (missing id or title, duplicate id, text too long, unreadable image, broken JSON
line) does not stop the file: it is written to ``<output stem>.rejects.csv`` beside the output
with its line number and reason, and the other rows are predicted.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hscode.recommend import RequestInput
from hscode.settings import Settings
from hscode.storage import atomic_write

INPUT_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".parquet")
OUTPUT_SUFFIXES = (".csv", ".parquet")
OUTPUT_COLUMNS = ("request_id", "rank", "hs_code", "score", "review")
REQUIRED = ("request_id", "title")


class PredictInputError(ValueError):
    """The input file as a whole cannot be used (format, missing columns)."""


@dataclass
class RejectedRow:
    line: int
    request_id: str
    reason: str


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, row or None, error) for every record of the input file."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise PredictInputError(
                    f"{path}: missing column(s) {missing}; found {reader.fieldnames}"
                )
            for row in reader:
                yield reader.line_num, row, None
    elif suffix in (".jsonl", ".ndjson"):
        with open(path, encoding="utf-8-sig") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield n, None, f"not valid JSON: {exc.msg}"
                    continue
                if not isinstance(row, dict):
                    yield n, None, "not a JSON object"
                    continue
                yield n, row, None
    elif suffix == ".parquet":
        table = pq.read_table(path)
        missing = [c for c in REQUIRED if c not in table.column_names]
        if missing:
            raise PredictInputError(
                f"{path}: missing column(s) {missing}; found {table.column_names}"
            )
        for n, row in enumerate(table.to_pylist(), start=1):
            yield n, row, None
    else:
        raise PredictInputError(
            f"{path}: unsupported input format {suffix!r}; use one of {INPUT_SUFFIXES}"
        )


def _read_image(image_ref: str, base_dir: Path, settings: Settings) -> bytes:
    """The request's image, read and checked the way request intake does it."""
    from hscode.intake import read_image_path
    from hscode.storage import image_problem

    data, why = read_image_path(image_ref, base_dir, settings.max_image_bytes)
    if data is None:
        raise ValueError(why)
    problem = image_problem(data, full_decode=False)
    if problem is not None:
        kind, detail = problem
        what = "too large" if kind == "too_large" else "not a readable image"
        raise ValueError(f"image {image_ref} is {what} ({detail})")
    return data


def _request(
    row: dict[str, Any], base_dir: Path, settings: Settings, seen: set[str]
) -> RequestInput:
    request_id = _text(row.get("request_id"))
    if request_id is None:
        raise ValueError("request_id is empty")
    if request_id in seen:
        raise ValueError(f"duplicate request_id {request_id!r}")
    title = _text(row.get("title"))
    if title is None:
        raise ValueError("title is empty")
    description = _text(row.get("description"))
    for name, text in (("title", title), ("description", description)):
        if text is not None and len(text) > settings.max_text_chars:
            raise ValueError(f"{name} is {len(text)} characters (limit {settings.max_text_chars})")
    image = None
    image_ref = _text(row.get("image_path"))
    if image_ref is not None:
        image = _read_image(image_ref, base_dir, settings)
    return RequestInput(request_id=request_id, title=title, description=description, image=image)


def rejects_path(output_path: Path) -> Path:
    return output_path.with_name(f"{output_path.stem}.rejects.csv")


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
            row | {"score": f"{row['score']:.6f}", "review": str(row["review"]).lower()}
        )
    atomic_write(path, buf.getvalue().encode("utf-8"))


def _write_rejects(path: Path, rejects: list[RejectedRow]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["line", "request_id", "reason"])
    for r in rejects:
        writer.writerow([r.line, r.request_id, r.reason])
    atomic_write(path, buf.getvalue().encode("utf-8"))


def predict_file(
    settings: Settings,
    input_path: Path | str,
    output_path: Path | str,
    top_k: int | None = None,
    model_version: str | None = None,
) -> dict[str, Any]:
    """Predict every good row of ``input_path`` into ``output_path``; returns a summary."""
    from hscode.registry import Registry, RegistryError

    t0 = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    top_k = settings.top_k if top_k is None else int(top_k)
    if top_k < 1:
        raise PredictInputError(f"top_k must be >= 1, got {top_k}")
    if not input_path.is_file():
        raise PredictInputError(f"input {input_path} not found")
    if output_path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise PredictInputError(
            f"{output_path}: unsupported output format {output_path.suffix!r}; "
            f"use one of {OUTPUT_SUFFIXES}"
        )
    registry = Registry.from_settings(settings)
    if model_version is None:
        champion = registry.champion()
        if champion is None:
            raise RegistryError("no champion model yet: run `hscode train` first")
        model_version = champion.version
    model = registry.load(model_version)

    requests: list[RequestInput] = []
    rejects: list[RejectedRow] = []
    seen: set[str] = set()
    n_rows = 0
    for line, row, error in _read_rows(input_path):
        n_rows += 1
        request_id = str(row.get("request_id") or "") if row else ""
        if error is not None or row is None:
            rejects.append(RejectedRow(line, request_id, error or "unreadable row"))
            continue
        try:
            request = _request(row, input_path.parent, settings, seen)
        except ValueError as exc:
            rejects.append(RejectedRow(line, request_id, str(exc)))
            continue
        seen.add(request.request_id)
        requests.append(request)

    out_rows: list[dict[str, Any]] = []
    n_review = 0
    batch = settings.score_batch_size
    for start in range(0, len(requests), batch):
        chunk = requests[start : start + batch]
        recs = model.recommend(
            chunk, top_k=top_k, n_precedents=0, review_threshold=settings.review_threshold
        )
        for rec in recs:
            n_review += bool(rec.review)
            for rank, cand in enumerate(rec.candidates, start=1):
                out_rows.append(
                    {
                        "request_id": rec.request_id,
                        "rank": rank,
                        "hs_code": cand.hs10,
                        "score": float(cand.score),
                        "review": bool(rec.review),
                    }
                )
    _write_output(output_path, out_rows)
    reject_file = rejects_path(output_path)
    if rejects:
        _write_rejects(reject_file, rejects)
    else:
        reject_file.unlink(missing_ok=True)  # a stale file from an earlier run would mislead
    return {
        "model_version": model_version,
        "rows": n_rows,
        "predicted": len(requests),
        "rejected": len(rejects),
        "needs_review": n_review,
        "output": str(output_path),
        "rejects_file": str(reject_file) if rejects else None,
        "seconds": round(time.perf_counter() - t0, 3),
    }
