import time
import unicodedata

import pytest

from hscode.text import clean_text, decode_text


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("우<em>레탄</em> 수지", "우레탄 수지"),  # highlight inside a word joins it
        ('<span class="hl">Toy</span> <b>puzzle</b>', "Toy puzzle"),
        ("&amp;lt;em&amp;gt;3207&amp;lt;/em&amp;gt;.20", "3207.20"),  # double-escaped highlight
        ("Toy &amp; puzzle", "Toy & puzzle"),
        ("line one<br>line two<br/>three<BR />four", "line one line two three four"),
        ("<p>wooden</p><p>puzzle</p>", "wooden puzzle"),
        ("a\u00a0b\u200bc\ufeff  \t\n d", "a bc d"),  # NBSP -> space, zero-width dropped
        ("\uff11\uff12\uff4d\uff4d\u3000폭", "12mm 폭"),  # fullwidth ASCII and ideographic space
        ("필름 <PE> 두께 <5mm", "필름 <PE> 두께 <5mm"),  # not HTML: kept
        ("x &lt;5mm", "x <5mm"),
        ("<!-- note -->제품", "제품"),
        (None, ""),
        ("   ", ""),
    ],
)
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean


def test_clean_text_is_nfc_not_nfkc():
    decomposed = unicodedata.normalize("NFD", "한글 제품")
    assert decomposed != "한글 제품"
    assert clean_text(decomposed) == "한글 제품"
    # NFKC would turn these into "mm" and "ㄱ" jamo variants: keep them readable as written.
    assert clean_text("두께 3㎜ ㄱ자형") == "두께 3㎜ ㄱ자형"


def test_decode_text_flags_replacements():
    good = decode_text("한글 name".encode("utf-8-sig"))
    assert good == "한글 name" and not good.had_errors and isinstance(good, str)
    bad = decode_text("한글".encode() + b"\xff\xfe" + b" ok")
    assert bad.had_errors and bad.replaced >= 1
    assert bad.startswith("한글") and bad.endswith(" ok") and "\ufffd" in bad
    # A U+FFFD that was already in valid input is not an error of ours.
    assert not decode_text("x\ufffdy".encode()).had_errors


def test_clean_text_is_fast():
    titles = [
        "Meat of bovine animals; frozen;BONELESS BEEF",
        "우<em>레탄</em> 수지&nbsp;필름 " * 3,
    ] * 10_000
    start = time.perf_counter()
    out = [clean_text(t) for t in titles]
    elapsed = time.perf_counter() - start
    assert out[1].startswith("우레탄 수지 필름")
    # Generous bound on a shared 2-core box; measured ~0.1 s for these 20k strings.
    assert elapsed < 2.0, elapsed
