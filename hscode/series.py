"""The portal's series of rulings: one definition for the crawler, the CLI, the cases schema
and the emulator (kept apart from ``hscode.schema`` so the CLI starts without pyarrow)."""

from __future__ import annotations

from enum import StrEnum


class Series(StrEnum):
    """The portal's three series of rulings (a member compares equal to its string)."""

    ORDINARY = "ordinary"  # 품목분류사례: ordinary classification cases
    COUNCIL = "council"  # 품목분류협의회 결정: council decisions
    COMMITTEE = "committee"  # 관세품목분류위원회 결정: committee decisions


SERIES: tuple[str, ...] = tuple(s.value for s in Series)
