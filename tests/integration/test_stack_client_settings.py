"""A shell that sources the team stack's env.sh, and the CLI beside a running stack, reach the same ledger and
rate limit as the workers: the shared ledger's and Redis' URLs are client settings, their passwords read from
the secrets files, never written to env.sh or state.json."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psutil
import pytest

from vqa_distill.ops.stack_secrets import load_secrets
from vqa_distill.ops.stack_state import StackState, stack_client_env, write_env_file
from vqa_distill.ops.team import TeamOptions, start_postgres_service, start_redis_service
from vqa_distill.supervisor import ManagedProcess
from vqa_distill.teacher.ledger.records import LEDGER_URL_ENV
from vqa_distill.teacher.ratelimit.global_gate import REDIS_URL_ENV


def _stack_home(tmp_path: Path) -> tuple[StackState, str, str]:
    """A stack state as `stack up --postgres --redis` records it, its server standing in for this process."""
    secrets = load_secrets(tmp_path)
    me = psutil.Process()
    server = ManagedProcess("prefect-server", me.pid, me.create_time(), ["prefect"], str(tmp_path / "log"))
    state = StackState(home=str(tmp_path), port=4200, api_url="http://127.0.0.1:4200/api", ui_url="http://127.0.0.1:4200",
                       env={"PREFECT_API_URL": "http://127.0.0.1:4200/api"}, processes=[server])  # fmt: skip
    return state, secrets.ledger_password, secrets.redis_password


def test_env_sh_and_the_cli_carry_the_ledger_and_redis_urls_without_writing_a_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state, ledger_password, redis_password = _stack_home(tmp_path)
    options = TeamOptions(postgres=True, redis=True, postgres_port=55432, redis_port=56379)
    # The services' client settings, without starting the servers: only the URL templates are used here.
    import vqa_distill.ops.postgres as postgres
    import vqa_distill.ops.postgres_access as postgres_access
    import vqa_distill.ops.redis_server as redis_server

    monkeypatch.setattr(postgres, "init_cluster", lambda *a, **k: None)
    monkeypatch.setattr(postgres_access, "write_hba", lambda *a, **k: None)
    monkeypatch.setattr(postgres_access, "grant_databases", lambda *a, **k: None)
    monkeypatch.setattr(postgres, "start_postgres", lambda *a, **k: state.processes[0])
    monkeypatch.setattr(redis_server, "start_redis", lambda *a, **k: state.processes[0])
    secrets = load_secrets(tmp_path)
    for start in (start_postgres_service, start_redis_service):
        state.client_urls.update(start(state, secrets, options, "10.200.0.1", lambda line: None).clients)
    state.processes = state.processes[:1]
    state.save()
    env_file = write_env_file(state)
    for text in (env_file.read_text(), (tmp_path / "state.json").read_text()):
        assert ledger_password not in text and redis_password not in text

    shell = subprocess.run(["bash", "-c", f"source {env_file} && echo ${LEDGER_URL_ENV} && echo ${REDIS_URL_ENV}"],
                           capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]})  # fmt: skip
    ledger_url, redis_url = shell.stdout.split()
    assert ledger_url == f"postgresql+psycopg://vqa_ledger:{ledger_password}@127.0.0.1:55432/ledger"  # the ledger's role
    assert redis_url == f"redis://:{redis_password}@127.0.0.1:56379/1"
    client = stack_client_env(tmp_path)
    assert client[LEDGER_URL_ENV] == ledger_url and client[REDIS_URL_ENV] == redis_url
