"""Registering the commands imports no Prefect: ``--help`` stays light, and Prefect reads its settings only after
the command has pointed the process at its server (imported earlier, a command would start a temporary server)."""

from __future__ import annotations

import subprocess
import sys

from tests.support.helpers import REPO_ROOT


def test_building_the_parser_imports_neither_prefect_nor_the_heavy_libraries() -> None:
    probe = (
        "import sys; from vqa_distill.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('prefect', 'torch', 'swift', 'openai', 'sqlalchemy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
