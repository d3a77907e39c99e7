"""Benchmark: the path users run (`hscode cases import` -> `train` -> `predict`) vs TF-IDF+SVM.

Data: ../shared/data/ghko99_hscode/dataset.csv (columns hscode,name; codes lost their leading
zero, so the truth is the code left-padded to 10 digits). Per seed in --seeds:

1. Hold out names: rows are grouped by normalised name (``hscode.text.title_key``: NFKC,
   casefold, whitespace collapsed; identical names are always on the same side) and a seeded
   ~``--holdout`` (20%) of the groups is held out (not stratified). The other rows, exactly as
   they are in the source file (unpadded codes included), are written to ``imported.csv``;
   the held-out names to ``held.csv`` as requests (``request_id,title``).
2. Product: for each K in --k (``all``: no ``--top-codes``), in a fresh ``HSCODE_DATA_DIR``
   (every other ``HSCODE_*`` variable removed, ``HSCODE_SEED`` = the seed, torch/BLAS limited
   to --threads threads), the real CLI runs as subprocesses, each timed:
       hscode cases import imported.csv --columns hs_code=hscode,title=name
       hscode train --top-codes K --inputs title [--train-args ...]
       hscode predict --input held.csv --output predictions.csv --top-k 10
       hscode predict --input held.csv --output predictions_hs6.csv --top-k 10 --digits 6
       hscode predict ... --digits 4   (the product's answer at 6 and 4 digits)
3. Peer: the imported cases are read back with ``hscode.cases.read_cases`` from that data
   dir and selected exactly as ``hscode.selection.load_examples`` does (one clean hs10 code, a
   non-empty title; the K most frequent codes, count desc then code, among codes with >= 3
   cases). A word 1-2-gram + char_wb 1-4-gram TF-IDF (sublinear tf, min_df 1) + LinearSVC
   (C 0.5) is fitted on all of those selected cases; codes ranked by decision_function.
   (The product trains on the same cases under its own protocol: internal split for
   validation/test, and whatever refit ``hscode train`` does; the peer has no such split.)
4. Evaluation on two sets of held-out names:
   - ``in-K``: held-out names whose code is one of the K selected codes;
   - ``all``: every held-out name (a code outside the model's classes is wrong at 10 digits,
     but may still be right at 6 or 4).
   Top-1 and top-3 at 10, 6 and 4 digits. The product's L-digit ranking is what
   ``hscode predict --digits L`` answers (prefixes by summed probability); the SVM's, which
   has no probabilities, is the order of first appearance of the L-digit prefixes in its
   10-digit top-10 (``product_first`` records the product ranked that way too). Product - SVM
   top-1 at each level with a 95% paired-bootstrap interval (--bootstrap resamples, seeded).
5. --peer-levels: the SVM also trained directly on the 6- and the 4-digit codes of the same
   cases (top-1/top-3 at that level), to see whether the 10-digit models lose anything there.

The product side only uses the CLI surface (``cases import``, ``train``, ``predict``) and the
cases reader, so it keeps measuring what users get while ``hscode train`` changes.

    python -m benchmarks.bench_cli --k 100 300 all --seeds 1 2 3 --train-args "--epochs 6"

prints a Markdown table per K and evaluation set (mean +- std over seeds) and writes every
per-seed number to --out (JSON, default var/bench/bench_cli.json) and the tables beside it (.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import GHKO99_CSV, ROOT, log, markdown_table, read_ghko99
from hscode.text import title_key

LEVELS = (10, 6, 4)  # digits at which every model is scored
TOPS = (1, 3)  # top-k accuracies reported
RANK_DEPTH = 10  # `hscode predict --top-k`: the 10-digit ranking the lower levels derive from
DEFAULT_OUT = ROOT / "var" / "bench" / "bench_cli.json"
EVAL_SETS = {
    "in_k": "held-out names whose code is one of the K selected codes",
    "all": "every held-out name (codes outside the model's classes count as wrong)",
}
LEVEL_FLAG = re.compile(r"--level[= ]hs(\d+)")


# ------------------------------------------------------------------ data and split


def load_source(path: Path = GHKO99_CSV) -> pd.DataFrame:
    """The ghko99 file as it is (``hscode``, ``name``) plus ``hs10``, the left-padded truth.

    Rows with an empty name are dropped (the importer would reject them anyway).
    """
    frame = read_ghko99(path)
    frame = frame[frame["name"].str.strip() != ""].reset_index(drop=True)
    frame["hs10"] = frame["hscode"].str.strip().str.zfill(10)
    bad = ~frame["hs10"].str.fullmatch(r"\d{10}")
    if bad.any():
        raise ValueError(f"{path}: {int(bad.sum())} rows with a non 10-digit code")
    return frame


def holdout_split(
    names: Sequence[str], fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(imported, held-out) row indices: a seeded ``fraction`` of the name groups held out.

    Groups are identical names after :func:`hscode.text.title_key`; a group is never split.
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for idx, name in enumerate(names):
        groups[title_key(name)].append(idx)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    held = sorted(i for key in keys[: round(fraction * len(keys))] for i in groups[key])
    held_idx = np.array(held, dtype=np.int64)
    return np.setdiff1d(np.arange(len(names)), held_idx), held_idx


def write_inputs(source: pd.DataFrame, imported: np.ndarray, held: np.ndarray, folder: Path):
    """``imported.csv`` (the source rows verbatim) and ``held.csv`` (requests); their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    imported_csv, held_csv = folder / "imported.csv", folder / "held.csv"
    source.iloc[imported][["hscode", "name"]].to_csv(imported_csv, index=False)
    requests = pd.DataFrame(
        {"request_id": [f"h{i}" for i in held], "title": source["name"].iloc[held].str.strip()}
    )
    requests.to_csv(held_csv, index=False)
    return imported_csv, held_csv


# ------------------------------------------------------------------ the CLI


def cli_prefix() -> list[str]:
    """How a user calls the CLI: the ``hscode`` script beside this interpreter, else ``-m``."""
    script = Path(sys.executable).with_name("hscode")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "app.cli"]


@dataclass
class CliRun:
    argv: list[str]
    seconds: float
    stdout: str
    peak_mb: float = float("nan")  # the process's peak resident memory (ru_maxrss)


def run_cli(args: Sequence[str], data_dir: Path, seed: int, threads: int, log_file: Path) -> CliRun:
    """Run ``hscode ARGS`` in a clean environment on ``data_dir``; raise with the log's tail.

    Every inherited ``HSCODE_*`` variable is dropped (a shared ``HSCODE_STORAGE_URL`` would send
    the cases and models elsewhere); the working directory is the data dir's parent, so no
    ``.env`` file of the checkout applies.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("HSCODE_")}
    env.update(
        {
            "HSCODE_DATA_DIR": str(data_dir),
            "HSCODE_SEED": str(seed),
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "OPENBLAS_NUM_THREADS": str(threads),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if not str(cli_prefix()[0]).endswith("hscode"):  # `python -m` from another folder
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(":")
    argv = [*cli_prefix(), *args]
    log(f"  $ HSCODE_DATA_DIR={data_dir} {shlex.join(['hscode', *args])}")
    t0 = time.perf_counter()
    with log_file.open("w") as out:
        proc = subprocess.Popen(
            argv, cwd=data_dir.parent, env=env, stdout=subprocess.PIPE, stderr=out, text=True
        )
        assert proc.stdout is not None
        with proc.stdout:
            stdout = proc.stdout.read()
        # wait4: this child's own resource usage, its peak memory among it
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    with log_file.open("a") as out:
        out.write("\n--- stdout ---\n" + stdout)
    if proc.returncode != 0:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"{shlex.join(argv)} exited {proc.returncode}:\n{tail}")
    return CliRun(argv=argv, seconds=seconds, stdout=stdout, peak_mb=usage.ru_maxrss / 1024)


def parse_summary(stdout: str) -> dict[str, Any]:
    """The ``  key: value`` lines the CLI prints (numbers as numbers, JSON values decoded)."""
    out: dict[str, Any] = {}
    for line in stdout.splitlines():
        m = re.match(r"^\s+([\w.@-]+): (.*)$", line)
        if not m:
            continue
        key, value = m.groups()
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def parse_train(stdout: str) -> dict[str, Any]:
    """Version, promotion and printed metrics of ``hscode train``."""
    m = re.search(r"^model (\S+): (promoted to champion|not promoted)", stdout, re.MULTILINE)
    if m is None:
        raise RuntimeError(f"unexpected `hscode train` output:\n{stdout[-2000:]}")
    return {"version": m.group(1), "promoted": m.group(2) == "promoted to champion"} | {
        "metrics": parse_summary(stdout)
    }


def read_predictions(path: Path) -> dict[str, list[str]]:
    """``request_id -> codes, best first`` from ``hscode predict``'s CSV (digits only)."""
    ranked: dict[str, list[tuple[int, str]]] = defaultdict(list)
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            code = re.sub(r"\D", "", row["hs_code"])
            ranked[row["request_id"]].append((int(row["rank"]), code))
    return {rid: [c for _, c in sorted(pairs)] for rid, pairs in ranked.items()}


# ------------------------------------------------------------------ selection and peer


@dataclass
class Selected:
    titles: list[str]
    codes: list[str]  # the chosen classes at the training level, ranked
    labels: list[str]  # each case's code at the training level
    n_trainable: int  # cases with a single clean hs10 code


def read_selection(data_dir: Path, k: int | None, digits: int) -> Selected:
    """The cases ``hscode train --top-codes k`` selects, read back from the dataset in
    ``data_dir`` by the product's own ``hscode.selection.load_examples``."""
    from hscode.selection import LEVELS as TRAIN_LEVELS
    from hscode.selection import load_examples
    from hscode.settings import Settings
    from hscode.training import TrainConfig

    settings = Settings(_env_file=None, data_dir=data_dir, storage_url=None, registry_dir=None)
    level = next(name for name, d in TRAIN_LEVELS.items() if d == digits)
    selection = load_examples(settings, TrainConfig(top_codes=k, level=level, inputs="title"))
    examples = selection.examples
    counts = Counter(e.label for e in examples)
    return Selected(
        titles=[e.title for e in examples],
        codes=sorted(counts, key=lambda c: (-counts[c], c)),
        labels=[e.label for e in examples],
        n_trainable=selection.n_cases,
    )


def fit_svm(titles: Sequence[str], labels: Sequence[str], seed: int) -> Any:
    """TF-IDF (word 1-2 + char_wb 1-4, sublinear tf, min_df 1) + LinearSVC(C=0.5)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion, make_pipeline
    from sklearn.svm import LinearSVC

    features = FeatureUnion(
        [
            ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True)),
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True)),
        ]
    )
    return make_pipeline(features, LinearSVC(C=0.5, random_state=seed)).fit(titles, labels)


def svm_rankings(model: Any, titles: Sequence[str], depth: int = RANK_DEPTH) -> list[list[str]]:
    """Each title's ``depth`` best classes by decision_function (in chunks, to bound memory)."""
    classes = np.asarray(model.classes_)
    out: list[list[str]] = []
    for start in range(0, len(titles), 2000):
        scores = model.decision_function(list(titles[start : start + 2000]))
        if scores.ndim == 1:  # two classes: one margin, positive for classes[1]
            scores = np.stack([-scores, scores], axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :depth]
        out.extend(classes[order].tolist())
    return out


# ------------------------------------------------------------------ metrics


def at_level(ranking: Sequence[str], digits: int) -> list[str]:
    """The ``digits``-digit ranking: prefixes in the order they first appear in ``ranking``."""
    seen: dict[str, None] = {}
    for code in ranking:
        if len(code) >= digits:
            seen.setdefault(code[:digits], None)
    return list(seen)


def hit_matrix(
    rankings: Sequence[Sequence[str]], truth: Sequence[str], digits: int
) -> dict[int, np.ndarray]:
    """``{k: bool per row}``: the true ``digits``-digit code is among the first k."""
    ranked = [at_level(r, digits) for r in rankings]
    return {
        k: np.array([t[:digits] in r[:k] for r, t in zip(ranked, truth, strict=True)]) for k in TOPS
    }


def scores_of(rankings: Sequence[Sequence[str]], truth: Sequence[str], levels: Sequence[int]):
    """(``{"top1@10": 0.71, ...}``, ``{(level, k): hits}``) of one model on one set."""
    hits = {(d, k): h for d in levels for k, h in hit_matrix(rankings, truth, d).items()}
    return {
        f"top{k}@{d}": float(h.mean()) if len(h) else float("nan") for (d, k), h in hits.items()
    }, hits


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int, seed: int) -> dict[str, float]:
    """``hscode.evaluation.paired_bootstrap`` of ``a - b`` as ``{"mean", "lo", "hi"}``."""
    from hscode.evaluation import paired_bootstrap as bootstrap

    mean, lo, hi = bootstrap(a, b, resamples=resamples, seed=seed)
    return {"mean": mean, "lo": lo, "hi": hi}


# ------------------------------------------------------------------ one seed, one K


def run_one(
    args: argparse.Namespace,
    seed: int,
    k: int | None,
    source: pd.DataFrame,
    held: np.ndarray,
    files: tuple[Path, Path],
    folder: Path,
) -> dict[str, Any]:
    """Import, train, predict with the CLI; fit the peer on the same cases; score both."""
    imported_csv, held_csv = files
    label = "all" if k is None else str(k)
    data_dir = folder / "data"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    digits = int(m.group(1)) if (m := LEVEL_FLAG.search(args.train_args)) else 10

    def cli(name: str, argv: list[str]) -> CliRun:
        return run_cli(argv, data_dir, seed, args.threads, folder / f"{name}.log")

    log(f"seed {seed} K={label}: product")
    imp = cli(
        "import", ["cases", "import", str(imported_csv), "--columns", "hs_code=hscode,title=name"]
    )
    train_argv = ["train", *([] if k is None else ["--top-codes", str(k)]), "--inputs", "title"]
    train = cli("train", [*train_argv, *shlex.split(args.train_args)])
    trained = parse_train(train.stdout)
    if not trained["promoted"]:
        raise RuntimeError(f"the first model in a fresh data dir was not promoted:\n{train.stdout}")
    out_csv = folder / "predictions.csv"
    pred = cli(
        "predict",
        ["predict", "--input", str(held_csv), "--output", str(out_csv), "--top-k", str(RANK_DEPTH)],
    )
    predicted = parse_summary(pred.stdout)
    if predicted.get("model_version") not in (None, trained["version"]):
        raise RuntimeError(f"predict used {predicted['model_version']}, not {trained['version']}")
    ids = [f"h{i}" for i in held]
    product_rank = read_predictions(out_csv)
    product = [product_rank.get(rid, []) for rid in ids]  # a rejected request is wrong
    levels = [d for d in LEVELS if d <= digits]
    product_at = {digits: product}
    level_seconds = {}
    for d in levels[1:]:
        level_csv = folder / f"predictions_hs{d}.csv"
        ran = cli(
            f"predict_hs{d}",
            [
                *("predict", "--input", str(held_csv), "--output", str(level_csv)),
                *("--top-k", str(RANK_DEPTH), "--digits", str(d)),
            ],
        )
        level_seconds[f"predict_hs{d}"] = ran.seconds
        at_d = read_predictions(level_csv)
        product_at[d] = [at_d.get(rid, []) for rid in ids]

    log(f"seed {seed} K={label}: peer")
    sel = read_selection(data_dir, k, digits)
    printed = trained["metrics"]
    check = {
        "n_selected": (len(sel.titles), printed.get("n_selected")),
        "n_classes": (len(sel.codes), printed.get("n_classes")),
        "n_cases": (sel.n_trainable, printed.get("n_cases")),
    }
    for what, (ours, theirs) in check.items():
        # the CLI prints its metrics with 4 significant digits
        if theirs is not None and float(f"{ours:.4g}") != float(theirs):
            log(f"WARNING seed {seed} K={label}: {what} {ours} here, {theirs} in `hscode train`")
    labels = sel.labels
    t0 = time.perf_counter()
    svm = fit_svm(sel.titles, labels, seed)
    svm_fit_s = time.perf_counter() - t0
    titles = source["name"].iloc[held].str.strip().tolist()
    t0 = time.perf_counter()
    peer = svm_rankings(svm, titles)
    svm_predict_s = time.perf_counter() - t0
    del svm
    peers_at: dict[int, list[list[str]]] = {}
    peer_cost: dict[str, float] = {}
    if args.peer_levels:
        for d in (lv for lv in LEVELS if lv < digits):
            t0 = time.perf_counter()
            model = fit_svm(sel.titles, [c[:d] for c in sel.labels], seed)
            peers_at[d] = svm_rankings(model, titles)
            peer_cost[f"svm@{d}_seconds"] = time.perf_counter() - t0
            del model

    truth = source["hs10"].iloc[held].tolist()
    chosen = set(sel.codes)
    in_k = np.array([t[:digits] in chosen for t in truth])
    evaluation: dict[str, Any] = {}
    for set_name, mask in (("in_k", in_k), ("all", np.ones(len(truth), dtype=bool))):
        rows = np.flatnonzero(mask)
        t_sub = [truth[i] for i in rows]
        p_scores, p_hits = {}, {}
        for d, rankings in product_at.items():
            at = scores_of([rankings[i] for i in rows], t_sub, [d])
            p_scores.update(at[0])
            p_hits.update(at[1])
        s_scores, s_hits = scores_of([peer[i] for i in rows], t_sub, levels)
        entry: dict[str, Any] = {
            "n": len(rows),
            "product": p_scores,
            "product_first": scores_of([product[i] for i in rows], t_sub, levels)[0],
            "svm": s_scores,
            "diff": {
                # one seed for every cell: the same resamples of rows for all levels and k
                f"top{kk}@{d}": paired_bootstrap(p_hits[d, kk], s_hits[d, kk], args.bootstrap, seed)
                for d in levels
                for kk in TOPS
            },
        }
        for d, rankings in peers_at.items():
            entry[f"svm_trained@{d}"] = scores_of([rankings[i] for i in rows], t_sub, [d])[0]
        evaluation[set_name] = entry
        top1 = {
            m: sc.get(f"top1@{digits}", float("nan"))
            for m, sc in (("p", p_scores), ("s", s_scores))
        }
        log(
            f"seed {seed} K={label} {set_name} (n={len(rows)}): top-1 @{digits} product "
            f"{top1['p']:.4f}, svm {top1['s']:.4f}"
        )
    return {
        "seed": seed,
        "k": label,
        "level_digits": digits,
        "n_imported_rows": len(source) - len(held),
        "n_held_out": len(held),
        "n_trainable": sel.n_trainable,
        "n_selected": len(sel.titles),
        "n_classes": len(sel.codes),
        "selection_check": {k2: list(v) for k2, v in check.items()},
        "seconds": {
            "import": imp.seconds,
            "train": train.seconds,
            "predict": pred.seconds,
            **level_seconds,
            "svm_fit": svm_fit_s,
            "svm_predict": svm_predict_s,
            **peer_cost,
        },
        "product": {
            "version": trained["version"],
            "train_printed": trained["metrics"],
            "import_printed": parse_summary(imp.stdout),
            "predict_printed": predicted,
            "requests_without_prediction": sum(1 for r in product if not r),
            "commands": [
                shlex.join(["hscode", *c.argv[len(cli_prefix()) :]]) for c in (imp, train, pred)
            ],
        },
        "eval": evaluation,
    }


# ------------------------------------------------------------------ report


def _pct(values: Sequence[float], sign: bool = False) -> str:
    """Mean (and std over seeds when there are several) of fractions, in percent."""
    vals = [v for v in values if not np.isnan(v)]
    if not vals:
        return "-"
    fmt = "+.2f" if sign else ".2f"
    mean = f"{100 * float(np.mean(vals)):{fmt}}"
    return mean if len(vals) == 1 else f"{mean} ± {100 * float(np.std(vals)):.2f}"


def _num(values: Sequence[float], fmt: str = ".0f") -> str:
    if not values:
        return "-"
    mean = f"{float(np.mean(values)):{fmt}}"
    return mean if len(set(values)) == 1 else f"{mean} ± {float(np.std(values)):{fmt}}"


def to_markdown(report: dict[str, Any]) -> str:
    """One table per K and evaluation set: product, SVM, (SVM trained at 6/4), difference."""
    cols = [f"top-{k} @{d}" for d in LEVELS for k in TOPS]
    header = ["model", *cols, "n held-out", "train s", "predict s"]
    n_seeds = len({r["seed"] for r in report["results"]})
    lines = [
        "# bench_cli: `hscode cases import` -> `train` -> `predict` vs TF-IDF+SVM",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {report['machine']}; threads {report['args']['threads']}; "
        f"total {report['total_seconds']:.0f} s. Percentages; "
        + ("one seed." if n_seeds == 1 else f"mean ± std over {n_seeds} seeds."),
        "",
    ]
    by_k: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in report["results"]:
        by_k[r["k"]].append(r)
    for k, runs in by_k.items():

        def sec(key: str, runs: list[dict[str, Any]] = runs) -> list[float]:
            return [r["seconds"][key] for r in runs]

        lines.append(
            f"## K = {k}: {_num([r['n_classes'] for r in runs])} codes, "
            f"{_num([r['n_selected'] for r in runs])} selected cases "
            f"(of {_num([r['n_trainable'] for r in runs])} trainable imported cases); "
            f"import {_num(sec('import'))} s"
        )
        for set_name, what in EVAL_SETS.items():
            evs = [r["eval"][set_name] for r in runs]
            n = _num([e["n"] for e in evs])

            def get(model: str, key: str, evs: list[dict[str, Any]] = evs) -> list[float]:
                return [e[model].get(key, float("nan")) for e in evs]

            rows = [
                [
                    "product",
                    *(_pct(get("product", c)) for c in _keys()),
                    n,
                    _num(sec("train")),
                    _num(sec("predict")),
                ],
                [
                    "product, prefixes of its ten-digit ranking",
                    *(_pct(get("product_first", c)) if "@10" not in c else "" for c in _keys()),
                    n,
                    "",
                    "",
                ],
                [
                    "TF-IDF+SVM",
                    *(_pct(get("svm", c)) for c in _keys()),
                    n,
                    _num(sec("svm_fit"), ".1f"),
                    _num(sec("svm_predict"), ".1f"),
                ],
            ]
            for d in LEVELS:
                name = f"svm_trained@{d}"
                if all(name in e for e in evs):
                    cells = [_pct(get(name, c)) if c.endswith(f"@{d}") else "" for c in _keys()]
                    cost = _num([r["seconds"].get(f"svm@{d}_seconds", 0.0) for r in runs], ".1f")
                    rows.append([f"SVM trained at {d} digits", *cells, n, cost, ""])
            diff_cells = []
            for c in _keys():
                ds = [e["diff"][c] for e in evs if c in e["diff"]]
                if not ds:
                    diff_cells.append("-")
                elif c.startswith("top1") and len(ds) == 1:
                    d0 = ds[0]
                    diff_cells.append(
                        f"{100 * d0['mean']:+.2f} [{100 * d0['lo']:+.2f}, {100 * d0['hi']:+.2f}]"
                    )
                else:
                    diff_cells.append(_pct([d0["mean"] for d0 in ds], sign=True))
            rows.append(["product − SVM", *diff_cells, n, "", ""])
            lines += [f"### {set_name}: {what}", "", markdown_table(header, rows), ""]
            if len(runs) > 1:
                per_seed = "; ".join(
                    f"seed {r['seed']}: "
                    + ", ".join(
                        f"@{d} {100 * r['eval'][set_name]['diff'][f'top1@{d}']['mean']:+.2f} "
                        f"[{100 * r['eval'][set_name]['diff'][f'top1@{d}']['lo']:+.2f}, "
                        f"{100 * r['eval'][set_name]['diff'][f'top1@{d}']['hi']:+.2f}]"
                        for d in LEVELS
                        if f"top1@{d}" in r["eval"][set_name]["diff"]
                    )
                    for r in runs
                )
                lines += [f"Top-1 product − SVM, 95% paired bootstrap per seed: {per_seed}", ""]
    lines.append(
        "Train s: the `hscode train` subprocess (product) / the SVM fit on the same selected "
        "cases; predict s: `hscode predict` on every held-out name / the SVM's ranking of them. "
        "At 6 and 4 digits the product is `hscode predict --digits 6|4` (prefixes by summed "
        "probability); the SVM, and the product's second row, rank the prefixes of their "
        "10-digit top-10 in order of first appearance. The difference row's top-1 cells carry a 95% paired-bootstrap "
        "interval when there is one seed (per-seed intervals below each table otherwise)."
    )
    return "\n".join(lines) + "\n"


def _keys() -> list[str]:
    return [f"top{k}@{d}" for d in LEVELS for k in TOPS]


# ------------------------------------------------------------------ main


def _k_value(text: str) -> int | None:
    if text == "all":
        return None
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError("K must be >= 2 or 'all'")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--k", type=_k_value, nargs="+", default=[100, 300, None], help="K values or 'all'"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--holdout", type=float, default=0.2, help="share of name groups held out")
    parser.add_argument(
        "--train-args", default="", help='extra `hscode train` flags, e.g. "--epochs 6"'
    )
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS threads of the CLI")
    parser.add_argument(
        "--peer-levels", action="store_true", help="also train the SVM at 6 and 4 digits"
    )
    parser.add_argument("--bootstrap", type=int, default=1000, help="paired-bootstrap resamples")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON of every number")
    parser.add_argument(
        "--work-dir", type=Path, help="keep inputs, logs and data dirs here (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    raw_argv = sys.argv[1:] if argv is None else argv
    python = Path(sys.executable)
    shown = python.relative_to(ROOT) if python.is_relative_to(ROOT) else python
    command = shlex.join([str(shown), "-m", "benchmarks.bench_cli", *raw_argv])
    log(f"command: {command}")  # stdout carries it at the top of the tables

    t_start = time.perf_counter()
    source = load_source()
    log(f"{len(source)} rows, {source['name'].map(title_key).nunique()} distinct names")
    temp = None if args.work_dir else tempfile.TemporaryDirectory(prefix="bench_cli-")
    work = args.work_dir or Path(temp.name)  # type: ignore[union-attr]
    report: dict[str, Any] = {
        "command": command,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "data": str(GHKO99_CSV),
        "eval_sets": EVAL_SETS,
        "results": [],
    }
    try:
        for seed in args.seeds:
            imported, held = holdout_split(source["name"].tolist(), args.holdout, seed)
            files = write_inputs(source, imported, held, work / f"seed{seed}")
            log(f"seed {seed}: {len(imported)} imported rows, {len(held)} held out")
            for k in args.k:
                folder = work / f"seed{seed}" / f"k{'all' if k is None else k}"
                folder.mkdir(parents=True, exist_ok=True)
                report["results"].append(run_one(args, seed, k, source, held, files, folder))
                if args.work_dir is None:
                    shutil.rmtree(folder / "data", ignore_errors=True)  # models are large
                report["total_seconds"] = time.perf_counter() - t_start
                _write(report, args.out)  # partial results survive a crash
    finally:
        if temp is not None:
            temp.cleanup()
    report["total_seconds"] = time.perf_counter() - t_start
    md = _write(report, args.out)
    print(md, flush=True)
    log(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


def _write(report: dict[str, Any], out: Path) -> str:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False, default=float))
    md = to_markdown(report)
    out.with_suffix(".md").write_text(md)
    return md


if __name__ == "__main__":
    raise SystemExit(main())
