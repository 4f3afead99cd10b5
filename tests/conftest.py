"""Shared test fixtures: a real Prefect server and the offline teacher server, both on loopback.

Everything a test touches is real: a ``prefect server start`` process with its own SQLite database
under a temp PREFECT_HOME, the project's OpenAI-compatible server in its own process, the ``openai``
client, real files. Environment is set at import time so that every later ``import prefect`` (here
and in CLI subprocesses) talks to the test server.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.helpers import TEST_API_KEY
from vqa_distill.ops.prefect_server import SERVER_SETTINGS, free_port

# Session fixtures of the student and ops suites, registered once (importing them into each module
# would make one copy per module: three stacks, three tiny models).
pytest_plugins = [
    "tests.support.student_fixtures",
    "tests.support.ops_fixtures",
    "tests.support.redis",
    "tests.support.postgres",
]

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="vqa-distill-tests-"))


PREFECT_PORT = free_port()
PREFECT_HOME = _SESSION_DIR / "prefect-home"
PREFECT_ENV = {
    "PREFECT_HOME": str(PREFECT_HOME),
    "PREFECT_API_URL": f"http://127.0.0.1:{PREFECT_PORT}/api",
    **SERVER_SETTINGS,
    "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(_SESSION_DIR / "results"),
    "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.3",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
os.environ.update(PREFECT_ENV)
os.environ.pop("OPENAI_API_KEY", None)


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[str]:
    """Run a real Prefect server for the whole session (the stack's own start/stop); yields its API URL."""
    from vqa_distill.ops.prefect_server import running_server

    with running_server(os.environ, _SESSION_DIR / "logs", port=PREFECT_PORT) as api_url:
        yield api_url


@pytest.fixture(scope="session")
def teacher_server() -> Iterator[object]:
    """The offline OpenAI-compatible teacher, requiring TEST_API_KEY, for the whole session."""
    from vqa_distill.offline_teacher.process import running_teacher_server

    with running_teacher_server(api_key=TEST_API_KEY) as handle:
        yield handle


@pytest.fixture
def teacher(teacher_server: object) -> object:
    """The session's teacher server with its counters, faults and latency reset for this test."""
    teacher_server.reset()  # type: ignore[attr-defined]
    teacher_server.set_faults([])  # type: ignore[attr-defined]
    teacher_server.set_latency(0.0)  # type: ignore[attr-defined]
    return teacher_server


@pytest.fixture
def api_key_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """Put the test key where the product reads it (OPENAI_API_KEY)."""
    monkeypatch.setenv("OPENAI_API_KEY", TEST_API_KEY)
    return TEST_API_KEY


@pytest.fixture
def session_dir() -> Path:
    """The session's scratch folder (holds PREFECT_HOME and the result storage)."""
    return _SESSION_DIR
