"""``--ledger-url``: one option for every command that reads or writes a run folder's ledger.

A shared ledger's URL holds a password, so it is never a flow parameter (Prefect stores and shows
those) nor written anywhere: the option sets ``VQA_DISTILL_LEDGER_URL`` for this command only, as
the environment variable itself would (workers need the variable).
"""

from __future__ import annotations

import argparse
import os

LEDGER_COMMANDS = ("generate", "dataset", "batches", "collect", "failed", "retry-failed")


def add_ledger_url(parser: argparse.ArgumentParser) -> None:
    """Add ``--ledger-url`` to a command's parser."""
    parser.add_argument(
        "--ledger-url", dest="ledger_url",
        help="database URL of a shared ledger (postgresql+psycopg://...); sets VQA_DISTILL_LEDGER_URL for this "
        "command only and is never stored (it holds a password); workers need the same variable",
    )  # fmt: skip


def use_ledger_url(args: argparse.Namespace) -> None:
    """Point this process at the shared ledger named by ``--ledger-url``, when given."""
    url = getattr(args, "ledger_url", None)
    if url:
        # Imported here: --help and the other commands must not pay for SQLAlchemy.
        from vqa_distill.teacher.ledger.records import LEDGER_URL_ENV

        os.environ[LEDGER_URL_ENV] = url
