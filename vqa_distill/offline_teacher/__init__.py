"""The offline OpenAI-compatible teacher server: deterministic answers, real HTTP, injectable faults.

Used by the quickstart (``vqa-distill teacher-server``) and by the tests, which start it as a separate
process with ``running_teacher_server()`` and talk to it through the real ``openai`` client.

Modules: ``app`` (assembly and serving), ``chat``, ``model_routes`` and ``admin`` (the routes),
``schema`` (request/response shapes, error bodies), ``state`` (what the routes share), ``middleware``,
``model_rules`` (parameters each model accepts), ``billing`` (tokens per model), ``families`` (model
name matching), ``limits`` (RPM/TPM), ``answers`` (answer text), ``images`` (data-URL decoding),
``faults`` (fault rules), ``stats`` (request records), ``config`` (settings), ``process`` (start/stop
as a child process), ``main`` (the command line); structured outputs: ``structured`` (an instance of
any JSON schema), ``questions`` and ``replies`` (questions, answers and judge scores tied to the
image); the Batch API: ``files_api``, ``batch_api``, ``batch_store``, ``batch_lines``,
``batch_runner``. Importing this package imports none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vqa_distill.offline_teacher.app import create_app
    from vqa_distill.offline_teacher.config import ServerConfig
    from vqa_distill.offline_teacher.faults import FaultRule
    from vqa_distill.offline_teacher.process import TeacherServerHandle, running_teacher_server

_EXPORTS = {
    "create_app": "vqa_distill.offline_teacher.app",
    "ServerConfig": "vqa_distill.offline_teacher.config",
    "FaultRule": "vqa_distill.offline_teacher.faults",
    "TeacherServerHandle": "vqa_distill.offline_teacher.process",
    "running_teacher_server": "vqa_distill.offline_teacher.process",
}
__all__ = ["FaultRule", "ServerConfig", "TeacherServerHandle", "create_app", "running_teacher_server"]


def __getattr__(name: str) -> Any:
    """Import exported names on first use, so ``import vqa_distill.cli.offline_teacher`` stays light."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
