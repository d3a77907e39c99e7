"""The ``hscode`` command line.

Commands call the domain functions directly (fast, no Prefect server needed), except
``nightly`` and ``demo``, which run the Prefect flow (an ephemeral Prefect server starts
when none is configured). Expected failures print one line on stderr: exit code 2 for
bad input, 1 for anything else that went wrong; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("hscode.cli")

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_NOT_RUNNING = 3  # `db status`: no server (as `systemctl status` for an inactive unit)
INPUT_MODES = ("title", "title+description", "title+image", "title+description+image")


class CliError(Exception):
    """An expected failure: printed as one line, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


# ----------------------------------------------------------------- progress bar


class ProgressBar:
    """``progress(done, total)`` callback drawing a bar on stderr (only on a terminal)."""

    def __init__(self, label: str, stream: Any = None, min_interval_s: float = 0.2) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.min_interval_s = min_interval_s
        self._last = 0.0
        self._started = time.monotonic()
        self._drawn = False

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        if not self.enabled:
            return
        from tasks._util import progress_args

        done, total, what = progress_args(args, kwargs)
        now = time.monotonic()
        finished = total is not None and done >= total
        if not finished and now - self._last < self.min_interval_s:
            return
        self._last = now
        elapsed = now - self._started
        if total:
            frac = min(1.0, done / total)
            bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
            line = f"\r{self.label} [{bar}] {done}/{total} {elapsed:5.0f}s {what}"
        else:
            line = f"\r{self.label} {done} {elapsed:5.0f}s {what}"
        # pad so a shorter line fully overwrites the previous one
        line = line.ljust(getattr(self, "_width", 0))
        self._width = len(line)
        self.stream.write(line)
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


# ----------------------------------------------------------------- helpers


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _settings(args: argparse.Namespace, **overrides: Any) -> Any:
    from hscode.settings import get_settings

    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    if getattr(args, "storage_url", None) is not None:
        overrides["storage_url"] = args.storage_url
    return get_settings(**{k: v for k, v in overrides.items() if v is not None})


def _engine(settings: Any) -> Any:
    from hscode.db import get_engine, migrate

    engine = get_engine(settings)
    migrate(engine)
    return engine


def _jsonable(value: Any) -> Any:
    from tasks._util import jsonable

    return jsonable(value)


def _print_summary(title: str, summary: Any) -> None:
    data = _jsonable(summary)
    print(f"{title}:")
    if isinstance(data, dict):
        for key, value in data.items():
            shown = (
                json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value
            )
            print(f"  {key}: {shown}")
    else:
        print(f"  {data}")


def _with_progress(label: str, fn: Callable[[Callable[..., None]], Any]) -> Any:
    bar = ProgressBar(label)
    try:
        return fn(bar)
    finally:
        bar.close()


# ----------------------------------------------------------------- commands


def cmd_emulator(args: argparse.Namespace) -> int:
    from emulator.corpus import demo_corpus, kcs_corpus
    from emulator.server import serve

    if args.corpus is not None:
        if not args.corpus.exists():
            raise CliError(f"corpus {args.corpus} not found", EXIT_BAD_INPUT)
        corpus = kcs_corpus(args.corpus)
    else:
        corpus = demo_corpus(n_cases=args.cases, seed=args.seed)
    serve(corpus, host=args.host, port=args.port, fault_rate=args.fault_rate, seed=args.seed)
    return EXIT_OK


def cmd_crawl(args: argparse.Namespace) -> int:
    from hscode.crawl import crawl
    from hscode.schema import SERIES

    settings = _settings(args, portal_url=args.portal_url, request_rate=args.rate)
    series = tuple(args.series) if args.series else SERIES
    summary = _with_progress(
        "crawl", lambda bar: crawl(settings, args.since, args.until, series=series, progress=bar)
    )
    _print_summary("crawl", summary)
    return EXIT_OK


def cmd_normalize(args: argparse.Namespace) -> int:
    from hscode.normalize import normalize

    _print_summary("normalize", normalize(_settings(args)))
    return EXIT_OK


def cmd_cases(args: argparse.Namespace) -> int:
    from hscode import cases

    settings = _settings(args)
    if args.cases_cmd == "import":
        column_map = cases.parse_column_map(args.columns)
        report = cases.import_cases(settings, args.file, source=args.source, column_map=column_map)
        _print_summary(f"imported {args.file}", report)
    elif args.cases_cmd == "export":
        n = cases.export_cases(settings, args.file)
        print(f"exported {n} cases to {args.file}")
    elif args.cases_cmd == "report":
        print(cases.quality_report(settings).markdown)
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from hscode.training import TrainConfig, train_and_register

    settings = _settings(args, device=args.device)
    config_fields = {
        "top_codes": args.top_codes,
        "inputs": args.inputs,
        "epochs": args.epochs,
        "level": args.level,
        "promotion_margin": args.promotion_margin,
        "recent_days": args.recent_days,
        "refit": False if args.no_refit else None,
        "hidden": args.hidden,
        "batch_size": args.batch_size,
    }
    config = TrainConfig(**{k: v for k, v in config_fields.items() if v is not None})
    outcome = _with_progress(
        "train", lambda bar: train_and_register(settings, config, progress=bar)
    )
    verdict = "promoted to champion" if outcome.promoted else "not promoted"
    print(
        f"model {outcome.version}: {verdict}" + (f" ({outcome.reason})" if outcome.reason else "")
    )
    served = (outcome.report or {}).get("served") or {}
    if served:
        print(f"  served model: {served.get('model')} ({served.get('why')})")
    from hscode.reports import metric_rows

    for row in metric_rows(_jsonable(outcome.metrics))[:20]:
        print(f"  {row['metric']}: {row['value']:.4g}")
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    if not args.input.is_file():
        raise CliError(f"input {args.input} not found", EXIT_BAD_INPUT)
    from hscode.predict import predict_file

    settings = _settings(args)
    result = predict_file(settings, args.input, args.output, args.top_k, args.model)
    _print_summary(f"predictions written to {args.output}", result)
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from hscode.registry import Registry

    settings = _settings(args)
    registry = Registry.from_settings(settings)
    if args.models_cmd == "list":
        versions = registry.list_versions()
        if not versions:
            print("no model versions registered yet (run `hscode train`)")
            return EXIT_OK
        for v in versions:
            top1 = v.metrics.get("test_top1")
            shown = f"evaluated top1={top1:.4f}" if isinstance(top1, float) else ""
            served = v.info.get("served") or {}
            if served:
                shown += f"  served: {served.get('model')} on {served.get('n_examples')} cases"
            print(f"{'*' if v.champion else ' '} {v.version}  {v.created_at}  {shown}".rstrip())
        print(
            "(* = champion; top1 is the evaluated model's, on test cases it never saw; the "
            "served model of a promoted version is refitted on every case)"
        )
    elif args.models_cmd == "promote":
        registry.promote(args.version)
        print(f"champion is now {args.version}")
    elif args.models_cmd == "rollback":
        restored = registry.rollback()
        print(f"champion rolled back to {restored}")
    return EXIT_OK


def cmd_requests(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise CliError(f"request file {args.file} not found", EXIT_BAD_INPUT)
    from hscode.intake import import_requests

    engine = _engine(_settings(args))
    _print_summary(f"imported {args.file}", import_requests(engine, args.file))
    return EXIT_OK


def cmd_score(args: argparse.Namespace) -> int:
    from hscode.db import sync_registry_versions
    from hscode.intake import import_inbox
    from hscode.registry import Registry
    from hscode.scoring import score_pending

    settings = _settings(args)
    engine = _engine(settings)
    _print_summary("inbox", import_inbox(settings, engine))
    registry = Registry.from_settings(settings)
    sync_registry_versions(engine, registry)  # every version on the leaderboard, champion flagged
    champion = registry.champion()
    version = args.model or (champion.version if champion is not None else None)
    if version is None:
        raise CliError("no champion model yet: run `hscode train` first")
    recommender = registry.load(version)
    summary = _with_progress(
        "score",
        lambda bar: score_pending(
            settings, engine, recommender, batch_size=args.batch_size, progress=bar
        ),
    )
    _print_summary(f"scored with {version}", summary)
    return EXIT_OK


def _quiet_prefect() -> None:
    """No telemetry from the ephemeral Prefect server: this machine may be offline."""
    import os

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def cmd_nightly(args: argparse.Namespace) -> int:
    _quiet_prefect()
    from flows.nightly import nightly_flow

    overrides: dict[str, Any] = {}
    if args.data_dir is not None:
        overrides["data_dir"] = str(args.data_dir)
    if args.storage_url is not None:
        overrides["storage_url"] = args.storage_url
    if args.rate is not None:
        overrides["request_rate"] = args.rate
    summary = nightly_flow(
        since=args.since,
        until=args.until,
        portal_url=args.portal_url,
        train=args.train,
        epochs=args.epochs,
        settings_overrides=overrides or None,
    )
    print(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
    return EXIT_OK


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


def cmd_db(args: argparse.Namespace) -> int:
    from hscode.db import get_engine, migrate, psql_uri

    settings = _settings(args)
    if args.db_cmd in ("start", "stop", "status"):
        return _db_service(settings, args.db_cmd)
    if args.db_cmd == "url":
        print(psql_uri(settings))
    elif args.db_cmd == "migrate":
        applied = migrate(get_engine(settings))
        print(f"migrations applied: {', '.join(applied) if applied else 'none (up to date)'}")
    elif args.db_cmd == "analyst-login":
        import secrets

        from hscode.db import create_analyst_login, login_uri

        engine = get_engine(settings)
        migrate(engine)
        password = args.password if args.password is not None else secrets.token_urlsafe(18)
        try:
            create_analyst_login(engine, args.name, password)
        except ValueError as exc:
            raise CliError(str(exc), EXIT_BAD_INPUT) from exc
        print(
            f"login {args.name} can read the analyst views (role hscode_analyst) and nothing else"
        )
        # the URI carries no password: not the configured URL's, not the login's
        print(f"connect with: psql '{login_uri(settings, args.name)}'")
        if args.password is not None:
            print("  psql asks for the password given with --password (or set PGPASSWORD)")
        else:  # generated: shown this once, stored only as a scram verifier
            print(f"  password (shown once; psql asks for it): {password}")
    return EXIT_OK


def cmd_tariff(args: argparse.Namespace) -> int:
    if not args.path.exists():
        raise CliError(f"tariff file {args.path} not found", EXIT_BAD_INPUT)
    from hscode.tariff import load_tariff

    _print_summary("tariff", load_tariff(_engine(_settings(args)), args.path))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from hscode.serve import write_html_report

    path = write_html_report(_settings(args), args.output)
    print(f"report written to {path}")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from hscode.serve import serve

    return serve(_settings(args), port=args.port, workers=not args.no_workers)


def cmd_demo(args: argparse.Namespace) -> int:
    _quiet_prefect()
    from hscode.demo import run_demo

    run_demo(data_dir=args.data_dir, n_cases=args.cases, n_requests=args.requests)
    return EXIT_OK


# ----------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hscode", description="HS-code recommender from the CLIP portal's classification cases"
    )
    parser.add_argument(
        "--data-dir", type=Path, help="data directory (default: HSCODE_DATA_DIR or ./var)"
    )
    parser.add_argument(
        "--storage-url",
        help=(
            "shared storage for cases, images and models: a path, file:// or s3://bucket/prefix "
            "(default: HSCODE_STORAGE_URL, else the data directory)"
        ),
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("emulator", help="run the local CLIP portal emulator")
    p.add_argument(
        "--corpus", type=Path, help="kcs_hs_chatbot folder with real cases (default: demo corpus)"
    )
    p.add_argument("--cases", type=int, default=300, help="demo corpus size")
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_emulator)

    p = sub.add_parser("crawl", help="crawl the portal into the raw zone")
    p.add_argument("--portal-url")
    p.add_argument("--since", type=_date)
    p.add_argument("--until", type=_date)
    p.add_argument("--series", nargs="+", choices=("ordinary", "council", "committee"))
    p.add_argument("--rate", type=float, help="max requests per second")
    p.set_defaults(func=cmd_crawl)

    p = sub.add_parser("normalize", help="raw zone -> cases dataset")
    p.set_defaults(func=cmd_normalize)

    p = sub.add_parser("cases", help="import / export / report the cases dataset")
    cases_sub = p.add_subparsers(dest="cases_cmd", required=True)
    q = cases_sub.add_parser("import", help="add a CSV / JSON lines / Parquet case file")
    q.add_argument("file", type=Path)
    q.add_argument("--source", help="source name (default: import:<file stem>)")
    q.add_argument("--columns", help="OURS=THEIRS mapping, e.g. hs_code=hscode,title=name")
    q = cases_sub.add_parser("export", help="write the dataset as .csv or .parquet")
    q.add_argument("file", type=Path)
    cases_sub.add_parser("report", help="print the data-quality report")
    p.set_defaults(func=cmd_cases)

    p = sub.add_parser(
        "train", help="train, evaluate, register; promote if not worse than the champion"
    )
    p.add_argument("--top-codes", type=int)
    p.add_argument("--inputs", choices=INPUT_MODES)
    p.add_argument("--epochs", type=int)
    p.add_argument(
        "--level",
        choices=("hs10", "hs6", "hs4", "hs2"),
        help="the code level the model predicts (default hs10)",
    )
    p.add_argument(
        "--promotion-margin",
        type=float,
        help="promote when the 95%% interval of the top-1 difference to the champion lies "
        "above -MARGIN (default 0.02)",
    )
    p.add_argument(
        "--recent-days",
        type=int,
        help="the newest N days of decisions are the out-of-time test (default 30; 0: none)",
    )
    p.add_argument("--hidden", type=int, help="BiLSTM hidden size per direction (default 256)")
    p.add_argument("--batch-size", type=int, help="training batch size (default 64)")
    p.add_argument(
        "--no-refit",
        action="store_true",
        help="serve the evaluated model instead of refitting a promoted one on every case",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="recommend codes for a file of requests")
    p.add_argument("--input", type=Path, required=True)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--model", help="model version (default: champion)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("models", help="list / promote / roll back model versions")
    models_sub = p.add_subparsers(dest="models_cmd", required=True)
    models_sub.add_parser("list")
    q = models_sub.add_parser("promote")
    q.add_argument("version")
    models_sub.add_parser("rollback")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("requests", help="request intake")
    requests_sub = p.add_subparsers(dest="requests_cmd", required=True)
    q = requests_sub.add_parser("import", help="add a CSV / JSON lines file of requests")
    q.add_argument("file", type=Path)
    p.set_defaults(func=cmd_requests)

    p = sub.add_parser("score", help="import the inbox and score pending requests")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--model", help="model version (default: champion)")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "nightly", help="run the nightly Prefect flow (crawl, normalize, train when due, score)"
    )
    p.add_argument("--portal-url")
    p.add_argument("--since", type=_date)
    p.add_argument("--until", type=_date)
    p.add_argument("--train", choices=("auto", "always", "never"), default="auto")
    p.add_argument("--epochs", type=int)
    p.add_argument("--rate", type=float, help="max requests per second")
    p.set_defaults(func=cmd_nightly)

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
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("tariff", help="tariff code names")
    tariff_sub = p.add_subparsers(dest="tariff_cmd", required=True)
    q = tariff_sub.add_parser("load")
    q.add_argument("path", type=Path)
    p.set_defaults(func=cmd_tariff)

    p = sub.add_parser("report", help="write a static HTML report of the champion and recent runs")
    p.add_argument("--output", type=Path, default=Path("report.html"))
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("serve", help="local Prefect server, cpu/gpu workers and all deployments")
    p.add_argument("--port", type=int, default=4200)
    p.add_argument("--no-workers", action="store_true", help="register deployments only")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="emulator + backlog + nightly flow, end to end")
    p.add_argument("--cases", type=int, default=300)
    p.add_argument("--requests", type=int, default=50)
    p.set_defaults(func=cmd_demo)
    return parser


def _bad_input_types() -> tuple[type[BaseException], ...]:
    import pydantic

    types: list[type[BaseException]] = [FileNotFoundError, ValueError, pydantic.ValidationError]
    for module, name in (
        ("hscode.portal.parse", "PortalFormatError"),
        ("hscode.cases", "CaseRejected"),
    ):
        try:
            types.append(getattr(__import__(module, fromlist=[name]), name))
        except (ImportError, AttributeError):
            pass
    return tuple(types)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # argparse: 2 for bad usage, 0 for --help
        return int(exc.code or 0)
    # Commands that run flows without a Prefect server start an ephemeral one per process;
    # its default 20 s start-up limit is tripped by a busy 2-core machine (before Prefect is
    # imported, so its settings see it; an explicit setting wins)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.debug:
        # one line per HTTP call to the Prefect API, per gensim epoch or per Dask event
        # drowns the output
        for noisy in ("httpx", "gensim", "distributed"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or EXIT_OK)
    except CliError as exc:
        print(f"hscode {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(f"hscode {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        bad_input = isinstance(exc, _bad_input_types())
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"hscode {args.command}: {message}", file=sys.stderr)
        if not bad_input:
            print("  (run with --debug for the traceback)", file=sys.stderr)
        return EXIT_BAD_INPUT if bad_input else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
