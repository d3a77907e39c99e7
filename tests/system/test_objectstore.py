"""Storage locations as URLs: the cases dataset, images and model registry on object storage.

A real S3 protocol server (moto's, on 127.0.0.1) stands in for AWS/MinIO; s3fs talks to it
over HTTP exactly as it would to a remote endpoint. Objects are checked with a separate
boto3 client, so the tests see what another machine would see.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import socket
import uuid
from pathlib import Path

import pytest

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

from PIL import Image

from hscode import registry as registry_module
from hscode.case_import import export_cases, import_cases
from hscode.case_records import synthetic_case_records
from hscode.cases import cases_snapshot_hash, read_cases, upsert_cases
from hscode.objectstore import (
    Location,
    cases_location,
    display_url,
    images_location,
)
from hscode.recommend import recommend
from hscode.registry import Registry, RegistryError
from hscode.review import ReviewPolicy
from hscode.settings import Settings
from hscode.storage import local_path_of, sha256_bytes
from model.records import RequestInput

KEY, SECRET = "AKIDEXAMPLE", "s3cr3t-storage-key-do-not-log"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port())
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint):
    """A fresh bucket per test, and a boto3 client for looking at it independently."""
    name = f"hscode-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=name)
    return name, client


def _s3_settings(tmp_path: Path, endpoint: str, bucket_name: str, name: str = "a") -> Settings:
    return Settings(
        data_dir=tmp_path / name,
        storage_url=f"s3://{bucket_name}/hscode",
        storage_endpoint_url=endpoint,
        storage_region="us-east-1",
        storage_key=KEY,
        storage_secret=SECRET,
        _env_file=None,
    )


def _keys(client, bucket_name: str, prefix: str = "") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket_name, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def _png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- settings, URLs


def test_local_path_of_and_settings_urls(tmp_path: Path) -> None:
    assert local_path_of("var/cases") == Path("var/cases")
    assert local_path_of("file:///srv/hs%20code") == Path("/srv/hs code")
    assert local_path_of("s3://bucket/prefix") is None
    with pytest.raises(ValueError, match="remote host"):
        local_path_of("file://otherhost/x")

    default = Settings(data_dir=tmp_path, _env_file=None)
    assert default.cases_dir == tmp_path / "cases" and default.cases_url == str(tmp_path / "cases")
    assert default.model_registry_dir == tmp_path / "registry"
    assert (
        Settings(registry_dir=tmp_path / "r", _env_file=None).model_registry_dir == tmp_path / "r"
    )

    remote = Settings(data_dir=tmp_path, storage_url="s3://b/p/", _env_file=None)
    assert (remote.cases_url, remote.images_url, remote.registry_url) == (
        "s3://b/p/cases",
        "s3://b/p/images",
        "s3://b/p/registry",
    )
    assert remote.raw_dir == tmp_path / "raw" and remote.pg_dir == tmp_path / "pg"  # stay local
    with pytest.raises(ValueError, match="remote storage"):
        _ = remote.cases_dir
    assert display_url("s3://user:pw@bucket/x") == "s3://bucket/x"


def test_storage_secrets_never_show(tmp_path: Path, s3_endpoint: str, caplog) -> None:
    settings = _s3_settings(tmp_path, s3_endpoint, "nobucket")
    assert settings.storage_secret is not None
    assert settings.storage_secret.get_secret_value() == SECRET  # there, just hidden
    location = cases_location(settings)
    texts = [
        repr(settings),
        settings.model_dump_json(),
        repr(location),
        repr(Registry.from_settings(settings)),
    ]
    for text in texts:
        assert SECRET not in text and KEY not in text


def test_file_url_behaves_like_the_plain_path(tmp_path: Path) -> None:
    store = tmp_path / "shared store"
    via_url = Settings(data_dir=tmp_path / "local", storage_url=store.as_uri(), _env_file=None)
    via_path = Settings(data_dir=store, _env_file=None)
    assert via_url.cases_dir == via_path.cases_dir == store / "cases"
    assert cases_location(via_url).local_root == store / "cases"

    upsert_cases(via_url, synthetic_case_records(12))
    assert sorted(p.relative_to(store).as_posix() for p in store.rglob("*.parquet")) == [
        "cases/decision_year=2024/part-0.parquet"
    ]
    assert not (tmp_path / "local" / "cases").exists()
    assert cases_snapshot_hash(via_url) == cases_snapshot_hash(via_path)
    report = upsert_cases(via_path, synthetic_case_records(12))
    assert (report.inserted, report.unchanged) == (0, 12)

    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w")
    version = Registry.from_settings(via_url).register(model, {"test_top1": 0.5}, {})
    Registry.from_settings(via_url).promote(version)
    local = Registry(store / "registry")
    assert local.champion().version == version
    assert (local.model_dir(version) / "weights.bin").read_bytes() == b"w"


def test_local_location_with_glob_characters_in_its_path(tmp_path: Path) -> None:
    loc = Location.from_url(tmp_path / "odd[1]*?" / "store")
    assert loc.is_local and loc.local_root == tmp_path / "odd[1]*?" / "store"
    digest = loc.put_blob(b"abc")
    loc.write_bytes("decision_year=2024/part-0.parquet", b"p")
    assert loc.glob("decision_year=*/part-0.parquet") == ["decision_year=2024/part-0.parquet"]
    got = loc.read_many([Location.blob_rel(digest), "ab/" + "a" * 64])
    assert got[Location.blob_rel(digest)] == b"abc" and isinstance(got["ab/" + "a" * 64], OSError)
    loc.delete("decision_year=2024/part-0.parquet")
    assert (
        loc.glob("decision_year=*/*") == [] and not (loc.local_root / "decision_year=2024").exists()
    )


# --------------------------------------------------------------------------- S3


def test_location_on_s3(tmp_path: Path, s3_endpoint: str, bucket) -> None:
    name, client = bucket
    loc = cases_location(_s3_settings(tmp_path, s3_endpoint, name))
    assert not loc.is_local and not loc.exists()
    loc.write_bytes("a/b.txt", b"hello")
    assert loc.read_bytes("a/b.txt") == b"hello" and loc.exists("a/b.txt")
    assert loc.glob("*/b.txt") == ["a/b.txt"] and loc.list() == ["a"]
    digest = loc.put_blob(b"xyz")
    assert digest == sha256_bytes(b"xyz")
    assert loc.put_blob(b"xyz") == digest  # write once
    got = loc.read_many([Location.blob_rel(digest), "missing"])
    assert got[Location.blob_rel(digest)] == b"xyz"
    assert isinstance(got["missing"], FileNotFoundError)
    with pytest.raises(FileNotFoundError):
        loc.read_bytes("missing")
    with pytest.raises(ValueError, match="bad path"):
        loc.read_bytes("../escape")
    assert _keys(client, name) == [f"hscode/cases/{digest[:2]}/{digest}", "hscode/cases/a/b.txt"]
    loc.delete("a/b.txt")
    assert _keys(client, name) == [f"hscode/cases/{digest[:2]}/{digest}"]


def test_cases_dataset_and_images_live_in_s3(tmp_path: Path, s3_endpoint: str, bucket) -> None:
    name, client = bucket
    settings = _s3_settings(tmp_path, s3_endpoint, name)
    red, blue = _png((200, 0, 0)), _png((0, 0, 200))
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "red.png").write_bytes(red)
    (folder / "blue.png").write_bytes(blue)
    rows = [
        {"case_id": "c1", "hs_code": "3208.20-9000", "title": "폴리우레탄 코팅제",
         "image_path": "red.png", "decision_date": "2024-03-01"},
        {"case_id": "c2", "hs_code": "8471.30-0000", "title": "노트북 컴퓨터",
         "image_path": "blue.png;red.png", "decision_date": "2023-05-02"},
        {"case_id": "c3", "hs_code": "", "title": "코드 없음"},  # rejected: no code
    ]  # fmt: skip
    with (folder / "cases.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    report = import_cases(settings, folder / "cases.csv", source="t")
    assert (report.imported, report.rejected) == (2, 1)
    keys = _keys(client, name)
    assert "hscode/cases/decision_year=2024/part-0.parquet" in keys
    assert "hscode/cases/decision_year=2023/part-0.parquet" in keys
    for data in (red, blue):
        digest = sha256_bytes(data)
        assert f"hscode/images/{digest[:2]}/{digest}" in keys
        obj = client.get_object(Bucket=name, Key=f"hscode/images/{digest[:2]}/{digest}")
        assert obj["Body"].read() == data
    # nothing of the shared data landed in the local data dir
    assert not (tmp_path / "a" / "cases").exists() and not (tmp_path / "a" / "images").exists()

    # another machine (own data dir) reads the same dataset
    other = _s3_settings(tmp_path, s3_endpoint, name, "b")
    table = read_cases(other)
    assert sorted(table["case_key"].to_pylist()) == ["t:c1", "t:c2"]
    by_key = {r["case_key"]: r for r in table.to_pylist()}
    assert by_key["t:c2"]["image_hashes"] == [sha256_bytes(blue), sha256_bytes(red)]
    snapshot = cases_snapshot_hash(other)

    again = import_cases(other, folder / "cases.csv", source="t")  # re-run: nothing changes
    assert again.upsert is not None and again.upsert.unchanged == 2
    assert again.upsert.partitions_written == ()
    assert cases_snapshot_hash(settings) == snapshot
    assert export_cases(other, tmp_path / "out.csv") == 2

    # a case moving partitions on object storage (no lock there): gained, then lost
    later = by_key["t:c2"]["fetched_at"].replace(year=2030)
    moved = {**by_key["t:c2"], "decision_date": None, "decision_year": 0, "fetched_at": later}
    up = upsert_cases(settings, [moved])
    assert (up.updated, up.total, up.partitions_written) == (1, 2, (0, 2023))
    assert "hscode/cases/decision_year=2023/part-0.parquet" not in _keys(client, name)


def test_normalize_writes_dataset_and_images_to_s3(
    tmp_path: Path, s3_endpoint: str, bucket
) -> None:
    from test_normalize import store_case

    from emulator.corpus import demo_corpus
    from hscode.normalize import normalize
    from hscode.rawzone import RawZone

    name, client = bucket
    settings = _s3_settings(tmp_path, s3_endpoint, name)
    corpus = demo_corpus(8, seed=3)
    raw = RawZone(settings.raw_dir)  # the raw zone stays local to the crawl worker
    for case in corpus:
        store_case(raw, case)
    report = normalize(settings)
    assert report.new_cases == report.total_cases == len(corpus)
    images = {sha256_bytes(img) for case in corpus for img in case.images}
    assert images and report.images_stored >= len(images)
    keys = _keys(client, name)
    assert {k.rsplit("/", 1)[1] for k in keys if k.startswith("hscode/images/")} == images
    assert any(k.startswith("hscode/cases/decision_year=") for k in keys)
    assert (tmp_path / "a" / "raw").is_dir() and not (tmp_path / "a" / "cases").exists()
    again = normalize(settings)
    assert again.skipped_unchanged == len(corpus) and again.new_cases == 0


def test_train_on_s3_and_a_fresh_machine_scores_with_the_champion(
    tmp_path: Path, s3_endpoint: str, bucket
) -> None:
    from hscode.predict import predict_file
    from hscode.selection import load_examples
    from hscode.training import SMOKE_TRAIN, TrainConfig, train_and_register

    name, client = bucket
    gpu_worker = _s3_settings(tmp_path, s3_endpoint, name, "gpu")
    records = synthetic_case_records(120)
    upsert_cases(gpu_worker, records)

    outcome = train_and_register(gpu_worker, TrainConfig(**SMOKE_TRAIN))
    assert outcome.promoted
    keys = _keys(client, name, "hscode/registry/")
    base = f"hscode/registry/versions/{outcome.version}"
    assert f"{base}/manifest.json" in keys and "hscode/registry/champion.json" in keys
    assert f"{base}/model/network/weights.pt" in keys and f"{base}/report.json" in keys
    manifest = json.loads(
        client.get_object(Bucket=name, Key=f"{base}/manifest.json")["Body"].read()
    )
    assert {f"{base}/model/{f}" for f in manifest["files"]} == {
        k for k in keys if k.startswith(f"{base}/model/")
    }
    assert not (tmp_path / "gpu" / "registry").exists()

    # The same training on a plain local data dir: the storage must not change the model.
    local = Settings(data_dir=tmp_path / "local", _env_file=None)
    upsert_cases(local, records)
    local_outcome = train_and_register(local, TrainConfig(**SMOKE_TRAIN))
    local_model = Registry.from_settings(local).load(local_outcome.version)

    # A scoring machine: new settings, an empty cache, no model in memory.
    with registry_module._cache_lock:
        registry_module._model_cache.clear()
    scorer = _s3_settings(tmp_path, s3_endpoint, name, "scorer")
    registry = Registry.from_settings(scorer)
    champion = registry.champion()
    assert champion is not None and champion.version == outcome.version
    assert champion.n_cases == 120 and champion.path.startswith(f"s3://{name}/")
    assert registry.read_report(outcome.version)["test"]["y_true"] == list(
        outcome.report["test"]["y_true"]
    )
    remote_model = registry.load(champion.version)
    cached = scorer.cache_dir / "registry"
    assert sorted(p.name for p in cached.glob("*/*")) == [outcome.version]

    requests = [RequestInput(f"r{i}", r["title"], None, None) for i, r in enumerate(records[:15])]
    kwargs = {"top_k": 3, "n_precedents": 2, "policy": ReviewPolicy(0.5)}
    got = recommend(remote_model, requests, **kwargs)
    want = recommend(local_model, requests, **kwargs)
    assert [[c.hs10 for c in r.candidates] for r in got] == [
        [c.hs10 for c in r.candidates] for r in want
    ]
    assert [r.confidence for r in got] == pytest.approx([r.confidence for r in want], abs=1e-6)

    # the command-line prediction path resolves the champion through the same registry
    (tmp_path / "in.csv").write_text("request_id,title\nq1,노트북 컴퓨터\n", encoding="utf-8")
    summary = predict_file(scorer, tmp_path / "in.csv", tmp_path / "out.csv")
    assert summary["model_version"] == outcome.version

    # images for training come from the shared store too
    red = _png((255, 0, 0))
    digest = images_location(scorer).put_blob(red)
    upsert_cases(scorer, [{**records[0], "image_hashes": ["0" * 64, digest]}])
    selection = load_examples(gpu_worker, TrainConfig(inputs="title+image"))
    by_key = {e.key: e for e in selection.examples}
    assert by_key["syn-0"].image == red  # the missing first image fell back to the second
    assert selection.missing_images == 1


def test_interrupted_upload_stays_invisible(tmp_path: Path, s3_endpoint: str, bucket, monkeypatch):
    name, client = bucket
    settings = _s3_settings(tmp_path, s3_endpoint, name)
    registry = Registry.from_settings(settings)
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"weights-1")
    (model / "labels.json").write_text("[]")
    v1 = registry.register(model, {"test_top1": 0.5}, {})
    registry.promote(v1)

    # 1. while the model files are uploaded the version is invisible (manifest last); when
    #    the manifest PUT then fails, the upload is removed
    real_upload, seen_during_upload = Location.upload_dir, []

    def watched_upload(self, source, rel):
        sizes = real_upload(self, source, rel)
        other_machine = Registry.from_settings(_s3_settings(tmp_path, s3_endpoint, name, "w"))
        seen_during_upload.append([v.version for v in other_machine.list_versions()])
        return sizes

    monkeypatch.setattr(Location, "upload_dir", watched_upload)
    real_write = Location.write_bytes

    def failing_manifest(self, rel, data):
        if rel.endswith("/manifest.json"):
            raise ConnectionError("connection reset while committing")
        return real_write(self, rel, data)

    monkeypatch.setattr(Location, "write_bytes", failing_manifest)
    with pytest.raises(ConnectionError):
        registry.register(model, {"test_top1": 0.9}, {})
    monkeypatch.setattr(Location, "write_bytes", real_write)
    monkeypatch.setattr(Location, "upload_dir", real_upload)
    assert seen_during_upload == [[v1]]
    assert [v.version for v in registry.list_versions()] == [v1]
    assert all("v0002" not in k for k in _keys(client, name))

    # 2. a process killed mid-upload leaves model files and no manifest
    crashed = "v0007-20260101T0000"
    registry.location.upload_dir(model, f"versions/{crashed}/model")
    assert any(crashed in k for k in _keys(client, name))
    fresh = Registry.from_settings(_s3_settings(tmp_path, s3_endpoint, name, "b"))
    assert [v.version for v in fresh.list_versions()] == [v1]
    assert fresh.champion().version == v1
    with pytest.raises(RegistryError, match="unknown model version"):
        fresh.promote(crashed)
    with pytest.raises(RegistryError, match="unknown model version"):
        fresh.load(crashed)
    v8 = fresh.register(model, {}, {})  # the crashed number is never reused
    assert v8.startswith("v0008-")
    assert any(crashed in k for k in _keys(client, name))  # too recent to be garbage yet
    monkeypatch.setattr(registry_module, "_STALE_TMP_S", -1.0)
    fresh.register(model, {}, {})
    assert not any(crashed in k for k in _keys(client, name))  # old garbage collected

    # 3. a damaged object is caught when a version is copied into the cache
    key = f"hscode/registry/versions/{v8}/model/weights.bin"
    client.put_object(Bucket=name, Key=key, Body=b"tampered!")
    with pytest.raises(RegistryError, match="damaged"):
        fresh.model_dir(v8)
    assert not list(fresh.cache_dir.glob(f"*/{v8}"))  # no damaged copy left in the cache
    assert (registry.model_dir(v1) / "weights.bin").read_bytes() == b"weights-1"

    # rollback and the champion pointer work as on a local registry
    fresh.promote(v8)
    assert fresh.rollback() == v1
    assert Registry.from_settings(settings).champion().version == v1
