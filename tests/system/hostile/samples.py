"""Hostile and broken inputs, generated in code so the repository holds no large files.

Each generator returns small byte strings or text. The decompression bombs are tiny
on disk (kilobytes) and huge once decoded (hundreds of megapixels): they are built
from a PNG header and a zlib stream of zeros, never by drawing the picture.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections import Counter

from PIL import Image

# Counts of hostile inputs tried, by category; tests add to it, the module fixture reports.
TRIED: Counter[str] = Counter()


def tried(category: str, n: int = 1) -> None:
    TRIED[category] += n


# ----------------------------------------------------------------------------- images
def png(width: int = 16, height: int = 16, color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


def jpeg(width: int = 32, height: int = 32, color: str = "blue") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def gif(width: int = 8, height: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("P", (width, height)).save(buf, format="GIF")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_bomb(width: int, height: int, rows: int | None = None) -> bytes:
    """A 1-bit greyscale PNG of ``width`` x ``height`` whose pixels are all zero.

    ``rows``: how many scanlines the IDAT really holds (default all: a real bomb, a
    few KB that decode to width*height pixels); fewer gives a truncated giant.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    line = b"\x00" * (1 + (width + 7) // 8)
    n = height if rows is None else rows
    comp = zlib.compressobj(9)
    parts = [comp.compress(line) for _ in range(n)]
    parts.append(comp.flush())
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )


def gif_header_bomb(width: int = 65535, height: int = 65535) -> bytes:
    """A valid 8x8 GIF whose logical screen claims 65535x65535 (4.3 gigapixels)."""
    small = gif()
    return small[:6] + struct.pack("<HH", width, height) + small[10:]


def bad_images() -> dict[str, bytes]:
    """Name -> bytes that must never become a stored image."""
    good_jpeg, good_png = jpeg(), png()
    flipped = bytearray(good_png)
    for i in range(45, len(flipped) - 12):  # corrupt the IDAT data, keep the signature
        flipped[i] ^= 0x5A
    return {
        "empty": b"",
        "garbage": b"this is not an image at all" * 4,
        "html_as_image": b"<!DOCTYPE html><html><body>error</body></html>",
        "jpeg_truncated": good_jpeg[: len(good_jpeg) // 2],
        "jpeg_header_only": good_jpeg[:20],
        "png_truncated": good_png[: len(good_png) - 30],
        "png_bit_flipped": bytes(flipped),
        "png_signature_only": b"\x89PNG\r\n\x1a\n",
        "gif_header_bomb": gif_header_bomb(),
        "png_bomb_200mp": png_bomb(14_000, 14_000),  # 196 Mpx: over PIL's hard limit
        "png_bomb_50mp_truncated": png_bomb(10_000, 5_000, rows=10),  # over our 40 Mpx limit
        "png_zero_width": png_bomb(0, 10, rows=0),
    }


# ----------------------------------------------------------------------------- text
SQL_STRINGS = (
    "'; DROP TABLE requests; --",
    "Robert'); DROP TABLE cases;--",
    "' OR '1'='1",
    '" OR ""="',
    "1; SELECT pg_sleep(5); --",
    "%s %s %(x)s {0} {x} :name $1 ?",
    "'); COPY requests TO '/tmp/pwn'; --",
    "\\'; DELETE FROM predictions WHERE '1'='1",
    "$$; DROP SCHEMA public CASCADE; $$",
    "볼펜'; UPDATE requests SET title='x' WHERE ''='",
)
HTML_STRINGS = (
    "<script>alert(1)</script>볼펜",
    '<img src=x onerror="alert(document.cookie)">면 티셔츠',
    "<b>굵은</b> 글씨 & <i>기울임</i> &lt;escaped&gt;",
    '"><svg/onload=alert(1)>램프',
    "<!-- comment -->노트북<iframe src=//evil.example></iframe>",
    "&amp;lt;script&amp;gt;alert(1)&amp;lt;/script&amp;gt;가방",
)
ODD_TEXT = (
    "\u202eRTL override gnp.exe",
    "zero\u200bwidth\ufeffbom",
    "emoji 👟👕💻 and CJK 漢字",
    "tab\tnew\nline\rreturn",
    "control \x01\x02\x7f chars",
    "e\u0301 combining vs \u00e9",
    "\uff21\uff22\uff23 fullwidth",
    "surrogate-free astral 𝕏𝕐",
)


# ----------------------------------------------------------------------------- portal bodies
def malformed_list_bodies() -> dict[str, bytes]:
    ok_item = {"RRDC_NO": "0072024000001", "ENFR_DT": "20240105", "CMDT_NM": "x"}
    import json

    def j(doc: object) -> bytes:
        return json.dumps(doc).encode()

    return {
        "empty": b"",
        "whitespace": b"   \n",
        "null": b"null",
        "array": b"[]",
        "string": b'"uls_dmst"',
        "truncated": j({"uls_dmst": {"thisTotalCount": 1, "itemList": [ok_item]}})[:-15],
        "html_error_page": b"<!DOCTYPE html><html><body>error</body></html>",
        "no_uls": b'{"paginationInfo": {}}',
        "uls_not_object": j({"uls_dmst": [1, 2], "paginationInfo": {"lastPageNo": 1}}),
        "items_not_list": j(
            {
                "uls_dmst": {"thisTotalCount": 1, "itemList": "x"},
                "paginationInfo": {"lastPageNo": 1},
            }
        ),
        "item_not_object": j(
            {
                "uls_dmst": {"thisTotalCount": 1, "itemList": [7]},
                "paginationInfo": {"lastPageNo": 1},
            }
        ),
        "rrdc_object": j(
            {
                "uls_dmst": {"thisTotalCount": 1, "itemList": [{"RRDC_NO": {"a": 1}}]},
                "paginationInfo": {"lastPageNo": 1},
            }
        ),
        "no_total": j({"uls_dmst": {"itemList": []}, "paginationInfo": {"lastPageNo": 1}}),
        "huge_int_total": b'{"uls_dmst":{"thisTotalCount":'
        + b"9" * 5000
        + b',"itemList":[]},"paginationInfo":{"lastPageNo":1}}',
        "huge_digit_string_total": b'{"uls_dmst":{"thisTotalCount":"'
        + b"9" * 5000
        + b'","itemList":[]},"paginationInfo":{"lastPageNo":1}}',
        "nan_inf": b'{"uls_dmst":{"thisTotalCount":NaN,"itemList":[]},"paginationInfo":{"lastPageNo":Infinity}}',
        "deep_array": b"[" * 100_000 + b"]" * 100_000,
        "deep_object": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        "invalid_utf8": b'{"uls_dmst":{"thisTotalCount":1,"itemList":[{"RRDC_NO":"\xff\xfe"}]}}',
        "utf16": j({"uls_dmst": {}}).decode().encode("utf-16"),
        "nul_bytes": b'{"uls_dmst":\x00{}}',
        "bool_total": j(
            {
                "uls_dmst": {"thisTotalCount": True, "itemList": []},
                "paginationInfo": {"lastPageNo": 1},
            }
        ),
        "many_items_no_key": j(
            {
                "uls_dmst": {"thisTotalCount": 5000, "itemList": [{}] * 5000},
                "paginationInfo": {"lastPageNo": 1},
            }
        ),
    }


DETAIL_ROW = '<tr><th scope="row">{label}</th><td>{value}</td></tr>'


def detail_html(values: dict[str, str]) -> bytes:
    rows = "".join(DETAIL_ROW.format(label=k, value=v) for k, v in values.items())
    return f'<div class="popup_wrap"><table class="tbl_view"><tbody>{rows}</tbody></table></div>'.encode()


GOOD_DETAIL = {
    "참조번호": "품목분류1과-1",
    "시행일자": "2024-01-05",
    "결정세번": "9608.10-1000",
    "품명": "볼펜",
    "물품설명": "플라스틱 몸체의 볼펜",
}


def malformed_detail_bodies() -> dict[str, bytes]:
    deep = "<div>" * 50_000 + "x" + "</div>" * 50_000
    return {
        "empty": b"",
        "not_html": b"\x00\x01\x02\xff" * 100,
        "error_page": b"<!DOCTYPE html><html><head><title>err</title></head><body><p>x</p></body></html>",
        "table_no_rows": b"<table></table>",
        "empty_table": detail_html({k: "" for k in GOOD_DETAIL}),
        "missing_title_row": detail_html({k: v for k, v in GOOD_DETAIL.items() if k != "품명"}),
        "cut_mid_tag": detail_html(GOOD_DETAIL)[:120],
        "th_without_td": b"<table><tr><th>\xed\x92\x88\xeb\xaa\x85</th></tr></table>",
        "deeply_nested": detail_html({**GOOD_DETAIL, "물품설명": deep}),
        "huge_count": detail_html({**GOOD_DETAIL, "이미지건수": "9" * 5000}),
        "bogus_date": detail_html({**GOOD_DETAIL, "시행일자": "2024-13-45"}),
        "script_in_cells": detail_html({**GOOD_DETAIL, "품명": "<script>alert(1)</script>볼펜"}),
        "invalid_utf8": detail_html(GOOD_DETAIL).replace("볼펜".encode(), b"\xff\xfe\xc3(", 1),
        "latin1_meta": b'<meta charset="iso-8859-1">' + detail_html(GOOD_DETAIL),
        "bogus_meta_charset": b'<meta charset="x-no-such-charset">' + detail_html(GOOD_DETAIL),
        "nul_in_cells": detail_html({**GOOD_DETAIL, "품명": "볼\x00펜"}),
        "many_images": detail_html(
            {**GOOD_DETAIL, "관련 이미지": "".join(f'<img src="/i{i}.png">' for i in range(3000))}
        ),
    }


# ----------------------------------------------------------------------------- URLs
def evil_image_srcs(portal_port: int, trap_port: int) -> list[str]:
    """Image ``src`` values that must never be fetched; those naming 127.0.0.1:trap_port
    (or spelling loopback another way) would reach the trap socket if they were."""
    p, t = portal_port, trap_port
    return [
        f"http://127.0.0.1:{t}/clip/img.png",  # same host, other port
        f"http://localhost:{t}/img.png",
        f"http://127.1:{t}/img.png",
        f"http://2130706433:{t}/img.png",  # 127.0.0.1 as a decimal
        f"http://0x7f000001:{t}/img.png",
        f"http://[::ffff:127.0.0.1]:{t}/img.png",
        f"http://127.0.0.1:{t}\\@127.0.0.1:{p}/clip/x.png",  # urllib3 connects to :t
        f"http://127.0.0.1:{p}@127.0.0.1:{t}/x.png",  # userinfo trick
        f"//127.0.0.1:{t}/scheme-relative.png",
        f"https://127.0.0.1:{p}/clip/x.png",  # other scheme, same host and port
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://10.0.0.1/x.png",
        "http://192.168.0.1/x.png",
        "http://172.16.0.1/x.png",
        "http://[::1]/x.png",
        "http://0.0.0.0/x.png",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://evil.example/x.png",
        "file:///etc/passwd",
        "ftp://127.0.0.1/x.png",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "javascript:alert(1)",
        "data:image/png;base64,iVBORw0KGgo=",
        f"http://127.0.0.1:{p}:99999/x.png",
        "http://127.0.0.1:99999999/x.png",
        f"http://127.0.0.1:{p}/clip/x.png\r\nHost: evil",
        "http://" + "a" * 5000 + "/x.png",
    ]


# ----------------------------------------------------------------------------- paths
TRAVERSAL_SPECS = (
    "../../etc/passwd",
    "../outside.png",
    "sub/../../outside.png",
    "/etc/passwd",
    "/dev/zero",
    "/proc/self/environ",
    "~/.ssh/id_rsa",
    "./\x00evil.png",
    "a" * 5000 + ".png",
    "link_out.png",  # a symlink inside the folder pointing outside (made by the test)
    "loop.png",  # a symlink loop (made by the test)
    "fifo.png",  # a named pipe: reading it would block (made by the test)
    "folder.png",  # a directory (made by the test)
)
BAD_DIGESTS = (
    "../../etc/passwd",
    "/etc/passwd",
    "ab/../../../etc/passwd",
    "A" * 64,
    "0" * 63,
    "0" * 65,
    "g" * 64,
    "",
)
