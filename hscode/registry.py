"""The model registry: versioned model directories, a champion pointer and its history.

Layout under ``root``::

    versions/v0003-20261125T2100/
        model/           the SERVED model: what ``HSModel.save`` wrote (weights, vocabularies,
                         label map, config); refitted on every case after the gate
        evaluated/       the EVALUATED model (trained without its validation and test cases),
                         when it differs from the served one; the one the metrics describe and
                         the one a later candidate is compared with
        manifest.json    version, created_at, metrics (of the evaluated model), info (n_cases,
                         data_hash, config, inputs, ``served``: how the served model was made),
                         files (of ``model/``), evaluated_files (of ``evaluated/``)
    champion.json        {"version": ..., "history": [older champions ...], "events": [...]}
    .lock                serialises writers across processes

``root`` is a local folder or a URL (``s3://bucket/prefix/registry``, see
``hscode.objectstore``); ``Registry.from_settings`` opens the configured one.

A version appears only complete: ``manifest.json`` is its commit marker, and a version
folder without one is invisible (never listed, loaded or promoted). In a local folder a
version is written to a temporary directory and renamed into place, so a crash mid-write
leaves at most an ignored ``.tmp-*`` directory. On object storage every model file is
uploaded first and the manifest LAST, in one PUT; an upload cut short leaves a
manifest-less prefix that is ignored, skipped by the version numbering, and deleted by a
later ``register`` once it is an hour old. The manifest lists every model file with its
size and sha256, so a copy can be verified.

The champion file is one small object replaced atomically (rename locally, one PUT on
object storage); its history of promotions is what ``rollback`` walks back along.

Writers are serialised by a file lock in a local registry. Object storage offers no
cross-machine lock: there the one writer is the training deployment (concurrency limit of
one, ``deployments/registry.py``); promote/rollback by hand should not race a training.

Loading a version from object storage first copies it into a local cache
(``cache_dir/<registry id>/<version>``: downloaded into a temporary folder, checked against
the manifest, renamed into place) and loads it from there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hscode.objectstore import Location, registry_location
from hscode.storage import sha256_bytes

if TYPE_CHECKING:
    from hscode.settings import Settings
    from model.hsmodel import HSModel

MANIFEST = "manifest.json"
MODEL_SUBDIR = "model"
EVALUATED_SUBDIR = "evaluated"
CHAMPION_FILE = "champion.json"
_VERSION = re.compile(r"^v(\d{4,})-(\d{8}T\d{4})$")
_STALE_TMP_S = 3600.0
_CACHE_SIZE = 2

log = logging.getLogger(__name__)
_cache_lock = threading.Lock()
_model_cache: OrderedDict[tuple[str, str], Any] = OrderedDict()


class RegistryError(RuntimeError):
    """A registry operation that cannot be done (unknown version, nothing to roll back to)."""


@dataclass
class ModelVersion:
    version: str
    created_at: str  # ISO 8601, UTC
    metrics: dict[str, Any] = field(default_factory=dict)
    n_cases: int | None = None  # trainable cases the model was trained on (all splits)
    data_hash: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    inputs: str | None = None
    champion: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    path: str = ""  # local folder or URL of the version


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


REPORT_FILE = "report.json"


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _dumps(data: Any) -> bytes:
    return json.dumps(data, indent=2, ensure_ascii=False, default=_json_default).encode()


class Registry:
    def __init__(self, root: Path | str | Location, cache_dir: Path | None = None) -> None:
        """``root``: a folder, a URL or an opened ``Location``; ``cache_dir``: where versions
        of a remote registry are copied to be loaded (default: the system temp folder)."""
        self.location = root if isinstance(root, Location) else Location.from_url(root)
        local = self.location.local_root
        self.remote = local is None
        self.root: Path | str = local if local is not None else self.location.url
        self.versions_dir: Path | str = (
            local / "versions" if local is not None else f"{self.location.url}/versions"
        )
        self.cache_dir = (
            Path(cache_dir)
            if cache_dir is not None
            else Path(tempfile.gettempdir()) / "hscode-cache" / "registry"
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Registry:
        """The configured registry (``registry_dir`` or ``storage_url``/registry); remote
        versions are cached under ``data_dir/cache/registry``."""
        return cls(registry_location(settings), cache_dir=settings.cache_dir / "registry")

    def __repr__(self) -> str:
        return f"Registry({self.location.url!r})"

    # ------------------------------------------------------------------ internals
    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self.location.lock():
            yield

    @staticmethod
    def _version_rel(version: str) -> str:
        if not isinstance(version, str) or not _VERSION.match(version):
            raise RegistryError(
                f"not a model version name: {version!r} (expected v0001-YYYYMMDDTHHMM)"
            )
        return f"versions/{version}"

    def _committed(self, version: str) -> bool:
        return self.location.isfile(f"{self._version_rel(version)}/{MANIFEST}")

    def _require(self, version: str) -> str:
        rel = self._version_rel(version)
        if not self._committed(version):
            known = ", ".join(v.version for v in self.list_versions()) or "none"
            raise RegistryError(f"unknown model version {version!r} (registered: {known})")
        return rel

    def _state(self) -> dict[str, Any]:
        try:
            state = json.loads(self.location.read_bytes(CHAMPION_FILE))
        except FileNotFoundError:
            return {"version": None, "history": [], "events": []}
        state.setdefault("history", [])
        state.setdefault("events", [])
        return state

    def _write_state(self, state: dict[str, Any]) -> None:
        self.location.write_bytes(CHAMPION_FILE, _dumps(state))

    def _next_number(self) -> int:
        # Manifest-less (interrupted) versions count too: their numbers are never reused.
        numbers = [0]
        for name in self.location.list("versions"):
            match = _VERSION.match(name)
            if match:
                numbers.append(int(match.group(1)))
        return max(numbers) + 1

    def _clean_stale_tmp(self) -> None:
        local = self.location.local_root
        if local is not None:
            versions = local / "versions"
            if not versions.is_dir():
                return
            for entry in versions.glob(".tmp-*"):
                try:
                    if time.time() - entry.stat().st_mtime > _STALE_TMP_S:
                        shutil.rmtree(entry, ignore_errors=True)
                except FileNotFoundError:
                    pass
            return
        for name in self.location.list("versions"):  # uploads cut short before the manifest
            if not _VERSION.match(name) or self._committed(name):
                continue
            rel = f"versions/{name}"
            times = [self.location.modified(f"{rel}/{f}") for f in self.location.find(rel)]
            newest = max((t for t in times if t is not None), default=None)
            if newest is not None and time.time() - newest > _STALE_TMP_S:
                log.info("registry %s: removing interrupted upload %s", self.location.url, name)
                self.location.delete(rel, recursive=True)

    @staticmethod
    def _materialise(model: Path | str | Any, target: Path) -> None:
        if isinstance(model, (str, Path)):
            source = Path(model)
            if not source.is_dir():
                raise RegistryError(f"model directory {source} does not exist")
            shutil.copytree(source, target)
        elif callable(getattr(model, "save", None)):
            model.save(target)
            if not target.is_dir():
                raise RegistryError(f"{type(model).__name__}.save wrote nothing to {target}")
        else:
            raise TypeError(
                f"register() needs a model directory or an object with .save(dir), "
                f"not {type(model).__name__}"
            )

    def _new_manifest(
        self, folder: Path, metrics: dict[str, Any], info: dict[str, Any]
    ) -> dict[str, Any]:
        created = _now()
        manifest = {
            "version": f"v{self._next_number():04d}-{created.strftime('%Y%m%dT%H%M')}",
            "created_at": created.isoformat(timespec="seconds"),
            "metrics": metrics,
            "info": info,
            "files": _file_list(folder / MODEL_SUBDIR),
        }
        if (folder / EVALUATED_SUBDIR).is_dir():
            manifest["evaluated_files"] = _file_list(folder / EVALUATED_SUBDIR)
        return manifest

    # ------------------------------------------------------------------ writing
    def register(
        self,
        model: Path | str | Any,
        metrics: dict[str, Any],
        info: dict[str, Any] | None = None,
        evaluated: Path | str | Any | None = None,
    ) -> str:
        """Store a model (a saved model directory, or an object with ``.save(dir)``) as a new
        version with its metrics and info; returns the version name. Does not promote.

        ``evaluated``: the model the metrics were measured on, when the served ``model`` is a
        different one (refitted on every case); kept beside it for later comparisons."""
        info = dict(info or {})
        with self._locked():
            self._clean_stale_tmp()
            local = self.location.local_root
            if local is not None:
                versions = local / "versions"
                versions.mkdir(parents=True, exist_ok=True)
                tmp = versions / f".tmp-{uuid.uuid4().hex}"
                tmp.mkdir()
                try:
                    self._materialise(model, tmp / MODEL_SUBDIR)
                    if evaluated is not None:
                        self._materialise(evaluated, tmp / EVALUATED_SUBDIR)
                    manifest = self._new_manifest(tmp, metrics, info)
                    (tmp / MANIFEST).write_bytes(_dumps(manifest))
                    tmp.rename(versions / manifest["version"])
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
                return manifest["version"]
            staging = Path(tempfile.mkdtemp(prefix="hscode-register-"))
            try:
                self._materialise(model, staging / MODEL_SUBDIR)
                if evaluated is not None:
                    self._materialise(evaluated, staging / EVALUATED_SUBDIR)
                manifest = self._new_manifest(staging, metrics, info)
                rel = f"versions/{manifest['version']}"
                try:
                    self.location.upload_dir(staging / MODEL_SUBDIR, f"{rel}/{MODEL_SUBDIR}")
                    if evaluated is not None:
                        self.location.upload_dir(
                            staging / EVALUATED_SUBDIR, f"{rel}/{EVALUATED_SUBDIR}"
                        )
                    # The commit marker, last: without it the version does not exist.
                    self.location.write_bytes(f"{rel}/{MANIFEST}", _dumps(manifest))
                except BaseException:
                    try:
                        self.location.delete(rel, recursive=True)
                    except Exception as exc:  # noqa: BLE001 - the upload error matters more
                        log.warning("could not remove the partial upload %s: %s", rel, exc)
                    raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            return manifest["version"]

    def promote(self, version: str, reason: str = "") -> None:
        """Make ``version`` the champion; the previous champion goes onto the history."""
        with self._locked():
            self._require(version)
            state = self._state()
            current = state.get("version")
            if current == version:
                return
            if current is not None:
                state["history"].append(current)
            state["version"] = version
            state["events"].append(
                {
                    "at": _now().isoformat(timespec="seconds"),
                    "action": "promote",
                    "version": version,
                    "previous": current,
                    "reason": reason,
                }
            )
            self._write_state(state)

    def rollback(self) -> str:
        """Put the previous champion back; returns its version."""
        with self._locked():
            state = self._state()
            current = state.get("version")
            history = [v for v in state["history"] if self._committed(v)]
            if current is None or not history:
                raise RegistryError("nothing to roll back to: no earlier champion")
            previous = history.pop()
            state["history"] = history
            state["version"] = previous
            state["events"].append(
                {
                    "at": _now().isoformat(timespec="seconds"),
                    "action": "rollback",
                    "version": previous,
                    "previous": current,
                }
            )
            self._write_state(state)
        return previous

    # ------------------------------------------------------------------ reading
    def _read_manifest(self, rel: str) -> dict[str, Any]:
        return json.loads(self.location.read_bytes(f"{rel}/{MANIFEST}"))

    def _where(self, rel: str) -> str:
        local = self.location.local_root
        return str(local / rel) if local is not None else f"{self.location.url}/{rel}"

    def _read_version(self, rel: str, champion: str | None) -> ModelVersion:
        manifest = self._read_manifest(rel)
        info = manifest.get("info") or {}
        return ModelVersion(
            version=manifest["version"],
            created_at=manifest["created_at"],
            metrics=manifest.get("metrics") or {},
            n_cases=info.get("n_cases"),
            data_hash=info.get("data_hash"),
            config=info.get("config") or {},
            inputs=info.get("inputs") or (info.get("config") or {}).get("inputs"),
            champion=manifest["version"] == champion,
            info=info,
            path=self._where(rel),
        )

    def list_versions(self) -> list[ModelVersion]:
        """Every complete (committed) version, oldest first."""
        names = sorted(
            name
            for rel in self.location.glob(f"versions/*/{MANIFEST}")
            if _VERSION.match(name := rel.split("/")[1])
        )
        if not names:
            return []
        champion = self._state().get("version")
        return [self._read_version(f"versions/{name}", champion) for name in names]

    def get(self, version: str) -> ModelVersion:
        return self._read_version(self._require(version), self._state().get("version"))

    def champion(self) -> ModelVersion | None:
        version = self._state().get("version")
        if version is None or not self._committed(version):
            return None
        return self.get(version)

    def history(self) -> list[dict[str, Any]]:
        """Promotion and rollback events, oldest first."""
        return list(self._state()["events"])

    def write_report(self, version: str, report: dict[str, Any]) -> str:
        """Store a version's training report (evaluation details for plots) beside it.

        Written atomically after registration; the version is complete without it.
        Returns where it went (a path or URL).
        """
        rel = f"{self._require(version)}/{REPORT_FILE}"
        self.location.write_bytes(rel, _dumps(report))
        return self._where(rel)

    def read_report(self, version: str) -> dict[str, Any] | None:
        """The training report of a version, or None when it has none."""
        rel = f"{self._require(version)}/{REPORT_FILE}"
        try:
            return json.loads(self.location.read_bytes(rel).decode("utf-8"))
        except (OSError, ValueError):
            return None

    def model_dir(self, version: str, evaluated: bool = False) -> Path:
        """A local folder holding the version's served model, or with ``evaluated`` the model
        its metrics describe (the same folder when the version keeps no separate one); a
        verified cached copy when the registry is remote."""
        rel = self._require(version)
        manifest = self._read_manifest(rel)  # read once: one GET on object storage
        sub = EVALUATED_SUBDIR if evaluated and "evaluated_files" in manifest else MODEL_SUBDIR
        local = self.location.local_root
        if local is not None:
            return local / rel / sub
        return self._cached_copy(version, rel, sub, manifest)

    def _cached_copy(self, version: str, rel: str, sub: str, manifest: dict[str, Any]) -> Path:
        ident = hashlib.sha256(self.location.url.encode()).hexdigest()[:12]
        dest = self.cache_dir / ident / (version if sub == MODEL_SUBDIR else f"{version}-{sub}")
        files: dict[str, dict[str, Any]] | None = manifest.get(
            "files" if sub == MODEL_SUBDIR else "evaluated_files"
        )
        fresh = not dest.is_dir()
        self.location.download(f"{rel}/{sub}", dest, files=files)
        problem = _verify(dest, files, hashes=fresh)
        if problem is not None:
            shutil.rmtree(dest, ignore_errors=True)
            raise RegistryError(f"model version {version} is damaged: {problem}")
        return dest

    def load(self, version: str, evaluated: bool = False) -> HSModel:
        """The loaded served model of a version (an ``HSModel`` with ``.version`` set), or
        with ``evaluated`` the model its metrics describe; cached."""
        path = self.model_dir(version, evaluated=evaluated)
        key = (str(path.resolve()), version)
        with _cache_lock:
            if key in _model_cache:
                _model_cache.move_to_end(key)
                return _model_cache[key]
        from model.artifact import load

        model = load(path)
        model.version = version
        with _cache_lock:
            _model_cache[key] = model
            while len(_model_cache) > _CACHE_SIZE:
                _model_cache.popitem(last=False)
        return model


def _file_list(model_dir: Path) -> dict[str, dict[str, Any]]:
    """Every file of a saved model with its size and sha256 (the manifest's ``files``)."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        data = path.read_bytes()
        out[path.relative_to(model_dir).as_posix()] = {
            "size": len(data),
            "sha256": sha256_bytes(data),
        }
    return out


def _verify(folder: Path, files: dict[str, dict[str, Any]] | None, *, hashes: bool) -> str | None:
    """Why the copy in ``folder`` does not match the manifest's file list, or None."""
    if files is None:  # registered before manifests listed files: nothing to check against
        return None
    for name, meta in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} missing"
        if path.stat().st_size != meta.get("size"):
            return f"{name} has {path.stat().st_size} bytes, manifest says {meta.get('size')}"
        if hashes and meta.get("sha256") and sha256_bytes(path.read_bytes()) != meta["sha256"]:
            return f"{name} does not match its sha256"
    return None
