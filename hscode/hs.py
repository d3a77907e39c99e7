"""The one HS-code normaliser.

Portal values look like ``3207.20-9000``, sometimes wrapped in ``<em>`` tags,
followed by button text (``3207.20-9000 관세율표 해설서``), prefixed
(``제2208.90-9000호``), or holding several codes (``① 6110.20-0000 ② 6108.91-0000``)
or free text (``각각 분류``). We keep the raw value, derive the 10/6/4/2-digit
codes from a clean single code, and flag multi-code values instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TAG = re.compile(r"<[^>]+>")
# A 10-digit HSK code in any of its usual spellings: 3207.20-9000, 3207209000, 3207.20.9000
_CODE10 = re.compile(r"(?<!\d)(\d{4})[.\s]?(\d{2})[-.\s]?(\d{4})(?!\d)")
# A 4- or 6-digit code written with a dot: 3207.20 or bare heading 3207 (only when alone)
_CODE6 = re.compile(r"(?<![\d.])(\d{4})\.(\d{2})(?![\d-])")


class HSCodeError(ValueError):
    """A value that cannot be read as one HS code."""


@dataclass(frozen=True, slots=True)
class HSCode:
    """A parsed code. ``hs10`` is None when only 6 digits were given."""

    raw: str
    hs10: str | None
    hs6: str | None
    hs4: str | None
    hs2: str | None
    multi: bool

    @property
    def is_clean(self) -> bool:
        return self.hs6 is not None and not self.multi


def clean_raw(value: str) -> str:
    return " ".join(_TAG.sub("", value).split())


def parse_hs(value: object) -> HSCode:
    """Parse a raw decided-code value. Never raises: unclear values come back unclean."""
    raw = "" if value is None else str(value)
    text = clean_raw(raw)
    codes10 = {"".join(m.groups()) for m in _CODE10.finditer(text)}
    if len(codes10) > 1:
        return HSCode(raw, None, None, None, None, True)
    if len(codes10) == 1:
        hs10 = codes10.pop()
        rest = _CODE10.sub(" ", text)
        other6 = {"".join(m.groups()) for m in _CODE6.finditer(rest)}
        if other6 - {hs10[:6]}:
            return HSCode(raw, None, None, None, None, True)
        return HSCode(raw, hs10, hs10[:6], hs10[:4], hs10[:2], False)
    codes6 = {"".join(m.groups()) for m in _CODE6.finditer(text)}
    if len(codes6) > 1:
        return HSCode(raw, None, None, None, None, True)
    if len(codes6) == 1:
        hs6 = codes6.pop()
        return HSCode(raw, None, hs6, hs6[:4], hs6[:2], False)
    digits = re.sub(r"\D", "", text)
    # Bare digit strings (imports, CSVs that lost leading zeros): 9 digits -> chapter 01-09.
    if text and re.fullmatch(r"[\d.\-\s]+", text) and len(digits) in (9, 10):
        hs10 = digits.zfill(10)
        return HSCode(raw, hs10, hs10[:6], hs10[:4], hs10[:2], False)
    return HSCode(raw, None, None, None, None, bool(re.search(r"[①②③④⑤]|각각", text)))


def require_hs10(value: object) -> str:
    """The 10-digit code of a value, or HSCodeError with the reason."""
    code = parse_hs(value)
    if code.multi:
        raise HSCodeError(f"several codes in {code.raw!r}")
    if code.hs10 is None:
        raise HSCodeError(f"no 10-digit HS code in {code.raw!r}")
    return code.hs10


def format_hs10(hs10: str) -> str:
    """``3207209000`` -> ``3207.20-9000`` (the portal's spelling)."""
    if len(hs10) != 10 or not hs10.isdigit():
        raise HSCodeError(f"not a 10-digit code: {hs10!r}")
    return f"{hs10[:4]}.{hs10[4:6]}-{hs10[6:]}"


LEVEL_DIGITS = (2, 4, 6, 10)  # the levels a code is read at: chapter .. national code


def level(hs10: str, digits: int) -> str:
    """Roll a code up to 2, 4, 6 or 10 digits."""
    if digits not in LEVEL_DIGITS:
        raise ValueError(f"HS levels are 2, 4, 6 or 10 digits, not {digits}")
    return hs10[:digits]
