"""Storage locations as URLs: a local folder or object storage, through one fsspec API.

A ``Location`` is a filesystem plus a root inside it. Everything that several machines
share (the cases Parquet dataset, the image store, the model registry) is opened as a
``Location`` from the settings (``storage_url``, ``registry_dir``), so the same code runs
on a local folder (``var/cases``, ``file:///srv/hscode/cases``) and on object storage
(``s3://bucket/prefix/cases`` on AWS or any S3-compatible endpoint, or any other fsspec
URL whose package is installed).

Local and remote go through the same fsspec calls, with two local-only differences that
are capabilities rather than alternatives: ``write_bytes`` on a local folder goes through
``hscode.storage.atomic_write`` (temp file, fsync, rename), where on an object store a
single PUT is already atomic (readers see the old object or the new one); and only local
folders can be locked across processes (``local_root`` tells callers which case they are in).

Paths inside a location (``rel``) are ``/``-separated and may not climb out of it.
"""

from __future__ import annotations

import fcntl
import fnmatch
import functools
import os
import posixpath
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hscode.storage import atomic_write, blob_path, local_path_of, sha256_bytes

if TYPE_CHECKING:
    import pyarrow.fs

    from hscode.settings import Settings


_IO_THREADS = 16  # concurrent object reads (image fetches for training)


class StorageError(RuntimeError):
    """A storage location that cannot be opened or used (bad URL, missing fsspec backend)."""


def display_url(url: str) -> str:
    """``url`` without any ``user:password@`` part, for messages and logs."""
    if "://" in url:
        scheme, rest = url.split("://", 1)
        head, sep, tail = rest.partition("/")
        if "@" in head:
            head = head.rsplit("@", 1)[1]
        return f"{scheme}://{head}{sep}{tail}"
    return url


def _clean_rel(rel: str) -> str:
    rel = rel.replace("\\", "/").strip("/")
    if not rel:
        return ""
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"bad path inside a storage location: {rel!r}")
    return rel


@dataclass(frozen=True)
class Location:
    """A folder-like place: ``fs`` (an fsspec filesystem) and ``root`` (a path in it)."""

    fs: Any
    root: str
    url: str  # what the user configured, credentials stripped (for messages)

    # ------------------------------------------------------------------ opening
    @classmethod
    def from_url(cls, url: str | os.PathLike[str], **options: Any) -> Location:
        """Open ``url`` (a path, ``file://``, ``s3://``...) with fsspec ``options``."""
        import fsspec

        text = os.fspath(url)
        local = local_path_of(text)
        if local is not None:
            fs = fsspec.filesystem("file")
            root = str(local.absolute()).rstrip("/") or "/"
            return cls(fs, root, text)
        try:
            fs, root = fsspec.core.url_to_fs(text, **options)
        except (ImportError, ValueError) as exc:
            raise StorageError(f"cannot open storage {display_url(text)}: {exc}") from exc
        return cls(fs, root.rstrip("/"), display_url(text))

    def __repr__(self) -> str:
        return f"Location({self.url!r})"

    @property
    def local_root(self) -> Path | None:
        """The local folder when this location is on the local filesystem, else None."""
        return Path(self.root) if "file" in _protocols(self.fs) else None

    @property
    def is_local(self) -> bool:
        return self.local_root is not None

    @contextmanager
    def lock(self, *, shared: bool = False) -> Iterator[Path | None]:
        """Cross-process lock on ``.lock`` in a local folder: exclusive for writers, shared
        for readers; yields the folder. Object storage has no such lock (one writer per store,
        see docs/operations.md): yields None. A reader that cannot open the lock file (a
        read-only copy, or nothing written yet) reads unlocked."""
        local = self.local_root
        if local is None:
            yield None
            return
        if shared:
            try:
                fh = open(local / ".lock", "a")  # noqa: SIM115 - closed below
            except OSError:
                yield local
                return
        else:
            local.mkdir(parents=True, exist_ok=True)
            fh = open(local / ".lock", "a")  # noqa: SIM115 - closed below
        try:
            fcntl.flock(fh, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield local
        finally:
            fh.close()  # closing releases the lock

    def child(self, *parts: str) -> Location:
        rel = _clean_rel("/".join(parts))
        return Location(self.fs, self.path(rel), self.url.rstrip("/") + "/" + rel)

    def path(self, rel: str = "") -> str:
        """The full path of ``rel`` in ``fs``."""
        rel = _clean_rel(rel)
        return posixpath.join(self.root, rel) if rel else self.root

    # ------------------------------------------------------------------ bytes
    def read_bytes(self, rel: str) -> bytes:
        """The object's bytes; FileNotFoundError when it is missing."""
        return self.fs.cat_file(self.path(rel))

    def read_many(self, rels: Iterable[str]) -> dict[str, bytes | BaseException]:
        """Many objects (concurrent requests on object storage); an error per missing one.

        One ``cat_file`` per object: fsspec's list ``cat`` would expand glob characters in
        the paths.
        """
        wanted = list(dict.fromkeys(rels))

        def one(rel: str) -> bytes | BaseException:
            try:
                return self.read_bytes(rel)
            except (OSError, ValueError) as exc:
                return exc

        if self.is_local or len(wanted) < 2:
            return {rel: one(rel) for rel in wanted}
        with ThreadPoolExecutor(max_workers=_IO_THREADS) as pool:
            return dict(zip(wanted, pool.map(one, wanted), strict=True))

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Replace the object: readers see the old bytes or the new, never a part."""
        local = self.local_root
        if local is not None:
            atomic_write(local / _clean_rel(rel), data)
        else:
            self.fs.pipe_file(self.path(rel), data)

    def exists(self, rel: str = "") -> bool:
        return bool(self.fs.exists(self.path(rel)))

    def isfile(self, rel: str) -> bool:
        return bool(self.fs.isfile(self.path(rel)))

    def delete(self, rel: str, *, recursive: bool = False) -> None:
        """Remove an object (or, ``recursive``, everything under a prefix); a missing one is
        fine. Locally an emptied parent folder goes too (object stores have no folders)."""
        local = self.local_root
        if local is not None:
            target = local / _clean_rel(rel)
            if recursive and target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
            try:
                target.parent.rmdir()
            except OSError:
                pass
            return
        # One object at a time: fsspec's ``rm`` would expand glob characters in the paths.
        files = [posixpath.join(_clean_rel(rel), f) for f in self.find(rel)] if recursive else []
        for name in files or [rel]:
            try:
                self.fs.rm_file(self.path(name))
            except FileNotFoundError:
                pass

    def modified(self, rel: str) -> float | None:
        """Last modification as a POSIX timestamp (None when unknown)."""
        info = self.fs.info(self.path(rel))
        value = info.get("mtime", info.get("LastModified", info.get("last_modified")))
        if value is None:
            return None
        return value.timestamp() if hasattr(value, "timestamp") else float(value)

    # ------------------------------------------------------------------ listing
    def glob(self, pattern: str) -> list[str]:
        """Files (paths relative to the root) matching ``pattern``, sorted.

        Matched segment by segment with ``fnmatch`` below the pattern's fixed prefix, so
        a root holding ``[`` or ``*`` (pytest's parametrised tmp dirs) is never a pattern.
        """
        parts = _clean_rel(pattern).split("/")
        fixed: list[str] = []
        for part in parts:
            if any(c in part for c in "*?["):
                break
            fixed.append(part)
        base = "/".join(fixed)
        out = []
        for rel in self.find(base):
            full = f"{base}/{rel}" if base else rel
            segments = full.split("/")
            if len(segments) == len(parts) and all(
                fnmatch.fnmatchcase(s, p) for s, p in zip(segments, parts, strict=True)
            ):
                out.append(full)
        return sorted(out)

    def list(self, rel: str = "") -> list[str]:
        """Names directly under ``rel`` (files and folders), sorted; [] when it is missing."""
        try:
            entries = self.fs.ls(self.path(rel), detail=False)
        except FileNotFoundError:
            return []
        names = {posixpath.basename(e.rstrip("/")) for e in entries}
        return sorted(n for n in names if n)

    def find(self, rel: str = "") -> list[str]:
        """Every file under ``rel``, relative to ``rel``, sorted."""
        base = self.path(rel).rstrip("/") + "/"
        try:
            found = self.fs.find(self.path(rel))
        except FileNotFoundError:
            return []
        return sorted(f[len(base) :] for f in found if f.startswith(base) and len(f) > len(base))

    # ------------------------------------------------------------------ blobs
    @staticmethod
    def blob_rel(digest: str, suffix: str = "") -> str:
        """Where a content-addressed object lives: ``ab/abcdef...`` (same as local)."""
        return blob_path(Path(), digest, suffix).as_posix()

    def put_blob(self, data: bytes, suffix: str = "") -> str:
        """Store bytes once under their sha256 (write once); return the digest."""
        digest = sha256_bytes(data)
        rel = self.blob_rel(digest, suffix)
        if not self.exists(rel):
            self.write_bytes(rel, data)
        return digest

    # ------------------------------------------------------------------ pyarrow
    @functools.cached_property
    def arrow_fs(self) -> pyarrow.fs.FileSystem:
        """A ``pyarrow.fs`` filesystem for Parquet reads (paths from ``arrow_path``)."""
        import pyarrow.fs as pafs

        if self.is_local:
            return pafs.LocalFileSystem()
        return pafs.PyFileSystem(pafs.FSSpecHandler(self.fs))

    def arrow_path(self, rel: str = "") -> str:
        return self.path(rel)

    # ------------------------------------------------------------------ folders
    def upload_dir(self, source: Path, rel: str) -> dict[str, int]:
        """Copy every file under the local ``source`` to ``rel``; return ``{file: size}``."""
        sizes: dict[str, int] = {}
        for file in sorted(p for p in Path(source).rglob("*") if p.is_file()):
            name = file.relative_to(source).as_posix()
            target = posixpath.join(_clean_rel(rel), name)
            local = self.local_root
            if local is not None:
                atomic_write(local / target, file.read_bytes())
            else:
                self.fs.put_file(str(file), self.path(target))
            sizes[name] = file.stat().st_size
        return sizes

    def download(self, rel: str, dest: Path, files: Iterable[str] | None = None) -> Path:
        """Copy the prefix ``rel`` (or just ``files`` under it) into the local folder ``dest``.

        The copy is made in a temporary sibling folder and renamed into place, so ``dest``
        either does not exist or holds every file. An existing ``dest`` is kept as is.
        """
        dest = Path(dest)
        if dest.is_dir():
            return dest
        names = sorted(files) if files is not None else self.find(rel)
        if not names:
            raise FileNotFoundError(f"nothing stored under {self.url}/{_clean_rel(rel)}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".tmp-{uuid.uuid4().hex[:8]}-"))
        try:
            for name in names:
                target = tmp / _clean_rel(name)
                target.parent.mkdir(parents=True, exist_ok=True)
                self.fs.get_file(self.path(posixpath.join(_clean_rel(rel), name)), str(target))
            try:
                tmp.rename(dest)
            except OSError:
                if not dest.is_dir():  # not a concurrent download that won the race
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return dest


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


# ---------------------------------------------------------------------- from the settings


def storage_options(settings: Settings, url: str) -> dict[str, Any]:
    """fsspec options for ``url`` from the settings (endpoint and credentials for S3)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else "file"
    if scheme not in ("s3", "s3a"):
        return {}
    options: dict[str, Any] = {
        # another machine may have written since: never answer from a stale listing
        "use_listings_cache": False,
    }
    if settings.storage_endpoint_url:
        options["endpoint_url"] = settings.storage_endpoint_url
    if settings.storage_region:
        options["client_kwargs"] = {"region_name": settings.storage_region}
    if settings.storage_key is not None:
        options["key"] = settings.storage_key.get_secret_value()
    if settings.storage_secret is not None:
        options["secret"] = settings.storage_secret.get_secret_value()
    return options


def open_location(settings: Settings, url: str) -> Location:
    return Location.from_url(url, **storage_options(settings, url))


def cases_location(settings: Settings) -> Location:
    """The cases Parquet dataset."""
    return open_location(settings, settings.cases_url)


def images_location(settings: Settings) -> Location:
    """The image store (images by content hash)."""
    return open_location(settings, settings.images_url)


def registry_location(settings: Settings) -> Location:
    """The model registry."""
    return open_location(settings, settings.registry_url)
