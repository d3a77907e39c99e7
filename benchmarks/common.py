"""Shared benchmark helpers: real-data loading, group-aware stratified splits, metrics, cost."""

from __future__ import annotations

import os
import random
import resource
import sys
import threading
import time
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hscode.evaluation import title_strata
from hscode.text import title_key

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
OUT_DIR = Path(__file__).resolve().parent / "out"
GHKO99_CSV = SHARED_DATA / "ghko99_hscode" / "dataset.csv"


def read_ghko99(path: Path = GHKO99_CSV) -> pd.DataFrame:
    """The ghko99 file as it is (``hscode``, ``name``: strings, codes not padded)."""
    if not path.is_file():
        raise FileNotFoundError(f"real data not found at {path} (see /work/shared/docs/data.md)")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"hscode", "name"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    return frame


def load_ghko99_names(path: Path = GHKO99_CSV) -> pd.DataFrame:
    """The ghko99 name -> code list; codes left-padded to 10 digits (chapters 01-09 lost a zero)."""
    frame = read_ghko99(path)
    frame["hscode"] = frame["hscode"].str.strip().str.zfill(10)
    bad = ~frame["hscode"].str.fullmatch(r"\d{10}")
    if bad.any():
        raise ValueError(
            f"{path}: {int(bad.sum())} rows with a non 10-digit code, e.g. "
            f"{frame.loc[bad, 'hscode'].iloc[0]!r}"
        )
    frame["name"] = frame["name"].str.strip()
    return frame[frame["name"] != ""].reset_index(drop=True)


def top_codes(frame: pd.DataFrame, k: int, label: str = "hscode") -> pd.DataFrame:
    """Rows of the k most frequent codes (ties broken by code, so the choice is reproducible)."""
    counts = frame[label].value_counts()
    ranked = sorted(counts.index, key=lambda c: (-counts[c], c))[:k]
    return frame[frame[label].isin(set(ranked))].reset_index(drop=True)


def group_stratified_split(
    names: Sequence[str], labels: Sequence[str], test_size: float = 0.3, seed: int = 13
) -> tuple[np.ndarray, np.ndarray]:
    """Train/test row indices, stratified by label, identical names kept on one side.

    Each group of identical names is assigned to the stratum of its majority label; within a
    stratum the groups are shuffled and filled into test until it holds ~test_size of the rows.
    """
    groups, strata = title_strata(names, labels)
    rng = random.Random(seed)
    test: list[int] = []
    for label in sorted(strata):
        keys = sorted(strata[label])
        rng.shuffle(keys)
        total = sum(len(groups[k]) for k in keys)
        target, taken = test_size * total, 0
        for key in keys:
            # stop once adding this group would overshoot the target more than leaving it out
            size = len(groups[key])
            if taken + size / 2 > target:
                continue
            test.extend(groups[key])
            taken += size
    test_idx = np.array(sorted(test), dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(len(names)), test_idx)
    return train_idx, test_idx


def topk_accuracy(
    scores: np.ndarray, y_true: np.ndarray, ks: Sequence[int] = (1, 3)
) -> dict[int, float]:
    """Fraction of rows whose true class index is among the k highest scores."""
    order = np.argsort(-scores, axis=1, kind="stable")
    return {k: float(np.mean((order[:, :k] == y_true[:, None]).any(axis=1))) for k in ks}


def label_noise(names: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """How often identical names carry different codes (the ceiling they impose on top-1)."""
    groups: dict[str, Counter] = defaultdict(Counter)
    for name, label in zip(names, labels, strict=True):
        groups[title_key(name)][label] += 1
    conflicting = [g for g in groups.values() if len(g) > 1]
    rows_in_conflict = sum(sum(g.values()) for g in conflicting)
    best_possible = sum(g.most_common(1)[0][1] for g in groups.values())
    return {
        "groups": len(groups),
        "conflicting_groups": len(conflicting),
        "rows_in_conflicting_groups": rows_in_conflict,
        "top1_ceiling": best_possible / max(1, len(names)),
    }


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Cost:
    seconds: float = 0.0
    peak_rss_mb: float = 0.0  # process resident set at its highest during the block
    rss_growth_mb: float = 0.0  # that peak minus the resident set when the block started
    py_peak_mb: float = 0.0  # tracemalloc: Python-level allocations only (not torch tensors)
    extra: dict = field(default_factory=dict)


@contextmanager
def measure(sample_every: float = 0.05) -> Iterator[Cost]:
    """Wall time and peak memory of a block (RSS sampled in a thread, plus tracemalloc)."""
    cost = Cost()
    start_rss = _rss_bytes()
    peak = [start_rss]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(sample_every):
            peak[0] = max(peak[0], _rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    started_tracing = not tracemalloc.is_tracing()
    if started_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    sampler.start()
    t0 = time.perf_counter()
    try:
        yield cost
    finally:
        cost.seconds = time.perf_counter() - t0
        done.set()
        sampler.join()
        peak[0] = max(peak[0], _rss_bytes())
        cost.py_peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        if started_tracing:
            tracemalloc.stop()
        cost.peak_rss_mb = peak[0] / 2**20
        cost.rss_growth_mb = (peak[0] - start_rss) / 2**20


def max_rss_mb() -> float:
    """Peak resident set of the whole process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def log(msg: str) -> None:
    """A timestamped progress line on stderr (the benchmarks' stdout carries the results)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def fit_progress(label: str) -> Callable[[int, int], None]:
    """A ``fit(..., progress)`` callback that logs ``{label} fit done/total`` every tenth."""
    last = [-1]

    def report(done: int, total: int) -> None:
        tenth = 10 * done // max(total, 1)
        if tenth != last[0]:
            last[0] = tenth
            log(f"{label} fit {done}/{total}")

    return report
