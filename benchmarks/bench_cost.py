"""Benchmark: what a retrain costs as the corpus grows (issue 18), through the CLI.

    python -m benchmarks.bench_cost --sizes 10000 30000 100000 --threads 2

Per size N: a corpus of N cases is written as a CSV and run through the path the nightly
retrain takes, in a fresh ``HSCODE_DATA_DIR`` (``bench_cli.run_cli``: a clean environment,
torch/BLAS limited to --threads threads):

    hscode cases import corpus.csv --columns hs_code=hscode,title=name
    hscode train --inputs title [--top-codes K] [--train-args ...]

The corpus: the real ghko99 names (34,114 rows) in a seeded order; beyond them, real names
repeated with a light perturbation (one of: a token dropped, two neighbouring tokens swapped,
a token repeated, a model-number-like token appended, the case changed), each with its
source's code. **The larger sizes are thus not new goods**: they cost what new rows cost, but
add less to learn than real new rulings would.

Reported per size: the import's and the training's wall time and peak resident memory
(``wait4``: the child's own), and the training's stages as the served model records them
(``history``: fastText embeddings, the main network, each member's fit, scoring validation,
the mixture and calibration, the familiarity model; the refit's network, each member and the
precedent index), plus the tokenisation of the corpus timed apart in this process (the
trainer tokenises inside the embedding and network stages). Writes --out (JSON) and a Markdown
table beside it.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.bench_cli import parse_train, run_cli
from benchmarks.common import GHKO99_CSV, OUT_DIR, log, markdown_table
from model.config import MemberName

_NUMBER_TAIL = "ABCDEFGHJKLMNPRSTUVWXYZ"


def perturb(name: str, rng: random.Random) -> str:
    """A light, seeded variation of a real name (the larger corpora's extra rows)."""
    tokens = name.split()
    kind = rng.randrange(5)
    if kind == 0 and len(tokens) > 1:
        del tokens[rng.randrange(len(tokens))]
    elif kind == 1 and len(tokens) > 1:
        i = rng.randrange(len(tokens) - 1)
        tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
    elif kind == 2 and tokens:
        i = rng.randrange(len(tokens))
        tokens.insert(i, tokens[i])
    elif kind == 3:
        letters = "".join(rng.choice(_NUMBER_TAIL) for _ in range(2))
        tokens.append(f"{letters}-{rng.randrange(100, 9999)}")
    else:
        return name.upper() if rng.random() < 0.5 else name.lower()
    return " ".join(tokens) or name


def corpus(size: int, seed: int, source: Path = GHKO99_CSV) -> tuple[pd.DataFrame, int]:
    """(``size`` rows of ``hscode,name``, how many of them are real rows)."""
    frame = pd.read_csv(source, dtype=str)[["hscode", "name"]].dropna()
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    real = min(size, len(frame))
    rows = frame.iloc[:real]
    if size <= real:
        return rows, real
    rng = random.Random(seed)
    picks = [rng.randrange(len(frame)) for _ in range(size - real)]
    extra = frame.iloc[picks].copy()
    extra["name"] = [perturb(n, rng) for n in extra["name"]]
    return pd.concat([rows, extra], ignore_index=True), real


def stages(history: dict[str, Any]) -> dict[str, float]:
    """The training's stages in seconds, from the served model's history."""
    timings = history.get("timings") or {}
    ensemble = (history.get("ensemble") or {}).get("seconds") or {}
    companion = (history.get("companion") or {}).get("timings") or {}
    refit = (history.get("refit") or {}).get("timings") or {}
    out: dict[str, float] = {
        "embeddings": timings.get("embeddings_s", 0.0),
        "main network": timings.get("train_s", 0.0),
        "familiarity": timings.get("familiarity_s", 0.0),
    }
    for name, seconds in ensemble.items():
        member = name in {m.value for m in MemberName}
        out[f"member {name}" if member else name.replace("_", " ")] = seconds
    if companion:
        out["of which companion embeddings"] = companion.get("embeddings_s", 0.0)
    out["evaluated fit, total"] = timings.get("total_s", 0.0)
    out["refit: network"] = refit.get("network_s", 0.0)
    for name, seconds in (refit.get("member_s") or {}).items():
        out[f"refit: member {name}"] = seconds
    out["refit: precedent index"] = refit.get("precedents_s", 0.0)
    out["refit, total"] = refit.get("total_s", 0.0)
    return out


def tokenise_seconds(names: list[str]) -> float:
    from model.tokenize import Tokenizer

    tokenizer = Tokenizer()
    tokenizer.tokenize_many(names[:100])  # the analyser's start-up is not the corpus's cost
    t0 = time.perf_counter()
    tokenizer.tokenize_many(names)
    return time.perf_counter() - t0


def run_size(args: argparse.Namespace, size: int) -> dict[str, Any]:
    from hscode.registry import Registry
    from hscode.settings import Settings

    folder = args.work_dir / f"n{size}"
    data_dir = folder / "data"
    folder.mkdir(parents=True, exist_ok=True)
    rows, real = corpus(size, args.seed)
    csv_path = folder / "corpus.csv"
    rows.to_csv(csv_path, index=False)
    log(f"N={size}: {real} real rows, {size - real} perturbed repeats")
    imp = run_cli(
        ["cases", "import", str(csv_path), "--columns", "hs_code=hscode,title=name"],
        data_dir, args.seed, args.threads, folder / "import.log",
    )  # fmt: skip
    train_argv = ["train", "--inputs", "title"]
    if args.top_codes:
        train_argv += ["--top-codes", str(args.top_codes)]
    train = run_cli(
        [*train_argv, *shlex.split(args.train_args)],
        data_dir, args.seed, args.threads, folder / "train.log",
    )  # fmt: skip
    trained = parse_train(train.stdout)
    registry = Registry.from_settings(Settings(data_dir=data_dir, _env_file=None))
    manifest = json.loads((registry.model_dir(trained["version"]) / "model.json").read_text())
    history = manifest.get("history") or {}
    result = {
        "size": size,
        "real_rows": real,
        "import": {"seconds": imp.seconds, "peak_mb": imp.peak_mb},
        "train": {"seconds": train.seconds, "peak_mb": train.peak_mb},
        "tokenise_s": tokenise_seconds(rows["name"].tolist()),
        "stages": stages(history),
        "n_train": history.get("n_train"),
        "labels": history.get("labels"),
        "metrics": trained["metrics"],
        "recipe": registry.get(trained["version"]).info.get("recipe"),
    }
    log(f"N={size}: train {train.seconds:.0f} s, peak {train.peak_mb:.0f} MB")
    return result


def to_markdown(report: dict[str, Any]) -> str:
    results = report["results"]
    header = ["stage (seconds)", *(f"N = {r['size']:,}" for r in results)]
    names: list[str] = []
    for r in results:
        names += [n for n in r["stages"] if n not in names]
    rows = [
        ["cases (real rows)", *(f"{r['size']:,} ({r['real_rows']:,})" for r in results)],
        ["classes trained", *(str(r["labels"]) for r in results)],
        ["`hscode cases import`", *(f"{r['import']['seconds']:.1f}" for r in results)],
        ["tokenise the corpus (apart)", *(f"{r['tokenise_s']:.1f}" for r in results)],
        *([n, *(f"{r['stages'].get(n, 0.0):.1f}" for r in results)] for n in names),
        [
            "the rest (reading and selecting cases, evaluation, registry, report)",
            *(
                f"{r['train']['seconds'] - r['stages']['evaluated fit, total'] - r['stages']['refit, total']:.1f}"
                for r in results
            ),
        ],
        ["**`hscode train`, wall**", *(f"**{r['train']['seconds']:.0f}**" for r in results)],
        ["peak memory of `hscode train`, MB", *(f"{r['train']['peak_mb']:.0f}" for r in results)],
        ["test top-1", *(str(r["metrics"].get("test_top1", "")) for r in results)],
    ]
    return (
        f"# bench_cost\n\nCommand: `{report['command']}`\n\nMachine: {report['machine']}; "
        f"threads {report['args']['threads']}.\n\n{markdown_table(header, rows)}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument("--top-codes", type=int, default=None, help="hscode train --top-codes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--train-args", default="", help="more `hscode train` arguments")
    parser.add_argument("--work-dir", type=Path, default=OUT_DIR / "bench_cost")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "bench_cost.json")
    args = parser.parse_args(argv)
    results = [run_size(args, n) for n in args.sizes]
    report = {
        "command": shlex.join(["python", "-m", "benchmarks.bench_cost", *(argv or sys.argv[1:])]),
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "args": {k: str(v) for k, v in vars(args).items()},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    markdown = to_markdown(report)
    args.out.with_suffix(".md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
