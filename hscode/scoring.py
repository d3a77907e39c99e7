"""Scoring pending requests with one model version into Postgres.

A request is pending for a model version when it is not rejected and has no predictions
from that version. Requests are read in ``request_id`` order, in batches; each batch's
predictions, precedents, status changes and run counters are written in ONE transaction
(large batches: COPY into temporary staging tables, then ``INSERT ... ON CONFLICT DO
NOTHING``), so a crash loses at most the batch in flight and a re-run fills exactly the
gap: no duplicates (key ``(request_id, model_version, rank)``), no holes.

One scoring run per model version at a time: a session advisory lock serialises runs of
the same version (a second run waits, then finds nothing new). Runs are recorded in
``score_runs``; a run left ``running`` by a killed process is marked failed by the next run.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, text

from hscode.model_versions import ensure_model_version
from hscode.recommend import UNCHECKED, CodeCheck, Recommendation, Recommender, recommend
from hscode.rejects import Rejection, RejectReason
from hscode.request_rows import image_bytes_problem, text_problem
from hscode.review import ReviewPolicy
from hscode.settings import Settings
from model.records import RequestInput

log = logging.getLogger(__name__)

# Rows per batch above which predictions/precedents go through COPY + merge.
COPY_MIN_ROWS = 200

_PRED_COLUMNS = (
    "request_id, model_version, rank, hs10, hs6, hs4, hs2, score, review, review_reason, run_id, "
    "flow_run_id, tariff_edition"
)
_PREC_COLUMNS = "request_id, model_version, rank, case_key, hs10, title, similarity, run_id"


class ScoringError(RuntimeError):
    """The model broke its contract (wrong count/order of answers, invalid codes)."""


@dataclass
class ScoreSummary:
    scored: int = 0
    rejected: int = 0
    batches: int = 0
    model_version: str = ""
    seconds: float = 0.0
    model_seconds: float = 0.0  # inside recommender.rank
    db_seconds: float = 0.0  # reading batches + writing results (round trips and commits)
    run_id: int | None = None
    pending_at_start: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # RejectReason code -> count
    # the tariff edition every recommended code was checked against; None: no current
    # edition was loaded, so the codes went out unchecked
    tariff_edition: str | None = None

    @property
    def requests_per_s(self) -> float:
        done = self.scored + self.rejected
        return done / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "scored": self.scored,
            "rejected": self.rejected,
            "batches": self.batches,
            "model_version": self.model_version,
            "seconds": round(self.seconds, 3),
            "model_seconds": round(self.model_seconds, 3),
            "db_seconds": round(self.db_seconds, 3),
            "run_id": self.run_id,
            "pending_at_start": self.pending_at_start,
            "requests_per_s": round(self.requests_per_s, 1),
            "reasons": dict(self.reasons),
            "tariff_edition": self.tariff_edition,
            "codes_checked": self.tariff_edition is not None,
        }


@dataclass(frozen=True, slots=True)
class _Row:
    request_id: str
    title: str | None
    description: str | None
    image: bytes | None


_PENDING_WHERE = """
    r.status <> 'rejected'
    and not exists (select 1 from predictions p
                     where p.request_id = r.request_id and p.model_version = :version)
"""


# A request's partition: a stable hash of its id, so every process agrees without talking.
_PARTITION_WHERE = """
    and mod(mod(hashtextextended(r.request_id, 0), :n_parts) + :n_parts, :n_parts) = :part
"""


def _partition_params(partition: tuple[int, int] | None) -> tuple[str, dict[str, int]]:
    if partition is None:
        return "", {}
    part, n_parts = partition
    if n_parts < 1 or not 0 <= part < n_parts:
        raise ValueError(f"partition must be (i, n) with 0 <= i < n, not {partition}")
    return _PARTITION_WHERE, {"part": part, "n_parts": n_parts}


def count_pending(engine: Engine, version: str, partition: tuple[int, int] | None = None) -> int:
    """Requests not rejected and without predictions from ``version`` (in ``partition``)."""
    where, params = _partition_params(partition)
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(f"select count(*) from requests r where {_PENDING_WHERE} {where}"),
                {"version": version, **params},
            ).scalar_one()
        )


def score_pending(
    settings: Settings,
    engine: Engine,
    recommender: Recommender,
    batch_size: int | None = None,
    flow_run_id: str | None = None,
    progress: Callable[..., Any] | None = None,
    partition: tuple[int, int] | None = None,
    check: CodeCheck | None = None,
) -> ScoreSummary:
    """Score every request pending for ``recommender.version``; see the module docstring.

    ``partition=(i, n)`` scores only the requests whose id hashes to partition ``i`` of
    ``n``: n workers (a Dask cluster) can share one backlog without overlapping.
    ``check``: the codes answers may use; by default the current tariff edition's ten-digit
    codes (``hscode.tariff_editions``); without a current edition nothing is checked, and
    the summary and every prediction say so (``tariff_edition`` null).
    """
    started = time.perf_counter()
    version = str(recommender.version)
    if not version:
        raise ScoringError("the recommender has no version")
    batch_size = batch_size or settings.score_batch_size
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, not {batch_size}")
    check = current_code_check(engine) if check is None else check
    summary = ScoreSummary(model_version=version, tariff_edition=check.edition)
    if not check.active:
        log.warning("no current tariff edition loaded: recommended codes are not checked")
    reasons: Counter[str] = Counter()
    ensure_model_version(engine, version)
    _partition_params(partition)  # validate before taking locks
    lock_key = version if partition is None else f"{version}#{partition[0]}/{partition[1]}"

    with engine.connect() as lock_conn:
        lock_conn.execute(
            text("select pg_advisory_lock(hashtextextended('hscode-score:' || :v, 0))"),
            {"v": lock_key},
        )
        lock_conn.commit()
        try:
            label = None if partition is None else f"{partition[0]}/{partition[1]}"
            run_id = _start_run(engine, version, flow_run_id, label, check.edition)
            summary.run_id = run_id
            try:
                t = time.perf_counter()
                total = count_pending(engine, version, partition)
                summary.db_seconds += time.perf_counter() - t
                summary.pending_at_start = total
                with engine.begin() as conn:
                    conn.execute(
                        text("update score_runs set pending_at_start = :n where run_id = :id"),
                        {"n": total, "id": run_id},
                    )
                if progress is not None:
                    progress(0, total)
                done = 0
                last_id: str | None = None
                while True:
                    t = time.perf_counter()
                    rows = _fetch_batch(engine, version, last_id, batch_size, partition)
                    summary.db_seconds += time.perf_counter() - t
                    if not rows:
                        break
                    last_id = rows[-1].request_id
                    inputs, rejects = _validate(rows, settings)
                    t = time.perf_counter()
                    recs, model_rejects = _recommend(recommender, inputs, settings, check)
                    summary.model_seconds += time.perf_counter() - t
                    rejects.extend(model_rejects)
                    t = time.perf_counter()
                    _write_batch(engine, version, run_id, flow_run_id, recs, rejects, check.edition)
                    summary.db_seconds += time.perf_counter() - t
                    summary.batches += 1
                    summary.scored += len(recs)
                    summary.rejected += len(rejects)
                    reasons.update(str(r.reason) for r in rejects)
                    done += len(rows)
                    if progress is not None:
                        progress(done, max(total, done))
            except BaseException as exc:
                summary.seconds = time.perf_counter() - started
                _finish_run(
                    engine, run_id, summary, status="failed", error=f"{type(exc).__name__}: {exc}"
                )
                raise
            summary.seconds = time.perf_counter() - started
            summary.reasons = dict(reasons)
            _finish_run(engine, run_id, summary, status="finished")
        finally:
            try:
                lock_conn.execute(
                    text("select pg_advisory_unlock(hashtextextended('hscode-score:' || :v, 0))"),
                    {"v": lock_key},
                )
                lock_conn.commit()
            except Exception:  # noqa: BLE001 - a dead connection releases its locks itself
                lock_conn.invalidate()
    log.info(
        "scored %d, rejected %d with %s in %.1f s (model %.1f s, db %.1f s)",
        summary.scored,
        summary.rejected,
        version,
        summary.seconds,
        summary.model_seconds,
        summary.db_seconds,
    )
    return summary


# ----------------------------------------------------------------- steps


def current_code_check(engine: Engine) -> CodeCheck:
    """The current tariff edition's ten-digit codes, or ``UNCHECKED`` when none is current."""
    from hscode.tariff_editions import current_edition_codes

    edition, codes = current_edition_codes(engine)
    return UNCHECKED if edition is None else CodeCheck(edition, codes)


def _start_run(
    engine: Engine,
    version: str,
    flow_run_id: str | None,
    partition_label: str | None = None,
    tariff_edition: str | None = None,
) -> int:
    with engine.begin() as conn:
        # We hold this version's scoring lock: any run still 'running' was interrupted.
        conn.execute(
            text(
                "update score_runs set status = 'failed', finished_at = now(), "
                "error = coalesce(error, 'interrupted: still running when a new run started') "
                "where model_version = :v and status = 'running' "
                "and partition_label is not distinct from :p"
            ),
            {"v": version, "p": partition_label},
        )
        return int(
            conn.execute(
                text(
                    "insert into score_runs (model_version, flow_run_id, partition_label, "
                    "tariff_edition) values (:v, :f, :p, :e) returning run_id"
                ),
                {"v": version, "f": flow_run_id, "p": partition_label, "e": tariff_edition},
            ).scalar_one()
        )


def _finish_run(
    engine: Engine, run_id: int, summary: ScoreSummary, status: str, error: str | None = None
) -> None:
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "update score_runs set status = :s, finished_at = now(), seconds = :sec, "
                    "model_seconds = :ms, db_seconds = :dbs, error = :e where run_id = :id"
                ),
                {
                    "s": status,
                    "sec": summary.seconds,
                    "ms": summary.model_seconds,
                    "dbs": summary.db_seconds,
                    "e": error[:2000] if error else None,
                    "id": run_id,
                },
            )
    except Exception as exc:
        if status == "finished":
            raise
        log.warning("could not mark score run %s failed: %s", run_id, exc)


def _fetch_batch(
    engine: Engine,
    version: str,
    last_id: str | None,
    limit: int,
    partition: tuple[int, int] | None = None,
) -> list[_Row]:
    after = "" if last_id is None else "and r.request_id > :last"
    where, params = _partition_params(partition)
    with engine.connect() as conn:
        result = conn.execute(
            text(
                f"select r.request_id, r.title, r.description, r.image from requests r "
                f"where {_PENDING_WHERE} {where} {after} order by r.request_id limit :n"
            ),
            {"version": version, "last": last_id, "n": limit, **params},
        )
        return [_Row(r[0], r[1], r[2], bytes(r[3]) if r[3] is not None else None) for r in result]


def _validate(
    rows: Sequence[_Row], settings: Settings
) -> tuple[list[RequestInput], list[Rejection]]:
    """Model inputs, and a Rejection for each request that cannot be scored."""
    inputs: list[RequestInput] = []
    rejects: list[Rejection] = []
    for row in rows:
        title = (row.title or "").strip()
        description = (row.description or "").strip() or None
        problem = text_problem(title, description, settings.max_text_chars)
        if problem is None and row.image is not None:
            problem = image_bytes_problem(row.image, settings.max_image_bytes)
        if problem is not None:
            rejects.append(Rejection(row.request_id, *problem, source="scoring"))
            continue
        inputs.append(RequestInput(row.request_id, title, description, row.image))
    return inputs, rejects


def _recommend(
    recommender: Recommender,
    inputs: list[RequestInput],
    settings: Settings,
    check: CodeCheck = UNCHECKED,
) -> tuple[list[Recommendation], list[Rejection]]:
    recs, bad = _recommend_with_retries(recommender, inputs, settings, check)
    if not check.active:
        return recs, bad
    # a request none of whose ranked codes is current gets no answer, and says why
    ok = [r for r in recs if r.candidates]
    for rec in recs:
        if not rec.candidates:
            message = (
                f"none of the model's codes for this request is in the current tariff "
                f"edition {check.edition}"
            )
            bad.append(Rejection(rec.request_id, RejectReason.NO_CURRENT_CODE, message, "scoring"))
    return ok, bad


def _recommend_with_retries(
    recommender: Recommender,
    inputs: list[RequestInput],
    settings: Settings,
    check: CodeCheck,
) -> tuple[list[Recommendation], list[Rejection]]:
    """Recommendations for ``inputs``. When the batch call fails, requests are retried one
    by one and those that still fail are rejected with the error; if all fail, the model
    (not the data) is broken and the error propagates."""
    if not inputs:
        return [], []
    kwargs = {
        "top_k": settings.top_k,
        "n_precedents": settings.n_precedents,
        "policy": ReviewPolicy(settings.review_threshold),
        "check": check,
    }
    try:
        recs = recommend(recommender, inputs, **kwargs)
        _check_answers(inputs, recs, allow_empty=check.active)
        return recs, []
    except ScoringError:
        raise
    except Exception as batch_error:
        if len(inputs) == 1:
            raise
        log.warning(
            "model failed on a batch of %d (%s); retrying one by one", len(inputs), batch_error
        )
        ok: list[Recommendation] = []
        bad: list[Rejection] = []
        for item in inputs:
            try:
                one = recommend(recommender, [item], **kwargs)
                _check_answers([item], one, allow_empty=check.active)
                ok.extend(one)
            except ScoringError:
                raise
            except Exception as exc:  # noqa: BLE001 - recorded as the request's reject reason
                message = f"model error: {type(exc).__name__}: {exc}"[:500]
                bad.append(Rejection(item.request_id, RejectReason.MODEL_ERROR, message, "scoring"))
        if not ok:
            raise
        return ok, bad


def _check_answers(
    inputs: Sequence[RequestInput], recs: Sequence[Recommendation], allow_empty: bool = False
) -> None:
    """The model's contract; ``allow_empty``: the tariff check may leave no candidate."""
    if len(recs) != len(inputs):
        raise ScoringError(f"model returned {len(recs)} recommendations for {len(inputs)} requests")
    for item, rec in zip(inputs, recs, strict=True):
        if rec.request_id != item.request_id:
            raise ScoringError(
                f"model answered {rec.request_id!r} where {item.request_id!r} was expected"
            )
        if not rec.candidates and not allow_empty:
            raise ScoringError(f"model returned no candidate for {item.request_id!r}")
        for cand in rec.candidates:
            if len(cand.hs10) != 10 or not cand.hs10.isdigit():
                raise ScoringError(
                    f"model returned invalid code {cand.hs10!r} for {item.request_id!r}"
                )


def _write_batch(
    engine: Engine,
    version: str,
    run_id: int,
    flow_run_id: str | None,
    recs: Sequence[Recommendation],
    rejects: Sequence[Rejection],
    tariff_edition: str | None = None,
) -> None:
    predictions = [
        (
            rec.request_id,
            version,
            rank,
            cand.hs10,
            cand.hs10[:6],
            cand.hs10[:4],
            cand.hs10[:2],
            float(cand.score),
            bool(rec.review),
            _no_nul(rec.review_reason),
            run_id,
            flow_run_id,
            tariff_edition,
        )
        for rec in recs
        for rank, cand in enumerate(rec.candidates, start=1)
    ]
    precedents = [
        (
            rec.request_id,
            version,
            rank,
            p.case_key,
            p.hs10,
            _no_nul(p.title),
            float(p.similarity),
            run_id,
        )
        for rec in recs
        for rank, p in enumerate(rec.precedents, start=1)
    ]
    with engine.begin() as conn:
        _insert(conn, "predictions", _PRED_COLUMNS, predictions)
        _insert(conn, "precedents", _PREC_COLUMNS, precedents)
        cursor = conn.connection.cursor()
        try:
            if recs:
                cursor.execute(
                    "update requests set status = 'scored', scored_at = now() "
                    "where request_id = any(%s) and status = 'pending'",
                    ([rec.request_id for rec in recs],),
                )
            if rejects:
                cursor.execute(
                    "update requests r set status = 'rejected', reject_reason = x.reason, "
                    "reject_code = x.code "
                    "from unnest(%s::text[], %s::text[], %s::text[]) as x(request_id, reason, code) "
                    "where r.request_id = x.request_id",
                    (
                        [r.key for r in rejects],
                        [_no_nul(r.message) for r in rejects],
                        [str(r.reason) for r in rejects],
                    ),
                )
            cursor.execute(
                "update score_runs set scored = scored + %s, rejected = rejected + %s, "
                "batches = batches + 1 where run_id = %s",
                (len(recs), len(rejects), run_id),
            )
        finally:
            cursor.close()


def _no_nul(value: str | None) -> str | None:
    """Postgres text cannot hold NUL; a stray one must not fail the batch forever."""
    return value.replace("\x00", "") if value is not None and "\x00" in value else value


def _insert(conn: Connection, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    placeholders = ", ".join(["%s"] * len(rows[0]))
    cursor = conn.connection.cursor()
    try:
        if len(rows) < COPY_MIN_ROWS:
            cursor.executemany(
                f"insert into {table} ({columns}) values ({placeholders}) on conflict do nothing",
                rows,
            )
            return
        stage = f"_stage_{table}"
        cursor.execute(
            f"create temp table {stage} (like {table} including defaults) on commit drop"
        )
        with cursor.copy(f"copy {stage} ({columns}) from stdin") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"insert into {table} ({columns}) select {columns} from {stage} on conflict do nothing"
        )
    finally:
        cursor.close()
