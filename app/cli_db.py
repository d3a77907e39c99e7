"""``hscode db``: the database (embedded PostgreSQL by default) as a service, its URI,
migrations, read-only analyst logins and reviewer logins."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from app.cli_common import EXIT_BAD_INPUT, EXIT_NOT_RUNNING, EXIT_OK, CliError, settings_for


def _db_service(settings: Any, action: str) -> int:
    """`hscode db start|stop|status`: the embedded server as a service."""
    from hscode.db import embedded_pid, get_engine, start_embedded, stop_embedded

    pg_dir = Path(settings.pg_dir).expanduser().resolve()
    if settings.database_url is not None and settings.database_url.get_secret_value():
        if action == "status":
            from sqlalchemy import text

            with get_engine(settings).connect() as conn:
                version = conn.execute(text("show server_version")).scalar()
            print(f"configured server (HSCODE_DATABASE_URL) is up: PostgreSQL {version}")
            return EXIT_OK
        print(f"HSCODE_DATABASE_URL is set: that server is not embedded; nothing to {action}")
        return EXIT_OK
    if action == "start":
        uri, already = start_embedded(settings)
        state = "was already running" if already else "started"
        print(f"embedded PostgreSQL {state} (data in {pg_dir}); it stays up until `hscode db stop`")
        print(f"psql '{uri}'")
    elif action == "stop":
        stopped = stop_embedded(settings)
        print(
            "embedded PostgreSQL stopped" if stopped else f"no embedded PostgreSQL runs in {pg_dir}"
        )
    else:
        pid = embedded_pid(pg_dir)
        if pid is None:
            print(f"embedded PostgreSQL: not running (data in {pg_dir})")
            return EXIT_NOT_RUNNING
        from sqlalchemy import text

        with get_engine(settings).connect() as conn:
            sessions = conn.execute(
                text("select count(*) from pg_stat_activity where backend_type = 'client backend'")
            ).scalar()
        print(
            f"embedded PostgreSQL: running, pid {pid}, data in {pg_dir}, "
            f"{int(sessions) - 1} other client session(s)"
        )
    return EXIT_OK


def _create_login(settings: Any, command: str, name: str, password: str | None) -> None:
    """`hscode db analyst-login|reviewer-login NAME`: create the login, print how to connect."""
    import secrets

    from hscode.db import (
        ANALYST_ROLE,
        REVIEWER_ROLE,
        create_analyst_login,
        create_reviewer_login,
        get_engine,
        login_uri,
        migrate,
    )

    engine = get_engine(settings)
    migrate(engine)
    given = password
    password = given if given is not None else secrets.token_urlsafe(18)
    reviewer = command == "reviewer-login"
    try:
        (create_reviewer_login if reviewer else create_analyst_login)(engine, name, password)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_BAD_INPUT) from exc
    if reviewer:
        print(
            f"login {name} can read the analyst views and record decisions with "
            f"decide(request_id, code, note) (role {REVIEWER_ROLE}); it cannot read or write "
            "any table"
        )
    else:
        print(f"login {name} can read the analyst views (role {ANALYST_ROLE}) and nothing else")
    # the URI carries no password: not the configured URL's, not the login's
    print(f"connect with: psql '{login_uri(settings, name)}'")
    if given is not None:
        print("  psql asks for the password given with --password (or set PGPASSWORD)")
    else:  # generated: shown this once, stored only as a scram verifier
        print(f"  password (shown once; psql asks for it): {password}")
    if reviewer:
        print("  then: select decide('REQUEST_ID', '3304101000', 'why');")


def cmd_db(args: argparse.Namespace) -> int:
    from hscode.db import get_engine, migrate, psql_uri

    settings = settings_for(args)
    if args.db_cmd in ("start", "stop", "status"):
        return _db_service(settings, args.db_cmd)
    if args.db_cmd == "url":
        print(psql_uri(settings))
    elif args.db_cmd == "migrate":
        applied = migrate(get_engine(settings))
        print(f"migrations applied: {', '.join(applied) if applied else 'none (up to date)'}")
    elif args.db_cmd in ("analyst-login", "reviewer-login"):
        _create_login(settings, args.db_cmd, args.name, args.password)
    return EXIT_OK


def add_db_parser(sub: Any) -> None:
    """The ``db`` subcommand and its own subcommands, on the main parser's subparsers."""
    p = sub.add_parser("db", help="database")
    db_sub = p.add_subparsers(dest="db_cmd", required=True)
    db_sub.add_parser("start", help="start the embedded server; it stays up until `db stop`")
    db_sub.add_parser("stop", help="stop the embedded server (open sessions are closed)")
    db_sub.add_parser("status", help="is the embedded server running, and for how many sessions")
    db_sub.add_parser("url", help="print the psql connection URI (the server stays up)")
    db_sub.add_parser("migrate", help="apply pending migrations")
    q = db_sub.add_parser("analyst-login", help="create a read-only login for the analyst views")
    q.add_argument("name")
    q.add_argument("--password", help="the login's password (default: a generated one, shown once)")
    q = db_sub.add_parser(
        "reviewer-login",
        help="create a reviewer login: the analyst views, and decisions through decide()",
    )
    q.add_argument("name")
    q.add_argument("--password", help="the login's password (default: a generated one, shown once)")
    p.set_defaults(func=cmd_db)
