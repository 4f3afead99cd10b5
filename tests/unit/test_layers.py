"""The layer contract holds, and it would catch a library module that imports the flow layer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.helpers import REPO_ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("vqa_distill", "flows", "tasks")


def _copy_tree(into: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, into / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO_ROOT / "pyproject.toml", into / "pyproject.toml")
    return into


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=300)


def test_the_tree_keeps_its_layers(tmp_path: Path) -> None:
    done = _lint(_copy_tree(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BROKEN" not in done.stdout and "KEPT" in done.stdout


def test_a_library_module_importing_a_flow_breaks_the_contract(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    plan = tree / "vqa_distill" / "teacher" / "plan.py"
    plan.write_text(plan.read_text() + "\n\ndef _late() -> None:\n    import flows.generate  # noqa: F401\n")
    done = _lint(tree)
    assert done.returncode != 0
    assert "vqa_distill.teacher.plan -> flows.generate" in done.stdout


def test_the_offline_teacher_importing_the_client_breaks_the_contract(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    app = tree / "vqa_distill" / "offline_teacher" / "config.py"
    app.write_text(app.read_text() + "\nfrom vqa_distill.teacher import client as _client  # noqa: E402,F401\n")
    done = _lint(tree)
    assert done.returncode != 0
    assert "vqa_distill.offline_teacher.config -> vqa_distill.teacher.client" in done.stdout
