"""Crawl + normalize benchmark: the 982 real 2024 cases served by the emulator at 20% faults.

    python -m benchmarks.bench_crawl [--fault-rate 0.2] [--rate 50] [--seed 7] [--demo N]

Reports requests per case, crawl overhead per case (parsing and storing answers; the
politeness waits, the time on the wire and the emulator's own time excluded) and
normalize throughput (cases/s; cold run, no-change re-run, forced full re-parse). It
also checks the result: every served case in Parquet once with its full description,
or rejected with a reason. Falls back to the generated demo corpus (with images) when
/work/shared/data is absent, or with ``--demo N``. Results go to
``benchmarks/out/bench_crawl.json``.

The request rate is raised for the local emulator (the real portal gets the default
1 request/s); Retry-After (1 s from the emulator) is honoured as always.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import OUT_DIR, SHARED_DATA
from emulator.corpus import Corpus, demo_corpus, kcs_corpus
from emulator.server import LIST_CUT, EmulatorServer
from hscode.cases import read_cases
from hscode.crawl import crawl
from hscode.normalize import normalize
from hscode.rejects import read_rejects
from hscode.settings import Settings
from hscode.text import clean_text

KCS = SHARED_DATA / "kcs_hs_chatbot"


def check(settings: Settings, corpus: Corpus) -> dict[str, Any]:
    table = read_cases(settings, columns=["case_key", "description_raw", "hs10"])
    keys = table["case_key"].to_pylist()
    served = {c.rrdc_no: c for c in corpus}
    rejects = {r.key: r.reason for r in read_rejects(settings) if r.source == "clip"}
    descs = dict(zip(keys, table["description_raw"].to_pylist(), strict=True))
    truncated = [
        k
        for k, d in descs.items()
        if (d or "") != served[k].description.replace("\r\n", "\n").strip()
    ]
    unexplained = [
        k
        for k, why in rejects.items()
        if not (
            (why == "empty_title" and not clean_text(served[k].title))
            or (why == "empty_hs_code" and not re.search(r"\d", served[k].hs_code))
        )
    ]
    return {
        "served": len(served),
        "in_parquet": len(keys),
        "duplicates": len(keys) - len(set(keys)),
        "rejected": len(rejects),
        "reject_reasons": {
            r: list(rejects.values()).count(r) for r in sorted(set(rejects.values()))
        },
        "missing": len(set(served) - set(keys) - set(rejects)),
        "unexpected": len(set(keys) - set(served)),
        "descriptions_not_full": len(truncated),
        "descriptions_longer_than_list_cut": sum(len(d or "") > LIST_CUT for d in descs.values()),
        "unexplained_rejects": unexplained,
        "trainable": len(keys) - table["hs10"].null_count,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--rate", type=float, default=50.0, help="requests/s to the emulator")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--demo", type=int, default=0, help="serve N demo cases instead")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)

    if args.demo or not (KCS / "HS분류사례.json").is_file():
        corpus = demo_corpus(args.demo or 982, seed=args.seed)
    else:
        corpus = kcs_corpus(KCS)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-crawl-"))
    years = sorted({c.decision_date.year for c in corpus})
    since, until = dt.date(years[0], 1, 1), dt.date(years[-1], 12, 31)

    with EmulatorServer(corpus, fault_rate=args.fault_rate, seed=args.seed, slow_s=2.0) as emu:
        settings = Settings(
            data_dir=data_dir,
            portal_url=emu.url,
            request_rate=args.rate,
            request_timeout_s=1.0,  # the "slow" fault answers after 2 s: a timeout
            backoff_base_s=0.1,
            backoff_max_s=2.0,
            _env_file=None,
        )
        t0 = time.perf_counter()
        summary = crawl(settings, since, until)
        crawl_wall = time.perf_counter() - t0
        emu_stats = emu.stats

    n = len(corpus)
    overhead = summary.parse_s + summary.store_s
    waits = summary.rate_wait_s + summary.backoff_wait_s

    runs: dict[str, Any] = {}
    for label, full in (("cold", False), ("rerun_no_change", False), ("full_reparse", True)):
        t0 = time.perf_counter()
        report = normalize(settings, full=full)
        secs = time.perf_counter() - t0
        runs[label] = {
            "seconds": round(secs, 3),
            "cases_per_s": round(report.details_seen / secs, 1),
            "new": report.new_cases,
            "updated": report.updated_cases,
            "unchanged": report.unchanged_cases,
            "skipped_unchanged": report.skipped_unchanged,
            "rejected": report.rejected,
            "total_cases": report.total_cases,
        }
    result = {
        "corpus": corpus.name,
        "cases_served": n,
        "fault_rate": args.fault_rate,
        "request_rate": args.rate,
        "machine": f"{platform.node()} ({platform.machine()})",
        "crawl": {
            "ok": summary.ok,
            "failures": [f"{f.series} {f.kind} {f.key}: {f.reason}" for f in summary.failures],
            "wall_s": round(crawl_wall, 2),
            "requests": summary.requests,
            "requests_per_case": round(summary.requests / n, 3),
            "retries": summary.retries,
            "faults_seen": summary.faults_seen,
            "emulator_requests": dict(emu_stats["requests"]),
            "emulator_faults": dict(emu_stats["faults"]),
            "details_fetched": summary.details_fetched,
            "images_fetched": summary.images_fetched,
            "overhead_ms_per_case": round(1000 * overhead / n, 3),
            "parse_ms_per_case": round(1000 * summary.parse_s / n, 3),
            "store_ms_per_case": round(1000 * summary.store_s / n, 3),
            "politeness_wait_s": round(waits, 2),
            "rate_wait_s": round(summary.rate_wait_s, 2),
            "backoff_wait_s": round(summary.backoff_wait_s, 2),
            "http_s": round(summary.http_s, 2),
        },
        "normalize": runs,
        "check": check(settings, corpus),
        "data_dir": str(data_dir),
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "bench_crawl.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))

    c = result["crawl"]
    print(f"corpus {result['corpus']}: {n} cases, fault rate {args.fault_rate}, {args.rate} req/s")
    print(
        f"crawl: ok={c['ok']} {c['requests']} requests = {c['requests_per_case']} per case "
        f"({c['faults_seen']} faults, {c['retries']} retries); wall {c['wall_s']} s, of which "
        f"politeness waits {c['politeness_wait_s']} s, on the wire {c['http_s']} s"
    )
    print(
        f"crawl overhead per case (parse+store): {c['overhead_ms_per_case']} ms "
        f"(parse {c['parse_ms_per_case']} ms, store {c['store_ms_per_case']} ms)"
    )
    for label, r in runs.items():
        print(f"normalize {label}: {r['seconds']} s = {r['cases_per_s']} cases/s ({r})")
    print(f"check: {result['check']}")
    return result


if __name__ == "__main__":
    main()
