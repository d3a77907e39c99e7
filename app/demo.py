"""``hscode demo``: the whole nightly pipeline on this machine, end to end, in a few minutes.

Starts the portal emulator with the deterministic demo corpus (a few hundred cases over
about ten codes, drawn product images) at a small fault rate, seeds a backlog of demo
requests into Postgres (embedded by default), loads the tariff names of the demo codes,
runs the ``nightly`` Prefect flow against the emulator, then prints a summary and the
query that shows the results. Re-running it is safe: crawling resumes, cases and
requests are keyed, training is skipped when nothing changed, scoring is idempotent.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from hscode.settings import Settings, get_settings

log = logging.getLogger("hscode.demo")  # the name it logged under in hscode/

DEMO_FAULT_RATE = 0.02
# Our own emulator on 127.0.0.1: no need for the real portal's 1 request/second.
DEMO_REQUEST_RATE = 20.0
DEMO_SETTINGS = {
    "request_rate": DEMO_REQUEST_RATE,
    "backoff_base_s": 0.2,
    "backoff_max_s": 2.0,
    "request_timeout_s": 10.0,
}
# Small but real training: the point of the demo is the pipeline, not the last percent.
DEMO_EPOCHS = 6
DEMO_CORPUS_SEED = 0
DEMO_REQUEST_SEED = 7919  # a different seed: same product families, unseen titles


def demo_requests(
    n_requests: int, seen_titles: set[str], seed: int = DEMO_REQUEST_SEED
) -> list[dict[str, Any]]:
    """Requests generated like the corpus but absent from it (titles never crawled)."""
    from emulator.corpus import demo_corpus
    from hscode.hs import parse_hs

    rows: list[dict[str, Any]] = []
    pool = demo_corpus(n_cases=max(4 * n_requests, 20), seed=seed)
    for case in pool:
        # multi-code demo cases are sets of two products: not a fair single request
        if case.title in seen_titles or parse_hs(case.hs_code).hs10 is None:
            continue
        rows.append(
            {
                "request_id": f"demo-{len(rows) + 1:04d}",
                "title": case.title,
                "description": case.description,
                "image": case.images[0] if case.images else None,
            }
        )
        if len(rows) == n_requests:
            break
    return rows


def demo_tariff_rows() -> list[dict[str, Any]]:
    """Tariff names of the demo codes, as the emulator's products describe them."""
    from emulator.corpus import PRODUCTS
    from hscode.hs import parse_hs

    rows = []
    for product in PRODUCTS:
        code = parse_hs(product.hs)
        if code.hs10:
            rows.append(
                {"hs10": code.hs10, "name_ko": product.heading_text, "name_en": product.names_en[0]}
            )
    return rows


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
        pending = conn.execute(
            text("select count(*) from requests where status = 'pending'")
        ).scalar()
    return {
        "requests_with_predictions": int(row.requests),
        "flagged_for_review": int(row.flagged),
        "pending": pending,
    }


def run_demo(
    data_dir: Path | None = None,
    n_cases: int = 300,
    n_requests: int = 50,
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
    from hscode.tariff import load_tariff_rows

    started = time.monotonic()
    settings = get_settings(**({"data_dir": data_dir} if data_dir is not None else {}))
    overrides: dict[str, Any] = {"data_dir": str(settings.data_dir.resolve()), **DEMO_SETTINGS}
    settings = get_settings(**overrides)
    corpus = demo_corpus(n_cases=n_cases, seed=DEMO_CORPUS_SEED)
    dates = [c.decision_date for c in corpus]
    print(f"demo data dir: {settings.data_dir}")

    engine = get_engine(settings)
    migrate(engine)
    backlog = demo_requests(n_requests, {c.title for c in corpus})
    submitted = submit_requests(engine, backlog)
    # the demo codes are today's tariff: statuses are derived and answers checked against it
    tariff = load_tariff_rows(engine, demo_tariff_rows(), "demo-2026", current=True)
    print(
        f"backlog: {len(backlog)} demo requests submitted ({_short(submitted)}); tariff: {_short(tariff)}"
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
            train_overrides=train_overrides,
            settings_overrides=overrides,
        )
        emulator_stats = emulator.stats

    results = _query_results(settings)
    from flows._common import champion_info

    champion = champion_info(settings)
    train = summary.get("train") or {}
    crawl = summary.get("crawl") or {}
    uri = psql_uri(settings)
    elapsed = time.monotonic() - started
    accuracy = (train.get("metrics") or (champion.metrics if champion else {})).get("test_top1")
    lines = [
        "",
        "=== hscode demo ===",
        (
            f"cases crawled:      {crawl.get('details_fetched', '?')} (emulator served "
            f"{sum(emulator_stats['requests'].values())} requests, "
            f"{sum(emulator_stats['faults'].values())} injected faults)"
        ),
        f"cases in dataset:   {summary.get('normalize', {}).get('trainable_cases', '?')} with a 10-digit code",
        f"model:              {champion.version if champion else 'none'}"
        + (f" (test top-1 accuracy {accuracy:.3f})" if accuracy is not None else "")
        + (
            "  [trained this run]"
            if train.get("trained")
            else f"  [not retrained: {train.get('reason')}]"
        ),
        (
            f"requests scored:    {results['requests_with_predictions']} "
            f"({summary.get('score', {}).get('scored', 0)} this run, {results['pending']} pending)"
        ),
        f"flagged for review: {results['flagged_for_review']}",
        f"took {elapsed:.0f} s",
        "",
        "query the results:",
        f'  psql "{uri}" -c "select * from latest_predictions order by request_id, rank limit 20"',
    ]
    print("\n".join(lines), flush=True)
    return {"summary": summary, "results": results, "psql_uri": uri, "elapsed_s": elapsed}


def _short(value: Any) -> str:
    from hscode.summaries import jsonable

    data = jsonable(value)
    if isinstance(data, dict):
        return ", ".join(f"{k}={v}" for k, v in data.items() if isinstance(v, (int, float, str)))
    return str(data)
