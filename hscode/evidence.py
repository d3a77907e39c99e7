"""What a reviewer reads about a precedent: its ruling's reference, date, series, reasoning
and a link to the ruling on the portal.

At training, :func:`case_evidence` reads these fields of the indexed cases from the cases
dataset (once per training run) and the model keeps them in its precedent index
(``model.precedents.CaseEvidence``, saved in the artifact), so scoring looks nothing up: a
found precedent carries them. The decision reason is kept shortened (:func:`shorten`: the
first :data:`REASON_CHARS` characters, cut at a word, with an ellipsis); the full text stays
in the cases dataset.

The link is formed when a precedent is written (:func:`precedent_url`), from the portal's
base URL of the settings (the real portal, or the emulator in the demo) and the case's key,
and only for a case that came from the portal (source ``clip``) with a known series: the
series' detail address with the form fields the portal reads (``rrdcNo``, and ``mttrTpcd``
for council and committee rulings, as ``hscode.portal.client`` posts them), as a query
string. The portal's detail answers a POST; that it serves the same ruling to a GET with
these fields has not been confirmed (docs/clip-portal.md documents no permalink), so the
link names the ruling unambiguously rather than promising a page. Cases from an import or
from reviewers' decisions get no link.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urljoin, urlsplit

if TYPE_CHECKING:  # model.precedents loads the model's stack (torch): only where it is used
    from hscode.settings import Settings
    from model.precedents import CaseEvidence
    from model.records import Precedent

REASON_CHARS = 300
ELLIPSIS = "…"
PORTAL_SOURCE = "clip"  # hscode.normalize.SOURCE: the portal's rulings
_SPACE = re.compile(r"\s+")


def shorten(text: str | None, limit: int = REASON_CHARS) -> str | None:
    """``text`` with its whitespace collapsed, cut to at most ``limit`` characters at a word
    boundary (a hard cut when the last word would leave less than half) plus an ellipsis;
    None for an empty text."""
    if not isinstance(text, str):
        return None
    text = _SPACE.sub(" ", text).strip()
    if not text:
        return None
    if len(text) <= limit:
        return text
    cut = text[: limit + 1]
    space = cut.rfind(" ")
    cut = cut[:space] if space >= limit // 2 else text[:limit]
    return cut.rstrip(" ,.;:·") + ELLIPSIS


def case_evidence(settings: Settings, keys: Iterable[str]) -> dict[str, CaseEvidence]:
    """The evidence of the cases ``keys`` from the cases dataset (a key the dataset lacks is
    left out), the decision reason shortened."""
    from hscode.cases import read_cases
    from model.precedents import CaseEvidence

    wanted = set(keys)
    if not wanted:
        return {}
    table = read_cases(
        settings,
        columns=[
            "case_key",
            "source",
            "series",
            "reference_no",
            "decision_date",
            "decision_reason",
        ],
    )
    out: dict[str, CaseEvidence] = {}
    for row in table.to_pylist():
        key = row["case_key"]
        if key not in wanted:
            continue
        date = row["decision_date"]
        out[key] = CaseEvidence(
            reference_no=(row["reference_no"] or "").strip() or None,
            decision_date=date.isoformat() if isinstance(date, dt.date) else None,
            series=row["series"] or None,
            reason=shorten(row["decision_reason"]),
            source=row["source"] or None,
        )
    return out


@lru_cache(maxsize=8)
def _portal_base(portal_url: str) -> str:
    """The portal's base as ``hscode.portal.client.PortalClient`` forms it (a bare origin
    means its ``/clip/``)."""
    base = portal_url if portal_url.endswith("/") else portal_url + "/"
    parts = urlsplit(base)
    if parts.path == "/":
        base = f"{parts.scheme}://{parts.netloc}/clip/"
    return base


def ruling_url(portal_url: str, series: str | None, case_key: str) -> str | None:
    """The link to a portal ruling (see the module docstring); None for an unknown series."""
    from hscode.portal.client import SERIES_PATHS

    paths = SERIES_PATHS.get(series) if series else None
    if paths is None or not case_key:
        return None
    form = {"rrdcNo": case_key}
    if paths.detail_code is not None:
        form["mttrTpcd"] = paths.detail_code
    return f"{urljoin(_portal_base(portal_url), paths.detail)}?{urlencode(form)}"


def precedent_url(portal_url: str, precedent: Precedent) -> str | None:
    """The link to a precedent's ruling when it came from the portal, else None."""
    if precedent.source != PORTAL_SOURCE:
        return None
    return ruling_url(portal_url, precedent.series, precedent.case_key)
