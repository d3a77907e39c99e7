"""Benchmark: what a retrain costs as the corpus grows (issue 18), through the CLI.

    python -m benchmarks.bench_cost --sizes 10000 30000 100000 --threads 2

Per size N: a corpus of N cases is written as a CSV and run through the path the nightly
retrain takes, in a fresh ``HSCODE_DATA_DIR`` (``bench_cli.run_cli``: a clean environment,
torch/BLAS limited to --threads threads):

    hscode cases import corpus.csv --columns hs_code=hscode,title=name
    hscode train --inputs title [--top-codes K] [--train-args ...]

With ``--nights M`` each size then has M - 1 more nights in the same data dir: import the
corpus' next ``--new-share`` x N rows (default 1%), train again. A later night trains what
the champion's recipe calls for (the light recipe leaves out the members the last full run
weighed 0; ``--train-args "--warm"`` continues the champion's network; ``--warm-last`` passes
``--warm`` to the last night only, so night 2 and night 3 compare a light night from scratch
with a warm one).

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
import shutil
import sys
import time
from collections.abc import Sequence
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
        "image pre-training": timings.get("pretrain_s", 0.0),
        "image fine-tuning": timings.get("finetune_s", 0.0),
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


def run_corpus(
    args: argparse.Namespace,
    label: str,
    folder: Path,
    csv_path: Path,
    inputs: str,
    import_args: Sequence[str] = (),
) -> dict[str, Any]:
    """``hscode cases import CSV`` and ``hscode train --inputs INPUTS`` in a fresh data dir
    under ``folder``; their cost and the training's stages."""
    data_dir = data_dir_of(folder, inputs)
    shutil.rmtree(data_dir, ignore_errors=True)
    return night(args, label, data_dir, folder, csv_path, inputs, import_args)


def data_dir_of(folder: Path, inputs: str) -> Path:
    """The data dir of a corpus' nights under ``folder``, one per inputs."""
    return folder / f"data-{inputs.replace('+', '-')}"


def night(
    args: argparse.Namespace,
    label: str,
    data_dir: Path,
    folder: Path,
    csv_path: Path,
    inputs: str,
    import_args: Sequence[str] = (),
    tag: str = "",
) -> dict[str, Any]:
    """One night in ``data_dir``: import ``csv_path``, train; their cost and the stages."""
    from hscode.registry import Registry
    from hscode.settings import Settings

    imp = run_cli(
        ["cases", "import", str(csv_path), *import_args],
        data_dir, args.seed, args.threads, folder / f"import-{inputs}{tag}.log",
    )  # fmt: skip
    train_argv = ["train", "--inputs", inputs]
    if args.top_codes:
        train_argv += ["--top-codes", str(args.top_codes)]
    train = run_cli(
        [*train_argv, *shlex.split(args.train_args)],
        data_dir, args.seed, args.threads, folder / f"train-{inputs}{tag}.log",
    )  # fmt: skip
    trained = parse_train(train.stdout)
    registry = Registry.from_settings(Settings(data_dir=data_dir, _env_file=None))
    manifest = json.loads((registry.model_dir(trained["version"]) / "model.json").read_text())
    history = manifest.get("history") or {}
    log(f"{label}: train {train.seconds:.0f} s, peak {train.peak_mb:.0f} MB")
    return {
        "label": label,
        "inputs": inputs,
        "import": {"seconds": imp.seconds, "peak_mb": imp.peak_mb},
        "train": {"seconds": train.seconds, "peak_mb": train.peak_mb},
        "stages": stages(history),
        "n_train": history.get("n_train"),
        "labels": history.get("labels"),
        "metrics": trained["metrics"],
        "promoted": trained["promoted"],
        "recipe": registry.get(trained["version"]).info.get("recipe"),
    }


def run_size(args: argparse.Namespace, size: int) -> list[dict[str, Any]]:
    """The first night on ``size`` cases, then ``--nights - 1`` more in the same data dir,
    each after importing ``--new-share`` of ``size`` new rows (the corpus' next rows)."""
    folder = args.work_dir / f"n{size}"
    folder.mkdir(parents=True, exist_ok=True)
    n_new = round(size * args.new_share)
    rows, real = corpus(size + n_new * (args.nights - 1), args.seed)
    csv_path = folder / "corpus.csv"
    rows.iloc[:size].to_csv(csv_path, index=False)
    log(f"N={size}: {min(real, size)} real rows, {max(size - real, 0)} perturbed repeats")
    columns = ["--columns", "hs_code=hscode,title=name"]
    first = run_corpus(args, f"N = {size:,}", folder, csv_path, "title", columns)
    results = [
        first
        | {
            "cases": f"{size:,} ({min(real, size):,} real)",
            "tokenise_s": tokenise_seconds(rows["name"].iloc[:size].tolist()),
        }
    ]
    for i in range(2, args.nights + 1):
        start = size + n_new * (i - 2)
        night_csv = folder / f"night{i}.csv"
        rows.iloc[start : start + n_new].to_csv(night_csv, index=False)
        warm = args.warm_last and i == args.nights and i > 2
        label = f"N = {size:,}, night {i} (+{n_new:,}{', --warm' if warm else ''})"
        night_args = (
            argparse.Namespace(**{**vars(args), "train_args": f"{args.train_args} --warm"})
            if warm
            else args
        )
        result = night(
            night_args, label, data_dir_of(folder, "title"), folder, night_csv, "title",
            columns, f"-night{i}",
        )  # fmt: skip
        results.append(result | {"cases": f"{size + n_new * (i - 1):,}"})
    return results


def kcs_csv(folder: Path) -> tuple[Path, int]:
    """The real 2024 rulings (kcs_hs_chatbot) with their descriptions, as an import file."""
    from benchmarks.bench_kcs import load_kcs

    rows = pd.DataFrame(load_kcs())
    frame = pd.DataFrame(
        {
            "case_id": rows["key"],
            "hs_code": rows["hs10"],
            "title": rows["title"],
            "description": rows["description"],
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "kcs.csv"
    frame.to_csv(path, index=False)
    return path, len(frame)


def fashion_csv(folder: Path, n: int, seed: int) -> tuple[Path, int]:
    """``n`` seeded fashion items with their photos (copied beside the file: the importer
    reads images inside the file's folder), each under its heading padded to ten digits:
    the codes are not real subheadings, so only the cost means something here."""
    from benchmarks.bench_images import FASHION, load_items

    items = load_items()
    random.Random(seed).shuffle(items)
    items = items[:n]
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    for item in items:
        shutil.copyfile(FASHION / item["image"], images / Path(item["image"]).name)
    frame = pd.DataFrame(
        {
            "case_id": [f"fashion-{it['id']}" for it in items],
            "hs_code": [f"{it['hs4']}000000" for it in items],
            "title": [it["productDisplayName"] for it in items],
            "image_path": [f"images/{Path(it['image']).name}" for it in items],
        }
    )
    path = folder / "fashion.csv"
    frame.to_csv(path, index=False)
    return path, len(frame)


def run_inputs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The inputs axis: the 2024 rulings by title and by title + description; fashion items
    by title and by title + photo."""
    out = []
    folder = args.work_dir / "kcs"
    path, n = kcs_csv(folder)
    for inputs in ("title", "title+description"):
        result = run_corpus(args, f"rulings, {inputs}", folder, path, inputs)
        out.append(result | {"cases": f"{n:,} rulings"})
    folder = args.work_dir / "fashion"
    path, n = fashion_csv(folder, args.fashion_items, args.seed)
    for inputs in ("title", "title+image"):
        result = run_corpus(args, f"fashion, {inputs}", folder, path, inputs)
        out.append(result | {"cases": f"{n:,} items with photos"})
    return out


def to_markdown(report: dict[str, Any]) -> str:
    results = report["results"]
    header = ["stage (seconds)", *(r["label"] for r in results)]
    names: list[str] = []
    for r in results:
        names += [n for n in r["stages"] if n not in names]

    def rest(r: dict[str, Any]) -> str:
        fit = r["stages"]["evaluated fit, total"] + r["stages"]["refit, total"]
        return f"{r['train']['seconds'] - fit:.1f}"

    rows = [
        ["cases", *(r["cases"] for r in results)],
        ["classes trained", *(str(r["labels"]) for r in results)],
        ["`hscode cases import`", *(f"{r['import']['seconds']:.1f}" for r in results)],
        ["tokenise the corpus (apart)", *(f"{r.get('tokenise_s', 0.0):.1f}" for r in results)],
        *([n, *(f"{r['stages'].get(n, 0.0):.1f}" for r in results)] for n in names),
        ["the rest (reading and selecting cases, evaluation, registry, report)"]
        + [rest(r) for r in results],
        ["**`hscode train`, wall**", *(f"**{r['train']['seconds']:.0f}**" for r in results)],
        ["peak memory of `hscode train`, MB", *(f"{r['train']['peak_mb']:.0f}" for r in results)],
        ["test top-1", *(str(r["metrics"].get("test_top1", "")) for r in results)],
        ["recipe", *((r.get("recipe") or {}).get("reason", "") for r in results)],
        ["promoted", *(str(r.get("promoted", "")) for r in results)],
    ]
    return (
        f"# bench_cost\n\nCommand: `{report['command']}`\n\nMachine: {report['machine']}; "
        f"threads {report['args']['threads']}.\n\n{markdown_table(header, rows)}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 30_000, 100_000])
    parser.add_argument(
        "--inputs-axis",
        action="store_true",
        help="also the inputs axis: rulings by title / title+description, fashion items by "
        "title / title+image",
    )
    parser.add_argument("--fashion-items", type=int, default=2000)
    parser.add_argument(
        "--nights",
        type=int,
        default=1,
        help="nights per size: the first trains from nothing, each later one in the same "
        "data dir after importing --new-share new rows (the recipe the champion calls for)",
    )
    parser.add_argument("--new-share", type=float, default=0.01, help="new rows per later night")
    parser.add_argument(
        "--warm-last",
        action="store_true",
        help="the last night (of three or more) also passes --warm: the light night before "
        "it from scratch, this one continuing the champion's network",
    )
    parser.add_argument("--top-codes", type=int, default=None, help="hscode train --top-codes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--train-args", default="", help="more `hscode train` arguments")
    parser.add_argument("--work-dir", type=Path, default=OUT_DIR / "bench_cost")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "bench_cost.json")
    args = parser.parse_args(argv)
    results = [r for n in args.sizes for r in run_size(args, n)]
    if args.inputs_axis:
        results += run_inputs(args)
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
