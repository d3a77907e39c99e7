"""Benchmark: a warm-started night against the same night from scratch (issue 18), via the CLI.

    python -m benchmarks.bench_warm --k 100 --seeds 1 --threads 2 \\
        --train-args "--epochs 6 --hidden 128 --batch-size 128"

Per seed, on the real ghko99 names:

1. a seeded share of the name groups is held out (``--holdout``; never imported, the
   requests); the rest is split at random into the cases known before the night and
   ``--new-share`` of new ones;
2. the known cases are imported and ``hscode train --top-codes K`` trains the champion (a
   full run: the first in the data dir);
3. the new cases are imported; the data dir is copied once per arm and each arm trains the
   night from the same champion:
   - ``warm``: ``hscode train --warm`` (the light recipe: the main network continues the
     champion's for ``warm_epochs``);
   - ``cold``: ``hscode train --no-warm`` (the same light recipe, its network from scratch);
   - ``full`` (with ``--full-arm``): ``hscode train --full`` (every member, from scratch);
   every arm with ``--promotion-margin 1`` so that each is refitted and served alike;
4. each arm's served model ranks the held-out names of the K codes through ``hscode
   predict --model VERSION``: top-1 / top-3 and the paired bootstrap of warm minus each
   other arm, with each training's wall time and peak memory.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_cli import (
    RANK_DEPTH,
    holdout_split,
    load_source,
    paired_bootstrap,
    parse_train,
    read_predictions,
    read_selection,
    run_cli,
    write_inputs,
)
from benchmarks.common import OUT_DIR, log, markdown_table

ARMS = {"warm": ["--warm"], "cold": ["--no-warm"], "full": ["--full"]}


def run_seed(args: argparse.Namespace, seed: int, work: Path) -> dict[str, Any]:
    source = load_source()
    imported, held = holdout_split(source["name"].tolist(), args.holdout, seed)
    order = np.array(imported)
    random.Random(seed).shuffle(order)
    n_new = round(args.new_share * len(order))
    known, new = np.sort(order[n_new:]), np.sort(order[:n_new])
    folder = work / f"seed{seed}"
    known_csv, held_csv = write_inputs(source, known, held, folder / "known")
    new_csv, _ = write_inputs(source, new, held, folder / "new")
    base = folder / "base"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    columns = ["--columns", "hs_code=hscode,title=name"]
    train_argv = ["train", "--top-codes", str(args.k), "--inputs", "title"]
    train_argv += [*shlex.split(args.train_args), "--promotion-margin", "1"]

    def cli(data_dir: Path, name: str, argv: list[str]):
        return run_cli(argv, data_dir, seed, args.threads, folder / f"{name}.log")

    log(f"seed {seed}: {len(known)} known cases, {len(new)} new, {len(held)} held out")
    cli(base, "import_known", ["cases", "import", str(known_csv), *columns])
    champion = cli(base, "train_champion", train_argv)
    log(
        f"seed {seed}: champion {parse_train(champion.stdout)['version']} in {champion.seconds:.0f} s"
    )
    cli(base, "import_new", ["cases", "import", str(new_csv), *columns])
    sel = read_selection(base, args.k, 10)
    truth = source["hs10"].iloc[held].tolist()
    in_k = np.flatnonzero([t in set(sel.codes) for t in truth])
    ids = [f"h{held[i]}" for i in in_k]
    arms = ["warm", "cold", *(["full"] if args.full_arm else [])]
    result: dict[str, Any] = {
        "seed": seed,
        "k": args.k,
        "known": len(known),
        "new": len(new),
        "held_in_k": len(in_k),
        "classes": len(sel.codes),
        "arms": {},
    }
    hits: dict[str, dict[int, np.ndarray]] = {}
    for arm in arms:
        data_dir = folder / arm
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.copytree(base, data_dir)
        run = cli(data_dir, f"train_{arm}", [*train_argv, *ARMS[arm]])
        trained = parse_train(run.stdout)
        recipe = next((ln for ln in run.stdout.splitlines() if ln.startswith("recipe:")), "")
        out_csv = folder / f"predictions_{arm}.csv"
        argv = ["predict", "--input", str(held_csv), "--output", str(out_csv)]
        cli(
            data_dir,
            f"predict_{arm}",
            [*argv, "--top-k", str(RANK_DEPTH), "--model", trained["version"]],
        )
        ranked = read_predictions(out_csv)
        rankings = [ranked.get(rid, []) for rid in ids]
        hits[arm] = {
            k: np.array([truth[i] in r[:k] for i, r in zip(in_k, rankings, strict=True)])
            for k in (1, 3)
        }
        result["arms"][arm] = {
            "version": trained["version"],
            "train_seconds": run.seconds,
            "peak_mb": run.peak_mb,
            "recipe": recipe.strip(),
            "test_top1": trained["metrics"].get("test_top1"),
            "top1": float(hits[arm][1].mean()),
            "top3": float(hits[arm][3].mean()),
        }
        log(f"seed {seed} {arm}: {result['arms'][arm]}")
        if not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
    result["warm_minus"] = {
        arm: {
            f"top{k}": paired_bootstrap(
                hits["warm"][k].astype(float), hits[arm][k].astype(float), args.bootstrap, seed
            )
            for k in (1, 3)
        }
        for arm in arms
        if arm != "warm"
    }
    return result


def to_markdown(report: dict[str, Any]) -> str:
    rows = []
    for r in report["results"]:
        for arm, a in r["arms"].items():
            diff = r["warm_minus"].get(arm, {}).get("top1")
            rows.append(
                [
                    r["seed"],
                    arm,
                    f"{a['train_seconds']:.0f}",
                    f"{a['peak_mb']:,.0f}",
                    f"{100 * a['top1']:.2f}",
                    f"{100 * a['top3']:.2f}",
                    "-"
                    if diff is None
                    else f"{100 * diff['mean']:+.2f} [{100 * diff['lo']:+.2f}, {100 * diff['hi']:+.2f}]",
                ]
            )
    header = ["seed", "arm", "train s", "peak MB", "top-1", "top-3", "warm - arm, top-1"]
    return f"# bench_warm\n\nCommand: `{report['command']}`\n\n{markdown_table(header, rows)}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--k", type=int, default=100, help="hscode train --top-codes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--holdout", type=float, default=0.2, help="share of name groups held out")
    parser.add_argument("--new-share", type=float, default=0.1, help="share of cases new tonight")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-args", default="", help="more `hscode train` arguments")
    parser.add_argument("--full-arm", action="store_true", help="also train `--full` from scratch")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--keep-data", action="store_true", help="keep each arm's data dir")
    parser.add_argument("--work-dir", type=Path, default=OUT_DIR / "bench_warm")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "bench_warm.json")
    args = parser.parse_args(argv)
    raw = sys.argv[1:] if argv is None else argv
    report: dict[str, Any] = {
        "command": shlex.join(["python", "-m", "benchmarks.bench_warm", *raw]),
        "machine": f"{platform.machine()}, {platform.python_version()}; threads {args.threads}",
        "results": [],
    }
    t0 = time.perf_counter()
    for seed in args.seeds:
        report["results"].append(run_seed(args, seed, args.work_dir))
        report["total_seconds"] = time.perf_counter() - t0
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False, default=float))
    md = to_markdown(report)
    args.out.with_suffix(".md").write_text(md)
    print(md, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
