"""``vqa-distill generate`` (ask the teacher, build the dataset) and ``vqa-distill dataset`` (rebuild only).

Options come from, in rising priority: defaults, ``--config FILE`` (TOML/YAML/JSON), flags. The
original script's flags (``--image_folder_path``, ``--output_json_path``, ``--max_retries``) still work.

Exit codes: 0 every request answered; 2 the run finished but some requests failed (outputs written,
see failed.jsonl); 3 the run could not proceed (bad key, unreachable endpoint, unknown model, bad options).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from vqa_distill.cli.prefect_api import use_prefect_api
from vqa_distill.errors import EXIT_FATAL, EXIT_OK, EXIT_SOME_FAILED

EXIT_CODES_HELP = (
    "exit codes: 0 all answered; 2 finished with failed images (see failed.jsonl); "
    "3 could not proceed (bad key, endpoint, model or options)"
)

# flag dest -> TeacherParams field, for flags whose name differs from the field.
_FIELD_OF = {"prompt": "prompts"}


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the teacher options; every default is None so that only given flags override the config."""
    add = parser.add_argument
    add("--config", help="TOML, YAML or JSON file with these options (flags override it)")
    add("--images", "--image_folder_path", "--image-folder-path", dest="images", help="folder of images (recursive)")
    add("--out", help="run folder for ledger, responses.jsonl, failed.jsonl, train.jsonl (default: next to "
        "--output_json_path)")
    add("--output_json_path", "--output-json-path", dest="output_json_path",
        help="also write the answers file (responses, one JSON record per line) here")
    add("--prompt", action="append", dest="prompt", help="a prompt asked of every image (repeatable)")
    add("--prompt-file", "--prompt_file", dest="prompt_file", help="file with one prompt per line (# comments)")
    add("--system", help="system prompt sent with every request")
    add("--model", help="teacher model (default gpt-4o-mini)")
    add("--base-url", "--base_url", dest="base_url", help="OpenAI-compatible endpoint URL (default: OpenAI)")
    add("--api-key-block", dest="api_key_block",
        help="Prefect Secret block holding the API key (default: the OPENAI_API_KEY environment variable)")
    add("--rpm", type=int, help="requests per minute allowed (default 500)")
    add("--tpm", type=int, help="tokens per minute allowed (default 200000)")
    add("--no-rate-limits", dest="rate_limits", action="store_const", const=False,
        help="no requests or tokens per minute at all: for a self-hosted server, paced by --concurrency alone")
    add("--concurrency", type=_concurrency,
        help="requests in flight: a number, or auto (the default) to find the endpoint's knee from latency and "
        "overload answers while it sends no rate-limit headers (at most 32)")
    add("--judge-rpm", "--judge_rpm", dest="judge_rpm", type=int,
        help="requests per minute allowed for a judge of another model (default: --rpm)")
    add("--judge-tpm", "--judge_tpm", dest="judge_tpm", type=int,
        help="tokens per minute allowed for a judge of another model (default: --tpm)")
    add("--max-retries", "--max_retries", dest="max_retries", type=int,
        help="retries of a transient failure: 429, 5xx, timeout, bad JSON (default 3)")
    add("--retry-delay", "--retry_delay", dest="retry_delay", type=float,
        help="first retry delay in seconds; doubles per retry, jittered (default 1)")
    add("--timeout", type=float, help="seconds to wait for one answer (default 60)")
    add("--max-pixels", "--max_pixels", dest="max_pixels", type=int,
        help="downscale images to at most this many pixels before sending (default 1536*1536)")
    add("--detail", choices=["auto", "low", "high"], help="image detail level (default auto)")
    add("--temperature", type=float, help="sampling temperature (not sent to reasoning models)")
    add("--max-tokens", "--max_tokens", dest="max_tokens", type=int,
        help="answer length cap (default 1024; sent as max_completion_tokens to reasoning models)")
    add("--reasoning-effort", "--reasoning_effort", dest="reasoning_effort",
        choices=["minimal", "low", "medium", "high"],
        help="reasoning effort, sent to reasoning models only (o-series and gpt-5; minimal is gpt-5's, "
        "o-series get low)")
    add("--max-retry-after", "--max_retry_after", dest="max_retry_after", type=float,
        help="longest wait in seconds the endpoint may ask for (Retry-After, rate-limit reset); a longer "
        "one fails the attempt, which is retried per --max-retries (default 60)")
    add("--val-ratio", "--val_ratio", dest="val_ratio", type=float, help="share of images held out in val.jsonl")
    add("--seed", type=int, help="seed of the train/val split (default 42)")
    add("--questions", type=int,
        help="have the teacher write N questions per image x prompt (the prompt guides them), then answer each "
        "on its own; default: each prompt is the question")
    add("--question-style", "--question_style", dest="question_style",
        choices=["mixed", "conversation", "detail", "reasoning"],
        help="kind of questions: conversation (short facts), detail (descriptions), reasoning (why, what if), "
        "or mixed (default)")
    add("--conversation", dest="conversation", action="store_const", const=True,
        help="one multi-turn row per image (its questions in turn) instead of one row per question")
    add("--judge-model", "--judge_model", dest="judge_model",
        help="model that scores every (image, question, answer) from 1 to 5 (scores are cached like answers)")
    add("--min-score", "--min_score", dest="min_score", type=int,
        help="leave out rows the judge scored lower (1-5; needs --judge-model)")
    add("--review", type=int,
        help="rows sampled into review.html in the run folder, with thumbnails (default 50; 0: no page)")
    add("--no-preflight", dest="preflight", action="store_const", const=False,
        help="skip the check of endpoint, key and model (GET /models/{model}, else one tiny call)")
    add("--batch", action="store_const", const=True,
        help="submit through the Batch API (half price, answers within 24 h) and return at once with the batch "
        "ids; `vqa-distill collect` records the answers and builds the dataset")
    add("--shards", type=int,
        help="split the images into N parts, each a teacher-shard run that any cpu-pool worker takes (needs "
        "`vqa-distill deploy` and workers); this run waits and builds the dataset once (default 1: ask here)")
    add("--shard-attempts", "--shard_attempts", dest="shard_attempts", type=int,
        help="runs of one shard at most when its worker crashes (default 3)")
    add("--shard-deadline-h", "--shard_deadline_h", dest="shard_deadline_h", type=float,
        help="hours the parent waits for its shards at most; a shard not final by then fails the run (default 24)")
    add("--no-progress", action="store_true", help="no progress bar")
    add("--verbose", "-v", action="store_true",
        help="print every task run's log line here too (the Prefect UI always has them)")


def register(subparsers: Any) -> None:
    """Register ``generate`` and ``dataset``."""
    generate = subparsers.add_parser(
        "generate",
        help="ask the teacher about every image and build the training dataset",
        description=__doc__,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_generate_arguments(generate)
    generate.set_defaults(func=run_generate)
    dataset = subparsers.add_parser("dataset", help="rebuild train.jsonl/val.jsonl from a run folder's ledger")
    dataset.add_argument("--out", required=True, help="run folder holding ledger.sqlite")
    dataset.add_argument("--val-ratio", "--val_ratio", dest="val_ratio", type=float, default=0.0)
    dataset.add_argument("--seed", type=int, default=42)
    dataset.set_defaults(func=run_dataset)


def _concurrency(value: str) -> int | str:
    """Parse ``--concurrency``: ``auto`` or a whole number."""
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {value!r}") from None


def params_from_args(args: argparse.Namespace) -> Any:
    """Merge config file and flags into TeacherParams (raises ConfigError)."""
    from vqa_distill.errors import ConfigError
    from vqa_distill.teacher.params import build_params, load_config_file

    values: dict[str, Any] = load_config_file(args.config) if args.config else {}
    skip = {"config", "command", "func", "no_progress", "output_json_path", "verbose", "ledger_url"}
    for name, value in vars(args).items():
        if name not in skip and value is not None:
            values[_FIELD_OF.get(name, name)] = value
    if "out" not in values and args.output_json_path:
        values["out"] = str(Path(args.output_json_path).resolve().parent)
    for required in ("images", "out"):
        if required not in values:
            raise ConfigError(f"missing --{required} (or '{required}' in the config file)")
    return build_params(values).with_absolute_paths()


def run_generate(args: argparse.Namespace) -> int:
    """Run the generate flow in this process with a progress bar; return the exit code."""
    if not args.verbose:
        # One line per image would bury the progress bar: the terminal shows warnings and errors,
        # the Prefect API (and UI) still receives every log line.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    from vqa_distill.errors import FatalRunError

    try:
        params = params_from_args(args)
        use_prefect_api()
    except FatalRunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FATAL
    from vqa_distill.cli.flow_runs import run_generate_flow

    outcome = run_generate_flow(params, show_progress=not args.no_progress)
    if outcome.fatal:
        print(f"error: {outcome.fatal}", file=sys.stderr)
        return EXIT_FATAL
    assert outcome.summary is not None
    if args.output_json_path:
        import shutil

        shutil.copyfile(Path(params.out) / "responses.jsonl", args.output_json_path)
    print_summary(outcome.summary)
    if outcome.summary.batch is not None:
        from vqa_distill.cli.batch import print_submitted

        print_submitted(outcome.summary)
    return EXIT_SOME_FAILED if outcome.summary.failed else EXIT_OK


def print_summary(summary: Any) -> None:
    """Print the run summary and the failed requests as tables."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"teacher run: {summary.out}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for row in summary.table_rows():
        table.add_row(row["metric"], row["value"])
    console.print(table)
    if summary.failed_items:
        failed = Table(title="without a usable answer")
        for column in ("image", "status", "attempts", "reason"):
            failed.add_column(column)
        for item in summary.failed_items:
            failed.add_row(item.image, item.status, str(item.attempts), item.reason)
        console.print(failed)
    dataset = summary.dataset
    if dataset is not None and dataset.quality is not None:
        gates = Table(title=f"quality gates (rows left out: {dataset.rejected_path})")
        gates.add_column("rows")
        gates.add_column("count", justify="right")
        gates.add_row("kept", str(dataset.quality.kept))
        for reason, count in sorted(dataset.quality.rejected.items()):
            gates.add_row(f"left out: {reason}", str(count))
        console.print(gates)
    if dataset is not None and dataset.review_path:
        console.print(f"review page: {dataset.review_path}")


def run_dataset(args: argparse.Namespace) -> int:
    """Rebuild the dataset from the ledger alone: no call is made."""
    from vqa_distill.dataset.build import build_dataset
    from vqa_distill.teacher.ledger.records import KIND_QUESTIONS, LEDGER_FILE, Ledger, ledger_exists

    if not ledger_exists(args.out):
        print(f"error: no {LEDGER_FILE} in {args.out}", file=sys.stderr)
        return EXIT_FATAL
    with Ledger(args.out) as ledger:
        ledger.export()
        report = build_dataset(ledger, args.out, val_ratio=args.val_ratio, seed=args.seed)
        if any(record.kind == KIND_QUESTIONS for record in ledger.records()):
            print(
                "warning: this run folder holds generated questions: its rows were rebuilt from every answer, "
                "without the quality gates; rerun `generate` with the same options to apply them (it asks nothing)",
                file=sys.stderr,
            )
    print(report.model_dump_json(indent=2))
    return EXIT_OK
