"""Rejections: a record we refused, why (a stable code) and what to tell people.

Every importer of the core (case import, normalize, request intake, ``hscode predict``,
the tariff loader) refuses a record the same way: a :class:`Rejection` with a
:class:`RejectReason` code, the one thing analysts count and group by, and a ``message``
for people (which may change wording at any time; never parse it). Stores keep both:
``intake_rejects.reason_code`` beside ``intake_rejects.reason`` (the message) in Postgres
(``sql/006_reject_reasons.sql``), ``reason`` beside ``message`` in the JSON-lines reject
log of the cases dataset (:func:`record_rejects`), ``reason_code`` beside ``reason`` in
``hscode predict``'s ``.rejects.csv``.

This module imports nothing from the rest of the core (the settings for type hints only),
so any module may import it, ``hscode.storage`` and ``hscode.settings`` included.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hscode.settings import Settings

log = logging.getLogger(__name__)


class RejectReason(StrEnum):
    """Why a record was refused: stable codes, safe to count, store and alert on.

    The values are those the case importers have always written (``empty_title``...), so
    reject logs written before this type existed read back with the same codes. A code
    is never renamed; a new kind of refusal gets a new member (and, if Postgres rows
    must be re-coded, a migration).
    """

    # the record's identity and origin
    EMPTY_KEY = "empty_key"  # no case key / request_id
    KEY_TOO_LONG = "key_too_long"  # request_id beyond MAX_REQUEST_ID_CHARS
    EMPTY_SOURCE = "empty_source"
    DUPLICATE = "duplicate"  # the key was already seen in the same file (hscode predict)
    # its content
    EMPTY_TITLE = "empty_title"  # no product name (after cleaning)
    OVERSIZE_TEXT = "oversize_text"  # text beyond max_text_chars
    EMPTY_HS_CODE = "empty_hs_code"  # a case without its decided code
    BAD_CODE = "bad_code"  # a tariff row without a 2-10 digit code
    BAD_SERIES = "bad_series"
    BAD_DATE = "bad_date"
    BAD_FETCHED_AT = "bad_fetched_at"
    BAD_IMAGE_HASH = "bad_image_hash"
    BAD_IMAGE_COUNT = "bad_image_count"
    # its place in a file
    UNREADABLE_ROW = "unreadable_row"  # a line that is not JSON / not an object, extra cells
    DETAIL_UNPARSEABLE = "detail_unparseable"  # no stored portal detail of the case parses
    # its image
    IMAGE_MISSING = "image_missing"  # the named file does not exist or is not a file
    IMAGE_PATH_OUTSIDE = "image_path_outside"  # the path leaves the folder of its file
    IMAGE_PATH_BAD = "image_path_bad"  # a path the OS refuses (NUL byte, too long, loop)
    IMAGE_TOO_LARGE = "image_too_large"  # too many bytes or pixels (decompression bomb)
    IMAGE_CORRUPT = "image_corrupt"  # not a decodable image (or not bytes, bad base64)
    # scoring
    MODEL_ERROR = "model_error"  # the model failed on this request alone
    NO_CURRENT_CODE = "no_current_code"  # none of the model's codes is in the current tariff
    # reviewers' decisions (hscode.decisions; sql/009: record_decision's SQLSTATEs)
    MALFORMED_CODE = "malformed_code"  # a decided code that is not ten digits
    NOT_CURRENT_CODE = "not_current_code"  # not a ten-digit code of the current edition
    UNKNOWN_REQUEST = "unknown_request"  # no request with that request_id
    NO_CURRENT_EDITION = "no_current_edition"  # no tariff edition is current to check against
    # rows stored before codes existed whose message matches none of the above
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: object) -> RejectReason:
        """The member named by a stored code; ``UNKNOWN`` for a code this version lacks."""
        try:
            return cls(str(value))
        except ValueError:
            return cls.UNKNOWN


@dataclass(frozen=True, slots=True)
class Rejection:
    """One refused record.

    ``key``: its identity (case key, request id), None when it has none (a missing
    request_id, an unreadable line). ``reason``: the code. ``message``: for people.
    ``source``: where the batch came from (``clip``, ``import:partner``, ``file:x.csv``).
    ``where``: the record's place in its input (``line 3``, ``row 7``, ``cases.csv#3``,
    the raw body's sha256). ``row``: a bounded JSON-able copy of what the record held,
    when the caller keeps one (the intake stores it in ``intake_rejects.row_data``); not
    part of equality.
    """

    key: str | None
    reason: RejectReason
    message: str
    source: str | None = None
    where: str | None = None
    row: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # a code outside the enum is a bug where it is made, not a new kind of reject
        object.__setattr__(self, "reason", RejectReason(self.reason))

    @property
    def located_message(self) -> str:
        """The message with the record's place in front, when known (``line 3: empty title``)."""
        return f"{self.where}: {self.message}" if self.where else self.message

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able view (without ``row``), as summaries and the reject log show it."""
        return {
            "key": self.key,
            "reason": str(self.reason),
            "message": self.message,
            "source": self.source,
            "where": self.where,
        }


class Rejected(ValueError):
    """Raised where a check finds a record (or one of its files) unusable; ``reason`` is
    the code, ``detail`` the message. Callers turn it into a :class:`Rejection` with the
    record's key and place (:meth:`rejection`)."""

    def __init__(self, reason: RejectReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = RejectReason(reason)
        self.detail = detail

    def rejection(
        self, key: str | None, source: str | None = None, where: str | None = None
    ) -> Rejection:
        return Rejection(key, self.reason, self.detail or str(self.reason), source, where)


# --------------------------------------------------------------------------- reject log


def record_rejects(settings: Settings, rejects: Iterable[Rejection]) -> int:
    """Append rejects as JSON lines to ``rejects_dir/YYYY-MM-DD.jsonl`` (UTC day).

    One line per reject: ``source``, ``key``, ``reason`` (the code), ``message``,
    ``where`` and ``at``.
    """
    now = datetime.now(UTC)
    lines = [
        json.dumps({**r.as_dict(), "at": now.isoformat()}, ensure_ascii=False) + "\n"
        for r in rejects
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
) -> list[Rejection]:
    """All recorded rejects (from ``since`` on). A record rejected again on a re-run counts once.

    Lines written before the codes had their own type (``detail`` for the message,
    ``raw_ref`` for the place) read the same; a code this version does not know reads
    as ``unknown``.
    """
    if not settings.rejects_dir.is_dir():
        return []
    seen: dict[tuple, Rejection] = {}
    out: list[Rejection] = []
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
                reason = RejectReason.parse(row["reason"])
                reject = Rejection(
                    key=row["key"],
                    reason=reason,
                    message=row.get("message") or row.get("detail") or str(reason),
                    source=row["source"],
                    where=row.get("where", row.get("raw_ref")),
                )
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                log.warning("skipping unreadable reject line %s:%d (%s)", path, n, exc)
                continue
            if dedupe:
                seen[(reject.source, reject.key, reject.reason, reject.where)] = reject
            else:
                out.append(reject)
    return list(seen.values()) if dedupe else out
