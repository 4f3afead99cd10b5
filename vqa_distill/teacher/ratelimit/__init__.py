"""The rate gates every request passes: per process, and one for every worker in Redis; their buckets and clock."""
