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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.cli_common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    migrated_engine,
    print_summary,
    settings_for,
    with_progress,
)
from app.cli_db import add_db_parser
from app.cli_review import add_review_parser
from app.cli_tariff import add_tariff_parser, restatus
from hscode.hs import LEVEL_DIGITS
from hscode.series import SERIES
from hscode.summaries import jsonable
from model.config import TRAINABLE_INPUTS

log = logging.getLogger("hscode.cli")


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


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

    settings = settings_for(args, portal_url=args.portal_url, request_rate=args.rate)
    series = tuple(args.series) if args.series else SERIES
    summary = with_progress(
        "crawl", lambda bar: crawl(settings, args.since, args.until, series=series, progress=bar)
    )
    print_summary("crawl", summary)
    return EXIT_OK


def cmd_normalize(args: argparse.Namespace) -> int:
    from hscode.normalize import normalize

    print_summary("normalize", normalize(settings_for(args)))
    return EXIT_OK


def cmd_cases(args: argparse.Namespace) -> int:
    from hscode.case_import import export_cases, import_cases, parse_column_map
    from hscode.case_report import quality_report

    settings = settings_for(args)
    if args.cases_cmd == "import":
        column_map = parse_column_map(args.columns)
        report = import_cases(settings, args.file, source=args.source, column_map=column_map)
        print_summary(f"imported {args.file}", report)
    elif args.cases_cmd == "export":
        n = export_cases(settings, args.file)
        print(f"exported {n} cases to {args.file}")
    elif args.cases_cmd == "report":
        print(quality_report(settings).markdown)
    elif args.cases_cmd == "restatus" and not restatus(settings, migrated_engine(settings)):
        raise CliError(
            "no current tariff edition: hscode tariff load PATH --edition NAME --current",
            EXIT_BAD_INPUT,
        )
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from hscode.training import TrainConfig, train_and_register

    settings = settings_for(args, device=args.device)
    config_fields = {
        "top_codes": args.top_codes,
        "inputs": args.inputs,
        "epochs": args.epochs,
        "level": args.level,
        "promotion_margin": args.promotion_margin,
        "recent_days": args.recent_days,
        "refit": False if args.no_refit else None,
        "full": True if args.full else None,
        "warm": args.warm,
        "hidden": args.hidden,
        "batch_size": args.batch_size,
    }
    config = TrainConfig(**{k: v for k, v in config_fields.items() if v is not None})
    from hscode.review_cases import take_decisions

    decided = take_decisions(settings)  # reviewers' decisions are cases of this training
    if decided is not None and decided.decisions:
        print_summary("reviewers' decisions taken as cases", decided)
    outcome = with_progress("train", lambda bar: train_and_register(settings, config, progress=bar))
    if outcome.report is not None:
        print(f"recipe: {outcome.report['recipe']['reason']}")
    verdict = "promoted to champion" if outcome.promoted else "not promoted"
    print(
        f"model {outcome.version}: {verdict}" + (f" ({outcome.reason})" if outcome.reason else "")
    )
    served = (outcome.report or {}).get("served") or {}
    if served:
        print(f"  served model: {served.get('model')} ({served.get('why')})")
    from hscode.reports import metric_rows

    for row in metric_rows(jsonable(outcome.metrics))[:20]:
        print(f"  {row['metric']}: {row['value']:.4g}")
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    if not args.input.is_file():
        raise CliError(f"input {args.input} not found", EXIT_BAD_INPUT)
    from hscode.predict import predict_file

    settings = settings_for(args)
    result = predict_file(
        settings, args.input, args.output, args.top_k, args.model, digits=args.digits
    )
    print_summary(f"predictions written to {args.output}", result)
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from hscode.registry import Registry

    settings = settings_for(args)
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

    engine = migrated_engine(settings_for(args))
    print_summary(f"imported {args.file}", import_requests(engine, args.file))
    return EXIT_OK


def cmd_score(args: argparse.Namespace) -> int:
    from hscode.intake import import_inbox
    from hscode.model_versions import sync_registry_versions
    from hscode.registry import Registry
    from hscode.scoring import score_pending

    settings = settings_for(args)
    engine = migrated_engine(settings)
    print_summary("inbox", import_inbox(settings, engine))
    registry = Registry.from_settings(settings)
    sync_registry_versions(engine, registry)  # every version on the leaderboard, champion flagged
    champion = registry.champion()
    version = args.model or (champion.version if champion is not None else None)
    if version is None:
        raise CliError("no champion model yet: run `hscode train` first")
    recommender = registry.load(version)
    summary = with_progress(
        "score",
        lambda bar: score_pending(
            settings, engine, recommender, batch_size=args.batch_size, progress=bar
        ),
    )
    print_summary(f"scored with {version}", summary)
    return EXIT_OK


def _quiet_prefect() -> None:
    """No telemetry from the ephemeral Prefect server: this machine may be offline."""
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


def cmd_report(args: argparse.Namespace) -> int:
    from app.serve import write_html_report

    path = write_html_report(settings_for(args), args.output)
    print(f"report written to {path}")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from app.serve import serve

    return serve(settings_for(args), port=args.port, workers=not args.no_workers)


def cmd_demo(args: argparse.Namespace) -> int:
    _quiet_prefect()
    from app.demo import run_demo

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
    p.add_argument("--series", nargs="+", choices=SERIES)
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
    cases_sub.add_parser(
        "restatus",
        help="derive every case's code status against the current tariff edition "
        "(done by tariff load --current, tariff current and tariff correlations load)",
    )
    p.set_defaults(func=cmd_cases)

    p = sub.add_parser(
        "train", help="train, evaluate, register; promote if not worse than the champion"
    )
    p.add_argument("--top-codes", type=int)
    p.add_argument("--inputs", choices=[str(m) for m in TRAINABLE_INPUTS])
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
    p.add_argument(
        "--full",
        action="store_true",
        help="train every member, also those the champion's last full run weighed 0 (by "
        "default they are left out until that run is HSCODE_FULL_RECIPE_DAYS old, 7)",
    )
    p.add_argument(
        "--warm",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the main network continues the champion's for warm_epochs (a warm start) "
        "instead of training from scratch (default: from scratch)",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="recommend codes for a file of requests")
    p.add_argument("--input", type=Path, required=True)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument(
        "--digits",
        type=int,
        choices=LEVEL_DIGITS,
        default=10,
        help="answer at this many digits: a heading (4) or subheading (6) scored by the summed "
        "probability of its ten-digit codes (default 10)",
    )
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

    add_db_parser(sub)

    add_tariff_parser(sub)
    add_review_parser(sub)

    p = sub.add_parser("report", help="write a static HTML report of the champion and recent runs")
    p.add_argument("--output", type=Path, default=Path("report.html"))
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("serve", help="local Prefect server, cpu/gpu workers and all deployments")
    p.add_argument("--port", type=int, default=4200)
    p.add_argument("--no-workers", action="store_true", help="register deployments only")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="emulator + backlog + nightly flow, end to end")
    p.add_argument("--cases", type=int, help="demo corpus size (default: app.demo.DEMO_CASES)")
    p.add_argument("--requests", type=int, default=50)
    p.set_defaults(func=cmd_demo)
    return parser


def _bad_input_types() -> tuple[type[BaseException], ...]:
    import pydantic

    types: list[type[BaseException]] = [FileNotFoundError, ValueError, pydantic.ValidationError]
    for module, name in (
        ("hscode.portal.parse", "PortalFormatError"),
        ("hscode.case_records", "CaseRejected"),
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
