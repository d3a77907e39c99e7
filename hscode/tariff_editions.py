"""Reading tariff editions back: which edition is current, its codes, the correlations.

Plain typed reads of what :mod:`hscode.tariff` loads (``sql/007_tariff_editions.sql``), for
the rest of the core (code statuses, training, scoring). Each call is one query; nothing is
cached, so a caller that needs a stable view across calls reads once and keeps the result.

- :func:`current_edition` -> the current edition's name, None when no edition is current.
- :func:`current_codes` -> the current edition's ten-digit codes (empty when none is
  current: tell "nothing current" from "an empty edition" with :func:`current_edition`).
- :func:`current_edition_codes` -> both at once, read together (no edition switch between).
- :func:`edition_codes` -> an edition's codes (every level, or one level).
- :func:`editions` -> every edition, the current one first.
- :func:`correlations` -> the six-digit correlation pairs, from an older HS edition's code
  to a newer one's (:class:`Correlation`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text

from hscode.code_status import CurrentTariff
from hscode.tariff import UnknownEditionError, check_edition_name

if TYPE_CHECKING:
    from hscode.cases import RestatusReport
    from hscode.settings import Settings

__all__ = [
    "Correlation",
    "Edition",
    "UnknownEditionError",
    "correlations",
    "current_codes",
    "current_edition",
    "current_edition_codes",
    "current_tariff",
    "derive_code_statuses",
    "edition_codes",
    "editions",
]


@dataclass(frozen=True, slots=True)
class Edition:
    name: str
    is_current: bool
    loaded_at: dt.datetime
    source_file: str | None
    code_count: int
    hs10_count: int


@dataclass(frozen=True, slots=True)
class Correlation:
    """One six-digit pair: ``from_code`` of the older HS edition ``from_edition``
    corresponds to ``to_code`` of ``to_edition`` (``relationship`` as the file typed it,
    e.g. the UN's ``1:1``, ``n:1``, ``1:n``, ``n:n``, newer side first; or None)."""

    from_edition: str
    from_code: str
    to_edition: str
    to_code: str
    relationship: str | None = None

    @property
    def pair(self) -> tuple[str, str]:
        """``(from_code, to_code)``."""
        return self.from_code, self.to_code


def current_edition(engine: Engine) -> str | None:
    """The current edition's name; None when no edition is current."""
    with engine.connect() as conn:
        return conn.execute(text("select name from tariff_editions where is_current")).scalar()


def edition_codes(engine: Engine, edition: str, level: int | None = None) -> frozenset[str]:
    """The codes of ``edition`` (every level, or only those of ``level`` digits); an
    unknown edition is an :class:`UnknownEditionError`."""
    edition = check_edition_name(edition)
    if level is not None and not 2 <= level <= 10:
        raise ValueError(f"level {level}: codes have 2 to 10 digits")
    with engine.connect() as conn:
        known = conn.execute(text("select 1 from tariff_editions where name = :n"), {"n": edition})
        if known.first() is None:
            raise UnknownEditionError(f"no tariff edition named {edition!r}")
        codes = conn.execute(
            text(
                "select code from tariff_edition_codes where edition = :n "
                "and (cast(:level as smallint) is null or level = :level)"
            ),
            {"n": edition, "level": level},
        ).scalars()
        return frozenset(codes)


def current_codes(engine: Engine) -> frozenset[str]:
    """The ten-digit codes of the current edition; empty when no edition is current."""
    return current_edition_codes(engine)[1]


def current_edition_codes(engine: Engine) -> tuple[str | None, frozenset[str]]:
    """``(current edition, its ten-digit codes)`` in one query, so a switch of editions
    between two calls cannot pair one edition's name with another's codes;
    ``(None, frozenset())`` when no edition is current."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "select e.name, m.code from tariff_editions e "
                "left join tariff_edition_codes m on m.edition = e.name and m.level = 10 "
                "where e.is_current"
            )
        ).all()
    if not rows:
        return None, frozenset()
    return rows[0].name, frozenset(row.code for row in rows if row.code is not None)


def editions(engine: Engine) -> list[Edition]:
    """Every loaded edition: the current one first, then the newest loaded."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "select name, is_current, loaded_at, source_file, code_count, hs10_count "
                "from tariff_editions order by is_current desc, loaded_at desc, name"
            )
        )
        return [Edition(*row) for row in rows]


def correlations(
    engine: Engine, from_edition: str | None = None, to_edition: str | None = None
) -> list[Correlation]:
    """The correlation pairs (of one older and / or one newer edition when given), ordered
    by edition and code."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "select from_edition, from_code, to_edition, to_code, relationship "
                "from tariff_correlations "
                "where (cast(:f as text) is null or from_edition = :f) "
                "and (cast(:t as text) is null or to_edition = :t) "
                "order by to_edition, from_edition, from_code, to_code"
            ),
            {"f": from_edition, "t": to_edition},
        )
        return [Correlation(*row) for row in rows]


def current_tariff(engine: Engine) -> CurrentTariff | None:
    """The current edition's ten-digit codes with the correlations into HS2022, for deriving
    code statuses (``hscode.code_status``); None when no edition is current."""
    edition, codes = current_edition_codes(engine)
    if edition is None:
        return None
    pairs = [(c.to_code, c.from_code) for c in correlations(engine)]
    return CurrentTariff.from_correlations(edition, codes, pairs)


def derive_code_statuses(settings: Settings, engine: Engine) -> RestatusReport | None:
    """Every case's code status against the current edition (``hscode.cases.restatus_cases``:
    only rows not yet derived against it are rewritten); None when no edition is current."""
    from hscode.cases import restatus_cases

    tariff = current_tariff(engine)
    return None if tariff is None else restatus_cases(settings, tariff)
