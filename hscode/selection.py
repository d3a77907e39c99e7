"""Which cases a training run learns from: one clean code, a title, enough cases per code.

:func:`load_examples` reads the cases dataset and returns the selection as
``model.records.Example``s, with what was left out and why, each case's first readable
photo, and the decided codes against the current tariff (a code renumbered to one current
successor trains as that successor).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hscode.settings import Settings
from model.records import Example

if TYPE_CHECKING:
    from hscode.training import TrainConfig

LEVELS = {"hs10": 10, "hs6": 6, "hs4": 4, "hs2": 2}


@dataclass
class Selection:
    """The labelled examples chosen for training, with what was left out and why."""

    examples: list[Example]
    n_cases: int  # trainable cases in the dataset (single 10-digit code)
    n_classes: int
    dropped: dict[str, int] = field(default_factory=dict)
    missing_images: int = 0
    dates: list[dt.date | None] = field(default_factory=list)  # decision dates, per example
    # the selected cases' decided codes against the current tariff (``hscode.code_status``;
    # "not derived" before an edition is loaded), and the largest groups of old codes
    code_status: dict[str, int] = field(default_factory=dict)
    code_edition: str | None = None  # the tariff edition the statuses were derived against
    largest_not_current: list[dict[str, Any]] = field(default_factory=list)
    # trainable cases of the codes left out (rare, beyond top_codes): what the model learns
    # "unlike the known goods" from (model.familiarity); titles and descriptions, no images
    background: list[Example] = field(default_factory=list)
    # selected cases per source (``clip``, ``review`` for reviewers' decisions, imports...)
    sources: dict[str, int] = field(default_factory=dict)


def load_examples(settings: Settings, config: TrainConfig) -> Selection:
    """Trainable cases of the selected classes as ``model.records.Example``s."""
    from hscode.cases import read_cases
    from hscode.objectstore import Location, images_location

    table = read_cases(
        settings,
        columns=[
            "case_key",
            "source",
            "hs10",
            "multi_code",
            "title",
            "description",
            "image_hashes",
            "decision_date",
            "code_status",
            "code_candidates",
            "code_edition",
        ],
    )
    rows = table.to_pylist()
    digits = LEVELS[config.level]
    trainable = [r for r in rows if r["hs10"] and not r["multi_code"]]
    for r in trainable:  # a code renumbered to one current successor trains as that code
        r["decided_hs10"] = r["hs10"]
        if r["code_status"] == "remapped" and r["code_candidates"]:
            r["hs10"] = r["code_candidates"][0]
    dropped = {"no_single_hs10": len(rows) - len(trainable)}
    titled = [r for r in trainable if (r["title"] or "").strip()]
    dropped["empty_title"] = len(trainable) - len(titled)
    # a class is a current code: a case no current code is right for cannot teach one
    with_title = [r for r in titled if r["code_status"] != "unknown"]
    dropped["no_current_code"] = len(titled) - len(with_title)

    counts = Counter(r["hs10"][:digits] for r in with_title)
    eligible = {c for c, n in counts.items() if n >= config.min_cases_per_code}
    ranked = sorted(eligible, key=lambda c: (-counts[c], c))
    chosen = set(ranked[: config.top_codes] if config.top_codes else ranked)
    selected = [r for r in with_title if r["hs10"][:digits] in chosen]
    dropped["rare_code"] = sum(counts[c] for c in set(counts) - eligible)
    dropped["outside_top_codes"] = sum(counts[c] for c in eligible - chosen)

    selected.sort(key=lambda r: r["case_key"])
    # Each case's first readable image; fetched in rounds of one image per case, so object
    # storage answers many requests at once and a missing image falls back to the next.
    found: dict[int, bytes] = {}
    missing_images = 0
    if "image" in config.inputs:
        store = images_location(settings)
        todo = {i: list(r["image_hashes"] or []) for i, r in enumerate(selected)}
        todo = {i: hashes for i, hashes in todo.items() if hashes}
        while todo:
            wanted: dict[int, str] = {}
            for i, hashes in todo.items():
                try:
                    wanted[i] = Location.blob_rel(hashes[0])
                except ValueError:
                    wanted[i] = ""
            got = store.read_many(rel for rel in wanted.values() if rel)
            for i, rel in wanted.items():
                image = got.get(rel) if rel else None
                if isinstance(image, bytes):
                    found[i] = image
                    del todo[i]
                    continue
                missing_images += 1
                todo[i].pop(0)
                if not todo[i]:
                    del todo[i]
    examples = [
        Example(
            key=r["case_key"],
            title=r["title"],
            description=r["description"] if "description" in config.inputs else None,
            image=found.get(i),
            label=_one_code(r, digits),
            candidates=_candidates(r, digits),
        )
        for i, r in enumerate(selected)
    ]
    groups = Counter(
        (r["decided_hs10"], r["code_status"], len(r["code_candidates"] or ()))
        for r in selected
        if r["code_status"] not in (None, "current")
    )
    return Selection(
        examples=examples,
        n_cases=len(trainable),
        dates=[r["decision_date"] for r in selected],
        n_classes=len(chosen),
        dropped=dropped,
        missing_images=missing_images,
        code_status=dict(Counter(r["code_status"] or "not derived" for r in selected)),
        code_edition=_edition(selected),
        largest_not_current=[
            {"hs10": code, "status": status, "candidates": n, "cases": k}
            for (code, status, n), k in groups.most_common(10)
        ],
        sources=dict(Counter(r["source"] for r in selected).most_common()),
        background=_background(with_title, chosen, digits, config),
    )


MAX_BACKGROUND = 20_000


def _background(
    rows: list[dict[str, Any]], chosen: set[str], digits: int, config: TrainConfig
) -> list[Example]:
    """Up to MAX_BACKGROUND cases of the codes not chosen, a stable choice (by key hash, so
    a case keeps its place as the dataset grows)."""
    left = [r for r in rows if r["hs10"][:digits] not in chosen]
    left.sort(key=lambda r: hashlib.sha256(r["case_key"].encode()).hexdigest())
    return [
        Example(
            key=r["case_key"],
            title=r["title"],
            description=r["description"] if "description" in config.inputs else None,
            label=r["hs10"][:digits],
        )
        for r in left[:MAX_BACKGROUND]
    ]


def _candidates(row: dict[str, Any], digits: int) -> tuple[str, ...]:
    """A split or moved code's current codes at the model's level, as a partial label; ()
    when the case has one right code (current, remapped, unknown, or a split that one code
    covers at this level)."""
    if row["code_status"] not in ("split", "moved") or not row["code_candidates"]:
        return ()
    codes = tuple(sorted({c[:digits] for c in row["code_candidates"]}))
    return codes if len(codes) > 1 else ()


def _one_code(row: dict[str, Any], digits: int) -> str:
    """The label: the (current successor of the) decided code, or the one current code a
    split covers at this level (2106909090 at six digits is 210690, current)."""
    if row["code_status"] in ("split", "moved") and row["code_candidates"]:
        codes = {c[:digits] for c in row["code_candidates"]}
        if len(codes) == 1:
            return codes.pop()
    return row["hs10"][:digits]


def _edition(rows: list[dict[str, Any]]) -> str | None:
    """The edition most of the rows' statuses were derived against (None: not derived)."""
    editions = Counter(r["code_edition"] for r in rows if r["code_edition"])
    return editions.most_common(1)[0][0] if editions else None
