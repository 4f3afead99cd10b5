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
    """Run lint-imports on the tree; its report is folded to the terminal's width, so unfold it."""
    env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "400"}
    done = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=300)
    done.stdout = " ".join(done.stdout.split())
    return done


def _append_import(module: Path, statement: str) -> None:
    module.write_text(module.read_text() + f"\n{statement}  # noqa: E402,F401\n")


def test_the_tree_keeps_its_layers(tmp_path: Path) -> None:
    done = _lint(_copy_tree(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BROKEN" not in done.stdout and "KEPT" in done.stdout


def test_a_library_module_importing_a_flow_breaks_the_contract(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    plan = tree / "vqa_distill" / "teacher" / "run" / "plan.py"
    plan.write_text(plan.read_text() + "\n\ndef _late() -> None:\n    import flows.generate  # noqa: F401\n")
    done = _lint(tree)
    assert done.returncode != 0
    assert "vqa_distill.teacher.run.plan -> flows.generate" in done.stdout


def test_the_offline_teacher_importing_the_client_breaks_the_contract(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    app = tree / "vqa_distill" / "offline_teacher" / "server" / "config.py"
    _append_import(app, "from vqa_distill.teacher.endpoint import client as _client")
    done = _lint(tree)
    assert done.returncode != 0
    assert "vqa_distill.offline_teacher.server.config -> vqa_distill.teacher.endpoint.client" in done.stdout


def test_a_lower_teacher_package_importing_a_higher_one_breaks_the_contract(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    _append_import(tree / "vqa_distill" / "teacher" / "ledger" / "store.py", "from vqa_distill.teacher.batch import book as _book")
    done = _lint(tree)
    assert done.returncode != 0
    assert "the teacher stage's packages, each above the ones it uses BROKEN" in done.stdout
    assert "vqa_distill.teacher.ledger.store -> vqa_distill.teacher.batch.book" in done.stdout


def test_a_lower_offline_teacher_package_importing_a_route_breaks_the_contract(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    rules = tree / "vqa_distill" / "offline_teacher" / "rules" / "billing.py"
    _append_import(rules, "from vqa_distill.offline_teacher.routes import chat as _chat")
    done = _lint(tree)
    assert done.returncode != 0
    assert "the offline teacher's packages, each above the ones it uses BROKEN" in done.stdout
    assert "vqa_distill.offline_teacher.rules.billing -> vqa_distill.offline_teacher.routes.chat" in done.stdout
