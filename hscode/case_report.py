"""The cases dataset described: counts, code coverage, label noise and rejects by code.

``hscode cases report`` and the flows' quality artifact: :func:`quality_report` returns the
metrics (for machines) and their markdown (for people). Rejects are counted by their
:class:`~hscode.rejects.RejectReason` code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hscode.cases import read_cases
from hscode.hs import format_hs10
from hscode.rejects import Rejection, read_rejects
from hscode.settings import Settings
from hscode.text import title_key


@dataclass(frozen=True, slots=True)
class QualityReport:
    metrics: dict[str, Any]
    markdown: str


def _counts(values: Iterable[Any]) -> dict[str, int]:
    return {
        str(k): v for k, v in sorted(Counter(values).items(), key=lambda kv: (-kv[1], str(kv[0])))
    }


def quality_report(
    settings: Settings,
    table: pa.Table | None = None,
    rejects: Sequence[Rejection] | None = None,
    *,
    top_n: int = 20,
    min_cases: Sequence[int] = (5, 10, 50, 100),
) -> QualityReport:
    """Counts, rejects and code distribution of the dataset, as metrics and markdown."""
    if table is None:
        table = read_cases(settings)
    if rejects is None:
        rejects = read_rejects(settings)
    cols = {
        c: table[c].to_pylist()
        for c in (
            "source",
            "series",
            "decision_year",
            "hs10",
            "hs6",
            "hs2",
            "multi_code",
            "title",
            "description",
            "code_status",
            "code_edition",
        )
    }
    n = table.num_rows
    image_counts = pc.list_value_length(table["image_hashes"]).to_pylist()
    hs10 = [c for c in cols["hs10"] if c]
    code_counts = Counter(hs10)
    unclear = sum(
        1 for h6, multi in zip(cols["hs6"], cols["multi_code"], strict=True) if not h6 and not multi
    )

    # Label noise: one normalised title decided under different 10-digit codes.
    codes_by_title: dict[str, set[str]] = {}
    rows_by_title: Counter = Counter()
    for title, code in zip(cols["title"], cols["hs10"], strict=True):
        if code:
            key = title_key(title)
            codes_by_title.setdefault(key, set()).add(code)
            rows_by_title[key] += 1
    conflicts = {t: c for t, c in codes_by_title.items() if len(c) > 1}
    conflict_examples = [
        {"title": t, "codes": sorted(c), "cases": rows_by_title[t]}
        for t, c in sorted(conflicts.items(), key=lambda kv: (-rows_by_title[kv[0]], kv[0]))[:10]
    ]

    metrics: dict[str, Any] = {
        "cases": n,
        "by_source": _counts(cols["source"]),
        "by_series": _counts(s or "none" for s in cols["series"]),
        "by_year": {str(y): c for y, c in sorted(Counter(cols["decision_year"]).items())},
        "multi_code": sum(bool(m) for m in cols["multi_code"]),
        "unclear_code": unclear,
        "with_hs10": len(hs10),
        "with_description": sum(1 for d in cols["description"] if d),
        "with_images": sum(1 for c in image_counts if c),
        "rejects": len(rejects),
        "rejects_by_reason": _counts(r.reason for r in rejects),
        "distinct_hs10": len(code_counts),
        "distinct_hs6": len({c for c in cols["hs6"] if c}),
        "top_codes": [{"hs10": c, "cases": k} for c, k in code_counts.most_common(top_n)],
        "codes_with_at_least": {
            str(m): sum(1 for k in code_counts.values() if k >= m) for m in min_cases
        },
        "by_chapter": {c: k for c, k in sorted(Counter(h for h in cols["hs2"] if h).items())},
        "conflicting_titles": len(conflicts),
        "conflicting_title_cases": sum(rows_by_title[t] for t in conflicts),
        "conflict_examples": conflict_examples,
        # against the current tariff edition (``hscode cases restatus``); "not derived" until
        # an edition is loaded and the statuses derived
        "code_editions": _counts(e or "not derived" for e in cols["code_edition"]),
        "by_code_status": _counts(s or "not derived" for s in cols["code_status"]),
        "largest_not_current": _largest_not_current(cols["hs10"], cols["code_status"]),
    }
    return QualityReport(metrics, _markdown(metrics))


def _largest_not_current(
    codes: Sequence[str | None], statuses: Sequence[str | None], n: int = 10
) -> list[dict[str, Any]]:
    """The old codes with the most cases, by status (what a new edition costs most)."""
    counts = Counter(
        (code, status)
        for code, status in zip(codes, statuses, strict=True)
        if code and status and status != "current"
    )
    return [
        {"hs10": code, "status": status, "cases": k} for (code, status), k in counts.most_common(n)
    ]


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(m: dict[str, Any]) -> str:
    def table(head: tuple[str, str], items: Iterable[tuple[Any, Any]]) -> list[str]:
        rows = [f"| {head[0]} | {head[1]} |", "|---|---:|"]
        rows += [f"| {_md_escape(str(k))} | {v} |" for k, v in items]
        return rows if len(rows) > 2 else rows + ["| (none) | 0 |"]

    lines = [
        "# Cases data quality",
        "",
        (
            f"- cases: **{m['cases']}**; with a 10-digit code: {m['with_hs10']}; "
            f"multi-code: {m['multi_code']}; unclear code: {m['unclear_code']}"
        ),
        f"- with description: {m['with_description']}; with images: {m['with_images']}",
        f"- distinct codes: {m['distinct_hs10']} (10-digit), {m['distinct_hs6']} (6-digit); "
        + ", ".join(f"with >= {k} cases: {v}" for k, v in m["codes_with_at_least"].items()),
        f"- rejects: {m['rejects']}",
        (
            f"- titles decided under different codes (label noise): {m['conflicting_titles']} "
            f"titles, {m['conflicting_title_cases']} cases"
        ),
        "",
        "## By source",
        *table(("source", "cases"), m["by_source"].items()),
        "",
        "## By series",
        *table(("series", "cases"), m["by_series"].items()),
        "",
        "## By decision year (0 = unknown)",
        *table(("year", "cases"), m["by_year"].items()),
        "",
        "## Rejects by reason",
        *table(("reason", "records"), m["rejects_by_reason"].items()),
        "",
        "## Decided codes against the current tariff",
        "editions: " + ", ".join(f"{k} ({v})" for k, v in m["code_editions"].items()),
        "",
        *table(("status", "cases"), m["by_code_status"].items()),
        "",
        "| old code | status | cases |",
        "|---|---|---:|",
        *[
            f"| {format_hs10(e['hs10'])} | {e['status']} | {e['cases']} |"
            for e in m["largest_not_current"]
        ],
        "",
        "## Top codes",
        *table(("hs10", "cases"), ((format_hs10(t["hs10"]), t["cases"]) for t in m["top_codes"])),
        "",
        "## By chapter",
        *table(("chapter", "cases"), m["by_chapter"].items()),
        "",
        "## Conflicting titles (examples)",
        "| title | codes | cases |",
        "|---|---|---:|",
        *[
            f"| {_md_escape(e['title'][:80])} | {', '.join(format_hs10(c) for c in e['codes'])} | {e['cases']} |"
            for e in m["conflict_examples"]
        ],
        "",
    ]
    return "\n".join(lines)
