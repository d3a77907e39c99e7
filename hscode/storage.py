"""Content-addressed file storage shared by the raw zone and the image store."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_path(root: Path, digest: str, suffix: str = "") -> Path:
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"not a sha256 hex digest: {digest!r}")
    return root / digest[:2] / f"{digest}{suffix}"


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
