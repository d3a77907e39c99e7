"""``hscode demo``: the whole nightly pipeline on this machine, end to end, in a few minutes.

Starts the portal emulator with the deterministic demo corpus (75 codes in families of
sibling subheadings, a long tail of rare codes, a little label noise, part-number names,
drawn product images, and older rulings under codes a later edition renumbered, split or
moved) at a small fault rate, seeds a backlog of demo requests into Postgres (embedded by
default) that mixes goods of the corpus' codes with bare part numbers and goods of codes
the corpus does not have, loads the tariff (the current edition ``demo-2026``, the older
``demo-2017`` and the six-digit correlation rows between them), runs the ``nightly``
Prefect flow against the emulator, then prints what it learned and how sure it is, and the
query that shows the results. Re-running it is safe: crawling resumes, cases and requests
are keyed, training is skipped when nothing changed, scoring is idempotent.
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hscode.settings import Settings, get_settings

if TYPE_CHECKING:
    from emulator.corpus import DemoRequest

log = logging.getLogger("hscode.demo")  # the name it logged under in hscode/

DEMO_FAULT_RATE = 0.02
# Our own emulator on 127.0.0.1: no need for the real portal's 1 request/second (the demo
# corpus is about 1,200 details and 1,200 photos).
DEMO_REQUEST_RATE = 100.0
DEMO_SETTINGS = {
    "request_rate": DEMO_REQUEST_RATE,
    "backoff_base_s": 0.2,
    "backoff_max_s": 2.0,
    "request_timeout_s": 10.0,
}
# Small but real training: the point of the demo is the pipeline, not the last percent. A
# smaller network than the product's (BiLSTM 64 per direction instead of 256, 64-dimensional
# embeddings, 48 tokens: the title, the material line and the specification): about 1,000
# training cases over 75 codes then train in a few minutes on 2 cores.
DEMO_EPOCHS = 4
DEMO_TRAIN: dict[str, Any] = {"hidden": 64, "embed_dim": 64, "max_len": 48}
DEMO_CASES = 1200
DEMO_REQUESTS = 50
DEMO_CORPUS_SEED = 0
DEMO_YEARS = (2023, 2024)  # rulings under today's codes
DEMO_OLDER_YEARS = (2017, 2018, 2019, 2020, 2021)  # rulings of the HSK 2017 edition
DEMO_REQUEST_SEED = 7919  # a different seed: same product families, unseen titles
FLAGGED_SHOWN = 6


def demo_backlog(
    n_requests: int, seen_titles: set[str], seed: int = DEMO_REQUEST_SEED
) -> list[tuple[dict[str, Any], DemoRequest]]:
    """The demo requests (intake rows) with what each one's goods really are; titles the
    corpus has are left out. Two in ten are goods of codes the corpus does not have, one in
    ten a bare part number (``emulator.corpus.demo_request_goods``)."""
    from emulator.corpus import demo_request_goods

    out: list[tuple[dict[str, Any], DemoRequest]] = []
    pool = demo_request_goods(max(2 * n_requests, 20), seed=seed)
    for goods in pool:
        if goods.title in seen_titles:
            continue
        row = {
            "request_id": f"demo-{len(out) + 1:04d}",
            "title": goods.title,
            "description": goods.description,
            "image": goods.image,
        }
        out.append((row, goods))
        if len(out) == n_requests:
            break
    return out


def demo_requests(
    n_requests: int, seen_titles: set[str], seed: int = DEMO_REQUEST_SEED
) -> list[dict[str, Any]]:
    """Requests generated like the corpus but absent from it (titles never crawled)."""
    return [row for row, _ in demo_backlog(n_requests, seen_titles, seed)]


def demo_tariff_rows() -> list[dict[str, Any]]:
    """The current edition's rows (``demo-2026``): every code of the demo's goods."""
    from emulator.corpus import current_tariff_rows

    return current_tariff_rows()


def load_demo_tariff(engine: Any) -> dict[str, Any]:
    """The older edition, the current one and the correlation rows between them, loaded as
    ``hscode tariff load`` / ``tariff correlations load`` would (idempotent)."""
    from emulator.corpus import (
        DEMO_CURRENT_EDITION,
        DEMO_OLDER_EDITION,
        correlation_rows,
        current_tariff_rows,
        older_tariff_rows,
    )
    from hscode.tariff import load_correlation_rows, load_tariff_rows

    older = load_tariff_rows(engine, older_tariff_rows(), DEMO_OLDER_EDITION)
    current = load_tariff_rows(engine, current_tariff_rows(), DEMO_CURRENT_EDITION, current=True)
    correlations = load_correlation_rows(engine, correlation_rows())
    return {"current": current, "older": older, "correlations": correlations}


def _query_results(settings: Settings) -> dict[str, Any]:
    from sqlalchemy import text

    from hscode.db import get_engine

    engine = get_engine(settings)
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "select count(distinct request_id) as requests, "
                "count(distinct request_id) filter (where rank = 1 and review) as flagged "
                "from latest_predictions"
            )
        ).one()
        statuses = dict(
            conn.execute(text("select status, count(*) from requests group by status")).all()
        )
        top = conn.execute(
            text(
                "select request_id, title, hs10, hs10_display, score, review, review_reason "
                "from latest_predictions where rank = 1 order by request_id"
            )
        ).all()
    return {
        "requests_with_predictions": int(row.requests),
        "flagged_for_review": int(row.flagged),
        "pending": statuses.get("pending", 0),
        "rejected": statuses.get("rejected", 0),
        "top": [r._asdict() for r in top],
    }


def _spread(scores: list[float]) -> str:
    """Min, quartiles and max of the rank-1 scores."""
    if not scores:
        return "none"
    if len(scores) < 2:
        return f"{scores[0]:.3f}"
    q1, median, q3 = statistics.quantiles(scores, n=4, method="inclusive")
    return (
        f"min {min(scores):.3f}, q1 {q1:.3f}, median {median:.3f}, q3 {q3:.3f}, "
        f"max {max(scores):.3f} (rank-1 scores)"
    )


def _by_kind(top: list[dict[str, Any]], truth: dict[str, DemoRequest]) -> list[str]:
    """Per kind of request: how many, right at rank 1 (goods of known codes), flagged."""
    from emulator.corpus import REQUEST_KINDS
    from hscode.hs import parse_hs

    lines = []
    for kind in REQUEST_KINDS:
        rows = [r for r in top if r["request_id"] in truth and truth[r["request_id"]].kind == kind]
        if not rows:
            continue
        flagged = sum(bool(r["review"]) for r in rows)
        right = sum(parse_hs(truth[r["request_id"]].hs_code).hs10 == r["hs10"] for r in rows)
        what = {
            "familiar": "goods of the corpus' codes",
            "part_number": "a bare part number",
            "unfamiliar": "goods of codes the corpus does not have",
        }[kind]
        answered = f", right at rank 1 {right}" if kind != "unfamiliar" else ""
        lines.append(
            f"  {kind:<12} {len(rows):>3} ({what}){answered}, flagged {flagged}/{len(rows)}"
        )
    return lines


def _flagged_examples(top: list[dict[str, Any]], truth: dict[str, DemoRequest]) -> list[str]:
    """A few flagged requests, one of each reason first, each with its reason."""
    flagged = [r for r in top if r["review"]]
    seen: set[str] = set()
    chosen: list[dict[str, Any]] = []
    for r in flagged:  # one per reason (its words before the first ':' or number)
        key = (r["review_reason"] or "").split(":")[0].split(" 0")[0]
        if key not in seen:
            seen.add(key)
            chosen.append(r)
    chosen += [r for r in flagged if r not in chosen]
    lines = []
    for r in chosen[:FLAGGED_SHOWN]:
        goods = truth.get(r["request_id"])
        kind = f" [{goods.kind}, is {goods.hs_code}]" if goods else ""
        title = r["title"] if len(r["title"]) <= 40 else r["title"][:39] + "…"
        lines.append(
            f"  {r['request_id']}{kind} {title!r}: {r['hs10_display']} at {float(r['score']):.3f}"
            f" -> {r['review_reason']}"
        )
    return lines


def _trained_statuses(settings: Settings, version: str | None) -> dict[str, int]:
    """How the champion's training cases stood against the current edition (its report)."""
    if version is None:
        return {}
    from hscode.registry import Registry

    report = Registry.from_settings(settings).read_report(version) or {}
    return dict((report.get("selection") or {}).get("code_status") or {})


def run_demo(
    data_dir: Path | None = None,
    n_cases: int | None = DEMO_CASES,
    n_requests: int | None = DEMO_REQUESTS,
    fault_rate: float = DEMO_FAULT_RATE,
    epochs: int = DEMO_EPOCHS,
    train_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the demo; print and return its summary."""
    from emulator.corpus import demo_corpus
    from emulator.server import EmulatorServer
    from flows.nightly import nightly_flow
    from hscode.db import get_engine, migrate, psql_uri
    from hscode.intake import submit_requests

    started = time.monotonic()
    n_cases = DEMO_CASES if n_cases is None else n_cases
    n_requests = DEMO_REQUESTS if n_requests is None else n_requests
    settings = get_settings(**({"data_dir": data_dir} if data_dir is not None else {}))
    overrides: dict[str, Any] = {"data_dir": str(settings.data_dir.resolve()), **DEMO_SETTINGS}
    settings = get_settings(**overrides)
    corpus = demo_corpus(
        n_cases=n_cases, seed=DEMO_CORPUS_SEED, years=DEMO_YEARS, older_years=DEMO_OLDER_YEARS
    )
    dates = [c.decision_date for c in corpus]
    print(f"demo data dir: {settings.data_dir}")

    engine = get_engine(settings)
    migrate(engine)
    backlog = demo_backlog(n_requests, {c.title for c in corpus})
    truth = {row["request_id"]: goods for row, goods in backlog}
    submitted = submit_requests(engine, [row for row, _ in backlog])
    # today's edition, the older one the old rulings were decided under, and the six-digit
    # correlations between them: the normalize step derives every case's code status
    tariff = load_demo_tariff(engine)
    print(
        f"backlog: {len(backlog)} demo requests submitted ({_short(submitted)}); "
        f"tariff: {_short(tariff['current'])}; older edition: {tariff['older'].edition} "
        f"({tariff['older'].loaded} codes); correlation rows: {tariff['correlations'].loaded}"
    )

    with EmulatorServer(corpus, fault_rate=fault_rate, seed=DEMO_CORPUS_SEED) as emulator:
        print(
            f"emulator: {len(corpus)} cases at {emulator.url} (fault rate {fault_rate})", flush=True
        )
        summary = nightly_flow(
            since=min(dates),
            until=max(dates),
            portal_url=emulator.url,
            train="auto",
            epochs=epochs,
            train_overrides={**DEMO_TRAIN, **(train_overrides or {})},
            settings_overrides=overrides,
        )
        emulator_stats = emulator.stats

    results = _query_results(settings)
    # a reviewer decides some answers (the demo knows the goods' codes): live accuracy
    from app.demo_review import decide_some, live_accuracy_lines

    decided = decide_some(engine, {rid: goods.hs_code for rid, goods in truth.items()})
    live = live_accuracy_lines(engine)
    from flows._common import champion_info

    champion = champion_info(settings)
    train = summary.get("train") or {}
    crawl = summary.get("crawl") or {}
    normalize = summary.get("normalize") or {}
    uri = psql_uri(settings)
    elapsed = time.monotonic() - started
    metrics = train.get("metrics") or (champion.metrics if champion else {})
    accuracy = metrics.get("test_top1")
    statuses = (normalize.get("code_statuses") or {}).get("by_status") or {}
    trained = _trained_statuses(settings, champion.version if champion else None)
    top = results["top"]
    n_scored = results["requests_with_predictions"]
    flagged = results["flagged_for_review"]
    lines = [
        "",
        "=== hscode demo ===",
        (
            f"cases crawled:      {crawl.get('details_fetched', '?')} (emulator served "
            f"{sum(emulator_stats['requests'].values())} requests, "
            f"{sum(emulator_stats['faults'].values())} injected faults)"
        ),
        f"cases in dataset:   {normalize.get('trainable_cases', '?')} with a 10-digit code",
        "code statuses:      "
        + (
            ", ".join(f"{k} {statuses.get(k, 0)}" for k in _STATUSES)
            + f" (against {(normalize.get('code_statuses') or {}).get('edition')}; "
            "unknown: multi-code sets)"
            if statuses
            else "not derived (no current edition)"
        ),
        "trained as:         "
        + (
            f"{trained.get('current', 0)} current, {trained.get('remapped', 0)} remapped "
            f"(as their successor), {trained.get('split', 0) + trained.get('moved', 0)} "
            f"split or moved (partial labels: any code of the set is right)"
            if trained
            else "?"
        ),
        f"model:              {champion.version if champion else 'none'}"
        + (f" (test top-1 accuracy {accuracy:.3f})" if accuracy is not None else "")
        + (
            "  [trained this run]"
            if train.get("trained")
            else f"  [not retrained: {train.get('reason')}]"
        ),
        _accuracy_line(metrics),
        (
            f"requests scored:    {n_scored} "
            f"({summary.get('score', {}).get('scored', 0)} this run, {results['pending']} pending, "
            f"{results['rejected']} rejected)"
        ),
        f"flagged for review: {flagged}"
        + (f" (review rate {flagged / n_scored:.0%})" if n_scored else ""),
        f"confidence:         {_spread([float(r['score']) for r in top])}",
        "by request:",
        *_by_kind(top, truth),
        "flagged, for example:" if flagged else "flagged: none",
        *_flagged_examples(top, truth),
        (
            f"reviewer decided:   {decided['recorded']} new, {decided['unchanged']} unchanged"
            + (f", {decided['refused']} refused" if decided["refused"] else "")
            + " (hscode.decisions, as decide() in SQL; the next training learns them)"
        ),
        *live,
        f"took {elapsed:.0f} s",
        "",
        "query the results:",
        f'  psql "{uri}" -c "select * from latest_predictions order by request_id, rank limit 20"',
        (
            f'  psql "{uri}" -c "select request_id, title, top_hs10, confidence, review_reason '
            'from review_queue order by confidence"'
        ),
    ]
    print("\n".join(lines), flush=True)
    return {
        "summary": summary,
        "results": results,
        "truth": {k: v.kind for k, v in truth.items()},
        "psql_uri": uri,
        "elapsed_s": elapsed,
    }


_STATUSES = ("current", "remapped", "split", "moved", "unknown")


def _accuracy_line(metrics: dict[str, Any]) -> str:
    """The evaluated model on its test cases: top-1 / top-3, and the split cases apart."""
    if metrics.get("test_top1") is None:
        return "test accuracy:      ?"
    line = (
        f"test accuracy:      top-1 {metrics['test_top1']:.3f}, "
        f"top-3 {metrics.get('test_top3', float('nan')):.3f} "
        f"on {metrics.get('n_test', '?')} test cases, {metrics.get('n_classes', '?')} codes"
    )
    if metrics.get("test_partial_n"):
        line += (
            f"; of them {metrics['test_partial_n']} split or moved, top-1 in the set "
            f"{metrics.get('test_partial_top1', float('nan')):.3f}"
        )
    return line


def _short(value: Any) -> str:
    from hscode.summaries import jsonable

    data = jsonable(value)
    if isinstance(data, dict):
        return ", ".join(f"{k}={v}" for k, v in data.items() if isinstance(v, (int, float, str)))
    return str(data)
