"""Model registry: versions are atomic, the champion moves only by promote/rollback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hscode.registry import ModelVersion, Registry, RegistryError


def _model_dir(tmp_path: Path, name: str, payload: str) -> Path:
    path = tmp_path / "built" / name
    path.mkdir(parents=True)
    (path / "weights.bin").write_text(payload)
    (path / "labels.json").write_text(json.dumps(["0101210000", "8471300000"]))
    return path


class _Saveable:
    """Anything with ``save(dir)`` registers like an HSModel does."""

    def __init__(self, payload: str) -> None:
        self.payload = payload

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True)
        (directory / "weights.bin").write_text(self.payload)


def test_register_list_and_manifest(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry")
    assert reg.list_versions() == []
    assert reg.champion() is None

    v1 = reg.register(
        _model_dir(tmp_path, "a", "A"),
        {"test_top1": 0.7},
        {"n_cases": 120, "data_hash": "abc", "config": {"inputs": "title"}, "inputs": "title"},
    )
    v2 = reg.register(_Saveable("B"), {"test_top1": 0.8}, {"n_cases": 130})
    assert v1.startswith("v0001-") and v2.startswith("v0002-")

    versions = reg.list_versions()
    assert [v.version for v in versions] == [v1, v2]
    first = versions[0]
    assert isinstance(first, ModelVersion)
    assert first.metrics == {"test_top1": 0.7}
    assert (first.n_cases, first.data_hash, first.inputs) == (120, "abc", "title")
    assert first.created_at.endswith("+00:00")
    assert not any(v.champion for v in versions)
    assert (reg.model_dir(v1) / "weights.bin").read_text() == "A"
    assert (reg.model_dir(v2) / "weights.bin").read_text() == "B"


def test_failed_register_leaves_no_version(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry")

    class Exploding:
        def save(self, directory: Path) -> None:
            directory.mkdir(parents=True)
            (directory / "half.bin").write_text("partial")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        reg.register(Exploding(), {}, {})
    assert reg.list_versions() == []
    assert not list((tmp_path / "registry" / "versions").iterdir())  # temp dir removed too

    with pytest.raises(RegistryError, match="does not exist"):
        reg.register(tmp_path / "missing", {}, {})
    # a stray temp dir from a crashed process is never listed as a version
    (tmp_path / "registry" / "versions" / ".tmp-crashed").mkdir()
    v = reg.register(_Saveable("ok"), {}, {})
    assert [x.version for x in reg.list_versions()] == [v]
    assert v.startswith("v0001-")


def test_promote_and_rollback(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry")
    v1 = reg.register(_Saveable("1"), {"test_top1": 0.5}, {})
    v2 = reg.register(_Saveable("2"), {"test_top1": 0.6}, {})
    v3 = reg.register(_Saveable("3"), {"test_top1": 0.7}, {})

    with pytest.raises(RegistryError, match="nothing to roll back"):
        reg.rollback()
    reg.promote(v1)
    assert reg.champion().version == v1
    reg.promote(v2)
    reg.promote(v2)  # promoting the champion again changes nothing
    reg.promote(v3)
    assert reg.champion().version == v3
    assert [v.version for v in reg.list_versions() if v.champion] == [v3]

    assert reg.rollback() == v2
    assert reg.champion().version == v2
    assert reg.rollback() == v1
    with pytest.raises(RegistryError, match="nothing to roll back"):
        reg.rollback()
    assert reg.champion().version == v1
    actions = [e["action"] for e in reg.history()]
    assert actions == ["promote", "promote", "promote", "rollback", "rollback"]

    # the pointer survives a fresh Registry object (another process)
    assert Registry(tmp_path / "registry").champion().version == v1


def test_bad_versions_are_refused(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry")
    reg.register(_Saveable("1"), {}, {})
    with pytest.raises(RegistryError, match="unknown model version"):
        reg.promote("v0099-20260101T0000")
    with pytest.raises(RegistryError, match="not a model version name"):
        reg.promote("../../etc")
    with pytest.raises(TypeError, match="model directory or an object"):
        reg.register(42, {}, {})
