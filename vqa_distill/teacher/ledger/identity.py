"""Proof that a sharded run's parent and its shards write to one ledger.

A sharded run is a parent flow run and shard flow runs on whichever workers take them. A worker that
reaches another ledger (no ``VQA_DISTILL_LEDGER_URL`` there, so its own SQLite file; another
database; a run folder mounted at another path, so another schema) asks and pays into a ledger the
parent never reads, and the parent ends Completed with nothing in it. So:

- the parent writes a **mark** into its ledger before it starts any shard: a random token under its
  flow run id, with the ledger's location (``mark_shared_ledger``), and passes the mark to every
  shard as a flow parameter;
- a shard, before it asks anything, looks for that token in its own ledger and stops with one line
  naming both locations when it is not there (``check_shared_ledger``). The token, not the location,
  is the proof: two machines' SQLite files at one path have one location and two databases;
- a shard reports its ledger's location in its summary, and the parent refuses, in one line, any
  shard whose location differs from its own (``refuse_other_ledgers``).

The marks live in their own table, ``ledger_marks``, created in the ledger's file or schema when a
parent first marks it; a ledger without it holds no mark.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Column, MetaData, Select, Table, Text, inspect, select

from vqa_distill.errors import FatalRunError
from vqa_distill.teacher.ledger.records import LEDGER_URL_ENV, Ledger
from vqa_distill.teacher.ledger.tables import insert_new, utc_now

TOKEN_BYTES = 16  # 128 random bits: no other ledger holds the same token by chance

MARKS_METADATA = MetaData()
LEDGER_MARKS = Table(
    "ledger_marks",
    MARKS_METADATA,
    Column("parent_flow_run_id", Text, primary_key=True),  # a retried parent keeps its first mark
    Column("token", Text, nullable=False),
    Column("location", Text, nullable=False),
    Column("created_at", Text, nullable=False),
)

_FIX = f"every worker must reach the parent's ledger: the same {LEDGER_URL_ENV}, run folders at the same path"


class LedgerMark(BaseModel):
    """The parent's mark in its ledger, passed to each shard run as plain data (a flow parameter)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    parent_flow_run_id: str
    token: str
    location: str  # where the parent's ledger is (``LedgerStore.location``), for the shard's message


def mark_shared_ledger(ledger: Ledger, parent_flow_run_id: str) -> LedgerMark:
    """Write the parent's mark into its ledger (once per parent flow run: a retry keeps it); return it."""
    store = ledger.store
    row = {"parent_flow_run_id": parent_flow_run_id, "token": secrets.token_hex(TOKEN_BYTES),
           "location": store.location, "created_at": utc_now()}  # fmt: skip
    with store.write() as connection:
        MARKS_METADATA.create_all(connection)
        connection.execute(insert_new(store.dialect, LEDGER_MARKS), row)
        token: str = connection.execute(_token_of(parent_flow_run_id)).scalar_one()
    return LedgerMark(parent_flow_run_id=parent_flow_run_id, token=token, location=store.location)


def check_shared_ledger(ledger: Ledger, mark: LedgerMark) -> str:
    """Return this ledger's location when it holds the parent's mark; else raise FatalRunError in one line.

    A shard calls it first, before it plans or asks anything: a shard writing elsewhere would pay
    for answers its parent never sees.
    """
    store = ledger.store
    with store.read() as connection:
        held = None
        if inspect(connection).has_table(LEDGER_MARKS.name, schema=store.schema):
            held = connection.execute(_token_of(mark.parent_flow_run_id)).scalar()
    if held == mark.token:
        return store.location
    if store.location == mark.location:
        raise FatalRunError(
            f"this shard's ledger at {store.location} does not hold the mark of parent flow run "
            f"{mark.parent_flow_run_id}: the same path, another database (a file on another machine?); {_FIX}"
        )
    raise FatalRunError(f"this shard's ledger at {store.location} is not its parent's at {mark.location}; {_FIX}")


def refuse_other_ledgers(parent_location: str, shard_locations: Mapping[int, str | None]) -> None:
    """Raise FatalRunError in one line when a shard (by 0-based index) reported another ledger than the parent's.

    A shard that reported nothing (None) is not judged here: its own check stopped it, or it predates
    the report.
    """
    others = {index: where for index, where in sorted(shard_locations.items()) if where and where != parent_location}
    if others:
        shards = ", ".join(f"shard {index + 1} at {where}" for index, where in others.items())
        raise FatalRunError(f"shards wrote to another ledger than this run's at {parent_location} ({shards}); {_FIX}")


def _token_of(parent_flow_run_id: str) -> Select[Any]:
    """The query for the token a parent flow run left in this ledger."""
    return select(LEDGER_MARKS.c.token).where(LEDGER_MARKS.c.parent_flow_run_id == parent_flow_run_id)
