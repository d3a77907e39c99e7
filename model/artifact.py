"""The saved model: plain files with an explicit format version, and migrations.

Format 2 (written now), one folder:

- ``model.json``: the manifest: ``format``, the nested config, labels, temperature,
  top-label calibrator, version, history, the mixture (``member_names`` in mixture order and
  the ``Ensemble``), the main network's entry and one entry per saved member;
- ``network/``: the main network's arrays (``weights.pt`` state dict, ``vocab.json``,
  ``ngrams.json``, ``embeddings.npy``);
- the members' files, named by their entries: ``companion/`` (a network folder),
  ``svm.json`` + ``svm.npz``, ``knn.json`` + ``knn.npz``, ``sentence.json`` +
  ``sentence.npz`` (vocabularies, coefficients, sparse matrices, layer weights);
- ``precedents.npz``: the indexed cases (keys, titles, codes, features, sentence vectors);
  ``precedent_evidence.json`` beside it, their rulings' evidence (optional: an index saved
  without it loads with none, ``model.precedents``).

No pickled objects. :func:`load` reads every older format through :data:`MIGRATIONS`, each of
which turns one version's manifest into the next one's (file locations included), so the
loader itself only knows the current format.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from model.calibrate import Ensemble, TopLabelCalibrator
from model.config import MemberName, ModelConfig
from model.familiarity import Familiarity
from model.hsmodel import HSModel
from model.members import LoadContext, kind_of
from model.network import Network
from model.precedents import PrecedentIndex

FORMAT_VERSION = 2
MANIFEST = "model.json"
V1_MANIFEST = "config.json"
NETWORK_PATH = "network"
# every file or folder a member or network may write (a stale one must not survive a re-save)
_OWNED = ("network", "companion", "svm", "knn", "nearest", "sentence", "familiarity")


def save(model: HSModel, directory: Path) -> Path:
    """Write ``model`` into ``directory`` (created if needed) as format :data:`FORMAT_VERSION`."""
    directory.mkdir(parents=True, exist_ok=True)
    for stem in _OWNED:
        shutil.rmtree(directory / stem, ignore_errors=True)
        for ext in (".json", ".npz"):
            (directory / f"{stem}{ext}").unlink(missing_ok=True)
    network = {"path": NETWORK_PATH, **model.network.save(directory / NETWORK_PATH)}
    members = {str(name): member.save(directory) for name, member in model.members.items()}
    manifest = {
        "format": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "labels": model.labels,
        "temperature": model.temperature,
        "top_calibration": model.top_calibration.to_dict(),
        "version": model.version,
        "history": model.history,
        "network": network,
        "member_names": [str(n) for n in model.member_names],
        "mixture": model.mixture.to_dict() if model.mixture is not None else None,
        "members": members,
        # optional (models saved before it have none): model.familiarity
        "familiarity": model.familiarity.save(directory) if model.familiarity else None,
    }
    (directory / MANIFEST).write_text(
        json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    model.precedents.save(directory)
    return directory


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest at the current format, migrated from an older one when needed."""
    path = directory / MANIFEST
    if not path.is_file():
        path = directory / V1_MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no model at {directory} ({MANIFEST} missing)")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    version = manifest.get("format")
    while version != FORMAT_VERSION:
        if version not in MIGRATIONS:
            raise ValueError(f"unsupported model format {version!r} in {directory}")
        manifest = MIGRATIONS[version](manifest, directory)
        version = manifest["format"]
    return manifest


def load_network(directory: Path, device: str = "cpu") -> tuple[Network, list[str]]:
    """Only the main network of a saved model, and the codes it scores (a warm start needs
    nothing else: the members are not read)."""
    manifest = read_manifest(directory)
    entry = manifest["network"]
    return Network.load(directory / entry["path"], entry, device=device), list(manifest["labels"])


def load(directory: Path, device: str = "cpu") -> HSModel:
    """Load a saved model (on CPU by default, whatever device trained it)."""
    manifest = read_manifest(directory)
    config = ModelConfig.from_dict(manifest["config"])
    entry = manifest["network"]
    network = Network.load(directory / entry["path"], entry, device=device)
    names = tuple(MemberName(n) for n in manifest.get("member_names") or ())
    mix = manifest.get("mixture")
    mixture = Ensemble.from_dict(mix) if mix is not None else None
    if mixture is not None and len(names) != len(mixture.weights):
        raise ValueError(f"saved mixture: {len(mixture.weights)} weights for members {names}")
    needed = dict(zip(names, mixture.needed(), strict=True)) if mixture is not None else {}
    entries = manifest.get("members") or {}
    loaded: dict[MemberName, Any] = {}
    for name in names:  # mixture order: a member's requirements load before it
        if str(name) not in entries:
            if needed.get(name):
                raise ValueError(f"model at {directory}: the mixture needs member {name!r}")
            continue
        ctx = LoadContext(directory, config, network, device, loaded)
        loaded[name] = kind_of(name).load(entries[str(name)], ctx)
    return HSModel(
        config,
        manifest["labels"],
        network,
        member_names=names,
        members=loaded,
        mixture=mixture,
        temperature=manifest["temperature"],
        top_calibration=TopLabelCalibrator.from_dict(manifest.get("top_calibration")),
        precedents=PrecedentIndex.load(
            directory,
            config.ensemble.sentence_encoder,
            config.calibration.precedent_min_similarity,
        ),
        familiarity=(
            Familiarity.load(directory, manifest["familiarity"])
            if manifest.get("familiarity")
            else None
        ),
        version=manifest.get("version", ""),
        history=manifest.get("history", {}),
    )


# --- migrations -------------------------------------------------------------------------------
def _from_v1(meta: dict[str, Any], directory: Path) -> dict[str, Any]:
    """Format 1: a flat config in ``config.json``; the main network's arrays in the model
    folder itself; the SVM in ``tfidf.json`` / ``.npz``, which also held the member names and
    the mixture (or, older still, a two-member ``{"weight", "temp_a", "temp_b"}``); the
    companion a whole format-1 model in ``companion/``."""
    config = ModelConfig.from_dict(meta["config"]).to_dict()
    network = {
        "path": ".",
        "config": config,
        "n_classes": len(meta["labels"]),
        "tokenizer": meta["tokenizer"],
        "history": {},
    }
    names: list[str] = []
    mixture = None
    members: dict[str, dict[str, Any]] = {}
    tfidf = directory / "tfidf.json"
    if tfidf.is_file():
        tmeta = json.loads(tfidf.read_text(encoding="utf-8"))
        mix = tmeta.get("mixture")
        if mix is not None and "weight" in mix:
            w = float(mix["weight"])
            mixture = Ensemble([mix["temp_a"], mix["temp_b"]], [w, 1.0 - w]).to_dict()
            names = [MemberName.NETWORK, MemberName.SVM]
        elif mix is not None:
            mixture, names = mix, list(tmeta["members"])
        members[MemberName.SVM] = {"file": "tfidf"}
        for stem in (MemberName.KNN, MemberName.SENTENCE):
            if (directory / f"{stem}.json").is_file():
                members[stem] = {"file": str(stem)}
    companion = directory / "companion" / V1_MANIFEST
    if companion.is_file():
        cmeta = json.loads(companion.read_text(encoding="utf-8"))
        members[MemberName.COMPANION] = {
            "path": "companion",
            "config": ModelConfig.from_dict(cmeta["config"]).to_dict(),
            "n_classes": len(cmeta["labels"]),
            "tokenizer": cmeta["tokenizer"],
            "history": cmeta.get("history", {}),
        }
    if MemberName.NETWORK in names:
        members[MemberName.NETWORK] = {}
    return {
        "format": 2,
        "config": config,
        "labels": meta["labels"],
        "temperature": meta["temperature"],
        "top_calibration": meta.get("top_calibration"),
        "version": meta.get("version", ""),
        "history": meta.get("history", {}),
        "network": network,
        "member_names": [str(n) for n in names],
        "mixture": mixture,
        "members": {str(k): v for k, v in members.items()},
    }


MIGRATIONS: dict[int, Callable[[dict[str, Any], Path], dict[str, Any]]] = {1: _from_v1}
