"""Operations commands: ``stack up|down|status``, ``deploy``, ``failed`` and ``retry-failed``.

Only argparse is imported here: registering these commands must not slow down ``vqa-distill --help``.

Exit codes: 0 done (``failed``: no failed image; ``retry-failed``: every re-asked image answered);
2 ``failed`` listed failed images, or ``retry-failed`` left some failed; 3 could not proceed (API
unreachable, unknown run, bad options, a stack that did not start).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vqa_distill.errors import EXIT_FATAL, EXIT_OK, EXIT_SOME_FAILED
from vqa_distill.paths import (
    DEFAULT_POSTGRES_PORT,
    DEFAULT_PREFECT_PORT,
    DEFAULT_REDIS_PORT,
    DEFAULT_TEACHER_PORT,
    LOOPBACK,
)

RUN_HELP = "a flow run id (generate, pipeline, nightly-refresh or retry-failed run) or 'latest' (default)"


def register(subparsers: Any) -> None:
    """Register ``stack``, ``deploy``, ``failed`` and ``retry-failed``."""
    stack = subparsers.add_parser(
        "stack", help="a local Prefect stack: server, pools, deployments and workers in one command"
    )
    actions = stack.add_subparsers(dest="stack_command", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start server, pools, deployments and workers; print the UI address")
    _add_home(up)
    up.add_argument("--port", type=int, default=DEFAULT_PREFECT_PORT, help=f"Prefect server port on {LOOPBACK} (default {DEFAULT_PREFECT_PORT})")
    up.add_argument(
        "--gpu-worker",
        choices=["auto", "cpu", "none"],
        default="auto",
        help="gpu-pool worker: auto = where nvidia-smi finds a GPU; cpu = a CPU stand-in; none (default auto)",
    )
    up.add_argument(
        "--offline-teacher", action="store_true", help="also start the offline OpenAI-compatible teacher server"
    )
    up.add_argument("--teacher-port", type=int, default=DEFAULT_TEACHER_PORT, help=f"offline teacher port (default {DEFAULT_TEACHER_PORT})")
    up.add_argument("--no-deploy", dest="deploy", action="store_false", help="skip pools and deployments")
    team = up.add_argument_group("team stack (listens beyond loopback: every service requires a generated secret)")
    team.add_argument("--postgres", action="store_true", help="Prefect and the shared ledger on PostgreSQL (Debian's package)")
    team.add_argument("--redis", action="store_true", help="Prefect's messaging and the global rate limit on Redis")
    team.add_argument("--cpu-workers", type=int, default=1, metavar="N", help="cpu-pool workers, each with its own checkout and home (default 1)")
    team.add_argument(
        "--runs-per-worker", type=int, default=None, metavar="N",
        help="flow runs a cpu worker takes at once (default: no cap); 1 puts each shard on a worker of its own",
    )  # fmt: skip
    team.add_argument(
        "--namespaces", choices=["auto", "on", "off"], default="auto",
        help="each worker in its own network namespace: auto = for a team stack where root and `ip netns` allow",
    )  # fmt: skip
    team.add_argument("--postgres-port", type=int, default=DEFAULT_POSTGRES_PORT, help=f"default {DEFAULT_POSTGRES_PORT}")
    team.add_argument("--redis-port", type=int, default=DEFAULT_REDIS_PORT, help=f"default {DEFAULT_REDIS_PORT}")
    up.set_defaults(func=run_stack_up)
    down = actions.add_parser("down", help="stop exactly what `stack up` started")
    _add_home(down)
    down.set_defaults(func=run_stack_down)
    restart = actions.add_parser("restart", help="restart one of the stack's processes as it was (server, postgres...)")
    _add_home(restart)
    restart.add_argument("name", help="the process name `stack status` lists, e.g. prefect-server")
    restart.set_defaults(func=run_stack_restart)
    status = actions.add_parser("status", help="show the stack's URLs and processes")
    _add_home(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=run_stack_status)

    deploy = subparsers.add_parser(
        "deploy", help="create/update work pools, the gpu concurrency limit and prefect.yaml's deployments"
    )
    deploy.add_argument("--gpu-slots", type=int, default=1, help="gpu tag concurrency limit: GPUs in the pool (default 1)")
    deploy.add_argument(
        "--gpu-pool-type",
        choices=["process", "docker", "kubernetes"],
        default=None,
        help="gpu-pool type; docker/kubernetes use deployments/*-job-template.json "
        "(default: keep the existing pool's type; process for a new pool)",
    )
    deploy.add_argument("--name", action="append", default=[], help="apply only this deployment (repeatable)")
    deploy.set_defaults(func=run_deploy)

    failed = subparsers.add_parser(
        "failed", help="list a teacher run's failed images (file, reason, attempts) from the Prefect API",
        epilog="exit codes: 0 none failed; 2 some failed; 3 could not read the run",
    )  # fmt: skip
    failed.add_argument("run", nargs="?", default="latest", help=RUN_HELP)
    failed.add_argument("--json", action="store_true", help="print JSON instead of a table")
    failed.set_defaults(func=run_failed)

    retry = subparsers.add_parser(
        "retry-failed", help="re-ask only the images that failed in a teacher run, then rebuild its dataset",
        epilog="exit codes: 0 all answered now; 2 some still failed; 3 could not proceed",
    )  # fmt: skip
    retry.add_argument("run", nargs="?", default="latest", help=RUN_HELP)
    retry.set_defaults(func=run_retry_failed)


def _add_home(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", type=Path, default=None, help="stack state folder (default: .stack in the repository)")


def _home(args: argparse.Namespace) -> Path:
    from vqa_distill.ops.stack_state import DEFAULT_HOME

    return Path(args.home) if args.home else DEFAULT_HOME


def _fail(exc: BaseException | str) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return EXIT_FATAL


def run_stack_up(args: argparse.Namespace) -> int:
    """Start the local stack and print where its UI is."""
    from vqa_distill.errors import FatalRunError
    from vqa_distill.ops import stack
    from vqa_distill.ops.team import TeamOptions

    if args.cpu_workers < 1:
        return _fail(f"--cpu-workers must be at least 1, not {args.cpu_workers}")
    team = TeamOptions(
        postgres=args.postgres, redis=args.redis, cpu_workers=args.cpu_workers, namespaces=args.namespaces,
        postgres_port=args.postgres_port, redis_port=args.redis_port, runs_per_worker=args.runs_per_worker,
    )  # fmt: skip
    try:
        stack.up(
            _home(args), port=args.port, gpu_worker=args.gpu_worker, offline_teacher=args.offline_teacher,
            teacher_port=args.teacher_port, deploy=args.deploy, team=team,
        )  # fmt: skip
    except FatalRunError as exc:
        return _fail(exc)
    return EXIT_OK


def run_stack_down(args: argparse.Namespace) -> int:
    """Stop what ``stack up`` started."""
    from vqa_distill.ops import stack

    stack.down(_home(args))
    return EXIT_OK


def run_stack_restart(args: argparse.Namespace) -> int:
    """Restart one process of the stack with its command and environment."""
    from vqa_distill.errors import FatalRunError
    from vqa_distill.ops.stack_restart import restart

    try:
        restart(_home(args), args.name)
    except FatalRunError as exc:
        return _fail(exc)
    return EXIT_OK


def run_stack_status(args: argparse.Namespace) -> int:
    """Print the stack's URLs and whether each of its processes runs; exit 3 when there is no stack."""
    from vqa_distill.ops.stack_state import status

    info = status(_home(args))
    if info is None:
        print(f"no stack under {_home(args).resolve()}", file=sys.stderr)
        return EXIT_FATAL
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print(f"Prefect UI: {info['ui_url']}  (API {'healthy' if info['api_healthy'] else 'NOT answering'})")
    for name, where in info["services"].items():
        print(f"  {name:<15} {where}")
    for name, process in info["processes"].items():
        print(f"  {name:<15} pid {process['pid']:<8} {'running' if process['running'] else 'stopped'}  {process['log']}")
    return EXIT_OK


def run_deploy(args: argparse.Namespace) -> int:
    """Apply pools, the gpu limit and the deployments to the configured Prefect API."""
    if (code := _without_api()) is not None:
        return code
    from vqa_distill.errors import FatalRunError
    from vqa_distill.ops.deploy import apply

    try:
        lines = apply(gpu_pool_type=args.gpu_pool_type, gpu_slots=args.gpu_slots, names=args.name)
    except FatalRunError as exc:
        return _fail(exc)
    print("\n".join(lines))
    return EXIT_OK


def run_failed(args: argparse.Namespace) -> int:
    """Print a run's failed images as a table or JSON."""
    import asyncio

    if (code := _without_api()) is not None:
        return code
    from vqa_distill.errors import FatalRunError
    from vqa_distill.teacher.prefect_runs.failed import find_failed

    try:
        run = asyncio.run(find_failed(args.run))
    except FatalRunError as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps(run.to_json(), indent=2, ensure_ascii=False))
    else:
        print_failed(run)
    return EXIT_SOME_FAILED if run.images else EXIT_OK


def print_failed(run: Any) -> None:
    """Print the failed images of a run as a table, with the commands that retry them."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not run.images:
        console.print(f"no failed image in {run.flow_run_name} ({run.flow_run_id}, {run.state})", soft_wrap=True)
        return
    title = f"{len(run.images)} failed image(s) in {run.flow_run_name} ({run.flow_run_id}, {run.state})"
    table = Table(title=title, caption=f"run folder: {run.out}" if run.out else None)
    for column in ("file", "reason", "attempts"):
        table.add_column(column, overflow="fold")
    for image in run.images:
        table.add_row(image.file, image.reason, str(image.attempts))
    console.print(table)
    console.print(f"re-ask them: vqa-distill retry-failed {run.flow_run_id}", soft_wrap=True)


def run_retry_failed(args: argparse.Namespace) -> int:
    """Run the retry-failed flow in this process and print the teacher run's summary."""
    if (code := _without_api()) is not None:
        return code
    from flows.retry_failed import retry_failed
    from vqa_distill.cli.teacher import print_summary
    from vqa_distill.errors import FatalRunError
    from vqa_distill.flow_state import run_flow
    from vqa_distill.teacher.run.summary import RunSummary

    try:
        result = run_flow(retry_failed(args.run, return_state=True)).result
    except RuntimeError as exc:  # Prefect's own check that its API answers, before the flow run exists
        if "Failed to reach API" not in str(exc):
            raise
        return _fail(f"cannot reach the Prefect API: {exc}")
    if isinstance(result, FatalRunError):
        return _fail(result)
    if isinstance(result, BaseException):
        raise result
    summary = RunSummary.model_validate(result)
    print_summary(summary)
    return EXIT_SOME_FAILED if summary.failed else EXIT_OK


def _without_api() -> int | None:
    """Point this process at a Prefect API; the exit code when none can be had, else None."""
    from vqa_distill.cli.prefect_api import use_prefect_api
    from vqa_distill.errors import FatalRunError

    try:
        use_prefect_api()
    except FatalRunError as exc:
        return _fail(exc)
    return None
