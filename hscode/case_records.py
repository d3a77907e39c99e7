"""One case record: validating and cleaning what a source gave into a ``CASE_SCHEMA`` row.

:func:`make_case` is the one way a case is built (normalize, case import, the synthetic
cases of tests and benchmarks): it cleans the text, normalises the decided code (keeping
unclear and multi-code decisions, flagged), bounds every text and refuses what cannot be
a case with :class:`CaseRejected` and its :class:`~hscode.rejects.RejectReason` code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from hscode.hs import parse_hs
from hscode.rejects import Rejected, RejectReason
from hscode.schema import SCHEMA_VERSION
from hscode.series import SERIES
from hscode.text import clean_text

DEFAULT_MAX_TEXT_CHARS = 20_000  # same as Settings.max_text_chars
_SHA256 = re.compile(r"[0-9a-f]{64}")
_DATE = re.compile(r"(\d{4})[-./]?(\d{2})[-./]?(\d{2})(?:[T ][\d:.+\-Z]*)?")


class CaseRejected(Rejected):
    """A record that cannot become a case: ``reason`` (a :class:`RejectReason` code, for
    counting) and ``detail`` (the message); :meth:`rejection` makes its record."""


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
        raise CaseRejected(RejectReason.BAD_DATE, f"unreadable decision date {text!r}")
    try:
        parsed = date(*(int(g) for g in match.groups()))
    except ValueError as exc:
        raise CaseRejected(
            RejectReason.BAD_DATE, f"impossible decision date {text!r}: {exc}"
        ) from None
    if not 1900 <= parsed.year <= 2100:
        raise CaseRejected(RejectReason.BAD_DATE, f"implausible decision year in {text!r}")
    return parsed


def parse_fetched_at(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())  # 3.11 reads "Z"
        except ValueError:
            raise CaseRejected(
                RejectReason.BAD_FETCHED_AT, f"unreadable fetch time {value!r}"
            ) from None
    # Naive times are taken as UTC: the crawler records UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _check_length(name: str, text: str | None, limit: int) -> None:
    if text is not None and len(text) > limit:
        raise CaseRejected(
            RejectReason.OVERSIZE_TEXT, f"{name} has {len(text)} characters (limit {limit})"
        )


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
        raise CaseRejected(RejectReason.EMPTY_KEY, "case_key is empty")
    source = (source or "").strip()
    if not source:
        raise CaseRejected(RejectReason.EMPTY_SOURCE, f"case {key}: source is empty")
    if series is not None and series not in SERIES:
        raise CaseRejected(
            RejectReason.BAD_SERIES, f"case {key}: series {series!r} not in {SERIES}"
        )

    # Raw inputs are bounded too: a 10 MB "title" full of tags is junk, not a case.
    for name, raw in (
        ("title", title_raw),
        ("description", description_raw),
        ("decision_reason", decision_reason),
        ("hs_code", hs_raw),
    ):
        if raw is not None and len(str(raw)) > 4 * max_text_chars:
            raise CaseRejected(
                RejectReason.OVERSIZE_TEXT, f"case {key}: raw {name} has {len(str(raw))} characters"
            )

    title = clean_text(title_raw)
    if not title:
        raise CaseRejected(
            RejectReason.EMPTY_TITLE, f"case {key}: no product name after cleaning {title_raw!r}"
        )
    hs_text = "" if hs_raw is None else str(hs_raw)
    if not clean_text(hs_text):
        raise CaseRejected(RejectReason.EMPTY_HS_CODE, f"case {key}: decided code is empty")
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
                RejectReason.BAD_IMAGE_HASH, f"case {key}: {digest!r} is not a sha256 hex digest"
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
                RejectReason.BAD_IMAGE_COUNT, f"case {key}: image count {image_count!r}"
            ) from None
        if count < 0:
            raise CaseRejected(
                RejectReason.BAD_IMAGE_COUNT, f"case {key}: negative image count {count}"
            )

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
        "fetched_at": parse_fetched_at(fetched_at),
        "raw_ref": None if raw_ref is None else str(raw_ref),
        "schema_version": SCHEMA_VERSION,
        # derived later against the current tariff (hscode.cases.restatus_cases)
        "code_status": None,
        "code_candidates": None,
        "code_edition": None,
    }


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
