"""What ``up`` records about each process so ``restart`` can start a crashed one: its settings beyond the
environment it inherited, every secret by the name of its file, and the same environment rebuilt from them."""

from __future__ import annotations

import os
from pathlib import Path

from vqa_distill.ops.stack_secrets import LEDGER_PASSWORD_FILE, load_secrets
from vqa_distill.ops.stack_state import PASSWORD_SLOT, Launch, SecretUrl, StackState
from vqa_distill.supervisor import ManagedProcess

BASE = {"PATH": "/usr/bin", "HOME": "/root", "OPENAI_API_KEY": "sk-from-the-users-shell"}


def test_a_launch_keeps_the_stacks_settings_and_names_each_secret_by_its_file(tmp_path: Path) -> None:
    secrets = load_secrets(tmp_path)
    env = {
        **BASE,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_AUTH_STRING": secrets.prefect_auth,
        "VQA_DISTILL_LEDGER_URL": f"postgresql+psycopg://vqa_ledger:{secrets.ledger_password}@10.213.1.1:5433/ledger",
    }
    launch = Launch.of(env, tmp_path, base=BASE)
    assert launch.inherits and launch.env == {"PREFECT_HOME": str(tmp_path / "prefect-home")}
    assert launch.secret_env["VQA_DISTILL_LEDGER_URL"] == SecretUrl(
        f"postgresql+psycopg://vqa_ledger:{PASSWORD_SLOT}@10.213.1.1:5433/ledger", LEDGER_PASSWORD_FILE
    )
    assert launch.environment(tmp_path, base=BASE) == env  # the same environment, rebuilt from the files
    # A restart from another shell takes that shell's own variables, under the stack's settings.
    later = launch.environment(tmp_path, base={"PATH": "/bin", "OPENAI_API_KEY": "sk-new"})
    assert later["OPENAI_API_KEY"] == "sk-new" and later["PREFECT_API_AUTH_STRING"] == secrets.prefect_auth


def test_a_process_that_inherited_nothing_gets_nothing_more_again(tmp_path: Path) -> None:
    launch = Launch.of({"PATH": "/usr/bin:/bin"}, tmp_path, base=BASE)
    assert not launch.inherits and launch.environment(tmp_path, base=BASE) == {"PATH": "/usr/bin:/bin"}


def test_the_state_file_holds_how_to_start_each_process_but_no_secret(tmp_path: Path) -> None:
    secrets = load_secrets(tmp_path)
    state = StackState(home=str(tmp_path), port=4200, api_url="u/api", ui_url="u", env={})
    server = ManagedProcess("prefect-server", 1, 2.0, ["prefect", "server", "start"], "log", str(tmp_path))
    redis_url = f"redis://:{secrets.redis_password}@127.0.0.1:6380/1"
    state.record(server, {**os.environ, "PREFECT_REDIS_MESSAGING_PASSWORD": secrets.redis_password, "R": redis_url})
    saved = (tmp_path / "state.json").read_text()
    for secret in (secrets.redis_password, secrets.prefect_auth, secrets.postgres_password):
        assert secret not in saved
    loaded = StackState.load(tmp_path)
    assert loaded is not None and loaded == state
    assert loaded.launches["prefect-server"].inherits  # up's processes take the environment of the command
    again = loaded.launches["prefect-server"].environment(tmp_path)
    assert again["PREFECT_REDIS_MESSAGING_PASSWORD"] == secrets.redis_password and again["R"] == redis_url
    assert loaded.processes[0].cwd == str(tmp_path)
