"""Backtest: replay the rulings month by month through the real training protocol.

For each month M (ascending, from the first month with at least ``--min-history`` trainable
cases decided before it), in ONE data dir:

  1. the cases decided before M that are not in the dataset yet are upserted
     (``hscode.case_records.make_case`` + ``upsert_cases``), as a nightly normalize would;
  2. ``hscode.training.train_and_register`` trains a candidate and gates it against the
     champion (stable hash / date roles, leak-free paired-bootstrap comparison); a promoted
     candidate is refitted on every selected case and served;
  3. the champion's SERVED model is scored on the cases decided in M (forward-looking: none
     of them was in any training), top-1 / top-3 at 10, 6 and 4 digits (the 6- and 4-digit
     rankings follow the order of first appearance of each prefix in the model's ranking;
     a code the model does not know counts as wrong);
  4. a TF-IDF + linear SVM peer (word 1-2 + char_wb 1-4 TF-IDF, sublinear tf, LinearSVC
     C=0.5: ``model.baseline.TfidfSvm``) is fitted on the same selected cases the candidate
     could see and scored on M the same way;
  5. the old gate's bias: when a champion existed before training, the PREVIOUS champion's
     served model (refitted on all its cases) is scored on the candidate's test cases, split
     into those it trained on (its ``precedents.keys``) and those it did not. The candidate's
     evaluated model (which trained on none of them) is scored on the same two parts, so the
     difference of the two gaps is what memorisation adds: how much a gate comparing with the
     served champion on a reshuffled test set would overstate the champion.

Corpora: ``kcs`` (default; the real 2024 rulings in ../shared/data/kcs_hs_chatbot, read with
``emulator.corpus.kcs_corpus``) or ``demo`` (``emulator.corpus.demo_corpus``; the output says
whether its decision dates are spread out enough for a replay).

    python -m benchmarks.bench_backtest --epochs 3
    python -m benchmarks.bench_backtest --corpus demo --demo-cases 600 --min-history 150

prints markdown tables (months, overall, bias) and writes a JSON report (default
``var/bench/bench_backtest-<corpus>-<level>.json``). Never commit the JSON of the kcs corpus
beyond its figures: it names real case keys.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import shlex
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import ROOT, SHARED_DATA, log, markdown_table, max_rss_mb

KCS_DIR = SHARED_DATA / "kcs_hs_chatbot"
DEFAULT_OUT_DIR = ROOT / "var" / "bench"
DIGITS = (10, 6, 4)
KS = (1, 3)
LEVEL_DIGITS = {"hs10": 10, "hs6": 6, "hs4": 4}
# a corpus is "spread out" for a replay when its cases cover at least this many months and
# no month holds more than this share of them
MIN_SPREAD_MONTHS = 3
MAX_MONTH_SHARE = 0.5


# ------------------------------------------------------------------ corpus


@dataclass(frozen=True)
class Case:
    """One case of the replay: its dataset record and what scoring needs."""

    key: str
    date: dt.date
    title: str
    description: str | None
    hs10: str | None  # None: several codes, or no clean 10-digit code (never trainable)
    record: dict[str, Any]

    @property
    def trainable(self) -> bool:
        return self.hs10 is not None and bool(self.title.strip())


@dataclass
class CorpusInfo:
    name: str
    n_raw: int
    n_cases: int  # dated, valid records
    n_trainable: int
    rejected: dict[str, int] = field(default_factory=dict)
    undated: int = 0
    by_month: dict[str, int] = field(default_factory=dict)
    distinct_dates: int = 0
    spread_ok: bool = True
    spread_note: str = ""


def load_corpus(args: argparse.Namespace) -> tuple[list[Case], CorpusInfo]:
    """The corpus as dated cases (``make_case`` records), oldest first, with a summary."""
    from emulator.corpus import demo_corpus, kcs_corpus
    from hscode.case_records import CaseRejected, make_case

    if args.corpus == "kcs":
        if not args.kcs_dir.is_dir():
            raise FileNotFoundError(
                f"real data not found at {args.kcs_dir} (see /work/shared/docs/data.md)"
            )
        corpus = kcs_corpus(args.kcs_dir)
        source = "backtest:kcs"
    else:
        corpus = demo_corpus(n_cases=args.demo_cases, seed=args.demo_seed)
        source = "backtest:demo"
    cases: list[Case] = []
    rejected: Counter[str] = Counter()
    undated = 0
    for c in corpus:
        try:
            record = make_case(
                case_key=c.rrdc_no,
                source=source,
                series=c.series,
                title_raw=c.title,
                hs_raw=c.hs_code,
                reference_no=c.reference_no,
                decision_date=c.decision_date,
                office=c.office,
                description_raw=c.description,
                decision_reason=c.reason,  # stored like the real pipeline; never a model input
            )
        except CaseRejected as exc:
            rejected[exc.reason] += 1
            continue
        if record["decision_date"] is None:
            undated += 1
            continue
        cases.append(
            Case(
                key=record["case_key"],
                date=record["decision_date"],
                title=record["title"],
                description=record["description"],
                hs10=None if record["multi_code"] else record["hs10"],
                record=record,
            )
        )
    cases.sort(key=lambda c: (c.date, c.key))
    months = Counter(c.date.strftime("%Y-%m") for c in cases)
    info = CorpusInfo(
        name=corpus.name,
        n_raw=len(corpus),
        n_cases=len(cases),
        n_trainable=sum(c.trainable for c in cases),
        rejected=dict(rejected),
        undated=undated,
        by_month=dict(sorted(months.items())),
        distinct_dates=len({c.date for c in cases}),
    )
    biggest = max(months.values()) if months else 0
    share = biggest / max(1, len(cases))
    info.spread_ok = len(months) >= MIN_SPREAD_MONTHS and share <= MAX_MONTH_SHARE
    info.spread_note = (
        f"decision dates: {info.distinct_dates} distinct days over {len(months)} months "
        f"({min(months) if months else '-'} .. {max(months) if months else '-'}), the largest "
        f"month holds {100 * share:.0f}% of the cases: "
        + (
            "spread out enough for a month-by-month replay"
            if info.spread_ok
            else "NOT spread out: a month-by-month replay of this corpus is not meaningful"
        )
    )
    return cases, info


def month_starts(cases: Sequence[Case]) -> list[dt.date]:
    """First day of every calendar month from the oldest to the newest case."""
    if not cases:
        return []
    first, last = cases[0].date, cases[-1].date
    out, y, m = [], first.year, first.month
    while (y, m) <= (last.year, last.month):
        out.append(dt.date(y, m, 1))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + 1, 1, 1) if day.month == 12 else dt.date(day.year, day.month + 1, 1)


# ------------------------------------------------------------------ scoring


def ranked_hits(
    scores: np.ndarray, labels: Sequence[str], truths: Sequence[str]
) -> dict[str, list[bool] | None]:
    """Per case, top-k hits at 10, 6 and 4 digits from a score matrix over ``labels``.

    A coarser ranking lists each prefix at its first appearance in the full ranking; a level
    finer than the labels is not scorable (None). A code the model does not know is a miss.
    """
    label_len = len(labels[0]) if len(labels) else 0
    order = np.argsort(-scores, axis=1, kind="stable")
    names = np.asarray(labels)
    out: dict[str, list[bool] | None] = {}
    for d in DIGITS:
        for k in KS:
            out[f"hs{d}_top{k}"] = None if d > label_len else []
    for row, truth in zip(order, truths, strict=True):
        ranking = names[row]
        for d in DIGITS:
            if d > label_len:
                continue
            seen: list[str] = []
            for code in ranking:
                prefix = code[:d]
                if prefix not in seen:
                    seen.append(prefix)
                    if len(seen) >= max(KS):
                        break
            for k in KS:
                hits = out[f"hs{d}_top{k}"]
                assert hits is not None
                hits.append(truth[:d] in seen[:k])
    return out


def summarise(hits: dict[str, list[bool] | None]) -> dict[str, float | None]:
    return {
        name: (float(np.mean(h)) if h else None) if h is not None else None
        for name, h in hits.items()
    }


def examples_of(cases: Sequence[Case], inputs: str, digits: int) -> list[Any]:
    from model.records import Example

    return [
        Example(
            key=c.key,
            title=c.title,
            description=c.description if "description" in inputs else None,
            label=(c.hs10 or "")[:digits],
        )
        for c in cases
    ]


def svm_text(example: Any) -> str:
    """What the peer reads: the title (+ " | description"), as the product's TF-IDF member."""
    if example.description:
        return f"{example.title} | {example.description}"
    return example.title


def score_model(model: Any, cases: Sequence[Case], inputs: str, digits: int) -> dict[str, Any]:
    """A product model (``HSModel``) on ``cases``: per-case hits and their means."""
    examples = examples_of(cases, inputs, digits)
    truths = [c.hs10 or "" for c in cases]
    probs = model.predict_proba(examples)
    hits = ranked_hits(probs, list(model.labels), truths)
    known = set(model.labels)
    return {
        "hits": hits,
        "acc": summarise(hits),
        "known": float(np.mean([e.label in known for e in examples])) if examples else None,
    }


def fit_peer(examples: Sequence[Any], seed: int) -> Any:
    from model.baseline import TfidfSvm

    return TfidfSvm(C=0.5, char_ngrams=(1, 4), word_ngrams=(1, 2), seed=seed).fit(
        [svm_text(e) for e in examples], [e.label for e in examples]
    )


def score_peer(peer: Any, cases: Sequence[Case], inputs: str, digits: int) -> dict[str, Any]:
    examples = examples_of(cases, inputs, digits)
    truths = [c.hs10 or "" for c in cases]
    scores = peer.decision_scores([svm_text(e) for e in examples])
    hits = ranked_hits(scores, [str(x) for x in peer.classes_], truths)
    return {"hits": hits, "acc": summarise(hits)}


def top1(model: Any, examples: Sequence[Any]) -> float | None:
    from hscode.evaluation import topk_hits

    return float(np.mean(topk_hits(model, examples, 1))) if examples else None


# ------------------------------------------------------------------ the replay


def train_config(args: argparse.Namespace) -> Any:
    from hscode.training import TrainConfig

    return TrainConfig(
        inputs=args.inputs,
        level=args.level,
        epochs=args.epochs,
        top_codes=args.top_codes,
        min_cases_per_code=args.min_cases_per_code,
        recent_days=args.recent_days,
        embed_dim=args.embed_dim,
        embed_epochs=args.embed_epochs,
        hidden=args.hidden,
        batch_size=args.batch_size,
        max_len=args.max_len,
        device="cpu",
        num_threads=args.threads,
        seed=args.seed,
    )


def gap(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def bias_row(
    registry: Any,
    prev_version: str,
    outcome: Any,
    by_key: dict[str, Case],
    inputs: str,
    digits: int,
) -> dict[str, Any]:
    """The previous champion's served model and the candidate's evaluated model on the
    candidate's test cases, split by whether the previous served model trained on them."""
    test = outcome.report["test"]
    prev = registry.load(prev_version)  # served: refitted on all its cases
    cand = registry.load(outcome.version, evaluated=True)
    seen = set(prev.precedents.keys)
    if set(test["keys"]) & set(cand.precedents.keys):
        raise AssertionError(f"candidate {outcome.version} trained on some of its test cases")
    cases = [by_key[k] for k in test["keys"]]
    examples = examples_of(cases, inputs, digits)
    for e, label in zip(examples, test["y_true"], strict=True):
        if e.label != label:
            raise AssertionError(f"case {e.key}: label {e.label} but the report says {label}")
    trained = [e for e in examples if e.key in seen]
    unseen = [e for e in examples if e.key not in seen]
    row: dict[str, Any] = {
        "previous_champion": prev_version,
        "candidate": outcome.version,
        "n_test": len(examples),
        "n_trained": len(trained),
        "n_unseen": len(unseen),
        "champion_top1_trained": top1(prev, trained),
        "champion_top1_unseen": top1(prev, unseen),
        "candidate_top1_trained": top1(cand, trained),
        "candidate_top1_unseen": top1(cand, unseen),
        "champion_top1_all": top1(prev, examples),
    }
    row["champion_gap"] = gap(row["champion_top1_trained"], row["champion_top1_unseen"])
    row["candidate_gap"] = gap(row["candidate_top1_trained"], row["candidate_top1_unseen"])
    row["memorisation"] = gap(row["champion_gap"], row["candidate_gap"])
    return row


def run_month(
    settings: Any,
    args: argparse.Namespace,
    cases: Sequence[Case],
    by_key: dict[str, Case],
    start: dt.date,
    added: set[str],
) -> dict[str, Any]:
    """One month of the replay (see the module docstring)."""
    from hscode.cases import upsert_cases
    from hscode.registry import Registry
    from hscode.training import NotEnoughDataError, load_examples, train_and_register

    digits = LEVEL_DIGITS[args.level]
    end = next_month(start)
    history = [c for c in cases if c.date < start]
    month = [c for c in cases if start <= c.date < end and c.trainable]
    new = [c for c in history if c.key not in added]
    t0 = time.perf_counter()
    up = upsert_cases(settings, [c.record for c in new])
    added.update(c.key for c in new)
    row: dict[str, Any] = {
        "month": start.strftime("%Y-%m"),
        "n_history": sum(c.trainable for c in history),
        "n_upserted": up.inserted,
        "n_dataset": up.total,
        "n_month": len(month),
        "upsert_seconds": time.perf_counter() - t0,
    }
    registry = Registry.from_settings(settings)
    before = registry.champion()
    prev_version = before.version if before is not None else None
    config = train_config(args)

    t0 = time.perf_counter()
    try:
        outcome = train_and_register(settings, config)
    except NotEnoughDataError as exc:
        log(f"{row['month']}: not trained: {exc}")
        row.update({"trained": False, "error": str(exc), "champion": prev_version})
        outcome = None
    row["train_seconds"] = time.perf_counter() - t0
    if outcome is not None:
        comparison = outcome.report["comparison"]
        row.update(
            {
                "trained": True,
                "candidate": outcome.version,
                "promoted": outcome.promoted,
                "reason": outcome.reason,
                "previous_champion": prev_version,
                "comparison": {
                    k: comparison.get(k)
                    for k in (
                        "n",
                        "excluded_champion_used",
                        "candidate_top1",
                        "champion_top1",
                        "diff_top1",
                        "diff_top1_low",
                        "diff_top1_high",
                        "diff_top3",
                        "diff_top3_low",
                        "diff_top3_high",
                    )
                },
                "n_train_cases": outcome.metrics.get("n_selected"),
                "n_classes": outcome.metrics.get("n_classes"),
                "split": {
                    k: outcome.metrics.get(k)
                    for k in ("n_train", "n_val", "n_test", "n_test_recent")
                },
                "candidate_test_top1": outcome.metrics.get("test_top1"),
                "served": outcome.report.get("served"),
                # what validation chose: the network's best epoch, the mixture's weights
                "best_epoch": (outcome.report.get("history") or {}).get("best_epoch"),
                "ensemble": (outcome.report.get("history") or {}).get("ensemble"),
            }
        )
        log(f"{row['month']}: {outcome.reason}")
    champion = registry.champion()
    row["champion"] = champion.version if champion is not None else None
    if champion is None or not month:
        return row

    t0 = time.perf_counter()
    served = registry.load(champion.version)
    leaked = {c.key for c in month} & set(served.precedents.keys)
    if leaked:  # the forward-looking test must be unseen; anything else is a bug upstream
        raise AssertionError(f"{row['month']}: {len(leaked)} month cases in the champion's data")
    product = score_model(served, month, args.inputs, digits)
    row["champion_n_train_cases"] = len(served.precedents.keys)
    row["product"] = product["acc"]
    row["product_known"] = product["known"]
    row["product_hits"] = {k: v for k, v in product["hits"].items() if v is not None}
    if outcome is not None and not outcome.promoted:
        # what the rejected candidate (not refitted: its evaluated model) would have scored
        rejected = score_model(registry.load(outcome.version), month, args.inputs, digits)
        row["rejected_candidate"] = rejected["acc"]
    row["score_seconds"] = time.perf_counter() - t0

    # the peer: the same selected cases the candidate could see (all of them: the served
    # model is refitted on every selected case)
    t0 = time.perf_counter()
    selection = load_examples(settings, config)
    if len({e.label for e in selection.examples}) >= 2:
        peer = fit_peer(selection.examples, args.seed)
        peer_scores = score_peer(peer, month, args.inputs, digits)
        row["svm"] = peer_scores["acc"]
        row["svm_hits"] = {k: v for k, v in peer_scores["hits"].items() if v is not None}
        row["svm_n_train_cases"] = len(selection.examples)
    row["svm_seconds"] = time.perf_counter() - t0

    if outcome is not None and prev_version is not None:
        row["bias"] = bias_row(registry, prev_version, outcome, by_key, args.inputs, digits)
    return row


# ------------------------------------------------------------------ output


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def pair(acc: dict[str, float | None] | None, d: int) -> str:
    """'top-1 / top-3' at ``d`` digits."""
    if not acc or acc.get(f"hs{d}_top1") is None:
        return "-"
    return f"{pct(acc[f'hs{d}_top1'])} / {pct(acc[f'hs{d}_top3'])}"


def overall(months: Sequence[dict[str, Any]], what: str) -> dict[str, float | None]:
    """Hits pooled over the scored months (each month weighted by its size)."""
    pooled: dict[str, list[bool]] = {}
    for m in months:
        for name, hits in (m.get(f"{what}_hits") or {}).items():
            pooled.setdefault(name, []).extend(hits)
    return {name: float(np.mean(h)) if h else None for name, h in pooled.items()}


def gate_cell(m: dict[str, Any]) -> str:
    if not m.get("trained"):
        return "not trained"
    c = m["comparison"]
    if not c.get("n"):
        return "promoted (first)" if m["promoted"] else "kept (no comparison)"
    verdict = "promoted" if m["promoted"] else "kept"
    return (
        f"{verdict}; n {c['n']}, {100 * c['diff_top1']:+.1f} "
        f"[{100 * c['diff_top1_low']:+.1f}, {100 * c['diff_top1_high']:+.1f}]"
    )


def to_markdown(report: dict[str, Any]) -> str:
    digits = [d for d in DIGITS if d <= LEVEL_DIGITS[report["args"]["level"]]]
    scored = [m for m in report["months"] if "product" in m]
    head = ["month", "train cases champion / SVM", "month cases", "champion", "known %"]
    for d in digits:
        head += [f"product @{d} t1/t3", f"SVM @{d} t1/t3"]
    head += ["gate (n, diff top-1 [95%])"]
    rows: list[list[object]] = []
    for m in report["months"]:
        row: list[object] = [
            m["month"],
            f"{m.get('champion_n_train_cases', '-')} / {m.get('svm_n_train_cases', '-')}",
            m["n_month"],
            (m.get("champion") or "-").split("-")[0],
            pct(m.get("product_known")),
        ]
        for d in digits:
            row += [pair(m.get("product"), d), pair(m.get("svm"), d)]
        row.append(gate_cell(m))
        rows.append(row)
    total = sum(m["n_month"] for m in scored)
    prod_all, svm_all = report["overall"]["product"], report["overall"]["svm"]
    last: list[object] = ["**overall**", "", total, "", ""]
    for d in digits:
        last += [f"**{pair(prod_all, d)}**", f"**{pair(svm_all, d)}**"]
    promoted = sum(1 for m in report["months"] if m.get("promoted"))
    last.append(f"{promoted} of {sum(1 for m in report['months'] if m.get('trained'))} promoted")
    rows.append(last)

    bias_rows = []
    for m in report["months"]:
        b = m.get("bias")
        if not b:
            continue
        bias_rows.append(
            [
                m["month"],
                b["previous_champion"].split("-")[0],
                b["n_test"],
                f"{b['n_trained']} / {b['n_unseen']}",
                pct(b["champion_top1_trained"]),
                pct(b["champion_top1_unseen"]),
                pct(b["candidate_top1_trained"]),
                pct(b["candidate_top1_unseen"]),
                pct(b["memorisation"]),
            ]
        )
    cfg = report["train_config"]
    lines = [
        f"# Backtest: {report['corpus']['name']}, month by month",
        "",
        f"Command: `{report['command']}`",
        "",
        (
            f"Total {report['total_seconds']:.0f} s; max RSS {report['max_rss_mb']:.0f} MB. "
            + report["corpus"]["spread_note"]
            + "."
        ),
        "",
        "Training config: `" + ", ".join(f"{k}={v}" for k, v in cfg.items() if v is not None) + "`",
        "",
        (
            "Product: the champion's served model after the month's training, scored on the "
            "cases decided in that month (never trained on); SVM: TF-IDF + LinearSVC fitted on "
            "the same selected cases as the candidate. t1/t3: top-1 / top-3 %; 6 and 4 digits "
            "by first appearance of each prefix in the ranking; codes a model does not know "
            "count as wrong (known %: the month's cases whose code the champion knows). "
            "Gate: the leak-free comparison, candidate minus champion top-1 in points."
        ),
        "",
        markdown_table(head, rows),
        "",
    ]
    rejected = [m for m in report["months"] if m.get("rejected_candidate")]
    if rejected:
        lines += [
            "Rejected candidates (not refitted) on their month, top-1 / top-3 at "
            f"{digits[0]} digits: "
            + "; ".join(
                f"{m['month']} {pair(m['rejected_candidate'], digits[0])}" for m in rejected
            ),
            "",
        ]
    if bias_rows:
        lines += [
            "## The old gate's bias",
            "",
            (
                "The previous champion's SERVED model (refitted on all its cases) on the new "
                "candidate's test cases, split into those it trained on and those it did not; "
                "the candidate's evaluated model (trained on neither) on the same two parts. "
                "memorisation = (champion trained - unseen) - (candidate trained - unseen), in "
                "points: how much a gate comparing with the served champion on a reshuffled "
                "test set would overstate the champion on the trained part."
            ),
            "",
            markdown_table(
                [
                    "month",
                    "prev. champion",
                    "test cases",
                    "trained / unseen",
                    "champion t1 trained",
                    "champion t1 unseen",
                    "candidate t1 trained",
                    "candidate t1 unseen",
                    "memorisation",
                ],
                bias_rows,
            ),
            "",
        ]
    lines += ["## Gate reasons", ""]
    lines += [f"- {m['month']}: {m.get('reason') or m.get('error', '-')}" for m in report["months"]]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", choices=("kcs", "demo"), default="kcs")
    parser.add_argument("--kcs-dir", type=Path, default=KCS_DIR)
    parser.add_argument("--demo-cases", type=int, default=600)
    parser.add_argument("--demo-seed", type=int, default=0)
    parser.add_argument(
        "--inputs", choices=("title+description", "title"), default="title+description"
    )
    parser.add_argument("--level", choices=tuple(LEVEL_DIGITS), default="hs10")
    parser.add_argument("--min-history", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--top-codes", type=int, default=None)
    parser.add_argument("--min-cases-per-code", type=int, default=2)
    parser.add_argument("--recent-days", type=int, default=30)
    parser.add_argument("--embed-dim", type=int, default=64)
    parser.add_argument("--embed-epochs", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-len", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--max-months", type=int, default=None, help="stop after this many")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="an empty or new folder for the replay's dataset and registry (default: a "
        "temporary folder under var/bench, removed afterwards unless --keep-data)",
    )
    parser.add_argument("--keep-data", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="the JSON report")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    from hscode.settings import Settings

    command = "python -m benchmarks.bench_backtest" + (" " + shlex.join(argv) if argv else "")
    t_start = time.perf_counter()
    cases, info = load_corpus(args)
    log(f"corpus {info.name}: {info.n_cases} dated cases, {info.n_trainable} trainable")
    log(info.spread_note)
    by_key = {c.key: c for c in cases}

    DEFAULT_OUT_DIR.mkdir(parents=True, exist_ok=True)
    temporary = args.data_dir is None
    data_dir = (
        Path(tempfile.mkdtemp(prefix="backtest-", dir=DEFAULT_OUT_DIR))
        if temporary
        else args.data_dir
    )
    if not temporary and data_dir.exists() and any(data_dir.iterdir()):
        raise SystemExit(f"--data-dir {data_dir} is not empty: the replay needs a fresh one")
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=data_dir, storage_url=None, registry_dir=None, device="cpu")
    config = train_config(args)
    config_dict = {
        k: v for k, v in dataclasses.asdict(config).items() if v is not None or k == "top_codes"
    }
    print(f"Command: `{command}`\n")
    print(f"Training config: {config_dict}\n", flush=True)
    log(f"data dir {data_dir}")

    months: list[dict[str, Any]] = []
    added: set[str] = set()
    try:
        for start in month_starts(cases):
            n_before = sum(c.trainable for c in cases if c.date < start)
            if n_before < args.min_history:
                continue
            if args.max_months is not None and len(months) >= args.max_months:
                break
            t0 = time.perf_counter()
            log(f"{start:%Y-%m}: {n_before} trainable cases before it")
            row = run_month(settings, args, cases, by_key, start, added)
            row["seconds"] = time.perf_counter() - t0
            months.append(row)
            log(
                f"{row['month']}: champion {row.get('champion')}, product "
                f"{pair(row.get('product'), LEVEL_DIGITS[args.level])}, SVM "
                f"{pair(row.get('svm'), LEVEL_DIGITS[args.level])} ({row['seconds']:.0f} s)"
            )
    finally:
        if temporary and not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
    scored = [m for m in months if "product" in m]
    report: dict[str, Any] = {
        "command": command,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "train_config": config_dict,
        "corpus": dataclasses.asdict(info),
        "months": months,
        "overall": {
            "n_cases": sum(m["n_month"] for m in scored),
            "product": overall(scored, "product"),
            "svm": overall(scored, "svm"),
        },
        "total_seconds": time.perf_counter() - t_start,
        "max_rss_mb": max_rss_mb(),
        "data_dir": str(data_dir) if (args.keep_data or not temporary) else None,
    }
    md = to_markdown(report)
    out = args.out or DEFAULT_OUT_DIR / f"bench_backtest-{args.corpus}-{args.level}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str))
    out.with_suffix(".md").write_text(md)
    print(md)
    log(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
