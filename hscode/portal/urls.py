"""Which origin a URL names, and the check that an image URL is on the portal's own.

``_origin`` is how urllib.parse reads a URL, ``_connect_origin`` where urllib3 (and so
requests) would really connect; ``check_image_origin`` refuses a URL unless both are the
portal's origin and nothing in it is read differently by different parsers.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from hscode.portal.errors import ImageRefused

MAX_URL_CHARS = 4096


def _origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL; ValueError for a port that is not a port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme, -1)
    return scheme, (parts.hostname or "").lower(), port


# Characters that parsers disagree about (``http://evil\@portal/`` is the portal for
# urllib.parse but evil for urllib3, which requests uses to connect) or that have no
# business in a URL the portal wrote.
_URL_BAD_CHARS = frozenset("\\@") | frozenset(chr(c) for c in [*range(0x21), 0x7F])


def _connect_origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) as urllib3 parses the URL: where requests would really connect."""
    from urllib3.util import parse_url

    parsed = parse_url(url)
    scheme = (parsed.scheme or "").lower()
    port = parsed.port or {"http": 80, "https": 443}.get(scheme, -1)
    return scheme, (parsed.host or "").lower().strip("[]"), port


def check_image_origin(url: str, origin: tuple[str, str, int], origin_url: str) -> None:
    """Raise ImageRefused unless the URL is on ``origin`` (the portal's scheme, host, port)."""
    if not isinstance(url, str) or not url:
        raise ImageRefused(str(url), "empty image URL")
    if len(url) > MAX_URL_CHARS:
        raise ImageRefused(url[:200] + "...", f"URL longer than {MAX_URL_CHARS} characters")
    try:
        scheme, host, port = _origin(url)
    except ValueError as exc:
        raise ImageRefused(url, f"unparseable URL ({exc})") from None
    if scheme not in ("http", "https"):
        raise ImageRefused(url, f"scheme {scheme!r} is not http(s)")
    netloc = urlsplit(url).netloc
    bad = sorted({c for c in netloc if c in _URL_BAD_CHARS})
    if bad or any(c in url for c in "\\\r\n\t "):
        raise ImageRefused(
            url, f"URL with characters parsers disagree on ({''.join(bad) or 'whitespace'})"
        )
    if (scheme, host, port) != origin:
        raise ImageRefused(url, f"origin {scheme}://{host}:{port} is not the portal's {origin_url}")
    try:
        connect = _connect_origin(url)
    except Exception as exc:  # noqa: BLE001 - urllib3 LocationParseError and friends
        raise ImageRefused(url, f"unparseable URL ({exc})") from None
    if connect != origin:
        raise ImageRefused(url, f"the HTTP library would connect to {connect}, not the portal")
