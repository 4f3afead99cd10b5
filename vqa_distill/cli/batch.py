"""``vqa-distill batches`` (what is in flight, done, failed, expired) and ``vqa-distill collect`` (record them).

``generate --batch`` submits and returns; ``collect`` fetches whatever has finished into the run folder's
ledger and rebuilds its dataset (run it whenever you like: a batch not finished is left for later).
Without ``--out`` both look at the endpoint's batches (``--base-url``, else OpenAI), whose metadata
names each batch's run folder.

Exit codes: 0 fine; 2 ``batches`` shows a failed, expired or cancelled batch, or ``collect`` recorded
failed requests or requests a batch never ran (asked again by the next submit); 3 could not proceed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from vqa_distill.errors import EXIT_FATAL, EXIT_OK, EXIT_SOME_FAILED

BATCHES_EPILOG = "exit codes: 0 none failed; 2 a batch failed, expired or was cancelled; 3 could not proceed"
COLLECT_EPILOG = (
    "exit codes: 0 all collected lines answered; 2 some failed or were not run; 3 could not proceed"
)
LISTING_COLUMNS = (
    "run folder",
    "batch",
    "part",
    "status",
    "collected",
    "lines",
    "completed",
    "failed",
    "age",
)
NUMERIC_COLUMNS = frozenset({"lines", "completed", "failed"})
PIPED_WIDTH = 160  # characters per line when the output is not a terminal: batch ids are not cut


def _add_endpoint(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", action="append", help="run folder (repeatable); default: the endpoint's batches"
    )
    parser.add_argument(
        "--base-url",
        "--base_url",
        dest="base_url",
        help="endpoint to list batches at without --out (default: OpenAI)",
    )
    parser.add_argument(
        "--api-key-block",
        dest="api_key_block",
        help="Prefect Secret block holding the API key (default: OPENAI_API_KEY)",
    )


def register(subparsers: Any) -> None:
    """Register ``batches`` and ``collect``."""
    batches = subparsers.add_parser(
        "batches", help="list Batch API batches: in flight, done, failed, expired", epilog=BATCHES_EPILOG
    )
    _add_endpoint(batches)
    batches.add_argument("--json", action="store_true", help="print JSON instead of a table")
    batches.set_defaults(func=run_batches)
    collect = subparsers.add_parser(
        "collect",
        help="record finished Batch API batches in the ledger and rebuild the dataset",
        epilog=COLLECT_EPILOG,
    )
    _add_endpoint(collect)
    collect.add_argument(
        "--publish-version",
        action="store_true",
        help="also publish a changed dataset as <out>/versions/<date> (as nightly-refresh does)",
    )
    collect.set_defaults(func=run_collect)


def _fail(message: object) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_FATAL


def _missing_ledger(args: argparse.Namespace) -> str | None:
    """Return the first ``--out`` folder without a ledger (a typo, or a folder on another machine), or None."""
    from vqa_distill.teacher.ledger.records import ledger_exists

    return next((out for out in args.out or [] if not ledger_exists(out)), None)


def _uses_secret_block(args: argparse.Namespace) -> bool:
    """Tell whether a key comes from a Prefect Secret block (then the command needs the Prefect API)."""
    from vqa_distill.teacher.batch.listing import secret_blocks

    return bool(args.api_key_block or secret_blocks(args.out or []))


async def _listing(args: argparse.Namespace) -> list[dict[str, Any]]:
    from vqa_distill.teacher.batch.clients import BatchClients
    from vqa_distill.teacher.batch.listing import endpoint_rows, refresh_folder

    clients = BatchClients()
    try:
        if args.out:
            return [row for out in args.out for row in await refresh_folder(out, clients)]
        return await endpoint_rows(await clients.get(args.base_url, args.api_key_block))
    finally:
        await clients.aclose()


def run_batches(args: argparse.Namespace) -> int:
    """Print the batches of the run folders, or of the endpoint, with their status, counts and age."""
    import asyncio

    from vqa_distill.errors import FatalRunError
    from vqa_distill.teacher.batch.listing import has_problems

    if missing := _missing_ledger(args):
        return _fail(f"no ledger.sqlite in {missing}")
    try:
        if _uses_secret_block(args):
            from vqa_distill.cli.prefect_api import use_prefect_api

            use_prefect_api()
        rows = asyncio.run(_listing(args))
    except FatalRunError as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        print_listing(rows, "batches")
    return EXIT_SOME_FAILED if has_problems(rows) else EXIT_OK


def print_listing(rows: list[dict[str, Any]], title: str) -> None:
    """Print batch listing rows as a table."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)
    if not rows:
        console.print("no batch")
        return
    table = Table(title=title)
    for column in LISTING_COLUMNS:
        numeric = column in NUMERIC_COLUMNS
        table.add_column(column, justify="right" if numeric else "left", no_wrap=column != "run folder")
    for row in rows:
        table.add_row(*(str(row[column]) for column in LISTING_COLUMNS))
    console.print(table)


def print_submitted(summary: Any) -> None:
    """Say what a ``generate --batch`` run sent and how to collect it."""
    batch = summary.batch
    if not batch.batch_ids:
        print(f"nothing submitted ({batch.in_flight} request(s) already in flight)")
        return
    print(
        f"submitted {batch.lines} line(s) in {len(batch.batch_ids)} batch(es): {', '.join(batch.batch_ids)}"
    )
    print(f"collect them when finished (within 24 h): vqa-distill collect --out {summary.out}")


def run_collect(args: argparse.Namespace) -> int:
    """Run the collect-batches flow in this process; print each run folder's summary."""
    from vqa_distill.cli.prefect_api import use_prefect_api
    from vqa_distill.errors import FatalRunError

    if missing := _missing_ledger(args):
        return _fail(f"no ledger.sqlite in {missing}")
    try:
        use_prefect_api()
    except FatalRunError as exc:
        return _fail(exc)
    from flows.batch_collect import collect_batches
    from vqa_distill.cli.teacher import print_summary
    from vqa_distill.flow_state import run_flow
    from vqa_distill.teacher.batch.listing import stored_rows

    call = collect_batches(
        outs=args.out or [],
        base_url=args.base_url,
        api_key_block=args.api_key_block,
        publish_versions=args.publish_version,
        return_state=True,
    )
    result = run_flow(call).result
    if isinstance(result, FatalRunError):
        return _fail(result)
    if isinstance(result, BaseException):
        raise result
    for run in result:
        print_summary(run.summary)
        if run.version:
            print(f"dataset version: {run.version}")
    for out in args.out or []:
        print_listing(stored_rows(out), f"batches of {out}")
    if not result:
        print("no batch finished since the last collect")
    return EXIT_SOME_FAILED if any(run.summary.failed for run in result) else EXIT_OK
