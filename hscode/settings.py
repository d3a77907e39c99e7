"""The one settings object. Nothing else in the project reads the environment.

Every knob is an ``HSCODE_*`` environment variable (or a ``.env`` file in the
working directory); e.g. ``HSCODE_DATA_DIR=/srv/hscode``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REAL_PORTAL_URL = "https://unipass.customs.go.kr/clip/"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HSCODE_", env_file=".env", extra="forbid", frozen=True
    )

    data_dir: Path = Field(Path("var"), description="Root of raw zone, cases, images, registry, db")
    database_url: SecretStr | None = Field(
        None, description="postgresql+psycopg://... ; empty = embedded Postgres in data_dir/pg"
    )
    portal_url: str = Field(REAL_PORTAL_URL, description="Base URL of the CLIP portal or emulator")
    registry_dir: Path | None = Field(None, description="Model registry; default data_dir/registry")

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
        0.5, ge=0, le=1, description="Calibrated confidence below which a human reviews"
    )
    score_batch_size: int = Field(2000, ge=1)
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

    # training
    device: str = Field("auto", description="auto | cpu | cuda")
    seed: int = 13

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def cases_dir(self) -> Path:
        return self.data_dir / "cases"

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

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
        return self.registry_dir or self.data_dir / "registry"


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides winning."""
    return Settings(**overrides)  # type: ignore[arg-type]
