"""Content-addressed file storage shared by the raw zone and the image store."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import warnings
from pathlib import Path
from urllib.parse import unquote, urlsplit

from hscode.rejects import RejectReason

MAX_IMAGE_PIXELS = 40_000_000  # far above any product photo, far below a decompression bomb


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_path(root: Path, digest: str, suffix: str = "") -> Path:
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"not a sha256 hex digest: {digest!r}")
    return root / digest[:2] / f"{digest}{suffix}"


def local_path_of(url: str | os.PathLike[str]) -> Path | None:
    """The local path a storage location names (a plain path, ``file://`` or ``local://``
    URL), or None for anything else (``s3://``, ``gs://``, ``memory://``...)."""
    text = os.fspath(url)
    if "://" not in text:
        return Path(text)
    scheme, rest = text.split("://", 1)
    if scheme.lower() == "local":
        return Path(unquote(rest))
    if scheme.lower() == "file":
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file URL with a remote host is not supported: {text!r}")
        return Path(unquote(parts.path))
    return None


def atomic_write(path: Path, data: bytes) -> None:
    """Write a file so that a crash leaves either the old file or the complete new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def put_blob(root: Path, data: bytes, suffix: str = "") -> str:
    """Store bytes once under their sha256; return the digest."""
    digest = sha256_bytes(data)
    path = blob_path(root, digest, suffix)
    if not path.exists():
        atomic_write(path, data)
    return digest


def image_path(images_dir: Path, digest: str) -> Path:
    """Images are stored once by content hash, without extension (the bytes say the format)."""
    return blob_path(images_dir, digest)


def image_problem(data: bytes, *, full_decode: bool = True) -> tuple[RejectReason, str] | None:
    """Why ``data`` is not a usable image: ``(IMAGE_TOO_LARGE | IMAGE_CORRUPT, detail)``
    (:class:`~hscode.rejects.RejectReason` codes), or None.

    The pixel count is read from the header and checked against ``MAX_IMAGE_PIXELS`` before
    any pixel is decoded, so a decompression bomb costs nothing. ``full_decode`` decodes
    every pixel (catches truncated files); otherwise PIL's cheaper structural ``verify``.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width < 1 or height < 1 or width * height > MAX_IMAGE_PIXELS:
                    return (
                        RejectReason.IMAGE_TOO_LARGE,
                        f"{width}x{height} pixels (limit {MAX_IMAGE_PIXELS})",
                    )
                if full_decode:
                    img.load()
                else:
                    img.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return RejectReason.IMAGE_TOO_LARGE, f"decompression bomb: {exc}"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        return RejectReason.IMAGE_CORRUPT, str(exc)
    except MemoryError:
        return RejectReason.IMAGE_CORRUPT, "out of memory while decoding"
    except Exception as exc:  # noqa: BLE001 - PIL plugins raise assorted errors on crafted files
        return RejectReason.IMAGE_CORRUPT, f"{type(exc).__name__}: {exc}"
    return None
