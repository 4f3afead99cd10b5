"""A teacher run split across workers: which shard owns a request, and how the parent waits for its shards."""
