"""Scoring throughput into the embedded Postgres, idempotent re-runs, and kill-and-resume.

    python -m benchmarks.bench_score --n 100000            # model.fit HSModel (BiLSTM), title only
    python -m benchmarks.bench_score --n 100000 --model tfidf
    python -m benchmarks.bench_score --n 100000 --model-dir DIR   # a saved model, e.g. the
                                                  # champion of hscode train --top-codes 100

1. trains a model at test size (real ghko99 product names of the most frequent codes when
   ../shared/data is present, else model.synthetic cases) and saves it to disk;
2. submits ``n`` text-only requests (real product names; repeats get a model suffix so every
   title is unique and no tokenizer cache flatters the model) through hscode.intake;
3. run 1: ``score_pending`` end to end (fetch, model, COPY + merge, status, run record):
   requests/s and the model / database time split;
4. run 2: the same again scores nothing new;
5. kill test: a child process scores the same requests under another version label and is
   SIGKILLed midway; a re-run completes it; exactly n x k prediction rows for that version,
   every request with exactly k, the killed run marked failed.

Results go to stdout and ``benchmarks/out/bench_score.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
GHKO99_CSV = SHARED_DATA / "ghko99_hscode" / "dataset.csv"
OUT_DIR = Path(__file__).resolve().parent / "out"

# "Test size": like tests/model/test_model_pipeline.py's TINY config, a little wider.
PIPELINE_CONFIG = {
    "inputs": "title",
    "embed_dim": 32,
    "embed_epochs": 3,
    "hidden": 64,
    "feature_dim": 128,
    "epochs": 8,
    "batch_size": 64,
    "lr": 1e-2,
    "seed": 13,
    "device": "cpu",
}


# ----------------------------------------------------------------- data


def _training_cases(n_codes: int, train_size: int, seed: int) -> tuple[list, list, str]:
    """(train, val) of model.records.Example, and where they came from."""
    from model.records import Example

    rng = random.Random(seed)
    if GHKO99_CSV.is_file():
        import pandas as pd

        frame = pd.read_csv(GHKO99_CSV, dtype=str, keep_default_na=False)
        frame["hscode"] = frame["hscode"].str.strip().str.zfill(10)
        frame["name"] = frame["name"].str.strip()
        frame = frame[(frame["name"] != "") & frame["hscode"].str.fullmatch(r"\d{10}")]
        counts = frame["hscode"].value_counts()
        codes = sorted(counts.index, key=lambda c: (-counts[c], c))[:n_codes]
        rows = frame[frame["hscode"].isin(set(codes))].to_dict("records")
        rng.shuffle(rows)
        rows = rows[: train_size + train_size // 5]
        cases = [Example(f"ghko99:{i}", r["name"], label=r["hscode"]) for i, r in enumerate(rows)]
        source = f"ghko99 names, {len(codes)} most frequent codes"
    else:
        from model.synthetic import make_cases

        cases = make_cases(train_size + train_size // 5, seed, with_images=0)
        source = "model.synthetic cases (real data absent)"
    cut = int(len(cases) * 5 / 6)
    return cases[:cut], cases[cut:], source


def _request_titles(n: int, seed: int) -> tuple[list[str], str]:
    """n unique request titles from real product names (a model suffix on repeats)."""
    if GHKO99_CSV.is_file():
        import pandas as pd

        names = pd.read_csv(GHKO99_CSV, dtype=str, keep_default_na=False)["name"].str.strip()
        pool = sorted({x for x in names if x})
        source = f"ghko99 product names ({len(pool)} distinct)"
    else:
        from model.synthetic import make_cases

        pool = sorted({c.title for c in make_cases(5000, seed + 1, with_images=0)})
        source = f"model.synthetic titles ({len(pool)} distinct)"
    random.Random(seed).shuffle(pool)
    titles = []
    for i in range(n):
        cycle, j = divmod(i, len(pool))
        titles.append(pool[j] if cycle == 0 else f"{pool[j]} M-{cycle:03d}")
    return titles, source


# ----------------------------------------------------------------- models


class TfidfRecommender:
    """model.baseline.TfidfSvm behind the Recommender protocol (softmax of the margins as
    scores, cosine similarity of TF-IDF features for precedents; no similarity floor, so the
    review policy applied by scoring makes no familiarity claim)."""

    def __init__(self, svm: Any, train: Sequence[Any], version: str) -> None:
        from sklearn.preprocessing import normalize

        if svm.sentence_encoder != "none":
            raise ValueError("TfidfRecommender scores the n-gram features only")
        self.svm = svm
        self.version = version
        self.train_keys = [e.key for e in train]
        self.train_titles = [e.title for e in train]
        self.train_labels = [e.label for e in train]
        self.train_features = normalize(svm._features(self.train_titles)).T.tocsr()
        self.classes = [str(c) for c in svm.classes_]

    def rank(self, requests, *, top_k, n_precedents):
        from sklearn.preprocessing import normalize

        from model.records import Candidate, Precedent, Ranking

        if not requests:
            return []
        titles = [r.title for r in requests]
        feats = self.svm._features(titles)
        margins = self.svm.decision_scores(titles, feats)  # n-grams only (no sentence part)
        margins = margins - margins.max(axis=1, keepdims=True)
        probs = np.exp(margins)
        probs /= probs.sum(axis=1, keepdims=True)
        k = min(top_k, probs.shape[1])
        top = np.argsort(-probs, axis=1)[:, :k]
        n_prec = min(n_precedents, len(self.train_keys))
        sims = (normalize(feats) @ self.train_features).toarray() if n_prec else None
        out = []
        for i, req in enumerate(requests):
            cands = [Candidate(self.classes[c], float(probs[i, c])) for c in top[i]]
            precs = []
            if n_prec:
                near = np.argsort(-sims[i])[:n_prec]
                precs = [
                    Precedent(
                        self.train_keys[j],
                        self.train_labels[j],
                        self.train_titles[j],
                        float(sims[i, j]),
                    )
                    for j in near
                ]
            out.append(Ranking(req.request_id, cands, precs))
        return out


def train_model(
    kind: str, model_dir: Path, n_codes: int, train_size: int, seed: int
) -> dict[str, Any]:
    train, val, source = _training_cases(n_codes, train_size, seed)
    started = time.perf_counter()
    if kind == "pipeline":
        from model.config import ModelConfig
        from model.fit import fit

        model = fit(train, val, ModelConfig.from_flat(**PIPELINE_CONFIG, num_threads=1))
        model.save(model_dir)
        # members refitted on train + val make scoring val in-sample: use the out-of-fold figure
        top1 = (model.history.get("ensemble") or {}).get("val_top1_mixed_out_of_fold")
        if top1 is None and val:
            top1 = model.evaluate(val).get("top1")
    else:
        from model.baseline import TfidfSvm

        svm = TfidfSvm().fit([e.title for e in train], [e.label for e in train])
        model_dir.mkdir(parents=True, exist_ok=True)
        with (model_dir / "tfidf.pkl").open("wb") as fh:
            pickle.dump({"svm": svm, "train": [(e.key, e.title, e.label) for e in train]}, fh)
        pred = svm.predict_topk([e.title for e in val], 1)[0][:, 0]
        top1 = float(np.mean([p == e.label for p, e in zip(pred, val, strict=True)]))
    return {
        "train_cases": len(train),
        "val_cases": len(val),
        "codes": len({e.label for e in train}),
        "source": source,
        "train_seconds": round(time.perf_counter() - started, 1),
        "val_top1": top1,
    }


def load_model(kind: str, model_dir: Path, version: str) -> Any:
    if kind == "pipeline":
        from model.hsmodel import HSModel

        model = HSModel.load(model_dir)
        model.version = version
        return model
    from model.records import Example

    with (model_dir / "tfidf.pkl").open("rb") as fh:
        data = pickle.load(fh)
    train = [Example(k, t, label=lab) for k, t, lab in data["train"]]
    return TfidfRecommender(data["svm"], train, version)


# ----------------------------------------------------------------- scoring


def _score(
    database_url: str,
    kind: str,
    model_dir: Path,
    version: str,
    batch_size: int,
    partition: tuple[int, int] | None = None,
) -> dict[str, Any]:
    from hscode.db import get_engine
    from hscode.scoring import score_pending
    from hscode.settings import Settings

    settings = Settings(database_url=database_url, score_batch_size=batch_size, _env_file=None)
    engine = get_engine(settings)
    t = time.perf_counter()
    model = load_model(kind, model_dir, version)
    load_s = time.perf_counter() - t
    started = time.time()
    summary = score_pending(
        settings, engine, model, batch_size=batch_size, partition=partition
    ).as_dict()
    summary["model_load_seconds"] = round(load_s, 2)
    summary["started_at"], summary["ended_at"] = started, time.time()
    return summary


def _child(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(args.threads)
    partition = tuple(int(x) for x in args.partition.split("/")) if args.partition else None
    summary = _score(
        args.database_url, args.model, Path(args.child), args.version, args.batch_size, partition
    )
    print(json.dumps(summary))
    return 0


def _score_in_workers(
    args: argparse.Namespace, url: str, model_dir: Path, version: str
) -> dict[str, Any]:
    """Run 1 as ``args.workers`` processes at once, each scoring its partition of the backlog
    with ``args.threads`` torch threads (what the score flow does on a local Dask cluster).
    The time is from the first worker's start of scoring to the last one's end (each worker's
    start-up and model load excluded, as in the one-process run)."""
    n = args.workers
    procs = [
        subprocess.Popen(
            [*_child_cmd(args, url, model_dir, version), "--partition", f"{i}/{n}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    parts = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"a scoring worker failed with exit status {proc.returncode}")
        parts.append(json.loads(out.strip().splitlines()[-1]))
    seconds = max(p["ended_at"] for p in parts) - min(p["started_at"] for p in parts)
    scored = sum(p["scored"] for p in parts)
    return {
        "workers": n,
        "scored": scored,
        "rejected": sum(p["rejected"] for p in parts),
        "seconds": round(seconds, 2),
        "requests_per_s": round(scored / seconds, 1),
        # summed over the workers (each worker's own split is in "parts")
        "model_seconds": round(sum(p["model_seconds"] for p in parts), 2),
        "db_seconds": round(sum(p["db_seconds"] for p in parts), 2),
        "parts": parts,
    }


def _count(engine: Any, sql: str, **params: Any) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar())


def _child_cmd(args: argparse.Namespace, url: str, model_dir: Path, version: str) -> list[str]:
    return [
        sys.executable, "-m", "benchmarks.bench_score", "--child", str(model_dir),
        "--database-url", url, "--version", version, "--model", args.model,
        "--batch-size", str(args.batch_size), "--threads", str(args.threads),
    ]  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from hscode.db import get_engine, migrate
    from hscode.intake import submit_requests
    from hscode.settings import Settings

    torch.set_num_threads(args.threads)
    temp_root = None
    if args.data_dir is None:
        temp_root = Path(tempfile.mkdtemp(prefix="hscode-bench-score-"))
        data_dir = temp_root / "var"
    else:
        data_dir = Path(args.data_dir)
    settings = Settings(data_dir=data_dir, score_batch_size=args.batch_size, _env_file=None)
    k = settings.top_k
    report: dict[str, Any] = {
        "command": "python -m benchmarks.bench_score " + " ".join(sys.argv[1:]),
        "n": args.n,
        "model": args.model,
        "top_k": k,
        "n_precedents": settings.n_precedents,
        "batch_size": args.batch_size,
        "torch_threads": args.threads,
        "cpus": os.cpu_count(),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        if args.model_dir is not None:  # a saved model, e.g. the champion `hscode train` wrote
            model_dir = args.model_dir
            report["training"] = {"model_dir": str(model_dir), "trained": "not here"}
        else:
            model_dir = data_dir / f"bench-model-{args.model}"
            print(f"training a test-size {args.model} model ...", flush=True)
            report["training"] = train_model(
                args.model, model_dir, args.codes, args.train_size, args.seed
            )
        print(f"  {report['training']}", flush=True)

        engine = get_engine(settings)
        migrate(engine)
        url = engine.url.render_as_string(hide_password=False)
        titles, source = _request_titles(args.n, args.seed)
        rows = [{"request_id": f"bench-{i:07d}", "title": t} for i, t in enumerate(titles)]
        t = time.perf_counter()
        intake = submit_requests(engine, rows, source="bench")
        intake_s = time.perf_counter() - t
        report["intake"] = {
            "source": source,
            "inserted": intake.inserted,
            "duplicates": intake.duplicates,
            "rejected": intake.rejected,
            "seconds": round(intake_s, 2),
            "requests_per_s": round(args.n / intake_s, 1),
        }
        print(f"intake: {report['intake']}", flush=True)

        version = f"bench-{args.model}-v1"
        print(f"run 1: scoring {args.n} requests ...", flush=True)
        if args.workers > 1:
            first = _score_in_workers(args, url, model_dir, version)
        else:
            first = _score(url, args.model, model_dir, version, args.batch_size)
        report["run1"] = first
        rows_v1 = _count(
            engine, "select count(*) from predictions where model_version = :v", v=version
        )
        report["run1"]["prediction_rows"] = rows_v1
        print(f"  {first}", flush=True)
        second = _score(url, args.model, model_dir, version, args.batch_size)
        report["run2"] = second
        report["run2"]["prediction_rows"] = _count(
            engine, "select count(*) from predictions where model_version = :v", v=version
        )
        print(f"run 2 (nothing new expected): {second}", flush=True)

        if not args.skip_kill:
            report["kill_test"] = _kill_test(args, engine, url, model_dir, k)
            print(f"kill test: {report['kill_test']}", flush=True)
    finally:
        report["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
        _stop_embedded(settings)
        if temp_root is not None and not args.keep:
            shutil.rmtree(temp_root, ignore_errors=True)
    return report


def _kill_test(
    args: argparse.Namespace, engine: Any, url: str, model_dir: Path, k: int
) -> dict[str, Any]:
    version = f"bench-{args.model}-killtest"
    target = args.n * k
    kill_at = int(target * args.kill_at)
    child = subprocess.Popen(
        _child_cmd(args, url, model_dir, version), cwd=ROOT, stdout=subprocess.PIPE
    )
    rows_at_kill = 0
    sql = "select count(*) from predictions where model_version = :v"
    while child.poll() is None:
        rows_at_kill = _count(engine, sql, v=version)
        if rows_at_kill >= kill_at:
            child.send_signal(signal.SIGKILL)
            break
        time.sleep(0.2)
    child.wait()
    killed = child.returncode == -signal.SIGKILL
    rows_after_kill = _count(engine, sql, v=version)
    partial = _count(
        engine,
        "select count(*) from (select request_id from predictions where model_version = :v "
        "group by request_id having count(*) <> :k) x",
        v=version,
        k=k,
    )
    rerun = subprocess.run(
        _child_cmd(args, url, model_dir, version),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    resumed = json.loads(rerun.stdout.strip().splitlines()[-1])
    final = _count(engine, sql, v=version)
    distinct = _count(
        engine,
        "select count(*) from (select distinct request_id, rank from predictions where model_version = :v) x",
        v=version,
    )
    per_request_ok = _count(
        engine,
        "select count(*) from (select request_id from predictions where model_version = :v "
        "group by request_id having count(*) = :k) x",
        v=version,
        k=k,
    )
    runs = _count(
        engine,
        "select count(*) from score_runs where model_version = :v and status = 'failed' "
        "and error like 'interrupted%'",
        v=version,
    )
    return {
        "killed_with_sigkill": killed,
        "rows_when_killed": rows_after_kill,
        "requests_with_partial_rows_after_kill": partial,
        "rerun_scored": resumed["scored"],
        "final_rows": final,
        "expected_rows": target,
        "distinct_keys": distinct,
        "requests_with_exactly_k": per_request_ok,
        "killed_run_marked_failed": runs == 1,
        "ok": killed and final == target == distinct and per_request_ok == args.n and partial == 0,
    }


def _stop_embedded(settings: Any) -> None:
    """Stop the benchmark's embedded server (a SIGKILLed child leaves a stale handle behind,
    so the normal last-handle-stops rule would keep it running)."""
    from hscode.db import stop_embedded

    try:
        stop_embedded(settings)
    except Exception as exc:  # noqa: BLE001 - best effort at the end of a benchmark
        print(f"note: embedded server not stopped cleanly: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_score", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--n", type=int, default=100_000, help="requests to score")
    parser.add_argument("--model", choices=("pipeline", "tfidf"), default="pipeline")
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--codes", type=int, default=30, help="most frequent codes to train on")
    parser.add_argument("--train-size", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (per worker)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="run 1 in this many processes at once, one backlog partition each",
    )
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--kill-at", type=float, default=0.4, help="fraction of rows before SIGKILL"
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="score with this saved HSModel (e.g. a champion's folder) instead of training one",
    )
    parser.add_argument("--skip-kill", action="store_true")
    parser.add_argument("--data-dir", default=None, help="default: a temp dir, deleted afterwards")
    parser.add_argument("--keep", action="store_true", help="keep the temp data dir")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "bench_score.json")
    # child mode (used by the kill test)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--version", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--partition", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)
    report = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    r1 = report["run1"]
    print("\n=== bench_score ===")
    print(f"command: {report['command']}")
    split = (
        f"{r1['workers']} workers; summed over them: model {r1['model_seconds']} s, "
        f"db {r1['db_seconds']} s"
        if "workers" in r1
        else f"model {r1['model_seconds']} s, db {r1['db_seconds']} s, "
        f"other {round(r1['seconds'] - r1['model_seconds'] - r1['db_seconds'], 2)} s"
    )
    print(
        f"run 1: {r1['scored']} scored in {r1['seconds']} s = {r1['requests_per_s']} "
        f"requests/s end to end ({split}); {r1['prediction_rows']} prediction rows"
    )
    print(f"run 2: scored {report['run2']['scored']} (rows {report['run2']['prediction_rows']})")
    if "kill_test" in report:
        kt = report["kill_test"]
        print(
            f"kill test: killed at {kt['rows_when_killed']} rows, re-run scored {kt['rerun_scored']}, "
            f"final {kt['final_rows']} rows of {kt['expected_rows']} expected -> ok={kt['ok']}"
        )
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
