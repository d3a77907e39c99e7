"""``hscode tariff ...``: tariff editions and correlations, and the code statuses they set."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli_common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    CliError,
    migrated_engine,
    print_summary,
    settings_for,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from hscode.settings import Settings


def restatus(settings: Settings, engine: Engine) -> bool:
    """Derive every case's code status against the current edition (after a tariff change);
    False when no edition is current."""
    from hscode.tariff_editions import derive_code_statuses

    report = derive_code_statuses(settings, engine)
    if report is None:
        return False
    print_summary(f"code statuses against {report.edition}", report)
    return True


def announce_current_edition(edition: str, previous: str | None) -> bool:
    """Say that the current edition changed: training is due (the champion learned another
    edition's codes). Emits ``hscode.tariff.current-changed`` when a Prefect server is
    configured (``PREFECT_API_URL``), so the train deployment's trigger fires at once;
    without one, the next nightly chain or normalize run finds training due itself.
    True when the event was emitted."""
    import os

    print(
        f"training is due: the current tariff edition is now {edition}"
        + (f" (was {previous})" if previous else "")
    )
    if not os.environ.get("PREFECT_API_URL"):
        print("  no Prefect server configured: the next nightly run (or `hscode train`) learns it")
        return False
    from prefect.events import emit_event

    from tasks.events import TARIFF_CHANGED_EVENT, TARIFF_RESOURCE, TRAINING_DUE_LABEL

    event = emit_event(
        event=TARIFF_CHANGED_EVENT,
        resource={"prefect.resource.id": TARIFF_RESOURCE, TRAINING_DUE_LABEL: "true"},
        payload={"edition": edition, "previous": previous},
    )
    print(f"  {TARIFF_CHANGED_EVENT} emitted: the train deployment's trigger fires")
    return event is not None


def cmd_tariff(args: argparse.Namespace) -> int:
    if not args.path.exists():
        raise CliError(f"tariff file {args.path} not found", EXIT_BAD_INPUT)
    from hscode.tariff import load_tariff

    settings = settings_for(args)
    engine = migrated_engine(settings)
    summary = load_tariff(engine, args.path, args.edition, current=args.current)
    print_summary(f"tariff edition {summary.edition}", summary)
    if args.current:
        restatus(settings, engine)
        if summary.previous_current is not None or not summary.unchanged:
            announce_current_edition(summary.edition, summary.previous_current)
    return EXIT_OK


def cmd_tariff_editions(args: argparse.Namespace) -> int:
    from hscode.tariff_editions import editions

    found = editions(migrated_engine(settings_for(args)))
    if not found:
        print("no tariff editions loaded (hscode tariff load PATH --edition NAME --current)")
    for edition in found:
        mark = "*" if edition.is_current else " "
        print(
            f"{mark} {edition.name}  {edition.code_count} codes ({edition.hs10_count} ten-digit)"
            f"  loaded {edition.loaded_at:%Y-%m-%d %H:%M}  {edition.source_file or ''}".rstrip()
        )
    return EXIT_OK


def cmd_tariff_current(args: argparse.Namespace) -> int:
    from hscode.tariff import set_current_edition

    settings = settings_for(args)
    engine = migrated_engine(settings)
    previous = set_current_edition(engine, args.edition)
    was = f" (was {previous})" if previous else ""
    print(f"current tariff edition: {args.edition}{was}")
    restatus(settings, engine)
    if previous is not None:
        announce_current_edition(args.edition, previous)
    return EXIT_OK


def cmd_tariff_correlations(args: argparse.Namespace) -> int:
    if not args.path.exists():
        raise CliError(f"correlation file {args.path} not found", EXIT_BAD_INPUT)
    from hscode.tariff import load_correlations

    settings = settings_for(args)
    engine = migrated_engine(settings)
    print_summary("tariff correlations", load_correlations(engine, args.path))
    restatus(settings, engine)  # moved codes are found through the correlations
    return EXIT_OK


def add_tariff_parser(sub: Any) -> None:
    """The ``tariff`` subcommand and its own subcommands, on the main parser's subparsers."""
    p = sub.add_parser("tariff", help="tariff editions (codes and names) and HS correlations")
    tariff_sub = p.add_subparsers(dest="tariff_cmd", required=True)
    q = tariff_sub.add_parser(
        "load",
        help="load a tariff file (hsk_codes.csv, hstable.json, ...) as an edition",
        description="Load a tariff file as an edition: its codes and their names. Loading "
        "an edition again replaces its codes; the same content again changes nothing.",
    )
    q.add_argument("path", type=Path)
    q.add_argument(
        "--edition",
        help="the edition's name (default: the file's stem, e.g. hsk_codes for hsk_codes.csv)",
    )
    q.add_argument(
        "--current",
        action="store_true",
        help="make it the current edition (the previous current one no longer is); without "
        "it a new edition is an older one, and an existing one keeps its standing",
    )
    q.set_defaults(func=cmd_tariff)
    q = tariff_sub.add_parser("editions", help="list the loaded editions (* = current)")
    q.set_defaults(func=cmd_tariff_editions)
    q = tariff_sub.add_parser("current", help="make a loaded edition the current one")
    q.add_argument("edition")
    q.set_defaults(func=cmd_tariff_current)
    q = tariff_sub.add_parser("correlations", help="six-digit HS correlation tables")
    corr_sub = q.add_subparsers(dest="correlations_cmd", required=True)
    r = corr_sub.add_parser(
        "load",
        help="load six-digit correlation pairs (older HS edition -> newer)",
        description="Load six-digit correlation pairs, from an older HS edition's code to a "
        "newer one's: the layout of hs2022_correlations.csv (hs2022, old_version, old_hs6, "
        "relationship) or from_edition, from_code, to_edition, to_code[, relationship]. A bad "
        "row is reported with its reason and the rest goes on; for each pair of editions the "
        "file has, the table then holds exactly its pairs (reloading is idempotent).",
    )
    r.add_argument("path", type=Path)
    r.set_defaults(func=cmd_tariff_correlations)
