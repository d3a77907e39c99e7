"""A decided code against today's tariff: current, remapped, split, moved or unknown.

Rulings go back decades, across HS editions and yearly Korean (HSK) changes, so a decided
ten-digit code may no longer exist. :func:`code_status` says what it is now, with the set of
current ten-digit codes that stay right for it (the case's candidate set):

- ``current``: the code is in the current edition; its set is itself;
- ``remapped``: it is gone, and exactly one current code survives under its longest
  surviving prefix (or, for a deleted subheading, through the correlation table);
- ``split``: it is gone and its longest surviving prefix (at least the six-digit subheading)
  now holds several current codes (2106909090 became 2106909091 and 2106909099): the old
  label is right at that prefix, and the set is those codes;
- ``moved``: its six-digit subheading was deleted; the correlation table (six-digit, HS2022
  against older editions) names the subheadings it went to, and the set is every current
  code under them;
- ``unknown``: no current code is reachable.

Plain Python on sets and sorted lists, so 100,000 cases take well under a second
(``benchmarks/bench_code_status.py``); the tariff and correlations come from
``hscode.tariff`` (Postgres) or from files.
"""

from __future__ import annotations

import bisect
import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class CodeStatus(StrEnum):
    CURRENT = "current"
    REMAPPED = "remapped"
    SPLIT = "split"
    MOVED = "moved"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class StatusResult:
    status: CodeStatus
    candidates: tuple[str, ...]  # current ten-digit codes right for the case, sorted
    via: str | None = None  # the surviving prefix, or "correlation:<old6>"


@dataclass
class CurrentTariff:
    """The current edition's ten-digit codes, and six-digit correlations old -> current."""

    edition: str
    codes: frozenset[str]
    # an older subheading -> the current subheadings it maps to (from the correlation table)
    successors: Mapping[str, frozenset[str]] = field(default_factory=dict)
    _sorted: list[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        bad = [c for c in self.codes if len(c) != 10 or not c.isdigit()]
        if bad:
            raise ValueError(f"current codes must be ten digits, got {bad[:3]}")
        self._sorted = sorted(self.codes)

    @classmethod
    def from_correlations(
        cls, edition: str, codes: Iterable[str], pairs: Iterable[tuple[str, str]]
    ) -> CurrentTariff:
        """``pairs``: (current six-digit subheading, older six-digit subheading)."""
        successors: dict[str, set[str]] = {}
        for new6, old6 in pairs:
            if new6 != old6:
                successors.setdefault(old6, set()).add(new6)
        return cls(edition, frozenset(codes), {k: frozenset(v) for k, v in successors.items()})

    @classmethod
    def from_files(cls, edition: str, codes_csv: Path, correlations_csv: Path) -> CurrentTariff:
        """From an HSK code list (``hsk_codes.csv``: column ``hs10``) and a correlation file
        (``hs2022_correlations.csv``: ``hs2022``, ``old_hs6``), as the benchmarks and data
        tests read them; the product loads them into Postgres (``hscode.tariff``)."""
        with Path(codes_csv).open(encoding="utf-8-sig") as f:
            codes = [r["hs10"] for r in csv.DictReader(f)]
        with Path(correlations_csv).open(encoding="utf-8") as f:
            pairs = [(r["hs2022"], r["old_hs6"]) for r in csv.DictReader(f)]
        return cls.from_correlations(edition, codes, pairs)

    def under(self, prefix: str) -> tuple[str, ...]:
        """Current ten-digit codes starting with ``prefix``, sorted."""
        i = bisect.bisect_left(self._sorted, prefix)
        out = []
        while i < len(self._sorted) and self._sorted[i].startswith(prefix):
            out.append(self._sorted[i])
            i += 1
        return tuple(out)


def code_status(code: str | None, tariff: CurrentTariff) -> StatusResult:
    """The status of one decided ten-digit code (``None`` or malformed: unknown)."""
    if not code or len(code) != 10 or not code.isdigit():
        return StatusResult(CodeStatus.UNKNOWN, ())
    if code in tariff.codes:
        return StatusResult(CodeStatus.CURRENT, (code,))
    for length in range(9, 5, -1):  # the longest surviving prefix, down to the subheading
        found = tariff.under(code[:length])
        if found:
            status = CodeStatus.REMAPPED if len(found) == 1 else CodeStatus.SPLIT
            return StatusResult(status, found, via=code[:length])
    old6 = code[:6]
    targets = sorted(tariff.successors.get(old6, ()))
    found = tuple(sorted({c for new6 in targets for c in tariff.under(new6)}))
    if len(found) == 1:
        return StatusResult(CodeStatus.REMAPPED, found, via=f"correlation:{old6}")
    if found:
        return StatusResult(CodeStatus.MOVED, found, via=f"correlation:{old6}")
    return StatusResult(CodeStatus.UNKNOWN, ())


def code_statuses(codes: Iterable[str | None], tariff: CurrentTariff) -> list[StatusResult]:
    """:func:`code_status` for many codes, each distinct code derived once."""
    memo: dict[str | None, StatusResult] = {}
    out = []
    for code in codes:
        result = memo.get(code)
        if result is None:
            result = memo[code] = code_status(code, tariff)
        out.append(result)
    return out
