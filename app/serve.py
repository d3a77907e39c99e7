"""``hscode serve``: one machine showing schedules, runs and artifacts in the Prefect UI;
``hscode report``: a static HTML report of the champion and recent runs.

``serve`` starts ``prefect server start`` (local, its database under the data dir), creates
the ``cpu`` and ``gpu`` process work pools, registers every deployment declared in
``deployments.registry``, and starts one process worker per pool. Ctrl-C stops them all.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from hscode.settings import Settings

log = logging.getLogger("hscode.serve")  # the name it logged under in hscode/


def _wait_healthy(api_url: str, proc: subprocess.Popen, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1.0)
    raise RuntimeError(f"prefect server not healthy at {api_url} after {timeout_s:.0f}s")


def _stop(procs: list[subprocess.Popen], grace_s: float = 15.0) -> None:
    """SIGINT everything at once, wait one shared grace period, then kill what is left.

    (A Prefect 3.8 process worker can hang in its own shutdown; it must not hold up the rest.)
    """
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace_s
    for proc in reversed(procs):
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve(settings: Settings, port: int = 4200, workers: bool = True) -> int:
    """Run server + workers until interrupted; return the exit code."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.registry import POOLS, register_all

    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    api_url = f"http://127.0.0.1:{port}/api"
    env = dict(os.environ)
    # the server's SQLite database lives with the rest of the project's state
    env.setdefault("PREFECT_HOME", str(data_dir / "prefect"))
    env["PREFECT_API_URL"] = api_url
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["HSCODE_DATA_DIR"] = str(data_dir)
    prefect = [sys.executable, "-m", "prefect"]
    procs: list[subprocess.Popen] = []

    def _terminate(signum: int, frame: Any) -> None:  # SIGTERM: stop children like Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)
    try:
        server_log = (logs / "prefect-server.log").open("ab")
        procs.append(
            subprocess.Popen(
                [*prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                stdout=server_log,
                stderr=subprocess.STDOUT,
            )
        )
        print(
            f"starting Prefect server on {api_url} (log: {logs / 'prefect-server.log'})", flush=True
        )
        _wait_healthy(api_url, procs[0])
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            ids = register_all(working_dir=Path.cwd(), env={"HSCODE_DATA_DIR": str(data_dir)})
        for name in sorted(ids):
            print(f"  deployment {name}")
        if workers:
            for pool in POOLS:
                worker_log = (logs / f"worker-{pool}.log").open("ab")
                procs.append(
                    subprocess.Popen(
                        [*prefect, "worker", "start", "--pool", pool, "--type", "process"],
                        env=env,
                        stdout=worker_log,
                        stderr=subprocess.STDOUT,
                    )
                )
                print(f"  worker for pool {pool} (log: {logs / f'worker-{pool}.log'})")
        print(f"Prefect UI: http://127.0.0.1:{port}")
        print(
            "run the nightly chain now:  "
            f"PREFECT_API_URL={api_url} {sys.executable} -m prefect deployment run nightly/chain"
        )
        print("Ctrl-C stops the server and the workers.", flush=True)
        while True:
            for proc in procs:
                if proc.poll() is not None:
                    print(
                        f"{' '.join(proc.args[2:4])} exited with code {proc.returncode}",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(2.0)
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(procs)


# ----------------------------------------------------------------- static report


def _version_dicts(settings: Settings) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The champion and the 20 newest versions, newest first, each with its training report
    (report.json; None when a version has none): the champion's for its section and plots,
    every version's for why it was or was not promoted, so the top box explains an unpromoted
    newest version from its own comparison with the champion."""
    import dataclasses

    from hscode.registry import Registry

    registry = Registry.from_settings(settings)
    versions = [
        dataclasses.asdict(v) | {"is_champion": v.champion} for v in registry.list_versions()
    ]
    # newest first; within one second (created_at's resolution) the later version first
    versions.sort(key=lambda v: (v["created_at"], v["version"]), reverse=True)
    champion = next((v for v in versions if v["is_champion"]), None)
    shown = versions[:20]
    readers = list(shown)
    if champion is not None and not any(v is champion for v in shown):
        readers.append(champion)  # an older champion than the 20 shown: still its section
    for v in readers:
        v["report"] = registry.read_report(v["version"])
    return champion, shown


def _recent_scoring_runs(settings: Settings, limit: int = 10) -> list[dict[str, Any]]:
    from sqlalchemy import text

    from hscode.db import get_engine

    engine = get_engine(settings)
    query = text(
        "select model_version, flow_run_id, count(distinct request_id) as requests, "
        "sum(case when rank = 1 and review then 1 else 0 end) as flagged_for_review, "
        "max(scored_at) as scored_at from predictions "
        "group by model_version, flow_run_id order by max(scored_at) desc limit :limit"
    )
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query, {"limit": limit})]


def write_html_report(settings: Settings, output: Path) -> Path:
    """Write the static HTML report; sections whose source is missing say so instead."""
    from hscode import reports

    sections: list[tuple[str, str]] = []
    try:
        champion, versions = _version_dicts(settings)
    except (ImportError, OSError, ValueError) as exc:
        log.warning("model registry unreadable: %s", exc)
        champion, versions = None, []
    try:
        from hscode.case_report import quality_report

        metrics = quality_report(settings).metrics
        rows = [
            {"metric": k, "value": v} for k, v in metrics.items() if isinstance(v, (int, float))
        ]
        sections.append(("Cases dataset", reports.html_table(rows)))
    except (ImportError, OSError, ValueError) as exc:
        sections.append(("Cases dataset", f"<p>unavailable: {exc}</p>"))
    try:
        runs = _recent_scoring_runs(settings)
        sections.append(("Recent scoring runs", reports.html_table(runs)))
    except Exception as exc:  # noqa: BLE001 - the report must render without a database
        sections.append(("Recent scoring runs", f"<p>unavailable: {type(exc).__name__}</p>"))
    html = reports.html_report(
        champion,
        versions,
        sections,
        generated_at=dt.datetime.now(dt.UTC),
        review_threshold=settings.review_threshold,
    )
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(html, encoding="utf-8")
    return output
