"""The Batch API way: input files, the ledger's book of batches, the remote calls, submit, list and collect."""
