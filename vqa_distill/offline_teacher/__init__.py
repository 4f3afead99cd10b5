"""The offline OpenAI-compatible teacher server: deterministic answers, real HTTP, injectable faults.

Used by the quickstart (``vqa-distill teacher-server``) and by the tests, which start it as a separate
process with ``running_teacher_server()`` and talk to it through the real ``openai`` client.

Top: ``app`` (assembly and serving), ``main`` (the command line), ``process`` (start/stop as a child
process). Packages, each above the ones after it (import-linter checks the order): ``batch/`` (the Batch
and Files APIs), ``routes/`` (chat completions and their exchange, models, admin, middleware),
``replies/`` (answers, questions, judge scores, structured outputs), ``server/`` (settings and modes,
shared state, the self-hosted capacity, request records, fault rules), ``rules/`` (the API's shapes,
parameter rules, image checks, billing of OpenAI's and other families' images, limits). Importing this
package imports none of them.

Modes (``--mode``; server/config.py): ``openai`` (default), ``relay`` (other vendors' names and rules, no
model lookup, no rate-limit headers) and ``self-hosted`` (vLLM-like: K in service, Q waiting, 503 beyond).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vqa_distill.offline_teacher.app import create_app
    from vqa_distill.offline_teacher.process import TeacherServerHandle, running_teacher_server
    from vqa_distill.offline_teacher.server.config import ServerConfig
    from vqa_distill.offline_teacher.server.faults import FaultRule

_EXPORTS = {
    "create_app": "vqa_distill.offline_teacher.app",
    "ServerConfig": "vqa_distill.offline_teacher.server.config",
    "FaultRule": "vqa_distill.offline_teacher.server.faults",
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
