"""Test-wide isolation: every test gets its own data dir; Prefect never touches ~/.prefect."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Prefect reads these at import time, so set them before anything imports prefect.
_PREFECT_HOME = tempfile.mkdtemp(prefix="hscode-prefect-")
os.environ.setdefault("PREFECT_HOME", _PREFECT_HOME)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# a loaded 2-core machine (two trainings beside the tests) needs minutes, not seconds, to
# start an ephemeral server; waiting longer costs nothing when it starts sooner
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

for _name in list(os.environ):
    if _name.startswith("HSCODE_") and _name != "HSCODE_TEST_DATABASE_URL":
        del os.environ[_name]

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real data beside the checkout; tests using it skip cleanly without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def settings(tmp_path: Path):
    from hscode.settings import Settings

    return Settings(data_dir=tmp_path / "var", _env_file=None)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tests train tiny models on a shared 2-core machine: one intra-op thread each."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
