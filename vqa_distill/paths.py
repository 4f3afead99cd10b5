"""Where the checkout lives and the ports the local services listen on: each named once, here."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_DATA = REPO_ROOT / "data"
DEPLOYMENTS_DIR = REPO_ROOT / "deployments"  # prefect job templates for docker / kubernetes gpu pools
PREFECT_FILE = REPO_ROOT / "prefect.yaml"

LOOPBACK = "127.0.0.1"
DEFAULT_PREFECT_PORT = 4200
DEFAULT_TEACHER_PORT = 8765  # the offline teacher of `vqa-distill stack up --offline-teacher`
DEFAULT_POSTGRES_PORT = 5433  # the team stack's PostgreSQL; not 5432, which a distribution's own cluster may hold
DEFAULT_REDIS_PORT = 6380  # the team stack's Redis; not 6379, for the same reason
