"""The teacher stage: from a folder of images to answers in the ledger, paid for once.

Packages by concern, each importing only those listed after it (import-linter checks the order):

- ``batch/``: the Batch API way: build input files, submit, list, collect;
- ``shards/``: a run split across workers: which shard owns a request, and the parent's wait for them;
- ``run/``: one run: its plan, live objects, progress, summary and end; ``prefect_runs/``: runs read back
  from the Prefect API (failed images, a parent's shards);
- ``qa/``: questions mode: question sets, their answers and the judge;
- ``answers/``: the fan-out of requests and the record each outcome becomes; ``params``: the typed parameters;
- ``endpoint/``: the OpenAI-compatible endpoint: request, client, endpoint check, secrets, model table,
  prices, tokens; ``ledger/``: every outcome, keyed by content, in SQLite or PostgreSQL;
- ``ratelimit/``: the rate gates, per process and in Redis; ``images/``: discovery and preparation;
- ``run_log``: the one logger of the stage's library code.
"""
