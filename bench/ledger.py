"""Benchmark the ledger: one record() and done_keys() on SQLite and on PostgreSQL over loopback.

Rows: the baseline is the plain ``sqlite3`` upsert the ledger used before it moved to SQLAlchemy Core
(one connection, autocommit, the same statement and PRAGMAs), measured in the same run; then the
ledger on its SQLite file and on a private PostgreSQL cluster (started here, on loopback, stopped at
the end). ``record`` is the median cost of one call over ``--records`` calls, interleaved in rounds
so a busy machine weighs on every row alike; ``done_keys`` reads a ledger of ``--keys`` done records.

Run: .venv/bin/python bench/ledger.py [--records 2000] [--keys 100000]
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from vqa_distill.ops.postgres import create_database, database_url, init_cluster, start_postgres
from vqa_distill.ops.prefect_server import free_port
from vqa_distill.supervisor import stop_process
from vqa_distill.teacher.ledger.records import Ledger, TeacherRecord
from vqa_distill.teacher.ledger.tables import RECORD_COLUMNS

ROUNDS = 10
_BASELINE_UPSERT = (
    f"INSERT INTO records ({', '.join(RECORD_COLUMNS)}) VALUES ({', '.join(':' + c for c in RECORD_COLUMNS)}) "
    "ON CONFLICT(key) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in RECORD_COLUMNS if c not in {"key", "created_at"})
    + " WHERE records.status IN ('failed', 'submitted')"
)


def _record(key: str) -> TeacherRecord:
    return TeacherRecord(key=key, status="answered", image_path=f"/images/{key}.jpg", rel_path=f"{key}.jpg",
                         sha256=key * 4, prompt="Describe the defects.", system=None, model="gpt-4o-mini",
                         params={"detail": "high", "max_tokens": 512}, answer="A scratch near the left edge.",
                         finish_reason="stop", prompt_tokens=25_501, completion_tokens=42, latency_s=2.5)  # fmt: skip


class _Baseline:
    """The previous ledger's write path: sqlite3, autocommit, one upsert per record."""

    def __init__(self, out: Path):
        with Ledger(out):
            pass  # the same tables
        self._db = sqlite3.connect(out / "ledger.sqlite", timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")

    def record(self, record: TeacherRecord) -> bool:
        values = record.to_json()
        values["params"] = json.dumps(values["params"], sort_keys=True)
        return self._db.execute(_BASELINE_UPSERT, values).rowcount > 0

    def done_keys(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT key FROM records WHERE status IN ('answered', 'unusable')")}


def _per_call_us(record: Callable[[TeacherRecord], object], prefix: str, start: int, count: int) -> list[float]:
    records = [_record(f"{prefix}{i:08d}") for i in range(start, start + count)]
    costs = []
    for item in records:
        began = time.perf_counter()
        record(item)
        costs.append((time.perf_counter() - began) * 1e6)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=100_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vqa-distill-bench-ledger-"))
    root.chmod(0o755)  # the postgres OS user enters it
    password = secrets.token_urlsafe(16)
    init_cluster(root / "pg", password)
    port = free_port()
    server = start_postgres(root / "pg", port, root / "logs")
    try:
        create_database(database_url("postgres", password, "127.0.0.1", port, "postgres"), "bench")
        url = database_url("postgres", password, "127.0.0.1", port, "bench")
        stores = {
            "sqlite3 upsert (baseline)": _Baseline(root / "baseline"),
            "Ledger, SQLite file": Ledger(root / "sqlite"),
            "Ledger, PostgreSQL loopback": Ledger(root / "pg-run", url),
        }
        costs: dict[str, list[float]] = {name: [] for name in stores}
        per_round = max(1, args.records // ROUNDS)
        for round_ in range(ROUNDS):
            for name, store in stores.items():
                costs[name] += _per_call_us(store.record, "r", round_ * per_round, per_round)
        reads = {}
        for name, store in stores.items():
            have = round_ * per_round + per_round
            if args.keys > have:
                _per_call_us(store.record, "r", have, args.keys - have)  # fill up to --keys done records
            began = time.perf_counter()
            found = store.done_keys()
            reads[name] = (time.perf_counter() - began) * 1e3, len(found)
        print(f"{'store':32} {'record() median':>16} {'p90':>10} {'done_keys()':>14} {'keys':>9}")
        for name in stores:
            ordered = sorted(costs[name])
            p90 = ordered[int(len(ordered) * 0.9)]
            ms, keys = reads[name]
            print(f"{name:32} {statistics.median(ordered):13.0f} us {p90:7.0f} us {ms:11.0f} ms {keys:9,}")
        for store in stores.values():
            if isinstance(store, Ledger):
                store.close()
    finally:
        stop_process(server)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
