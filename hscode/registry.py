"""The model registry: versioned model directories, a champion pointer and its history.

Layout under ``root``::

    versions/v0003-20261125T2100/
        model/           what ``HSModel.save`` wrote (weights, vocabularies, label map, config)
        manifest.json    version, created_at, metrics, info (n_cases, data_hash, config, inputs)
    champion.json        {"version": ..., "history": [older champions ...], "events": [...]}
    .lock                serialises writers across processes

A version appears only complete: it is written to a temporary directory and renamed into
place, so a crash mid-write leaves at most an ignored ``.tmp-*`` directory. The champion file
is replaced atomically; its history of promotions is what ``rollback`` walks back along.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import re
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hscode.storage import atomic_write

MANIFEST = "manifest.json"
MODEL_SUBDIR = "model"
CHAMPION_FILE = "champion.json"
_VERSION = re.compile(r"^v(\d{4,})-(\d{8}T\d{4})$")
_STALE_TMP_S = 3600.0
_CACHE_SIZE = 2

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
    path: str = ""


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
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.versions_dir = self.root / "versions"

    # ------------------------------------------------------------------ internals
    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _version_dir(self, version: str) -> Path:
        if not isinstance(version, str) or not _VERSION.match(version):
            raise RegistryError(
                f"not a model version name: {version!r} (expected v0001-YYYYMMDDTHHMM)"
            )
        return self.versions_dir / version

    def _require(self, version: str) -> Path:
        path = self._version_dir(version)
        if not (path / MANIFEST).is_file():
            known = ", ".join(v.version for v in self.list_versions()) or "none"
            raise RegistryError(f"unknown model version {version!r} (registered: {known})")
        return path

    def _state(self) -> dict[str, Any]:
        path = self.root / CHAMPION_FILE
        if not path.is_file():
            return {"version": None, "history": [], "events": []}
        state = json.loads(path.read_text())
        state.setdefault("history", [])
        state.setdefault("events", [])
        return state

    def _write_state(self, state: dict[str, Any]) -> None:
        atomic_write(self.root / CHAMPION_FILE, _dumps(state))

    def _next_number(self) -> int:
        numbers = [0]
        if self.versions_dir.is_dir():
            for entry in self.versions_dir.iterdir():
                match = _VERSION.match(entry.name)
                if match:
                    numbers.append(int(match.group(1)))
        return max(numbers) + 1

    def _clean_stale_tmp(self) -> None:
        if not self.versions_dir.is_dir():
            return
        for entry in self.versions_dir.glob(".tmp-*"):
            try:
                if time.time() - entry.stat().st_mtime > _STALE_TMP_S:
                    shutil.rmtree(entry, ignore_errors=True)
            except FileNotFoundError:
                pass

    # ------------------------------------------------------------------ writing
    def register(
        self, model: Path | str | Any, metrics: dict[str, Any], info: dict[str, Any] | None = None
    ) -> str:
        """Store a model (a saved model directory, or an object with ``.save(dir)``) as a new
        version with its metrics and info; returns the version name. Does not promote."""
        info = dict(info or {})
        with self._locked():
            self.versions_dir.mkdir(parents=True, exist_ok=True)
            self._clean_stale_tmp()
            tmp = self.versions_dir / f".tmp-{uuid.uuid4().hex}"
            tmp.mkdir()
            try:
                target = tmp / MODEL_SUBDIR
                if isinstance(model, (str, Path)):
                    source = Path(model)
                    if not source.is_dir():
                        raise RegistryError(f"model directory {source} does not exist")
                    shutil.copytree(source, target)
                elif callable(getattr(model, "save", None)):
                    model.save(target)
                    if not target.is_dir():
                        raise RegistryError(
                            f"{type(model).__name__}.save wrote nothing to {target}"
                        )
                else:
                    raise TypeError(
                        f"register() needs a model directory or an object with .save(dir), "
                        f"not {type(model).__name__}"
                    )
                created = _now()
                version = f"v{self._next_number():04d}-{created.strftime('%Y%m%dT%H%M')}"
                manifest = {
                    "version": version,
                    "created_at": created.isoformat(timespec="seconds"),
                    "metrics": metrics,
                    "info": info,
                }
                (tmp / MANIFEST).write_bytes(_dumps(manifest))
                tmp.rename(self.versions_dir / version)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return version

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
            history = [v for v in state["history"] if (self._version_dir(v) / MANIFEST).is_file()]
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
    def _read_version(self, path: Path, champion: str | None) -> ModelVersion:
        manifest = json.loads((path / MANIFEST).read_text())
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
            path=str(path),
        )

    def list_versions(self) -> list[ModelVersion]:
        """Every complete version, oldest first."""
        if not self.versions_dir.is_dir():
            return []
        champion = self._state().get("version")
        out = []
        for entry in sorted(self.versions_dir.iterdir(), key=lambda p: p.name):
            if _VERSION.match(entry.name) and (entry / MANIFEST).is_file():
                out.append(self._read_version(entry, champion))
        return out

    def get(self, version: str) -> ModelVersion:
        return self._read_version(self._require(version), self._state().get("version"))

    def champion(self) -> ModelVersion | None:
        version = self._state().get("version")
        if version is None or not (self._version_dir(version) / MANIFEST).is_file():
            return None
        return self.get(version)

    def history(self) -> list[dict[str, Any]]:
        """Promotion and rollback events, oldest first."""
        return list(self._state()["events"])

    def write_report(self, version: str, report: dict[str, Any]) -> Path:
        """Store a version's training report (evaluation details for plots) beside it.

        Written atomically after registration; the version is complete without it.
        """
        from hscode.storage import atomic_write

        path = self._require(version) / REPORT_FILE
        atomic_write(path, _dumps(report))
        return path

    def read_report(self, version: str) -> dict[str, Any] | None:
        """The training report of a version, or None when it has none."""
        path = self._require(version) / REPORT_FILE
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def model_dir(self, version: str) -> Path:
        return self._require(version) / MODEL_SUBDIR

    def load(self, version: str) -> Any:
        """The loaded model of a version (an ``HSModel`` with ``.version`` set); cached."""
        path = self.model_dir(version)
        key = (str(path.resolve()), version)
        with _cache_lock:
            if key in _model_cache:
                _model_cache.move_to_end(key)
                return _model_cache[key]
        from model.pipeline import HSModel

        model = HSModel.load(path)
        model.version = version
        with _cache_lock:
            _model_cache[key] = model
            while len(_model_cache) > _CACHE_SIZE:
                _model_cache.popitem(last=False)
        return model
