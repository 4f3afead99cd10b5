"""Teacher runs read back from the Prefect API: a run's failed images, a parent's shard runs."""
