"""The ``hscode`` command line: fast commands, run in-process through ``main``."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from hscode.cli import EXIT_BAD_INPUT, EXIT_OK, ProgressBar, main


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
        assert analyst_uri == re.sub(r"^postgresql://[^@/]*@", "postgresql://ana@", uri)
        args = ["--data-dir", str(data_dir), "db", "analyst-login", "bob", "--password", "pw-1"]
        assert main(args) == EXIT_OK
        out = capsys.readouterr().out
        assert "pw-1" not in out and "psql 'postgresql://bob@" in out  # never echoed back
        assert main(["--data-dir", str(data_dir), "db", "analyst-login", "Robert'); drop"]) == (
            EXIT_BAD_INPUT
        )
        # psql accepts the URI: the login reads a view and is refused a base table
        view = subprocess.run(
            ["psql", analyst_uri, "-Atc", "select count(*) from latest_predictions"],
            capture_output=True,
            text=True,
            check=False,
        )
        table = subprocess.run(
            ["psql", analyst_uri, "-Atc", "select count(*) from requests"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert view.returncode == 0 and view.stdout.strip() == "0", view.stderr
        assert table.returncode != 0 and "permission denied" in table.stderr
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
