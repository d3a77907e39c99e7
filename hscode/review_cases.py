"""Reviewers' decisions become training cases: the loop that teaches the model.

A decided request (``current_decisions``: the latest decision per request, recorded with
``decide()`` or ``hscode review decide`` / ``import``, see :mod:`hscode.decisions`) is a case
like a portal ruling: its title, description and image are the request's, its code the
decided one, its decision date the day of the decision, its decision reason the reviewer's
note. Key ``review:<request_id>``, source :data:`CASE_SOURCE`, reference number the request
id. Through :func:`hscode.cases.upsert_cases` a later decision for the same request (newer
``fetched_at`` = decided at) replaces the case, an unchanged one rewrites nothing.

So the next training run learns from them (they are cases with a ten-digit code), they count
toward "training is due" (the number of trainable cases grows), and once trained they are
precedents in the model's index, shown with their reference (the request id) and the note.

Incremental: a checkpoint (``state_dir/review_cases.json``) keeps the highest decision id
taken; a run reads only decisions above it (a superseding decision has a higher id) and
writes the checkpoint after the upsert, so a crash in between only redoes work the upsert
then finds unchanged. ``full=True`` re-reads every current decision.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from hscode.case_records import CaseRejected, make_case
from hscode.cases import UpsertReport, upsert_cases
from hscode.objectstore import images_location
from hscode.rejects import Rejection
from hscode.settings import Settings
from hscode.storage import atomic_write, image_problem

log = logging.getLogger(__name__)

CASE_SOURCE = "review"
CASE_KEY_PREFIX = "review:"
CHECKPOINT_FILE = "review_cases.json"

_QUERY = text(
    """
    select d.decision_id, d.request_id, d.hs10, d.decided_at, d.decided_by, d.note,
           r.title, r.description, r.image
      from current_decisions d
      join requests r using (request_id)
     where d.decision_id > :after
     order by d.decision_id
    """
)


@dataclass(frozen=True, slots=True)
class ReviewCasesReport:
    decisions: int  # current decisions read (above the checkpoint)
    cases: int  # of them became cases
    rejected: int  # could not (e.g. a request whose title cleans to nothing)
    inserted: int
    updated: int
    unchanged: int
    last_decision_id: int  # the checkpoint after this run


def case_key(request_id: str) -> str:
    return f"{CASE_KEY_PREFIX}{request_id}"


def _checkpoint_path(settings: Settings) -> Path:
    return settings.state_dir / CHECKPOINT_FILE


def read_checkpoint(settings: Settings) -> int:
    path = _checkpoint_path(settings)
    if not path.is_file():
        return 0
    return int(json.loads(path.read_text(encoding="utf-8")).get("last_decision_id", 0))


def decided_case(row: Any, image_hash: str | None) -> dict[str, Any]:
    """The case of one current decision (a ``CaseRejected`` when it cannot be one)."""
    return make_case(
        case_key=case_key(row.request_id),
        source=CASE_SOURCE,
        title_raw=row.title,
        hs_raw=row.hs10,
        reference_no=row.request_id,
        decision_date=row.decided_at.date(),
        description_raw=row.description,
        decision_reason=row.note,
        image_hashes=[image_hash] if image_hash else (),
        image_count=1 if image_hash else 0,
        fetched_at=row.decided_at,
        raw_ref=f"decision:{row.decision_id}",
    )


def cases_from_decisions(
    settings: Settings, engine: Engine, *, full: bool = False
) -> ReviewCasesReport:
    """Upsert every current decision above the checkpoint (all with ``full``) as a case."""
    after = 0 if full else read_checkpoint(settings)
    with engine.connect() as conn:
        rows = conn.execute(_QUERY, {"after": after}).all()
    images = images_location(settings)
    records: list[dict[str, Any]] = []
    rejects: list[Rejection] = []
    for row in rows:
        image_hash = None
        if row.image is not None and image_problem(bytes(row.image)) is None:
            image_hash = images.put_blob(bytes(row.image))
        try:
            records.append(decided_case(row, image_hash))
        except CaseRejected as exc:
            rejects.append(
                exc.rejection(case_key(row.request_id), CASE_SOURCE, f"decision {row.decision_id}")
            )
    report: UpsertReport = upsert_cases(settings, records, rejects)
    last = max((int(r.decision_id) for r in rows), default=after)
    if last > after or full:
        path = _checkpoint_path(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps({"last_decision_id": last}).encode("utf-8"))
    out = ReviewCasesReport(
        decisions=len(rows),
        cases=len(records),
        rejected=len(rejects),
        inserted=report.inserted,
        updated=report.updated,
        unchanged=report.unchanged,
        last_decision_id=last,
    )
    log.info("decisions as cases: %s", out)
    return out


def take_decisions(settings: Settings) -> ReviewCasesReport | None:
    """What training runs first: the current decisions above the checkpoint as cases, and
    their code statuses against the current edition. None when there is no database to
    read them from (no ``database_url`` and no embedded server created in this data dir
    yet: nobody can have decided anything)."""
    from hscode.db import get_engine, has_database, migrate
    from hscode.tariff_editions import derive_code_statuses

    if not has_database(settings):
        return None
    engine = get_engine(settings)
    migrate(engine)
    report = cases_from_decisions(settings, engine)
    if report.inserted or report.updated:
        derive_code_statuses(settings, engine)
    return report
