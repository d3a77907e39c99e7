"""The ``hscode`` command line: fast commands, run in-process through ``main``."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from app.cli import main
from app.cli_common import EXIT_BAD_INPUT, EXIT_OK, ProgressBar


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


def _write_cases_csv(path: Path) -> None:
    rows = [
        {
            "hscode": "9608.10-0000",
            "name": "볼펜; MONAMI 153",
            "description": "플라스틱 몸체의 볼펜",
        },
        {
            "hscode": "6109.10-1000",
            "name": "면 티셔츠(SPAO A-12)",
            "description": "면 100% 메리야스 편물",
        },
        {"hscode": "0202.30-0000", "name": "냉동 쇠고기", "description": "뼈 없는 냉동 쇠고기"},
        {"hscode": "8471.30-0000", "name": "", "description": "제목 없는 행: 거부되어야 함"},
    ]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_cases_import_then_export_round_trip(tmp_path, data_dir, capsys):
    source = tmp_path / "cases.csv"
    _write_cases_csv(source)
    rc = main(
        [
            "--data-dir",
            str(data_dir),
            "cases",
            "import",
            str(source),
            "--columns",
            "hs_code=hscode,title=name",
        ]
    )
    out = capsys.readouterr().out
    assert rc == EXIT_OK
    assert "imported: 3" in out and "rejected: 1" in out

    exported = tmp_path / "export.csv"
    assert main(["--data-dir", str(data_dir), "cases", "export", str(exported)]) == EXIT_OK
    with exported.open(encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["hs10"] for r in rows) == ["0202300000", "6109101000", "9608100000"]

    # importing the same file again adds nothing
    assert (
        main(
            [
                "--data-dir",
                str(data_dir),
                "cases",
                "import",
                str(source),
                "--columns",
                "hs_code=hscode,title=name",
            ]
        )
        == EXIT_OK
    )
    capsys.readouterr()
    assert main(["--data-dir", str(data_dir), "cases", "export", str(exported)]) == EXIT_OK
    assert "exported 3 cases" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["cases", "import", "does-not-exist.csv"], "not found"),
        (["cases", "import", "x.csv", "--columns", "nonsense"], "OURS=THEIRS"),
        (["cases", "export", "out.xlsx"], ".csv or .parquet"),
        (["crawl", "--since", "2024-13-45"], "not a date"),
        (["train", "--inputs", "sound"], "invalid choice"),
        (["requests", "import", "missing.csv"], "not found"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, needle, data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = main(["--data-dir", str(data_dir), *argv])
    err = capsys.readouterr().err
    assert rc == EXIT_BAD_INPUT
    assert needle in err
    assert "Traceback" not in err


def test_no_command_is_bad_usage(capsys):
    assert main([]) == EXIT_BAD_INPUT
    assert "usage" in capsys.readouterr().err


def test_models_list_on_empty_registry(data_dir, capsys):
    assert main(["--data-dir", str(data_dir), "models", "list"]) == EXIT_OK
    assert "no model versions" in capsys.readouterr().out


def test_models_promote_unknown_version_fails_cleanly(data_dir, capsys):
    rc = main(["--data-dir", str(data_dir), "models", "promote", "v-missing"])
    err = capsys.readouterr().err
    assert rc != EXIT_OK
    assert "v-missing" in err and "Traceback" not in err


def test_db_url_migrate_and_analyst_login_on_embedded_postgres(capsys):
    import re
    import subprocess

    from conftest_db import embedded_data_dir, stop_embedded

    data_dir = embedded_data_dir()  # outside pytest's temp tree: see conftest_db
    try:
        assert main(["--data-dir", str(data_dir), "db", "url"]) == EXIT_OK
        uri = capsys.readouterr().out.strip()
        assert uri.startswith("postgresql://"), uri
        assert main(["--data-dir", str(data_dir), "db", "migrate"]) == EXIT_OK
        assert "001_core" in capsys.readouterr().out
        assert main(["--data-dir", str(data_dir), "db", "migrate"]) == EXIT_OK
        assert "up to date" in capsys.readouterr().out
        assert main(["--data-dir", str(data_dir), "db", "analyst-login", "ana"]) == EXIT_OK
        out = capsys.readouterr().out
        # it prints the URI to use for that login: the server and database of `db url`
        printed = re.search(r"^connect with: psql '([^']+)'$", out, re.MULTILINE)
        assert printed, out
        analyst_uri = printed.group(1)
        # (without the superuser's password file, which `db url` names instead of its secret)
        assert "passfile=" in uri and "passfile=" not in analyst_uri
        superuser = re.sub(r"&passfile=[^&]*", "", uri)
        assert analyst_uri == re.sub(r"^postgresql://[^@/]*@", "postgresql://ana@", superuser)
        # the server requires passwords: a generated one, shown once, not in the URI
        generated = re.search(
            r"password \(shown once; psql asks for it\): (\S+)$", out, re.MULTILINE
        )
        assert generated, out
        assert generated.group(1) not in analyst_uri
        args = ["--data-dir", str(data_dir), "db", "analyst-login", "bob", "--password", "pw-1"]
        assert main(args) == EXIT_OK
        out = capsys.readouterr().out
        assert "pw-1" not in out and "psql 'postgresql://bob@" in out  # never echoed back
        assert main(["--data-dir", str(data_dir), "db", "analyst-login", "Robert'); drop"]) == (
            EXIT_BAD_INPUT
        )

        # psql accepts the URI: the login reads a view and is refused a base table
        def psql(target: str, *sql: str, password: str | None = None):
            env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
            if password is not None:
                env["PGPASSWORD"] = password
            return subprocess.run(
                ["psql", "-w", target, "-Atc", *sql],
                capture_output=True,
                text=True,
                check=False,
                env=env,
            )

        ana = generated.group(1)
        view = psql(analyst_uri, "select count(*) from latest_predictions", password=ana)
        table = psql(analyst_uri, "select count(*) from requests", password=ana)
        assert view.returncode == 0 and view.stdout.strip() == "0", view.stderr
        assert table.returncode != 0 and "permission denied" in table.stderr
        # the analyst cannot become the superuser: not by connecting as it (its password is
        # owner-only beside the data dir), not by SET ROLE
        superuser = re.sub(r"^postgresql://ana@", "postgresql://postgres@", analyst_uri)
        for password in (ana, None):
            as_postgres = psql(superuser, "select 1", password=password)
            assert as_postgres.returncode != 0
            assert "password authentication failed" in as_postgres.stderr or (
                "no password supplied" in as_postgres.stderr
            ), as_postgres.stderr
        switched = psql(analyst_uri, "set role postgres", password=ana)
        assert switched.returncode != 0 and "permission denied" in switched.stderr
        secret = data_dir / "pg.superuser-secret"
        assert secret.is_file() and secret.stat().st_mode & 0o077 == 0
        # the secret gone: a clear error that says what to do, not a failed login
        secret.rename(secret.with_name("moved-away"))
        assert main(["--data-dir", str(data_dir), "db", "url"]) != EXIT_OK
        assert "superuser-secret, is gone: restore that file" in capsys.readouterr().err
        secret.with_name("moved-away").rename(secret)
    finally:
        stop_embedded(data_dir)


def test_progress_bar_draws_only_on_a_terminal():
    import io

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = ProgressBar("crawl", stream=stream, min_interval_s=0)
        for done in range(11):
            bar(done, 10)
        bar.close()
    assert "10/10" in tty.getvalue() and "#" * 30 in tty.getvalue()
    assert pipe.getvalue() == ""


def test_progress_bar_understands_crawl_events():
    import io

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    bar = ProgressBar("crawl", stream=tty, min_interval_s=0)
    bar(
        {
            "series": "ordinary",
            "phase": "detail",
            "window": "2024-01-01..2024-12-31",
            "done": 25,
            "total": 50,
        }
    )
    bar.close()
    assert "25/50" in tty.getvalue() and "ordinary detail" in tty.getvalue()
