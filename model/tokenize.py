"""Tokenizer for customs product names: mixed Korean, English and model/part numbers.

Korean runs are split into morphemes by kiwipiepy's Kiwi (content morphemes only: particles
and endings carry no class signal); Latin words and numbers are split by regex. Model and part
numbers ('SM-G991N', '455233B000') are unique per product, so besides the literal token we emit
a digit-normalised "shape" token ('sm-g0n') and the letter pieces ('sm', 'g'), which lets
'SM-G991N' and 'SM-G998B' share evidence instead of being two unknown words.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

MODES = ("word", "morph", "morph+subword")

# A chunk is a run of Hangul, or a run of Latin letters/digits possibly joined by - / . _
_CHUNK = re.compile(r"[가-힣ㄱ-ㅎㅏ-ㅣ]+|[a-z0-9]+(?:[-/._][a-z0-9]+)*", re.IGNORECASE)
_HANGUL = re.compile(r"[가-힣ㄱ-ㅎㅏ-ㅣ]")
_DIGITS = re.compile(r"\d+")
_LETTERS = re.compile(r"[a-z]+")
_PIECES = re.compile(r"[a-z]+|\d+")
# Units that follow a number ('235mm', '50g', '12v'): keep the unit, the number itself is noise.
_QUANTITY = re.compile(r"^(\d+(?:[.,]\d+)?)([a-z]{1,4})$")

# Kiwi tags kept: nouns, verbs/adjective stems, roots, foreign words (SL), hanja, unknown.
_KEEP_TAG_PREFIXES = ("NN", "NR", "NP", "VV", "VA", "XR", "SL", "SH", "SN", "XSN", "MAG")

_kiwi_lock = threading.Lock()
_kiwi = None


def _get_kiwi():
    """One Kiwi per process: loading its model takes ~1.5 s."""
    global _kiwi
    with _kiwi_lock:
        if _kiwi is None:
            from kiwipiepy import Kiwi

            _kiwi = Kiwi(num_workers=-1)
        return _kiwi


class Tokenizer:
    """Deterministic tokenizer; stateless apart from its config, so it pickles by config."""

    def __init__(self, mode: str = "morph+subword", lowercase: bool = True) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown tokenizer mode {mode!r}; expected one of {MODES}")
        self.mode = mode
        self.lowercase = lowercase

    # --- serialisation -------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        return {"mode": self.mode, "lowercase": self.lowercase}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Tokenizer:
        return cls(
            mode=config.get("mode", "morph+subword"), lowercase=config.get("lowercase", True)
        )

    def __getstate__(self) -> dict[str, Any]:
        return self.to_config()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    def __repr__(self) -> str:
        return f"Tokenizer(mode={self.mode!r}, lowercase={self.lowercase})"

    # --- tokenizing ------------------------------------------------------------------------
    def _normalise(self, text: str) -> str:
        text = unicodedata.normalize("NFKC", text or "")
        return text.lower() if self.lowercase else text

    def tokenize(self, text: str) -> list[str]:
        return self.tokenize_many([text])[0]

    def tokenize_many(self, texts: Iterable[str]) -> list[list[str]]:
        texts = [self._normalise(t if isinstance(t, str) else "") for t in texts]
        chunked = [_CHUNK.findall(t) for t in texts]
        if self.mode == "word":
            return chunked

        # Morph-analyse every distinct Hangul chunk once, in one batch call.
        hangul = sorted({c for chunks in chunked for c in chunks if _HANGUL.match(c)})
        morphs: dict[str, list[str]] = {}
        if hangul:
            kiwi = _get_kiwi()
            for chunk, toks in zip(hangul, kiwi.tokenize(hangul), strict=True):
                kept = [t.form for t in toks if t.tag.startswith(_KEEP_TAG_PREFIXES)]
                morphs[chunk] = kept or [chunk]

        subword = self.mode == "morph+subword"
        out: list[list[str]] = []
        for chunks in chunked:
            tokens: list[str] = []
            for chunk in chunks:
                if chunk in morphs:
                    tokens.extend(morphs[chunk])
                elif subword:
                    tokens.extend(_latin_tokens(chunk))
                else:
                    tokens.append(chunk)
            out.append(tokens)
        return out


def _latin_tokens(chunk: str) -> list[str]:
    """A Latin/digit chunk -> tokens; codes get a shape token and their letter pieces."""
    if not _DIGITS.search(chunk):
        if re.fullmatch(r"[a-z]+", chunk):
            return [chunk]
        # hyphenated or dotted words: 'x-ray', 'semi-finished'
        return [chunk, *_LETTERS.findall(chunk)]
    if chunk.isdigit():
        # Bare numbers (quantities, part numbers) carry little class signal; keep their length.
        return [f"<num{min(len(chunk), 8)}>"]
    quantity = _QUANTITY.match(chunk)
    if quantity:
        return ["<num>", quantity.group(2)]
    shape = _DIGITS.sub("0", chunk)
    pieces = [p for p in _PIECES.findall(chunk) if not p.isdigit() and len(p) > 1]
    return [chunk, shape, *pieces]


def tokenize_texts(texts: Sequence[str], mode: str = "morph+subword") -> list[list[str]]:
    """Convenience: tokenize with a default Tokenizer of the given mode."""
    return Tokenizer(mode=mode).tokenize_many(texts)
