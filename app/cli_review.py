"""``hscode review ...``: the review queue, and recording reviewers' decisions.

``review list`` shows the queue (least confident first, with the champion's top codes and
the precedents behind them); ``review decide`` records one decision; ``review import``
records a file of them. Both run as the configured (owner) connection; the decision's
``decided_by`` is ``--by``, else the OS user. Decisions are validated by the database
(:mod:`hscode.decisions`): a refused one exits 2 with the reason.
"""

from __future__ import annotations

import argparse
import getpass
import json
from pathlib import Path
from typing import Any

from app.cli_common import EXIT_BAD_INPUT, EXIT_OK, CliError, migrated_engine, settings_for
from hscode.summaries import jsonable

MAX_SHOWN_REJECTS = 50


def _who(args: argparse.Namespace) -> str:
    """``--by``, else the OS user running the command."""
    if args.by is not None:
        if not args.by.strip():
            raise CliError("--by must name who decided", EXIT_BAD_INPUT)
        return args.by.strip()
    return getpass.getuser()


def _show_request(item: Any) -> list[str]:
    lines = [
        f"{item.request_id}  confidence {item.confidence:.2f}  {item.title}",
        f"  why: {item.review_reason or 'flagged for review'}"
        + ("  (the precedents disagree)" if item.conflicting_precedents else ""),
    ]
    if item.decided_hs10:
        lines.append(f"  decided: {item.decided_hs10} by {item.decided_by}")
    for code in item.top_codes:
        name = code.name_ko or code.name_en or ""
        lines.append(f"  {code.rank}. {code.hs10_display}  {code.score:.2f}  {name}".rstrip())
    for p in item.precedents:
        similarity = p.get("similarity")
        shown = f"{similarity:.2f}" if isinstance(similarity, float) else "?"
        ref = f" [{p['reference_no']}]" if p.get("reference_no") else ""
        lines.append(
            f"     precedent {p.get('hs10_display') or p.get('hs10')}  similarity {shown}"
            f"  {p.get('case_title') or ''}{ref}".rstrip()
        )
    return lines


def cmd_review_list(args: argparse.Namespace) -> int:
    from hscode.decisions import review_queue

    if args.limit < 1:
        raise CliError(f"--limit must be at least 1, not {args.limit}", EXIT_BAD_INPUT)
    queue = review_queue(migrated_engine(settings_for(args)), args.limit, include_decided=args.all)
    if args.json:
        print(json.dumps(jsonable(queue), ensure_ascii=False, indent=2))
        return EXIT_OK
    if not queue:
        print(
            "the review queue is empty"
            + ("" if args.all else " (decided requests are left out; --all shows them)")
        )
        return EXIT_OK
    for item in queue:
        print("\n".join(_show_request(item)))
    print(
        f"({len(queue)} request(s), least confident first; decide with: "
        "hscode review decide REQUEST_ID CODE [--note ...])"
    )
    return EXIT_OK


def cmd_review_decide(args: argparse.Namespace) -> int:
    from hscode.decisions import DecisionRefused, record_decision
    from hscode.hs import format_hs10

    who = _who(args)
    engine = migrated_engine(settings_for(args))
    try:
        decision = record_decision(
            engine, args.request_id, args.code, args.note, decided_by=who, source="review"
        )
    except DecisionRefused as refused:
        raise CliError(f"{refused.reason}: {refused}", EXIT_BAD_INPUT) from None
    shown = format_hs10(decision.hs10)
    if decision.recorded:
        print(
            f"decision {decision.decision_id} recorded: {args.request_id} -> {shown} "
            f"(by {who}, checked against tariff edition {decision.tariff_edition})"
        )
    else:
        print(
            f"unchanged: {args.request_id} is already decided {shown} by {who} with that "
            f"note (decision {decision.decision_id})"
        )
    return EXIT_OK


def cmd_review_import(args: argparse.Namespace) -> int:
    from hscode.decisions import DecisionFileError, DecisionRefused, import_decisions

    if not args.file.is_file():
        raise CliError(f"decisions file {args.file} not found", EXIT_BAD_INPUT)
    who = _who(args)
    engine = migrated_engine(settings_for(args))
    try:
        report = import_decisions(engine, args.file, decided_by_default=who)
    except (DecisionFileError, DecisionRefused) as exc:
        reason = f"{exc.reason}: " if isinstance(exc, DecisionRefused) else ""
        raise CliError(f"{reason}{exc}", EXIT_BAD_INPUT) from None
    print(f"imported decisions from {args.file}:")
    print(f"  rows: {report.rows}")
    print(f"  recorded: {report.recorded}")
    print(f"  unchanged: {report.unchanged}")
    print(f"  rejected: {report.rejected}")
    if report.reasons:
        print(f"  reasons: {json.dumps(report.reasons, ensure_ascii=False)}")
    if report.ignored_columns:
        print(f"  ignored columns: {', '.join(report.ignored_columns)}")
    for r in report.rejects[:MAX_SHOWN_REJECTS]:
        who_row = f" {r.request_id}" if r.request_id else ""
        print(f"  row {r.row} ({r.where}){who_row}: {r.reason}: {r.message}")
    if report.rejected > MAX_SHOWN_REJECTS:
        print(f"  ... and {report.rejected - MAX_SHOWN_REJECTS} more")
    if report.rejected:
        print(
            f"{report.rejected} row(s) rejected and kept in the reject log (view "
            f"intake_rejections, record_kind 'decision'); the other rows were processed"
        )
    return EXIT_OK


def add_review_parser(sub: Any) -> None:
    """The ``review`` subcommand and its own subcommands, on the main parser's subparsers."""
    p = sub.add_parser("review", help="the review queue and reviewers' decisions")
    review_sub = p.add_subparsers(dest="review_cmd", required=True)
    q = review_sub.add_parser(
        "list",
        help="the review queue, least confident first, with top codes and precedents",
    )
    q.add_argument("--limit", type=int, default=20, help="at most N requests (default 20)")
    q.add_argument("--json", action="store_true", help="print JSON instead of text")
    q.add_argument("--all", action="store_true", help="include requests already decided")
    q.set_defaults(func=cmd_review_list)
    q = review_sub.add_parser(
        "decide",
        help="record the decided ten-digit code of a request",
        description="Record a decision: the code must be a ten-digit code of the current "
        "tariff edition (3304.10-1000 or 3304101000). A later decision for the request "
        "supersedes this one; the same decision again changes nothing.",
    )
    q.add_argument("request_id")
    q.add_argument("code")
    q.add_argument("--note", help="why (kept with the decision; the next training reads it)")
    q.add_argument("--by", help="who decided (default: the OS user)")
    q.set_defaults(func=cmd_review_decide)
    q = review_sub.add_parser(
        "import",
        help="record a CSV / JSON lines file of decisions (request_id,hs_code[,note,decided_by])",
        description="Record a file of decisions: CSV with the header "
        "request_id,hs_code[,note,decided_by] or JSON lines with those keys. A bad row is "
        "reported with its reason (and kept in the reject log) and the rest go on; "
        "importing the same file again changes nothing. Exit code 0 when the file was "
        "processed, rejected rows or not; 2 when it cannot be read.",
    )
    q.add_argument("file", type=Path)
    q.add_argument("--by", help="decided_by for rows without one (default: the OS user)")
    q.set_defaults(func=cmd_review_import)
