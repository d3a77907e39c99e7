"""Normalize the raw zone into the Parquet ``cases`` dataset.

For every case key (the portal's ``RRDC_NO``) with a stored detail, the newest detail
whose body parses is the case (newest wins; an older good fetch stands in when the
newest is a fault page). Fields the detail lacks are filled from the case's list item
of the same series (never its 176-character description). Images named by the detail
are taken from the raw zone, checked to decode, and stored once by content hash in
the image store (``settings.images_url``: a local folder or object storage). Cases go
through ``hscode.case_records.make_case`` (cleaning, HS normalisation, multi-code flag)
and ``hscode.cases.upsert_cases`` (dedupe on the key, newest ``fetched_at`` wins, unchanged
content rewrites nothing); records that cannot become cases are recorded as rejections
(:class:`~hscode.rejects.Rejection`, ``where`` the raw body's sha256) with their code.

Re-runnable: a checkpoint (``state_dir/normalize.json``) remembers which detail body
and image bodies each case was built from, so a re-run only parses what changed; it is
written after the upsert, so a crash in between just redoes work that the upsert then
finds unchanged. ``full=True`` ignores the checkpoint (e.g. after a parser change).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hscode.case_records import CaseRejected, make_case
from hscode.cases import read_cases, upsert_cases
from hscode.objectstore import images_location
from hscode.portal.parse import (
    DetailRecord,
    ListItem,
    PortalFormatError,
    parse_detail,
    parse_list,
)
from hscode.rawzone import RawEntry, RawZone
from hscode.rejects import Rejection, RejectReason
from hscode.settings import Settings
from hscode.storage import atomic_write, image_problem

log = logging.getLogger(__name__)

SOURCE = "clip"
CHECKPOINT_VERSION = 1
BATCH_SIZE = 2000  # cases per upsert call


@dataclass
class NormalizeReport:
    details_seen: int = 0  # case keys with at least one stored detail (status 200)
    cases_built: int = 0  # parsed and validated in this run (the rest were unchanged)
    skipped_unchanged: int = 0  # same detail and images as the last run: not re-parsed
    new_cases: int = 0
    updated_cases: int = 0
    unchanged_cases: int = 0
    rejected: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)  # reason code -> count
    listed_without_detail: int = 0  # listed by the portal, no good detail stored yet
    older_detail_used: int = 0  # newest stored detail unusable, an older good one used
    images_stored: int = 0  # image references resolved to a stored image
    images_missing: int = 0  # named by a detail, not in the raw zone (yet)
    images_bad: int = 0  # in the raw zone but not a decodable image
    total_cases: int = 0  # rows in the dataset after this run
    trainable_cases: int = 0  # of which with a single 10-digit code
    elapsed_s: float = 0.0
    parse_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------
# Checkpoint
# ---------------------------------------------------------------------------------------
def _checkpoint_path(settings: Settings) -> Path:
    return settings.state_dir / "normalize.json"


def _read_checkpoint(settings: Settings) -> dict[str, dict[str, Any]]:
    path = _checkpoint_path(settings)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("normalize checkpoint %s unreadable (%s): starting over", path, exc)
        return {}
    if not isinstance(data, dict) or data.get("version") != CHECKPOINT_VERSION:
        return {}
    cases = data.get("cases")
    return cases if isinstance(cases, dict) else {}


def _write_checkpoint(settings: Settings, cases: dict[str, dict[str, Any]]) -> None:
    payload = {"version": CHECKPOINT_VERSION, "cases": cases}
    atomic_write(
        _checkpoint_path(settings),
        json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8"),
    )


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------
def _list_items(raw: RawZone, report: NormalizeReport) -> dict[str, tuple[str, ListItem]]:
    """RRDC_NO -> (series, newest list item) over every good list page in the raw zone."""
    found: dict[str, tuple[str, ListItem, str]] = {}
    for entry in raw.good_list_pages().values():
        t0 = time.perf_counter()
        try:
            page = parse_list(raw.body(entry), entry.url)
        except (PortalFormatError, OSError) as exc:
            log.warning("normalize: list page %s no longer parses: %s", entry.sha256, exc)
            continue
        finally:
            report.parse_s += time.perf_counter() - t0
        assert entry.series is not None  # good_list_pages keeps only pages with a series
        for item in page.items:
            prior = found.get(item.rrdc_no)
            if prior is None or entry.fetched_at >= prior[2]:
                found[item.rrdc_no] = (entry.series, item, entry.fetched_at)
    return {k: (s, item) for k, (s, item, _) in found.items()}


def _newest_good_detail(
    raw: RawZone, entries: list[RawEntry], report: NormalizeReport
) -> tuple[RawEntry, DetailRecord] | tuple[None, str]:
    """The newest stored detail that parses, or (None, why none does)."""
    last_error = "no detail stored"
    for n, entry in enumerate(entries):  # newest first
        verdict = raw.verdict(entry.sha256)
        if verdict is not None and not verdict[0]:
            last_error = f"portal answer judged bad at crawl time: {verdict[1]}"
            continue
        t0 = time.perf_counter()
        try:
            record = parse_detail(raw.body(entry), entry.url)
        except PortalFormatError as exc:
            last_error = str(exc)
            continue
        except OSError as exc:
            last_error = f"raw body {entry.sha256} unreadable: {exc}"
            continue
        finally:
            report.parse_s += time.perf_counter() - t0
        if n:
            report.older_detail_used += 1
        return entry, record
    return None, last_error


def _fingerprint(detail_sha: str, image_shas: list[str | None]) -> dict[str, Any]:
    return {"detail": detail_sha, "images": image_shas}


# ---------------------------------------------------------------------------------------
# Normalize
# ---------------------------------------------------------------------------------------
def normalize(settings: Settings, *, full: bool = False) -> NormalizeReport:
    """Raw zone -> cases dataset; see the module docstring. Safe to re-run at any time."""
    t0 = time.perf_counter()
    report = NormalizeReport()
    raw = RawZone(settings.raw_dir)
    images = images_location(settings)
    checkpoint = {} if full else _read_checkpoint(settings)
    present = set(read_cases(settings, columns=["case_key"])["case_key"].to_pylist())
    listed = _list_items(raw, report)

    by_key: dict[str, list[RawEntry]] = {}
    for entry in raw.details():  # newest first
        if entry.rrdc_no:
            by_key.setdefault(entry.rrdc_no, []).append(entry)
    report.details_seen = len(by_key)
    report.listed_without_detail = sum(1 for k in listed if k not in by_key)

    records: list[dict[str, Any]] = []
    rejects: list[Rejection] = []
    reasons: Counter[RejectReason] = Counter()
    done: dict[str, dict[str, Any]] = {}  # checkpoint entries of this run

    def reject(key: str, reason: RejectReason, message: str, raw_ref: str | None) -> None:
        reasons[reason] += 1
        rejects.append(Rejection(key, reason, message, SOURCE, raw_ref))

    for key in sorted(by_key):
        entries = by_key[key]
        prior = checkpoint.get(key)
        # Fast path: the newest detail and its images are what the last run used.
        if prior is not None and prior.get("detail") == entries[0].sha256:
            images_now = [
                (e.sha256 if (e := raw.image(u)) is not None else None)
                for u in prior.get("image_urls", [])
            ]
            if images_now == prior.get("images") and (key in present or prior.get("rejected")):
                report.skipped_unchanged += 1
                done[key] = prior
                continue

        entry, parsed = _newest_good_detail(raw, entries, report)
        if entry is None:
            assert isinstance(parsed, str)
            reject(key, RejectReason.DETAIL_UNPARSEABLE, parsed, entries[0].sha256)
            done[key] = {**_fingerprint(entries[0].sha256, []), "image_urls": [], "rejected": True}
            continue
        assert isinstance(parsed, DetailRecord)
        record = parsed
        series = entry.series
        item: ListItem | None = None
        if key in listed and listed[key][0] == series:
            item = listed[key][1]

        image_hashes: list[str] = []
        image_shas: list[str | None] = []
        for url in record.image_urls:
            stored = raw.image(url)
            image_shas.append(stored.sha256 if stored is not None else None)
            if stored is None:
                report.images_missing += 1
                continue
            try:
                data = raw.body(stored)
            except OSError as exc:
                log.warning("normalize %s: image body %s unreadable: %s", key, stored.sha256, exc)
                report.images_missing += 1
                continue
            problem = image_problem(data)
            if problem is not None:
                log.warning("normalize %s: image %s skipped: %s: %s", key, url, *problem)
                report.images_bad += 1
                continue
            digest = images.put_blob(data)
            if digest not in image_hashes:
                image_hashes.append(digest)
            report.images_stored += 1

        try:
            case = make_case(
                case_key=key,
                source=SOURCE,
                series=series,
                title_raw=record.title,
                hs_raw=record.hs_raw,
                reference_no=record.reference_no or (item.reference_no if item else None),
                decision_date=record.decision_date or (item.decision_date if item else None),
                office=record.office or (item.office if item else None),
                description_raw=record.description,
                decision_reason=record.reason,
                image_hashes=image_hashes,
                image_count=(
                    record.image_count
                    if record.image_count is not None
                    else (item.image_count if item else None)
                ),
                fetched_at=entry.fetched_at,
                raw_ref=entry.sha256,
                max_text_chars=settings.max_text_chars,
            )
        except CaseRejected as exc:
            reject(key, exc.reason, exc.detail, entry.sha256)
            done[key] = {
                **_fingerprint(entries[0].sha256, image_shas),
                "image_urls": list(record.image_urls),
                "rejected": True,
            }
            continue
        records.append(case)
        done[key] = {
            **_fingerprint(entries[0].sha256, image_shas),
            "image_urls": list(record.image_urls),
        }

    report.cases_built = len(records)
    report.rejected = sum(reasons.values())
    report.reject_reasons = {str(code): n for code, n in sorted(reasons.items())}

    total = len(present)
    for start in range(0, max(len(records), 1), BATCH_SIZE):
        batch = records[start : start + BATCH_SIZE]
        # The last (or only) call also persists the rejects.
        last = start + BATCH_SIZE >= len(records)
        up = upsert_cases(settings, batch, rejects if last else ())
        report.new_cases += up.inserted
        report.updated_cases += up.updated
        report.unchanged_cases += up.unchanged
        total = up.total
    # Cases dataset first, checkpoint after: a crash in between only repeats work.
    _write_checkpoint(settings, {**checkpoint, **done})

    hs10 = read_cases(settings, columns=["hs10"])["hs10"]
    report.total_cases = total
    report.trainable_cases = len(hs10) - hs10.null_count
    report.elapsed_s = time.perf_counter() - t0
    log.info(
        "normalize: %d new, %d updated, %d unchanged, %d skipped, %d rejected; %d cases in total",
        report.new_cases,
        report.updated_cases,
        report.unchanged_cases,
        report.skipped_unchanged,
        report.rejected,
        report.total_cases,
    )
    return report
