"""Text cleaning for case titles and descriptions (model inputs).

The portal wraps search hits in highlight tags (``<em>``, ``<b>``, ``<span ...>``),
sometimes HTML-escapes them twice (``&amp;lt;em&amp;gt;``), and pads values with
NBSP and zero-width characters. ``clean_text`` turns all of that into one readable
line. It normalises to NFC, never NFKC: NFKC would also rewrite Hangul
compatibility jamo and symbols such as ``㎜`` that carry meaning in product names;
only fullwidth ASCII and the ideographic space are mapped explicitly.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Self

# Only real HTML tag names are stripped, so product text such as "<PE>" or
# "<Type A>" survives.
_HTML_TAGS = (
    "a|abbr|b|big|blockquote|body|br|caption|center|code|col|colgroup|dd|del|div|dl|dt|em|"
    "font|h[1-6]|head|hr|html|i|img|ins|kbd|label|li|mark|nobr|ol|p|pre|q|s|samp|small|"
    "span|strike|strong|sub|sup|table|tbody|td|tfoot|th|thead|tr|tt|u|ul|wbr"
)
# Block-level tags separate words; inline highlight tags sit inside words ("우<em>레탄</em>").
_BREAK_TAGS = (
    "blockquote|br|caption|dd|div|dl|dt|h[1-6]|hr|li|ol|p|pre|table|tbody|td|tfoot|th|thead|tr|ul"
)
_BREAK_TAG = re.compile(rf"<\s*/?\s*(?:{_BREAK_TAGS})\b[^<>]*>", re.IGNORECASE)
_TAG = re.compile(rf"<\s*/?\s*(?:{_HTML_TAGS})\b[^<>]*>", re.IGNORECASE)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_SCRIPT = re.compile(r"<\s*(script|style)\b[^<>]*>.*?<\s*/\s*\1\s*>", re.IGNORECASE | re.DOTALL)

_DROP = "\u200b\u200c\u200d\u2060\ufeff\u00ad"  # zero-width chars, BOM, soft hyphen
_TRANSLATE: dict[int, int | str | None] = {ord(c): None for c in _DROP}
_TRANSLATE.update({cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)})  # fullwidth ASCII
_TRANSLATE.update({0x3000: " ", 0x00A0: " ", 0x2007: " ", 0x202F: " "})
# C0/C1 control characters other than whitespace become spaces (split() then drops them).
_TRANSLATE.update({cp: " " for cp in [*range(0x20), *range(0x7F, 0xA0)] if cp not in (9, 10, 13)})

_MAX_UNESCAPE_ROUNDS = 3  # "&amp;amp;lt;" is the deepest escaping seen in practice


def _unescape(text: str) -> str:
    for _ in range(_MAX_UNESCAPE_ROUNDS):
        if "&" not in text:
            break
        unescaped = html.unescape(text)
        if unescaped == text:
            break
        text = unescaped
    return text


def clean_text(raw: str | None) -> str:
    """One readable line: entities unescaped, tags stripped, odd spaces removed, NFC."""
    if not raw:
        return ""
    text = str(raw)
    if text.isascii() and "&" not in text and "<" not in text:
        # Fast path: most English declaration names need only whitespace collapsing.
        return " ".join(text.translate(_TRANSLATE).split())
    text = _unescape(text)
    if "<" in text:
        text = _COMMENT.sub(" ", text)
        text = _SCRIPT.sub(" ", text)
        text = _BREAK_TAG.sub(" ", text)
        text = _TAG.sub("", text)
    text = text.translate(_TRANSLATE)
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    return " ".join(text.split())


class DecodedText(str):
    """A ``str`` that remembers how many undecodable bytes were replaced by U+FFFD."""

    replaced: int

    def __new__(cls, value: str, replaced: int = 0) -> Self:
        obj = super().__new__(cls, value)
        obj.replaced = replaced
        return obj

    @property
    def had_errors(self) -> bool:
        return self.replaced > 0


def decode_text(data: bytes, encoding: str = "utf-8") -> DecodedText:
    """Decode bytes without failing: invalid sequences become U+FFFD and are counted.

    A leading UTF-8 BOM is dropped. ``result.had_errors`` tells the caller to flag
    the record instead of silently trusting the text.
    """
    if data.startswith(b"\xef\xbb\xbf") and encoding.replace("_", "-").lower() in ("utf-8", "utf8"):
        data = data[3:]
    try:
        return DecodedText(data.decode(encoding), 0)
    except UnicodeDecodeError:
        pass
    text = data.decode(encoding, errors="replace")
    # Count only replacements we introduced, not U+FFFD already present in the input.
    try:
        already = data.count("\ufffd".encode(encoding))
    except UnicodeEncodeError:  # the encoding cannot even spell U+FFFD
        already = 0
    return DecodedText(text, max(text.count("\ufffd") - already, 1))


def title_key(title: str | None) -> str:
    """What makes two titles 'identical' (the split's title groups, the label-noise count in
    the quality report): case, width and spacing ignored."""
    text = unicodedata.normalize("NFKC", title or "").casefold()
    return re.sub(r"\s+", " ", text).strip()
