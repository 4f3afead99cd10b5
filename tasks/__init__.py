"""Prefect tasks: thin wrappers that give plain functions a name, retries and a place in the UI."""
