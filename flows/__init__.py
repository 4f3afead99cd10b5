"""Prefect flows: each reads like a table of contents of the stage it runs."""
