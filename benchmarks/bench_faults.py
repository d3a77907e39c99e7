"""The fault matrix: inject a fault, re-run, prove every case and request is there exactly once.

Cases (each repeated with seeds):

* ``portal_faults``  crawl + normalize against the emulator at fault rates 0, 0.1, 0.3
  (5xx, 429 with Retry-After, slow answers past the timeout, JSON without ``uls_dmst``,
  empty and cut detail pages); failed windows are crawled again until complete.
* ``kill_crawl``     the crawl process SIGKILLed after a random number of stored details.
* ``kill_normalize`` the normalize process SIGKILLed at a random moment.
* ``disk_full``      the raw zone on a tiny tmpfs that fills mid-crawl; then space is
  freed (remount larger) and the crawl re-run.
* ``kill_score``     ``score_pending`` SIGKILLed at a random moment (embedded Postgres).
* ``db_restart``     the embedded Postgres stopped mid-score and started again.
* ``kill_train``     ``train_and_register`` SIGKILLed at a random moment: the registry
  must hold no half version and the champion must be unchanged.

After each fault the work is re-run (in this process) and checked: cases stored in
Parquet (counted row by row across the partition files, so a duplicate would show) or
rejected with a reason, requests scored once (predictions ranks 1..k) or rejected.
"lost" and "duplicated" are those counts; "recover_s" is the wall time of the re-run(s)
that brought the state back to complete.

Run: ``.venv/bin/python -m benchmarks.bench_faults`` (``--quick`` for one seed each,
``--only kill_crawl,disk_full`` for a subset). Writes ``benchmarks/out/bench_faults.json``
and ``benchmarks/out/bench_faults.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = Path(__file__).resolve().parent / "out"
Y2024 = (dt.date(2024, 1, 1), dt.date(2024, 12, 31))

# Honest politeness for a local emulator, fast enough for a benchmark (the real defaults
# are 1 request/s and 2..60 s backoff).
FAST: dict[str, Any] = {
    "request_rate": 200.0,
    "backoff_base_s": 0.05,
    "backoff_max_s": 0.5,
    "request_timeout_s": 0.4,  # the emulator's "slow" fault answers after 0.8 s
    "page_size": 10,
    "max_retries": 6,
}
MAX_RERUNS = 5


def _settings(data_dir: Path, url: str = "http://127.0.0.1:9/clip/", **over: Any):
    from hscode.settings import Settings

    return Settings(data_dir=data_dir, portal_url=url, **{**FAST, **over}, _env_file=None)


def _corpus(n: int, seed: int, years: tuple[int, ...] = (2024,)):
    from emulator.corpus import demo_corpus

    return demo_corpus(n, seed=seed, years=years)


YEARS3 = (2022, 2023, 2024)
# demo_corpus may date a case on the last day of the year before the first one.
Y3 = (dt.date(2021, 1, 1), dt.date(2024, 12, 31))


# ---------------------------------------------------------------------------------------
# Accounting
# ---------------------------------------------------------------------------------------
def check_cases(settings, corpus) -> dict[str, Any]:
    """Every served case stored once (row count over partition files) or rejected; images too."""
    import pyarrow.parquet as pq

    from hscode.cases import read_cases
    from hscode.rejects import read_rejects

    rows: Counter[str] = Counter()
    for path in sorted(settings.cases_dir.glob("decision_year=*/part-0.parquet")):
        rows.update(pq.read_table(path, columns=["case_key"])["case_key"].to_pylist())
    rejects = {r.key for r in read_rejects(settings) if r.source == "clip"}
    served = {c.rrdc_no: c for c in corpus}
    stored = set(rows)
    lost = sorted(set(served) - stored - rejects)
    duplicated = sum(n - 1 for n in rows.values() if n > 1)
    extra = sorted(stored - set(served))
    images_lost = 0
    table = read_cases(settings, columns=["case_key", "image_hashes"]).to_pylist()
    for row in table:
        want = [hashlib.sha256(b).hexdigest() for b in served[row["case_key"]].images]
        images_lost += len(set(want) - set(row["image_hashes"]))
    return {
        "served": len(served),
        "stored": len(stored),
        "rejected": len(rejects & set(served)),
        "lost": len(lost),
        "duplicated": duplicated,
        "extra": len(extra),
        "images_lost": images_lost,
        "both_stored_and_rejected": len(stored & rejects),
    }


def check_requests(engine, version: str, expected: set[str]) -> dict[str, Any]:
    from sqlalchemy import text

    with engine.connect() as conn:
        status = dict(conn.execute(text("select request_id, status from requests")).all())
        ranks = conn.execute(
            text(
                "select request_id, count(*), count(distinct rank), max(rank) from predictions "
                "where model_version = :v group by request_id"
            ),
            {"v": version},
        ).all()
    scored = {r[0] for r in ranks}
    duplicated = sum(1 for _, n, distinct, top in ranks if n != distinct or top != n)
    rejected = {k for k, s in status.items() if s == "rejected"}
    lost = expected - scored - rejected
    return {
        "requests": len(expected),
        "scored": len(scored & expected),
        "rejected": len(rejected & expected),
        "pending": sum(1 for k in expected if status.get(k) == "pending"),
        "lost": len(lost),
        "duplicated": duplicated + len(scored & rejected),
    }


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------
def _crawl_until_complete(settings, window=Y2024) -> tuple[int, float, list[str]]:
    """Crawl until the summary says complete; returns (runs, seconds, last failures)."""
    from hscode.crawl import crawl

    t0 = time.perf_counter()
    failures: list[str] = []
    for run in range(1, MAX_RERUNS + 1):
        summary = crawl(settings, *window)
        failures = [f"{f.kind} {f.key}: {f.reason}" for f in summary.failures if f.blocking]
        if summary.ok:
            return run, time.perf_counter() - t0, []
    return MAX_RERUNS, time.perf_counter() - t0, failures


def _spawn(code: str, args: dict[str, Any]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(args, default=str)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _progress(path: Path) -> int:
    """The last progress count a scoring child wrote (0 before it started)."""
    try:
        lines = path.read_text().split()
    except OSError:
        return -1
    return int(lines[-1]) if lines and lines[-1].isdigit() else -1


def _wait_for_line(proc: subprocess.Popen, marker: bytes, timeout: float = 120) -> None:
    """Block until the child prints ``marker`` (e.g. after its imports)."""
    assert proc.stdout is not None
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        line = proc.stdout.readline()
        if not line or marker in line:
            return


def _kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float) -> dict:
    """SIGKILL ``proc`` once ``ready()``; report whether it was still running."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout and proc.poll() is None:
        if ready():
            break
        time.sleep(0.005)
    alive = proc.poll() is None
    if alive:
        os.kill(proc.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    return {
        "killed": alive and proc.returncode == -signal.SIGKILL,
        "after_s": round(time.monotonic() - t0, 3),
        "returncode": proc.returncode,
        "stderr_tail": err.decode(errors="replace")[-300:] if not alive else "",
        "finished_marker": b"FINISHED" in out,
    }


_CRAWL = """
import datetime as dt, json, sys
from hscode.crawl import crawl
from hscode.settings import Settings
a = json.loads(sys.argv[1])
s = Settings(data_dir=a["data_dir"], portal_url=a["url"], _env_file=None, **a["fast"])
crawl(s, dt.date(2024, 1, 1), dt.date(2024, 12, 31))
print("FINISHED", flush=True)
"""

_NORMALIZE = """
import json, sys
from hscode.normalize import normalize
from hscode.settings import Settings
a = json.loads(sys.argv[1])
s = Settings(data_dir=a["data_dir"], _env_file=None)
print("STARTED", flush=True)
normalize(s, full=a.get("full", False))
print("FINISHED", flush=True)
"""

_SCORE = """
import json, sys
from hscode.db import get_engine
from hscode.registry import Registry
from hscode.scoring import score_pending
from hscode.settings import Settings
a = json.loads(sys.argv[1])
s = Settings(data_dir=a["data_dir"], _env_file=None)
engine = get_engine(s)
rec = Registry.from_settings(s).load(a["version"])
progress = open(a["ready"], "w", buffering=1)
progress.write("0\\n")
score_pending(s, engine, rec, batch_size=a["batch"], progress=lambda d, t: progress.write(f"{d}\\n"))
print("FINISHED", flush=True)
"""

_TRAIN = """
import json, sys
import torch
torch.set_num_threads(1)
from hscode.settings import Settings
from hscode.training import TrainConfig, train_and_register
a = json.loads(sys.argv[1])
s = Settings(data_dir=a["data_dir"], _env_file=None, device="cpu")
print("STARTED", flush=True)
train_and_register(s, TrainConfig(**a["config"]))
print("FINISHED", flush=True)
"""


# ---------------------------------------------------------------------------------------
# Crawl / normalize cases
# ---------------------------------------------------------------------------------------
def case_portal_faults(work: Path, seed: int, rate: float, n_cases: int) -> dict[str, Any]:
    from emulator.server import EmulatorServer
    from hscode.normalize import normalize

    corpus = _corpus(n_cases, seed)
    with EmulatorServer(corpus, fault_rate=rate, seed=seed, slow_s=0.8) as emu:
        settings = _settings(work / "var", emu.url)
        runs, crawl_s, failures = _crawl_until_complete(settings)
        injected = sum(emu.stats["faults"].values())
        by_kind = dict(emu.stats["faults"])
    t0 = time.perf_counter()
    normalize(settings)
    recover = crawl_s + time.perf_counter() - t0
    return {
        "faults_injected": injected,
        "fault_kinds": by_kind,
        "runs": runs,
        "recover_s": round(recover, 2),
        "unrecovered": failures,
        **check_cases(settings, corpus),
    }


def case_kill_crawl(work: Path, seed: int, n_cases: int) -> dict[str, Any]:
    from emulator.server import EmulatorServer
    from hscode.normalize import normalize

    rng = random.Random(seed)
    corpus = _corpus(n_cases, seed)
    data_dir = work / "var"
    manifest = data_dir / "raw" / "manifest.jsonl"
    target = rng.randint(1, n_cases - 1)
    with EmulatorServer(corpus, fault_rate=0.1, seed=seed, slow_s=0.8) as emu:
        proc = _spawn(_CRAWL, {"data_dir": data_dir, "url": emu.url, "fast": FAST})
        kill = _kill_when(
            proc,
            lambda: (
                manifest.exists() and manifest.read_bytes().count(b'"kind": "detail"') >= target
            ),
            timeout=120,
        )
        before = len(emu.request_log)
        settings = _settings(data_dir, emu.url)
        runs, crawl_s, failures = _crawl_until_complete(settings)
        after = emu.request_log[before:]
        injected = sum(emu.stats["faults"].values())
    t0 = time.perf_counter()
    normalize(settings)
    recover = crawl_s + time.perf_counter() - t0
    return {
        "faults_injected": int(kill["killed"]),
        "portal_faults_too": injected,
        "kill_after_details": target,
        "kill": kill,
        "runs": 1 + runs,
        "recover_s": round(recover, 2),
        "details_requested_on_rerun": sum(1 for r in after if r.endpoint == "detail"),
        "unrecovered": failures,
        **check_cases(settings, corpus),
    }


def case_kill_normalize(work: Path, seed: int, n_cases: int, during: str) -> dict[str, Any]:
    """``during="parse"``: a random moment of the run; ``"write"``: right after the first
    partition file of a three-year dataset is written (the others still to come)."""
    from emulator.server import EmulatorServer
    from hscode.normalize import normalize

    rng = random.Random(seed)
    corpus = _corpus(n_cases, seed, YEARS3)
    data_dir = work / "var"
    with EmulatorServer(corpus, fault_rate=0.0, seed=seed) as emu:
        settings = _settings(data_dir, emu.url)
        _crawl_until_complete(settings, Y3)
    # Time one full normalize in a scratch copy (imports excluded).
    probe = work / "probe"
    shutil.copytree(data_dir, probe / "var")
    p = _spawn(_NORMALIZE, {"data_dir": probe / "var"})
    _wait_for_line(p, b"STARTED")
    t0 = time.monotonic()
    p.communicate(timeout=300)
    full = time.monotonic() - t0
    shutil.rmtree(probe)
    delay = rng.uniform(0.0, 0.9 * full)
    proc = _spawn(_NORMALIZE, {"data_dir": data_dir})
    _wait_for_line(proc, b"STARTED")
    t1 = time.monotonic()
    parts = settings.cases_dir

    def ready() -> bool:
        if during == "write":
            return any(parts.glob("decision_year=*/part-0.parquet"))
        return time.monotonic() - t1 >= delay

    kill = _kill_when(proc, ready, timeout=300)
    partial = check_cases(settings, corpus)  # what the killed run left (before healing)
    t0 = time.perf_counter()
    report = normalize(settings)
    recover = time.perf_counter() - t0
    return {
        "faults_injected": int(kill["killed"]),
        "kill_delay_s": round(delay, 3) if during == "parse" else None,
        "normalize_full_s": round(full, 3),
        "kill": kill,
        "left_by_killed_run": {k: partial[k] for k in ("stored", "duplicated", "lost")},
        "runs": 2,
        "recover_s": round(recover, 2),
        "rerun_new": report.new_cases,
        **check_cases(settings, corpus),
    }


def _mount_tmpfs(path: Path, size: str) -> str | None:
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return None if res.returncode == 0 else (res.stderr.strip() or f"mount rc {res.returncode}")


def case_disk_full(work: Path, seed: int, n_cases: int, size: str) -> dict[str, Any]:
    from emulator.server import EmulatorServer
    from hscode.crawl import crawl
    from hscode.normalize import normalize
    from hscode.rawzone import RawZone

    corpus = _corpus(n_cases, seed)
    data_dir = work / "var"
    raw_dir = data_dir / "raw"
    why = _mount_tmpfs(raw_dir, size)
    if why is not None:
        return {"skipped": f"cannot mount a tmpfs under the raw zone: {why}"}
    try:
        with EmulatorServer(corpus, fault_rate=0.0, seed=seed) as emu:
            settings = _settings(data_dir, emu.url)
            error = None
            try:
                crawl(settings, *Y2024)
            except OSError as exc:
                error = f"{type(exc).__name__}: {exc}"
            used = shutil.disk_usage(raw_dir)
            zone = RawZone(raw_dir)
            leftovers = len(list((raw_dir / "blobs").rglob(".tmp-*")))
            state = {
                "error": error,
                "raw_used_bytes": used.used,
                "raw_total_bytes": used.total,
                "manifest_torn_lines": zone.torn_lines,
                "manifest_entries": len(zone.entries),
                "temp_files_left": leftovers,
            }
            # Free space: remount the same tmpfs larger (contents kept), re-run.
            res = subprocess.run(
                ["mount", "-o", "remount,size=256m", str(raw_dir)],
                capture_output=True,
                text=True,
                check=False,
            )
            if res.returncode != 0:
                return {"skipped": f"remount failed: {res.stderr.strip()}", **state}
            runs, crawl_s, failures = _crawl_until_complete(settings)
        t0 = time.perf_counter()
        normalize(settings)
        recover = crawl_s + time.perf_counter() - t0
        return {
            "faults_injected": int(error is not None),
            "tmpfs_size": size,
            "at_fault": state,
            "runs": 1 + runs,
            "recover_s": round(recover, 2),
            "unrecovered": failures,
            **check_cases(settings, corpus),
        }
    finally:
        subprocess.run(["umount", "-l", str(raw_dir)], capture_output=True, check=False)


# ---------------------------------------------------------------------------------------
# Score / train cases (embedded Postgres, a really trained tiny model)
# ---------------------------------------------------------------------------------------


SCORE_BATCH = 25


class ScoreWorld:
    """One data dir with cases, a champion model and an embedded Postgres, shared by cases."""

    def __init__(self, work: Path, n_cases: int = 150) -> None:
        from hscode.case_records import synthetic_case_records
        from hscode.cases import upsert_cases
        from hscode.db import get_engine, migrate
        from hscode.registry import Registry
        from hscode.settings import Settings
        from hscode.training import SMOKE_TRAIN, TrainConfig, train_and_register

        # Outside pytest's tree, readable by the embedded server's user (see conftest_db).
        self.data_dir = Path(tempfile.mkdtemp(prefix="hscode-bench-faults-", dir=work)) / "var"
        self.settings = Settings(data_dir=self.data_dir, device="cpu", _env_file=None)
        records = synthetic_case_records(n_cases, seed=1, source="import:bench")
        upsert_cases(self.settings, records)
        self.titles = [r["title"] for r in records]
        t0 = time.perf_counter()
        outcome = train_and_register(self.settings, TrainConfig(**SMOKE_TRAIN))
        self.train_s = time.perf_counter() - t0
        self.version = outcome.version
        self.registry = Registry.from_settings(self.settings)
        assert self.registry.champion().version == self.version
        self.engine = get_engine(self.settings)
        migrate(self.engine)
        self.score_s = 1.0

    def probe(self, n_requests: int) -> float:
        """Seconds one uninterrupted score of ``n_requests`` takes (model already loaded)."""
        from hscode.scoring import score_pending

        self.fresh_requests(n_requests, "probe")
        rec = self.registry.load(self.version)
        t0 = time.perf_counter()
        score_pending(self.settings, self.engine, rec, batch_size=SCORE_BATCH)
        self.score_s = time.perf_counter() - t0
        return self.score_s

    def fresh_requests(self, n: int, tag: str) -> set[str]:
        from sqlalchemy import text

        from hscode.intake import submit_requests

        with self.engine.begin() as conn:
            conn.execute(text("truncate requests, predictions, precedents cascade"))
        rows = [
            {"request_id": f"{tag}-{i:05d}", "title": self.titles[i % len(self.titles)]}
            for i in range(n)
        ]
        rows += [  # a few that scoring must reject, not lose
            {"request_id": f"{tag}-sql-{i}", "title": s}
            for i, s in enumerate(["'; drop table predictions; --", "<script>x</script>"])
        ]
        summary = submit_requests(self.engine, rows, source="bench")
        assert summary.inserted == len(rows), summary
        return {r["request_id"] for r in rows}


def _start_scoring(
    world: ScoreWorld, tag: str, n_requests: int
) -> tuple[set[str], Path, subprocess.Popen]:
    """Submit ``n_requests`` fresh requests and start a scoring child that reports progress."""
    expected = world.fresh_requests(n_requests, tag)
    ready = world.data_dir.parent / f"ready-{tag}"
    ready.unlink(missing_ok=True)
    proc = _spawn(
        _SCORE,
        {
            "data_dir": world.data_dir,
            "version": world.version,
            "ready": ready,
            "batch": SCORE_BATCH,
        },
    )
    return expected, ready, proc


def case_kill_score(world: ScoreWorld, seed: int, n_requests: int) -> dict[str, Any]:
    from hscode.scoring import score_pending

    rng = random.Random(seed)
    expected, ready, proc = _start_scoring(world, f"k{seed}", n_requests)
    target = rng.randint(1, n_requests - 1)  # requests done before the kill...
    extra = rng.uniform(0.0, 0.5)  # ...plus a moment, so it also lands inside a batch
    reached: list[float] = []

    def when() -> bool:
        if not reached:
            if _progress(ready) < target:
                return False
            reached.append(time.monotonic())
        return time.monotonic() - reached[0] >= extra

    kill = _kill_when(proc, when, timeout=300)
    partial = check_requests(world.engine, world.version, expected)
    t0 = time.perf_counter()
    rec = world.registry.load(world.version)
    summary = score_pending(world.settings, world.engine, rec, batch_size=SCORE_BATCH)
    recover = time.perf_counter() - t0
    return {
        "faults_injected": int(kill["killed"]),
        "kill_after_requests": target,
        "extra_delay_s": round(extra, 3),
        "kill": kill,
        "left_by_killed_run": {k: partial[k] for k in ("scored", "pending", "duplicated")},
        "runs": 2,
        "recover_s": round(recover, 2),
        "rerun_scored": summary.scored,
        **check_requests(world.engine, world.version, expected),
    }


def case_db_restart(world: ScoreWorld, seed: int, n_requests: int) -> dict[str, Any]:
    from hscode.db import _embedded_server, dispose_engine, get_engine
    from hscode.scoring import score_pending

    rng = random.Random(seed)
    expected, ready, proc = _start_scoring(world, f"r{seed}", n_requests)
    target = rng.randint(1, n_requests // 2)
    t0 = time.monotonic()
    while _progress(ready) < target and proc.poll() is None and time.monotonic() - t0 < 300:
        time.sleep(0.01)
    done_at_restart = _progress(ready)
    alive_at_restart = proc.poll() is None
    server = _embedded_server(world.settings.pg_dir)
    restarted = None
    t_down = time.perf_counter()
    try:
        pid_before = server.get_pid()
        # Fast shutdown: postgres terminates every session, like a restart by the admin.
        server._stop() if hasattr(server, "_stop") else server.stop()
        server.ensure_postgres_running()
        restarted = {"pid_before": pid_before, "pid_after": server.get_pid()}
    except Exception as exc:  # noqa: BLE001 - report, do not hide
        restarted = {"error": f"{type(exc).__name__}: {exc}"}
    downtime = time.perf_counter() - t_down
    out, err = proc.communicate(timeout=300)
    scorer = {
        "returncode": proc.returncode,
        "finished": b"FINISHED" in out,
        "error_tail": err.decode(errors="replace").strip().splitlines()[-1:] if err else [],
    }
    dispose_engine(world.engine)  # its pooled connections died with the server
    world.engine = get_engine(world.settings)
    partial = check_requests(world.engine, world.version, expected)
    t0p = time.perf_counter()
    summary = score_pending(
        world.settings, world.engine, world.registry.load(world.version), batch_size=SCORE_BATCH
    )
    recover = time.perf_counter() - t0p
    return {
        "faults_injected": int(alive_at_restart and "error" not in restarted),
        "scorer_alive_at_restart": alive_at_restart,
        "restart": restarted,
        "restart_after_requests": done_at_restart,
        "db_down_s": round(downtime, 2),
        "scorer_during_restart": scorer,
        "left_by_interrupted_run": {k: partial[k] for k in ("scored", "pending", "duplicated")},
        "runs": 2,
        "recover_s": round(recover, 2),
        "rerun_scored": summary.scored,
        **check_requests(world.engine, world.version, expected),
    }


def case_kill_train(world: ScoreWorld, seed: int) -> dict[str, Any]:
    from hscode.registry import Registry
    from hscode.training import SMOKE_TRAIN

    rng = random.Random(seed)
    registry = Registry.from_settings(world.settings)
    champion_before = registry.champion().version
    versions_before = [v.version for v in registry.list_versions()]
    delay = rng.uniform(0.0, 1.1) * world.train_s  # inside training, or just after it
    proc = _spawn(_TRAIN, {"data_dir": world.data_dir, "config": SMOKE_TRAIN})
    _wait_for_line(proc, b"STARTED")
    t1 = time.monotonic()
    kill = _kill_when(proc, lambda: time.monotonic() - t1 >= delay, timeout=600)
    after_kill = Registry.from_settings(world.settings)
    versions_after = [v.version for v in after_kill.list_versions()]
    vdir = after_kill.versions_dir
    half = [
        p.name
        for p in vdir.iterdir()
        if p.is_dir() and not p.name.startswith(".tmp-") and not (p / "manifest.json").is_file()
    ] if vdir.is_dir() else []  # fmt: skip
    tmp_left = (
        [p.name for p in vdir.iterdir() if p.name.startswith(".tmp-")] if vdir.is_dir() else []
    )
    champion_after_kill = after_kill.champion().version
    new_versions = [v for v in versions_after if v not in versions_before]
    # Re-run: a complete candidate is registered; promoted only if not worse.
    t0 = time.perf_counter()
    from hscode.training import SMOKE_TRAIN, TrainConfig, train_and_register

    outcome = train_and_register(world.settings, TrainConfig(**SMOKE_TRAIN))
    recover = time.perf_counter() - t0
    final = Registry.from_settings(world.settings)
    champion_final = final.champion().version
    # Loading every listed version must work: none is half written.
    unloadable = []
    for v in final.list_versions():
        try:
            final.load(v.version)
        except Exception as exc:  # noqa: BLE001 - counted
            unloadable.append(f"{v.version}: {type(exc).__name__}")
    ok_champion = champion_after_kill == champion_before or (
        kill["killed"] is False or champion_after_kill in new_versions
    )
    return {
        "faults_injected": int(kill["killed"]),
        "kill_delay_s": round(delay, 3),
        "kill": kill,
        "champion_unchanged_by_kill": champion_after_kill == champion_before,
        "versions_added_by_killed_run": new_versions,
        "half_versions": half,
        "tmp_dirs_left": len(tmp_left),
        "runs": 2,
        "recover_s": round(recover, 2),
        "rerun_version": outcome.version,
        "rerun_promoted": outcome.promoted,
        "champion_final_is_complete": champion_final in [v.version for v in final.list_versions()]
        and not unloadable,
        "unloadable_versions": unloadable,
        "lost": 0 if ok_champion else 1,
        "duplicated": len(half),
    }


# ---------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    seeds = [1] if args.quick else list(range(1, args.seeds + 1))
    only = set(args.only.split(",")) if args.only else None
    base = Path(tempfile.mkdtemp(prefix="hscode-bench-faults-"))
    os.chmod(base, 0o755)
    results: list[dict[str, Any]] = []

    def record(case: str, seed: int, fn: Callable[[Path], dict[str, Any]], **params: Any) -> None:
        work = base / f"{case}-{seed}-{len(results)}"
        work.mkdir(parents=True)
        t0 = time.perf_counter()
        try:
            out = fn(work)
        except Exception as exc:  # noqa: BLE001 - a crashed case is a result, reported
            out = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-1500:]}
        out = {
            "case": case,
            "seed": seed,
            **params,
            **out,
            "wall_s": round(time.perf_counter() - t0, 2),
        }
        results.append(out)
        keys = ("faults_injected", "runs", "lost", "duplicated", "recover_s", "error", "skipped")
        print(
            json.dumps({k: out[k] for k in ("case", "seed", *params, *keys) if k in out}),
            flush=True,
        )

    def want(name: str) -> bool:
        return only is None or name in only

    n = args.cases
    for seed in seeds:
        if want("portal_faults"):
            for rate in (0.0, 0.1, 0.3):
                record(
                    "portal_faults",
                    seed,
                    lambda w, r=rate, s=seed: case_portal_faults(w, s, r, n),
                    rate=rate,
                )
        if want("kill_crawl"):
            record("kill_crawl", seed, lambda w, s=seed: case_kill_crawl(w, s, n))
        for during in ("parse", "write"):
            if want("kill_normalize"):
                record(
                    "kill_normalize",
                    seed,
                    lambda w, s=seed, d=during: case_kill_normalize(w, s, 3 * n, d),
                    during=during,
                )
        if want("disk_full"):
            size = f"{args.tmpfs_kb * seed}k"  # a different fill point per seed
            record("disk_full", seed, lambda w, s=seed, z=size: case_disk_full(w, s, n, z))

    if any(want(c) for c in ("kill_score", "db_restart", "kill_train")):
        have = all(
            (ROOT / "hscode" / m).is_file() for m in ("scoring.py", "registry.py", "training.py")
        )
        if not have:
            results.append(
                {"case": "score/train", "skipped": "hscode/scoring.py or registry.py missing"}
            )
        else:
            t0 = time.perf_counter()
            try:
                world = ScoreWorld(base)
            except Exception as exc:  # noqa: BLE001
                world = None
                results.append({"case": "score_world", "error": f"{type(exc).__name__}: {exc}",
                                "trace": traceback.format_exc()[-1500:]})  # fmt: skip
            setup_s = time.perf_counter() - t0
            if world is not None:
                try:
                    world.probe(args.requests)
                    print(
                        f"uninterrupted score of {args.requests} requests: {world.score_s:.2f} s",
                        flush=True,
                    )
                    print(
                        f"score world ready in {setup_s:.1f} s (training {world.train_s:.1f} s)",
                        flush=True,
                    )
                    for seed in seeds:
                        if want("kill_score"):
                            record(
                                "kill_score",
                                seed,
                                lambda w, s=seed: case_kill_score(world, s, args.requests),
                            )
                        if want("db_restart"):
                            record(
                                "db_restart",
                                seed,
                                lambda w, s=seed: case_db_restart(world, s, args.requests),
                            )
                        if want("kill_train"):
                            record("kill_train", seed, lambda w, s=seed: case_kill_train(world, s))
                finally:
                    try:
                        from hscode.db import _embedded_server, dispose_engine

                        dispose_engine(world.engine)
                        _embedded_server(world.settings.pg_dir).cleanup()
                    except Exception as exc:  # noqa: BLE001 - cleanup only
                        print(f"embedded Postgres cleanup failed: {exc}", flush=True)
    shutil.rmtree(base, ignore_errors=True)
    return {
        "benchmark": "bench_faults",
        "command": "python -m benchmarks.bench_faults " + " ".join(sys.argv[1:]),
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load1": os.getloadavg()[0],
        },
        "params": {"seeds": seeds, "cases": args.cases, "requests": args.requests, "fast": FAST},
        "results": results,
        "totals": totals(results),
    }


def totals(results: list[dict[str, Any]]) -> dict[str, Any]:
    by_case: dict[str, dict[str, Any]] = {}
    for r in results:
        key = (
            r["case"]
            + (f"@{r['rate']}" if "rate" in r else "")
            + (f"@{r['during']}" if "during" in r else "")
        )
        t = by_case.setdefault(key, {"repeats": 0, "faults_injected": 0, "runs": 0, "lost": 0,
                                     "duplicated": 0, "recover_s": [], "errors": 0, "skipped": 0})  # fmt: skip
        t["repeats"] += 1
        t["errors"] += int("error" in r)
        t["skipped"] += int("skipped" in r)
        for k in ("faults_injected", "runs", "lost", "duplicated"):
            t[k] += int(r.get(k) or 0)
        if "recover_s" in r:
            t["recover_s"].append(r["recover_s"])
    for t in by_case.values():
        rs = t.pop("recover_s")
        t["recover_s_median"] = sorted(rs)[len(rs) // 2] if rs else None
        t["recover_s_max"] = max(rs) if rs else None
    return by_case


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Fault matrix (bench_faults)",
        "",
        (
            f"Command: `{report['command']}` — {report['when']}, {report['host']['cpus']} CPUs "
            f"(load {report['host']['load1']:.1f}), seeds {report['params']['seeds']}, "
            f"{report['params']['cases']} cases per crawl, {report['params']['requests']} requests per score."
        ),
        "",
        "| case | repeats | faults injected | runs | lost | duplicated | recover s (median / max) | errors / skipped |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for case, t in report["totals"].items():
        lines.append(
            f"| {case} | {t['repeats']} | {t['faults_injected']} | {t['runs']} | {t['lost']} | "
            f"{t['duplicated']} | {t['recover_s_median']} / {t['recover_s_max']} | "
            f"{t['errors']} / {t['skipped']} |"
        )
    lines += ["", "## Per run", ""]
    for r in report["results"]:
        slim = {k: v for k, v in r.items() if k not in ("trace",)}
        lines.append(f"- `{json.dumps(slim, ensure_ascii=False, default=str)[:700]}`")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one seed per case")
    parser.add_argument("--cases", type=int, default=40, help="cases served per crawl case")
    parser.add_argument("--requests", type=int, default=600, help="requests per score case")
    parser.add_argument(
        "--tmpfs-kb", type=int, default=64, help="raw-zone tmpfs for disk_full: seed x this KB"
    )
    parser.add_argument("--only", help="comma-separated case names")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "bench_faults.json")
    args = parser.parse_args(argv)
    report = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report).split("## Per run")[0])
    return report


if __name__ == "__main__":
    main()
