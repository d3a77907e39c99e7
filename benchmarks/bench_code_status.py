"""Re-deriving every case's code status against the current tariff (issue 14).

    python -m benchmarks.bench_code_status --n 100000

1. the current edition: ../shared/data/arang0105_hskcodechecker/hsk_codes.csv (11,327
   ten-digit codes) with the six-digit correlations of
   ../shared/data/hs_correlations/hs2022_correlations.csv;
2. ``n`` cases: the real ghko99 names and codes (34,114), repeated under new keys to reach
   ``n`` (said so in the output), decided over 2015-2024 (ten partitions), written with
   ``upsert_cases`` into a temporary cases dataset;
3. ``code_statuses`` alone on the ``n`` codes, then ``restatus_cases`` end to end (read every
   partition, derive, write) twice: the first derives every case, the second finds nothing
   to do.

Writes benchmarks/out/bench_code_status.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import OUT_DIR, SHARED_DATA, log
from hscode.case_records import make_case
from hscode.cases import restatus_cases, upsert_cases
from hscode.code_status import CurrentTariff, code_statuses
from hscode.settings import Settings


def load_tariff() -> CurrentTariff:
    return CurrentTariff.from_files(
        "hsk-2026",
        SHARED_DATA / "arang0105_hskcodechecker" / "hsk_codes.csv",
        SHARED_DATA / "hs_correlations" / "hs2022_correlations.csv",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=OUT_DIR / "bench_code_status.json")
    args = parser.parse_args(argv)
    tariff = load_tariff()
    with (SHARED_DATA / "ghko99_hscode" / "dataset.csv").open(encoding="utf-8") as f:
        names = [(r["name"], r["hscode"].strip().zfill(10)) for r in csv.DictReader(f)]
    repeats = -(-args.n // len(names))
    log(f"{len(names)} real names, repeated x{repeats} under new keys to {args.n} cases")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "var", _env_file=None)
        records = (
            make_case(
                case_key=f"n{i}",
                source="import:bench",
                title_raw=names[i % len(names)][0] or "name",
                hs_raw=names[i % len(names)][1],
                decision_date=f"{2015 + i % 10}-06-01",
            )
            for i in range(args.n)
        )
        t = time.perf_counter()
        upsert_cases(settings, records)
        build_s = time.perf_counter() - t
        codes = [names[i % len(names)][1] for i in range(args.n)]
        t = time.perf_counter()
        code_statuses(codes, tariff)
        derive_s = time.perf_counter() - t
        t = time.perf_counter()
        first = restatus_cases(settings, tariff)
        first_s = time.perf_counter() - t
        t = time.perf_counter()
        second = restatus_cases(settings, tariff)
        second_s = time.perf_counter() - t
    result = {
        "command": " ".join(["python -m benchmarks.bench_code_status", *(argv or sys.argv[1:])]),
        "cases": args.n,
        "real_names": len(names),
        "dataset_build_s": round(build_s, 2),
        "derive_only_s": round(derive_s, 3),
        "restatus_first_s": round(first_s, 2),
        "restatus_first_derived": first.derived,
        "restatus_again_s": round(second_s, 2),
        "restatus_again_derived": second.derived,
        "by_status": first.by_status,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    log(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
