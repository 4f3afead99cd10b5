"""The team stack's pieces without starting it: secrets, the state file, names, worker checkouts, settings."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from vqa_distill.ops import netns
from vqa_distill.ops.stack_secrets import load_secrets, read_prefect_auth
from vqa_distill.ops.stack_state import AUTH_ENV, StackState, stack_client_env, write_env_file
from vqa_distill.ops.team import TeamOptions, auth_env
from vqa_distill.ops.worker_checkout import checkout_files, copy_checkout


def test_secrets_are_generated_once_owner_only_and_never_in_a_repr(tmp_path: Path) -> None:
    first = load_secrets(tmp_path)
    again = load_secrets(tmp_path)
    assert first.postgres_password == again.postgres_password and first.prefect_auth == again.prefect_auth
    assert len({first.postgres_password, first.redis_password, first.prefect_auth}) == 3
    assert first.prefect_auth.startswith("vqa:") and len(first.redis_password) >= 24
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in (tmp_path / "secrets").iterdir())
    assert first.postgres_password not in repr(first) and first.redis_password not in repr(first)
    assert read_prefect_auth(tmp_path) == first.prefect_auth


def test_env_file_and_state_hold_no_secret_but_a_client_gets_the_credentials(tmp_path: Path) -> None:
    secrets = load_secrets(tmp_path)
    state = StackState(home=str(tmp_path), port=1, api_url="http://127.0.0.1:1/api", ui_url="http://127.0.0.1:1",
                       env={"PREFECT_API_URL": "http://127.0.0.1:1/api"})  # fmt: skip
    state.save()
    env_file = write_env_file(state)
    for text in (env_file.read_text(), (tmp_path / "state.json").read_text()):
        assert secrets.prefect_auth not in text and secrets.postgres_password not in text
    sourced = subprocess.run(["bash", "-c", f"source {env_file} && echo $PREFECT_API_AUTH_STRING"],
                             capture_output=True, text=True, check=True)  # fmt: skip
    assert sourced.stdout.strip() == secrets.prefect_auth
    assert stack_client_env(tmp_path) == {}  # no server process is running: not a usable stack
    assert auth_env(secrets).server["PREFECT_SERVER_API_AUTH_STRING"] == auth_env(secrets).workers[AUTH_ENV]


def test_namespace_and_interface_names_fit_linux_limits_and_differ_per_stack() -> None:
    tags = {netns.stack_tag(f"/home/stack-{i}") for i in range(50)}
    assert len(tags) == 50
    tag = netns.stack_tag("/srv/team/.stack")
    bridge = netns.bridge_for(tag)
    hosts = [netns.host_for(tag, bridge, i) for i in range(8)]
    assert len(bridge.name) <= 15 and all(len(h.veth_host) <= 15 and len(h.veth_ns) <= 15 for h in hosts)
    assert bridge.address.endswith(".1") and len({h.address for h in hosts}) == 8
    assert all(h.address.rsplit(".", 1)[0] == bridge.address.rsplit(".", 1)[0] for h in hosts)
    assert netns.in_namespace(hosts[0].namespace, ["prefect", "worker"])[:4] == ["ip", "netns", "exec", hosts[0].namespace]


def test_a_worker_checkout_holds_tracked_and_new_files_but_nothing_ignored(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "code.py").write_text("x = 1\n")
    (repo / ".gitignore").write_text(".venv/\n*.log\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    (repo / "pkg" / "new.py").write_text("y = 2\n")  # a work in progress: untracked, not ignored
    (repo / "run.log").write_text("ignored\n")
    (repo / ".venv").mkdir()
    (repo / ".venv" / "big").write_text("ignored\n")
    assert sorted(checkout_files(repo)) == [".gitignore", "pkg/code.py", "pkg/new.py"]
    copy = tmp_path / "copy"
    assert copy_checkout(repo, copy) == 3
    assert copy_checkout(repo, copy) == 0  # up to date: nothing rewritten
    (repo / "pkg" / "code.py").write_text("x = 3\n")
    assert copy_checkout(repo, copy) == 1 and (copy / "pkg" / "code.py").read_text() == "x = 3\n"
    assert not (copy / "run.log").exists() and not (copy / ".venv").exists()


def test_only_a_stack_with_a_database_or_broker_is_a_team_stack() -> None:
    assert not TeamOptions().is_team and not TeamOptions(cpu_workers=3).is_team
    assert TeamOptions(postgres=True).is_team and TeamOptions(redis=True).is_team
