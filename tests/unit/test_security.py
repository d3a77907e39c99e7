"""Security basics: parameterized SQL only, secrets never shown, no credentials in code.

The SQL check parses every Python source of the project (``ast``) and fails on a
statement built by string formatting (f-string, ``%``, ``+``, ``.format``/``.join``)
that reaches ``execute`` / ``executemany`` / ``exec_driver_sql`` / ``text`` / ``copy``,
directly or through a local variable. psycopg's ``sql.SQL(<literal>).format(
sql.Identifier(...) | sql.Literal(...))`` is the safe composition and passes. The few
statements that splice *identifiers or fixed fragments* chosen in code are listed in
``ALLOWED`` with the reason they are safe, and each reason is checked where it can be.
"""

from __future__ import annotations

import ast
import io
import json
import logging
import re
from pathlib import Path

import pytest

from hscode.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("app", "hscode", "model", "flows", "tasks", "emulator", "benchmarks", "deployments")
SQL_CALLS = {"execute", "executemany", "exec_driver_sql", "text", "copy", "executescript"}

# (file, function) -> why the dynamic text is safe. Each entry must still match something.
ALLOWED: dict[tuple[str, str], str] = {
    ("hscode/scoring.py", "count_pending"): "splices _PENDING_WHERE, a module constant",
    ("hscode/scoring.py", "_fetch_batch"): (
        "splices _PENDING_WHERE (module constant) and `after`, one of two literals; "
        "values are bound parameters"
    ),
    ("hscode/scoring.py", "_insert"): (
        "table/column names: every call site passes string literals (checked below); "
        "values go through executemany/COPY parameters"
    ),
}


def _is_psycopg_composition(node: ast.AST) -> bool:
    """``sql.SQL("literal").format(sql.Identifier(..), sql.Literal(..), ...)``."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return False
    if node.func.attr != "format":
        return False
    target = node.func.value
    if not (
        isinstance(target, ast.Call)
        and isinstance(target.func, ast.Attribute)
        and target.func.attr == "SQL"
        and len(target.args) == 1
        and isinstance(target.args[0], ast.Constant)
    ):
        return False
    for arg in [*node.args, *(k.value for k in node.keywords)]:
        if not (
            isinstance(arg, ast.Call)
            and isinstance(arg.func, ast.Attribute)
            and arg.func.attr in ("Identifier", "Literal", "Placeholder")
        ):
            return False
    return True


def _dynamic(node: ast.AST) -> bool:
    """Is this expression text built by formatting (anything but literals)?"""
    if _is_psycopg_composition(node):
        return False
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return not (isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Constant))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr in ("format", "join", "replace", "format_map"):
            return True
        if node.func.attr == "SQL" and node.args:  # sql.SQL(<dynamic>)
            return _dynamic(node.args[0])
    return False


def find_formatted_sql(root: Path = ROOT) -> list[tuple[str, str, int, str]]:
    """(file, function, line, source) of every SQL call whose text is built by formatting."""
    found = []
    for folder in SCANNED:
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
            scopes = [
                n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            ]
            for scope in scopes:
                assigned: dict[str, list[ast.AST]] = {}
                for n in ast.walk(scope):
                    if isinstance(n, ast.Assign):
                        for t in n.targets:
                            if isinstance(t, ast.Name):
                                assigned.setdefault(t.id, []).append(n.value)
                    elif isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name):
                        assigned.setdefault(n.target.id, []).append(
                            ast.BinOp(n.target, n.op, n.value)
                        )
                for n in ast.walk(scope):
                    if not isinstance(n, ast.Call) or not n.args:
                        continue
                    func = n.func
                    name = (
                        func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                    )
                    if name not in SQL_CALLS:
                        continue
                    arg = n.args[0]
                    bad = _dynamic(arg) or (
                        isinstance(arg, ast.Name)
                        and any(_dynamic(v) for v in assigned.get(arg.id, []))
                    )
                    if bad:
                        found.append((rel, scope.name, n.lineno, ast.unparse(arg)[:160]))
    # A call inside a nested function is seen from both scopes: keep the innermost.
    return sorted(set(found))


def test_scanner_catches_formatted_sql(tmp_path: Path) -> None:
    """The scanner itself: each unsafe spelling is caught, the safe ones pass."""
    pkg = tmp_path / "hscode"
    pkg.mkdir()
    (pkg / "bad.py").write_text(
        "from sqlalchemy import text\n"
        "def a(conn, x):\n    conn.execute(text(f'select * from t where id = {x}'))\n"
        "def b(cur, x):\n    cur.execute('select * from t where id = %s' % x)\n"
        "def c(cur, x):\n    q = 'select {}'.format(x)\n    cur.execute(q)\n"
        "def d(conn, x):\n    conn.exec_driver_sql('delete from t where a = ' + x)\n"
        "def e(cur, x):\n    q = 'select 1'\n    q += x\n    cur.execute(q)\n"
        "def f(cur, sql, x):\n    cur.execute(sql.SQL('select ' + x))\n"
    )
    (pkg / "good.py").write_text(
        "from sqlalchemy import text\nfrom psycopg import sql\n"
        "def a(conn, x):\n    conn.execute(text('select * from t where id = :x'), {'x': x})\n"
        "def b(cur, x):\n    cur.execute('select * from t where id = %s', (x,))\n"
        "def c(cur, n):\n    cur.execute(sql.SQL('drop role {}').format(sql.Identifier(n)))\n"
    )
    found = find_formatted_sql(tmp_path)
    assert {(f, fn) for f, fn, _, _ in found} == {
        ("hscode/bad.py", name) for name in ("a", "b", "c", "d", "e", "f")
    }


def test_no_sql_is_built_by_string_formatting() -> None:
    found = find_formatted_sql()
    unexpected = [f for f in found if (f[0], f[1]) not in ALLOWED]
    assert not unexpected, (
        "SQL built by string formatting (bind parameters instead):\n"
        + "\n".join(f"  {f}:{line} in {fn}(): {src}" for f, fn, line, src in unexpected)
    )
    stale = set(ALLOWED) - {(f, fn) for f, fn, _, _ in found}
    existing = {k for k in stale if (ROOT / k[0]).is_file()}
    assert not existing, f"allow-list entries that no longer match anything: {sorted(existing)}"


def test_allowed_identifier_splicing_only_takes_literals() -> None:
    """The reasons in ALLOWED, checked: _insert's table/columns are literals at every call."""
    path = ROOT / "hscode" / "scoring.py"
    if not path.is_file():
        pytest.skip("hscode/scoring.py not present")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls = [
        n for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "_insert"
    ]  # fmt: skip
    assert calls, "no _insert call sites found"
    constants = {  # module-level NAME = "literal" (implicit concatenation is one Constant)
        t.id: n.value.value
        for n in tree.body
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
        for t in n.targets
        if isinstance(t, ast.Name) and isinstance(n.value.value, str)
    }
    for call in calls:
        for arg in (call.args[1], call.args[2]):
            if isinstance(arg, ast.Name):
                assert arg.id in constants, f"{ast.unparse(call)}: {arg.id} is not a literal"
                value = constants[arg.id]
            else:
                assert isinstance(arg, ast.Constant) and isinstance(arg.value, str), ast.unparse(
                    call
                )
                value = arg.value
            assert re.fullmatch(r"[a-z_][a-z0-9_, ]*", value), value
    source = path.read_text(encoding="utf-8")
    pending = re.search(r'^_PENDING_WHERE = """(.*?)"""', source, re.DOTALL | re.MULTILINE)
    assert pending and "{" not in pending.group(1), "_PENDING_WHERE must stay a plain literal"
    assert 'after = "" if last_id is None else "and r.request_id > :last"' in source
    db = (ROOT / "hscode" / "db.py").read_text(encoding="utf-8")
    assert "if not _ROLE_NAME.match(name):" in db  # login names are checked before quoting


# ----------------------------------------------------------------------------- secrets
PASSWORD = "s3cr3t-P@ss:w0rd/!"
URL = "postgresql+psycopg://hscode:s3cr3t-P%40ss%3Aw0rd%2F%21@db.internal:5432/hscode"


def _leaks(text: str) -> bool:
    return PASSWORD in text or "s3cr3t" in text


def test_settings_never_show_the_database_password(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(database_url=URL, _env_file=None)
    assert settings.database_url is not None
    assert "s3cr3t" in settings.database_url.get_secret_value()  # it is there, just hidden
    shown = [
        repr(settings),
        str(settings),
        f"{settings}",
        repr(settings.database_url),
        str(settings.database_url),
        settings.model_dump_json(),
        json.dumps(settings.model_dump(mode="json")),
        str(settings.model_dump()),
    ]
    log = logging.getLogger("hscode.test_security")
    with caplog.at_level(logging.DEBUG):
        log.info("settings: %s", settings)
        log.info("settings: %r", settings)
        log.info("dump: %s", settings.model_dump())
        log.info("url: %s", settings.database_url)
    shown.append(caplog.text)
    for text in shown:
        assert not _leaks(text), text
    assert "**********" in repr(settings)


def test_artifact_json_of_settings_hides_the_password() -> None:
    """hscode.summaries.jsonable is what flows write into Prefect artifacts and results."""
    from hscode.summaries import jsonable

    settings = Settings(database_url=URL, _env_file=None)
    dumped = json.dumps(jsonable(settings))
    assert not _leaks(dumped)
    assert json.loads(dumped)["database_url"] == "**********"


def test_engine_and_its_url_hide_the_password(caplog: pytest.LogCaptureFixture) -> None:
    """get_engine with an external URL (engines connect lazily: no server is needed)."""
    from hscode.db import dispose_engine, get_engine

    settings = Settings(database_url=URL, _env_file=None)
    with caplog.at_level(logging.DEBUG):
        engine = get_engine(settings)
        logging.getLogger("hscode.test_security").info("engine %s url %s", engine, engine.url)
    try:
        for text in (repr(engine), str(engine.url), repr(engine.url), caplog.text):
            assert not _leaks(text), text
        assert engine.url.password == PASSWORD  # the driver still gets it
    finally:
        dispose_engine(engine)


def test_environment_secret_is_hidden_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HSCODE_DATABASE_URL", URL)
    settings = Settings(_env_file=None)
    assert settings.database_url is not None
    assert not _leaks(repr(settings)) and not _leaks(settings.model_dump_json())


CREDENTIAL_URL = re.compile(r"[a-z+]+://[^/\s:@'\"]+:[^/\s@'\"]+@", re.IGNORECASE)


def test_no_credentials_written_into_the_code() -> None:
    offenders = []
    for folder in (*SCANNED, "sql"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in (".py", ".sql", ".yaml", ".toml", ".cfg", ".ini"):
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            for m in CREDENTIAL_URL.finditer(text):
                offenders.append(f"{path.relative_to(ROOT)}: {m.group()}")
            for m in re.finditer(r"(?i)\bpassword\s*=\s*['\"][^'\"]{3,}['\"]", text):
                offenders.append(f"{path.relative_to(ROOT)}: {m.group()}")
    assert not offenders, offenders


def test_logging_a_crawl_never_prints_the_database_url(tmp_path: Path) -> None:
    """Settings travel into the crawler and its logs; the password must not."""
    from hscode.portal.client import PortalClient

    settings = Settings(
        data_dir=tmp_path, database_url=URL, portal_url="http://127.0.0.1:9/clip/", _env_file=None
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger("hscode")
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.DEBUG)
    try:
        client = PortalClient(settings)
        logging.getLogger("hscode.portal.client").info("client settings %r", client.settings)
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
    assert "client settings" in stream.getvalue()
    assert not _leaks(stream.getvalue())
