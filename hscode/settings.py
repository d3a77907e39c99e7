"""The one settings object. Nothing else in the project reads the environment.

Every knob is an ``HSCODE_*`` environment variable (or a ``.env`` file in the
working directory); e.g. ``HSCODE_DATA_DIR=/srv/hscode``.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hscode.storage import local_path_of

REAL_PORTAL_URL = "https://unipass.customs.go.kr/clip/"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HSCODE_", env_file=".env", extra="forbid", frozen=True
    )

    data_dir: Path = Field(
        Path("var"),
        description=(
            "Local root: raw zone, crawl state and locks, inbox, rejects, embedded Postgres, "
            "model cache; also cases, images and registry unless storage_url is set"
        ),
    )
    database_url: SecretStr | None = Field(
        None, description="postgresql+psycopg://... ; empty = embedded Postgres in data_dir/pg"
    )
    portal_url: str = Field(REAL_PORTAL_URL, description="Base URL of the CLIP portal or emulator")
    registry_dir: str | None = Field(
        None,
        description="Model registry (a path or URL like storage_url); default storage_url/registry",
    )

    # shared storage (several machines): cases dataset, images, model registry
    storage_url: str | None = Field(
        None,
        description=(
            "Shared storage for the cases dataset, images and model registry: a local path, "
            "file:///..., s3://bucket/prefix (any S3-compatible endpoint), or any fsspec URL; "
            "unset = data_dir"
        ),
    )
    storage_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, Ceph...), e.g. http://minio:9000"
    )
    storage_region: str | None = Field(None, description="S3 region; unset = the client default")
    storage_key: SecretStr | None = Field(
        None, description="S3 access key id; unset = the usual AWS credential chain"
    )
    storage_secret: SecretStr | None = Field(None, description="S3 secret access key")

    # politeness
    request_rate: float = Field(1.0, gt=0, description="Max requests per second to the portal")
    request_timeout_s: float = Field(30.0, gt=0)
    max_retries: int = Field(6, ge=0)
    backoff_base_s: float = Field(2.0, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)
    max_concurrent_crawls: int = Field(1, ge=1, description="Across processes (file locks)")
    user_agent: str = Field(
        "hscode-recommender/0.1 (+https://github.com/hscode-recommender; nightly research crawl)"
    )
    recrawl_days: int = Field(
        30, ge=0, description="Trailing window re-crawled for late publications"
    )
    page_size: int = Field(100, ge=1, le=1000)

    # scoring
    top_k: int = Field(5, ge=1, le=50)
    review_threshold: float = Field(
        0.4, ge=0, le=1, description="Calibrated confidence below which a human reviews"
    )
    review_precedent_vote: bool = Field(
        False,
        description=(
            "also send to review an answer whose similar past cases vote for another code "
            "(off: on the real names those flags were mostly right answers, "
            "docs/benchmarks.md section 13a)"
        ),
    )
    score_batch_size: int = Field(2000, ge=1)
    score_threads: int | None = Field(
        None,
        ge=1,
        description=(
            "torch threads while scoring and predicting; 1 where scoring may run beside a "
            "training on the same cores (two torch processes of 2 threads on 2 cores made the "
            "networks' forward pass 14-35x slower, docs/benchmarks.md section 15c); unset: "
            "torch's default"
        ),
    )
    score_partitions: int = Field(
        1, ge=1, le=1024, description="backlog slices scored in parallel (by request-id hash)"
    )
    dask_address: str | None = Field(
        None,
        description=(
            "Dask scheduler for partitioned scoring: tcp://host:8786, or local:N for a "
            "local N-worker cluster; unset: partitions run one after another in-process"
        ),
    )
    n_precedents: int = Field(3, ge=0, le=20)
    max_text_chars: int = Field(20_000, ge=100)
    max_image_bytes: int = Field(10_000_000, ge=1000)

    # operations
    alert_block: str | None = Field(
        None,
        description=(
            "a Prefect notification block that the failure alert also notifies, as "
            "'block-type/name' (e.g. 'slack-webhook/ops'); unset: artifact and event only"
        ),
    )

    live_accuracy_window: int = Field(
        200, ge=1, description="the last N decided requests live accuracy is judged on"
    )
    live_accuracy_min_top1: float = Field(
        0.6,
        ge=0,
        le=1,
        description="live top-1 below this over the window fires the live-accuracy alert",
    )
    live_accuracy_min_decisions: int = Field(
        30, ge=1, description="decided requests needed before live accuracy is judged"
    )

    # training
    device: str = Field("auto", description="auto | cpu | cuda")
    seed: int = 13
    full_recipe_days: int = Field(
        7,
        ge=0,
        description="A training leaves out the members the champion's full run weighed 0 "
        "(the companion network) until its full run is this many days old; then a full run "
        "re-checks them. With `hscode train --warm` the main network continues the "
        "champion's until that chain of warm starts is this many days old; then it trains "
        "from scratch (0: every run is full and from scratch)",
    )

    @field_validator("registry_dir", "storage_url", mode="before")
    @classmethod
    def _path_to_str(cls, value: Any) -> Any:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if isinstance(value, str) and not value.strip():
            return None
        return value

    # ------------------------------------------------------------ shared storage (URLs)
    @property
    def storage_root(self) -> str:
        """Where the cases dataset, images and registry live: a path or a URL."""
        return self.storage_url or str(self.data_dir)

    @property
    def cases_url(self) -> str:
        return _join(self.storage_root, "cases")

    @property
    def images_url(self) -> str:
        return _join(self.storage_root, "images")

    @property
    def registry_url(self) -> str:
        return self.registry_dir or _join(self.storage_root, "registry")

    @property
    def cache_dir(self) -> Path:
        """Local copies of remote things (registry versions), always under data_dir."""
        return self.data_dir / "cache"

    # ------------------------------------------------------------ local paths
    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def cases_dir(self) -> Path:
        """The cases dataset's local folder (only when storage is local; see cases_url)."""
        return _local(self.cases_url, "cases dataset")

    @property
    def images_dir(self) -> Path:
        """The image store's local folder (only when storage is local; see images_url)."""
        return _local(self.images_url, "image store")

    @property
    def rejects_dir(self) -> Path:
        return self.data_dir / "rejects"

    @property
    def inbox_dir(self) -> Path:
        return self.data_dir / "inbox"

    @property
    def pg_dir(self) -> Path:
        return self.data_dir / "pg"

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "state"

    @property
    def model_registry_dir(self) -> Path:
        """The registry's local folder (only when it is local; else use
        ``hscode.registry.Registry.from_settings``)."""
        return _local(self.registry_url, "model registry")


def _join(root: str, name: str) -> str:
    return root.rstrip("/") + "/" + name if "://" in root else posixpath.join(root, name)


def _local(url: str, what: str) -> Path:
    path = local_path_of(url)
    if path is None:
        raise ValueError(
            f"the {what} is in remote storage ({url.split('://', 1)[0]}://...), not a local "
            "folder: open it through hscode.objectstore / Registry.from_settings"
        )
    return path


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides winning."""
    return Settings(**overrides)  # type: ignore[arg-type]
