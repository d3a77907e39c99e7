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

Each precedent is written with its ruling's evidence (reference number, decision date,
series, shortened decision reason, source: what the model's index recorded at training) and,
for a portal ruling, its link (``hscode.evidence``). Each run records its drift, batch by
batch with the batch's rows (``sql/010``): the mean rank-1 confidence and the review rate of
the requests it scored, and the share of their tokens unseen in training (the recommender's
``token_counts``, when it has one: ``HSModel.token_counts``), beside the model version's test
figures (``model_versions.metrics``: ``test_mean_confidence``, ``test_review_rate``,
``test_unseen_token_share``, recorded by ``hscode.training``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from sqlalchemy import Connection, Engine, text

from hscode.evidence import precedent_url
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
_PREC_COLUMNS = (
    "request_id, model_version, rank, case_key, hs10, title, similarity, run_id, "
    "reference_no, decision_date, series, reason_excerpt, case_source, ruling_url"
)
# the model version's test figures a run's drift is compared with (model_versions.metrics)
TEST_FIGURES = ("test_mean_confidence", "test_review_rate", "test_unseen_token_share")


class ScoringError(RuntimeError):
    """The model broke its contract (wrong count/order of answers, invalid codes)."""


@runtime_checkable
class TokenCounter(Protocol):
    """A recommender that says how many of a request's tokens it never saw in training
    (``HSModel.token_counts``): (tokens, unseen) per request, or None."""

    def token_counts(self, requests: Sequence[RequestInput]) -> tuple[Any, Any] | None: ...


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
    # drift: over the scored requests, how many went to review, their rank-1 confidence
    # summed, their tokens and those unseen in training (None: the recommender counts none)
    reviewed: int = 0
    confidence_sum: float = 0.0
    request_tokens: int | None = None
    unseen_tokens: int | None = None
    # the model version's test figures (TEST_FIGURES; None: not recorded for it)
    test_figures: dict[str, float | None] = field(default_factory=dict)

    @property
    def requests_per_s(self) -> float:
        done = self.scored + self.rejected
        return done / self.seconds if self.seconds > 0 else 0.0

    @property
    def mean_confidence(self) -> float | None:
        """Mean rank-1 confidence of the scored requests (None: none scored)."""
        return self.confidence_sum / self.scored if self.scored else None

    @property
    def review_rate(self) -> float | None:
        """Share of the scored requests flagged for review (None: none scored)."""
        return self.reviewed / self.scored if self.scored else None

    @property
    def unseen_token_share(self) -> float | None:
        """Share of the scored requests' tokens not in the model's training vocabulary."""
        if not self.request_tokens or self.unseen_tokens is None:
            return None
        return self.unseen_tokens / self.request_tokens

    def drift(self) -> dict[str, float | None]:
        """This run's figures, each beside the model version's test figure."""
        return drift_figures([self])

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
            "reviewed": self.reviewed,
            "request_tokens": self.request_tokens,
            "unseen_tokens": self.unseen_tokens,
            **{k: None if v is None else round(v, 6) for k, v in self.drift().items()},
        }


def drift_figures(parts: Sequence[ScoreSummary]) -> dict[str, float | None]:
    """The drift of one run, or of several runs together (partitions of one backlog: pooled
    over their requests and tokens), each beside the model version's test figure (that of
    the first part that has it)."""
    scored = sum(p.scored for p in parts)
    counted = [p for p in parts if p.request_tokens is not None and p.unseen_tokens is not None]
    tokens = sum(int(p.request_tokens or 0) for p in counted)
    unseen = sum(int(p.unseen_tokens or 0) for p in counted)

    def test(name: str) -> float | None:
        return next(
            (p.test_figures[name] for p in parts if p.test_figures.get(name) is not None), None
        )

    return {
        "mean_confidence": sum(p.confidence_sum for p in parts) / scored if scored else None,
        "test_mean_confidence": test("test_mean_confidence"),
        "review_rate": sum(p.reviewed for p in parts) / scored if scored else None,
        "test_review_rate": test("test_review_rate"),
        "unseen_token_share": unseen / tokens if tokens else None,
        "test_unseen_token_share": test("test_unseen_token_share"),
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
    counter = recommender if isinstance(recommender, TokenCounter) else None
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
            summary.test_figures = _test_figures(engine, version)
            run_id = _start_run(
                engine, version, flow_run_id, label, check.edition, summary.test_figures
            )
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
                    drift = _batch_drift(counter, inputs, recs)
                    summary.model_seconds += time.perf_counter() - t
                    rejects.extend(model_rejects)
                    t = time.perf_counter()
                    _write_batch(
                        engine,
                        version,
                        run_id,
                        flow_run_id,
                        recs,
                        rejects,
                        check.edition,
                        drift=drift,
                        portal_url=settings.portal_url,
                    )
                    summary.db_seconds += time.perf_counter() - t
                    summary.reviewed += drift.reviewed
                    summary.confidence_sum += drift.confidence_sum
                    if drift.tokens is not None and drift.unseen is not None:
                        summary.request_tokens = (summary.request_tokens or 0) + drift.tokens
                        summary.unseen_tokens = (summary.unseen_tokens or 0) + drift.unseen
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


@dataclass(frozen=True, slots=True)
class _BatchDrift:
    """One batch's contribution to its run's drift figures (see ``ScoreSummary``)."""

    reviewed: int = 0
    confidence_sum: float = 0.0
    tokens: int | None = None  # None: the recommender counts no tokens
    unseen: int | None = None


def _batch_drift(
    counter: TokenCounter | None, inputs: Sequence[RequestInput], recs: Sequence[Recommendation]
) -> _BatchDrift:
    """Review count and summed confidence of the scored requests, and their token counts."""
    tokens = unseen = None
    if counter is not None and recs:
        scored = {rec.request_id for rec in recs}
        try:
            counts = counter.token_counts([r for r in inputs if r.request_id in scored])
        except Exception as exc:  # noqa: BLE001 - a drift figure must never fail the batch
            log.warning("token counts failed (%s): the batch's unseen-token share is unknown", exc)
            counts = None
        if counts is not None:
            tokens, unseen = int(np.sum(counts[0])), int(np.sum(counts[1]))
    return _BatchDrift(
        reviewed=sum(bool(rec.review) for rec in recs),
        confidence_sum=float(sum(float(rec.confidence) for rec in recs)),
        tokens=tokens,
        unseen=unseen,
    )


def _test_figures(engine: Engine, version: str) -> dict[str, float | None]:
    """The version's recorded test figures (TEST_FIGURES), None where it has none."""
    with engine.connect() as conn:
        metrics = conn.execute(
            text("select metrics from model_versions where version = :v"), {"v": version}
        ).scalar()
    if isinstance(metrics, str):
        metrics = json.loads(metrics)
    metrics = metrics if isinstance(metrics, dict) else {}
    out: dict[str, float | None] = {}
    for name in TEST_FIGURES:
        value = metrics.get(name)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        out[name] = float(value) if ok and np.isfinite(value) else None
    return out


def _start_run(
    engine: Engine,
    version: str,
    flow_run_id: str | None,
    partition_label: str | None = None,
    tariff_edition: str | None = None,
    test_figures: dict[str, float | None] | None = None,
) -> int:
    figures = test_figures or {}
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
                    "tariff_edition, reviewed, confidence_sum, test_mean_confidence, "
                    "test_review_rate, test_unseen_token_share) "
                    "values (:v, :f, :p, :e, 0, 0, :tc, :tr, :tu) returning run_id"
                ),
                {
                    "v": version,
                    "f": flow_run_id,
                    "p": partition_label,
                    "e": tariff_edition,
                    "tc": figures.get("test_mean_confidence"),
                    "tr": figures.get("test_review_rate"),
                    "tu": figures.get("test_unseen_token_share"),
                },
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
    from model.runtime import threads  # torch: only once there is something to score

    with threads(settings.score_threads):
        return _recommend_batch(recommender, inputs, settings, check)


def _recommend_batch(
    recommender: Recommender,
    inputs: list[RequestInput],
    settings: Settings,
    check: CodeCheck,
) -> tuple[list[Recommendation], list[Rejection]]:
    kwargs = {
        "top_k": settings.top_k,
        "n_precedents": settings.n_precedents,
        "policy": ReviewPolicy.from_settings(settings),
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
    *,
    drift: _BatchDrift | None = None,
    portal_url: str | None = None,
) -> None:
    drift = drift or _batch_drift(None, (), recs)
    predictions = [
        (
            rec.request_id,
            version,
            rank,
            cand.hs10,
            cand.hs10[:6],
            cand.hs10[:4],
            cand.hs10[:2],
            _real(cand.score),
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
            _real(p.similarity),
            run_id,
            _no_nul(p.reference_no),
            _iso_date(p.decision_date),
            _no_nul(p.series),
            _no_nul(p.reason),
            _no_nul(p.source),
            precedent_url(portal_url, p) if portal_url else None,
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
            cursor.execute(_RUN_UPDATE, _run_update_params(run_id, recs, rejects, drift))
        finally:
            cursor.close()


# A batch's counters and the run's drift figures, from the old values plus the batch's
# (every right-hand side reads the row as it was before this update).
_RUN_UPDATE = """
update score_runs set
    scored = scored + %(n)s,
    rejected = rejected + %(rejected)s,
    batches = batches + 1,
    reviewed = coalesce(reviewed, 0) + %(reviewed)s,
    confidence_sum = coalesce(confidence_sum, 0) + %(conf)s,
    mean_confidence = (coalesce(confidence_sum, 0) + %(conf)s) / nullif(scored + %(n)s, 0),
    review_rate = (coalesce(reviewed, 0) + %(reviewed)s)::double precision
                  / nullif(scored + %(n)s, 0),
    request_tokens = case when %(tokens)s::bigint is null then request_tokens
                          else coalesce(request_tokens, 0) + %(tokens)s::bigint end,
    unseen_tokens = case when %(tokens)s::bigint is null then unseen_tokens
                         else coalesce(unseen_tokens, 0) + %(unseen)s::bigint end,
    unseen_token_share = case when %(tokens)s::bigint is null then unseen_token_share
                              else (coalesce(unseen_tokens, 0) + %(unseen)s::bigint)::double precision
                                   / nullif(coalesce(request_tokens, 0) + %(tokens)s::bigint, 0)
                         end
where run_id = %(run_id)s
"""


def _run_update_params(
    run_id: int, recs: Sequence[Recommendation], rejects: Sequence[Rejection], drift: _BatchDrift
) -> dict[str, Any]:
    counted = drift.tokens is not None and drift.unseen is not None
    return {
        "n": len(recs),
        "rejected": len(rejects),
        "reviewed": drift.reviewed,
        "conf": drift.confidence_sum,
        "tokens": drift.tokens if counted else None,
        "unseen": drift.unseen if counted else 0,
        "run_id": run_id,
    }


# the smallest normal float32: the columns are ``real``, and Postgres refuses a value below it
# (``value out of range: underflow``) where float32 arithmetic would round it to zero
_REAL_TINY = float(np.finfo(np.float32).tiny)


def _real(value: float) -> float:
    """A score as a ``real`` column takes it: a magnitude below float32's range is 0."""
    value = float(value)
    return 0.0 if abs(value) < _REAL_TINY else value


def _iso_date(value: str | None) -> dt.date | None:
    """An ISO date of the index as a date (None when absent or unreadable)."""
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


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
