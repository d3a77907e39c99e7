"""Postgres fixtures: one server for the whole test session, a fresh database per module.

The server is the embedded one (``hscode.db.get_engine`` on a session temp data dir), or
the server named by ``HSCODE_TEST_DATABASE_URL`` when that is set (a URL whose user may
create databases and roles). Each test module gets its own database, created empty,
migrated, and dropped at the end, so modules never see each other's rows.

Use from a test module::

    pytest_plugins = ["conftest_db"]
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

TEST_URL_ENV = "HSCODE_TEST_DATABASE_URL"


def embedded_data_dir() -> Path:
    """A fresh data dir for an embedded server, outside pytest's temp tree.

    Not under ``tmp_path``: when running as root the server runs as the ``pgserver`` user,
    and every new pytest session (e.g. a concurrent run) resets ``/tmp/pytest-of-<user>``
    to mode 0700, which locks a running server out of its own data directory.
    """
    return Path(tempfile.mkdtemp(prefix="hscode-test-pg-")) / "var"


def stop_embedded(data_dir: Path) -> None:
    """Stop the embedded server of ``data_dir`` and delete the directory."""
    from hscode.db import stop_embedded as _stop
    from hscode.settings import Settings

    _stop(Settings(data_dir=data_dir, _env_file=None))
    shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """SQLAlchemy URL of an administrative database on the session's server."""
    from hscode.db import get_engine
    from hscode.settings import Settings

    external = os.environ.get(TEST_URL_ENV)
    if external:
        yield get_engine(Settings(database_url=external, _env_file=None)).url.render_as_string(
            hide_password=False
        )
        return
    data_dir = embedded_data_dir()
    try:
        settings = Settings(data_dir=data_dir, _env_file=None)
        url = get_engine(settings).url.render_as_string(hide_password=False)
        # A throw-away test server: no fsync (create/drop database force checkpoints, slow
        # on a busy shared disk). Never done for HSCODE_TEST_DATABASE_URL.
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            _admin_execute(url, f"alter system set {setting} = off")
        _admin_execute(url, "select pg_reload_conf()")
        yield url
    finally:
        stop_embedded(data_dir)


def _admin_execute(server_url: str, statement: str) -> None:
    import psycopg
    from sqlalchemy import make_url

    url = make_url(server_url).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture(scope="module")
def pg_engine(pg_server_url: str, request: pytest.FixtureRequest) -> Iterator[object]:
    """A migrated engine on a database of its own for this test module."""
    from sqlalchemy import make_url

    from hscode.db import dispose_engine, get_engine, migrate
    from hscode.settings import Settings

    module = re.sub(r"[^a-z0-9]+", "_", request.module.__name__.lower())[-30:]
    name = f"hscode_t_{module}_{uuid.uuid4().hex[:8]}"
    _admin_execute(pg_server_url, f'create database "{name}"')
    url = make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    engine = get_engine(Settings(database_url=url, _env_file=None))
    migrate(engine)
    try:
        yield engine
    finally:
        dispose_engine(engine)
        _admin_execute(pg_server_url, f'drop database if exists "{name}" with (force)')
