"""The offline teacher's own command line: its flags, and serving until Ctrl-C.

Only argparse is imported at module level: registering the command must not cost the web stack.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
from collections.abc import Sequence
from typing import Any

from vqa_distill.errors import EXIT_FATAL, EXIT_OK
from vqa_distill.paths import DEFAULT_TEACHER_PORT as DEFAULT_PORT

# Kept here rather than imported from server/config.py, whose pydantic import registering the command
# must not pay; tests/unit/test_offline_teacher_modes.py checks that they agree.
MODES = ("openai", "relay", "self-hosted")
SELF_HOSTED_CONCURRENCY = 16
SELF_HOSTED_QUEUE = 64
UNBOUNDED = "unbounded"


def _positive_int(text: str) -> int:
    """Parse a limit given on the command line: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _queue_size(text: str) -> int | str:
    """Parse ``--queue-size``: a whole number of at least 0, or ``unbounded``."""
    if text.strip().lower() == UNBOUNDED:
        return UNBOUNDED
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number or {UNBOUNDED!r}: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _alias(text: str) -> tuple[str, str]:
    """Parse ``--bill-as ALIAS=MODEL``."""
    alias, sep, model = text.partition("=")
    if not sep or not alias.strip() or not model.strip():
        raise argparse.ArgumentTypeError(f"expected ALIAS=MODEL, got {text!r}")
    return alias.strip(), model.strip()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the server's flags to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port to bind (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="environment variable holding the expected API key (default: accept any key)",
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument(
        "--jitter", type=float, default=0.0, help="extra uniform(0, JITTER) seconds per answer"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for jitter and fault probabilities")
    parser.add_argument("--faults", metavar="FILE", help="JSON or YAML file with a list of fault rules")
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="openai",
        help="what the server stands in for: OpenAI's API (default), a relay serving other vendors' "
        "models, or a self-hosted vLLM/SGLang server with a bounded batch and queue",
    )
    parser.add_argument(
        "--models",
        help="comma-separated model names to serve (default: the mode's: OpenAI's gpt-4o, gpt-4.1, gpt-5 "
        "and o-series; a relay's Qwen-VL, Gemini, Claude and GLM-4V; self-hosted Qwen2.5-VL and InternVL2.5)",
    )
    parser.add_argument(
        "--rpm", type=_positive_int, help="requests per minute per model; beyond it: 429 (default: unlimited)"
    )
    parser.add_argument(
        "--tpm", type=_positive_int, help="tokens per minute per model; beyond it: 429 (default: unlimited)"
    )
    parser.add_argument(
        "--model-lookup",
        action=argparse.BooleanOptionalAction,
        help="serve GET /v1/models/{id} (default: in openai mode only; else a plain 404)",
    )
    parser.add_argument(
        "--ratelimit-headers",
        action=argparse.BooleanOptionalAction,
        help="send x-ratelimit-* headers when --rpm/--tpm are set (default: in openai mode only)",
    )
    parser.add_argument(
        "--no-retry-after",
        dest="retry_after",
        action="store_false",
        help="answer the --rpm/--tpm 429s without Retry-After, as some relays do",
    )
    parser.add_argument(
        "--bill-as",
        metavar="ALIAS=MODEL",
        type=_alias,
        action="append",
        help="serve ALIAS and bill it by MODEL's image rule (repeatable), e.g. my-teacher=qwen-vl-max",
    )
    parser.add_argument(
        "--qwen-max-pixels",
        type=_positive_int,
        help="self-hosted Qwen2.5-VL's max_pixels, as its server was started with (default: 12845056, "
        "the processor's)",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        help=f"self-hosted: requests served at once (default {SELF_HOSTED_CONCURRENCY})",
    )
    parser.add_argument(
        "--queue-size",
        type=_queue_size,
        help=f"self-hosted: requests waiting for a slot, beyond which 503 (default {SELF_HOSTED_QUEUE}; "
        f"{UNBOUNDED!r}: never refuse, clients time out)",
    )
    parser.add_argument(
        "--latency-per-active",
        type=float,
        default=0.0,
        help="self-hosted: seconds added to a request's service time per other request in service",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request (costs throughput)")
    parser.add_argument(
        "--bill-hung-up", action="store_true",
        help="answer and bill a request whose client hung up during its latency, as a real API does",
    )
    # Internal: serve on an inherited, already-listening socket (used by process.running_teacher_server).
    parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Build the config from ``args`` and serve until interrupted; returns the exit code."""
    from pydantic import SecretStr, ValidationError

    from vqa_distill.offline_teacher.app import serve
    from vqa_distill.offline_teacher.server.config import ServerConfig
    from vqa_distill.offline_teacher.server.faults import load_fault_rules

    overrides: dict[str, Any] = {}
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            print(f"error: environment variable {args.api_key_env} is not set or empty", file=sys.stderr)
            return EXIT_FATAL
        overrides["api_key"] = SecretStr(key)
    if args.models:
        overrides["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    optional = {
        "model_lookup": args.model_lookup,
        "ratelimit_headers": args.ratelimit_headers,
        "qwen_max_pixels": args.qwen_max_pixels,
        "concurrency": args.concurrency,
    }
    overrides.update({name: value for name, value in optional.items() if value is not None})
    if args.queue_size is not None:
        overrides["queue_size"] = None if args.queue_size == UNBOUNDED else args.queue_size
    if args.bill_as:
        overrides["bill_as"] = dict(args.bill_as)
    try:
        if args.faults:
            overrides["faults"] = load_fault_rules(args.faults)
        config = ServerConfig(
            host=args.host,
            port=args.port,
            mode=args.mode,
            latency_s=args.latency,
            jitter_s=args.jitter,
            seed=args.seed,
            rpm=args.rpm,
            tpm=args.tpm,
            access_log=args.access_log,
            bill_hung_up=args.bill_hung_up,
            retry_after=args.retry_after,
            latency_per_active_s=args.latency_per_active,
            **overrides,
        )
    except (OSError, ValueError, ValidationError) as exc:  # pydantic's ValidationError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FATAL

    sock = socket.socket(fileno=args.fd) if args.fd is not None else None
    host, port = sock.getsockname()[:2] if sock is not None else (config.host, config.port)
    shown = f"[{host}]" if ":" in host else host
    print(
        f"teacher server ({config.mode}): http://{shown}:{port}/v1  "
        f"(models: {', '.join(config.served_models)}; Ctrl-C stops)",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the normal way to stop
        serve(config, sock=sock)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m vqa_distill.offline_teacher``."""
    parser = argparse.ArgumentParser(prog="python -m vqa_distill.offline_teacher", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
