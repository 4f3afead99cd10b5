"""Settings of a local Prefect server that keeps up with thousands of task runs, in one place.

The SQLite server drops task-run events past ~10k queued ("Subscription queue is full") with its
default batches; these batch sizes and flush intervals keep its recorders ahead (docs/architecture.md, "Measured facts"). Used by
the local stack, the tests and the benchmarks alike.
"""

from __future__ import annotations

SERVER_SETTINGS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "1",
}
