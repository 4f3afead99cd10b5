"""``vqa-distill eval``: judge the student against the teacher (and the base model) through the ``evaluate`` flow.

The flags are generated from EvalParams, so the CLI and the deployment's form share names, defaults
and help texts. The verdict line and the report's paths are printed last.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pydantic import ValidationError

from vqa_distill.cli.student import argument_kwargs
from vqa_distill.errors import EXIT_FATAL, EXIT_OK
from vqa_distill.student.judged.params import EvalParams

EVAL_EPILOG = """\
Each (image, question) of the dataset is answered by the student (and the base model), then the judge
compares the student's answer with the teacher's and with the base model's, each pair in both orders,
and scores every answer 1-5. Degenerate answers (empty, looping, the question copied) lose without a
judge call. Judge calls go through the ledger in the report folder: a second eval pays for none.
The judge's key: OPENAI_API_KEY, or --api-key-block. Exit codes: 0 judged; 3 refused or failed."""


def register(subparsers: Any) -> None:
    """Register ``eval``."""
    parser = subparsers.add_parser(
        "eval",
        help="judge the student against the teacher, pairwise and per question kind; writes eval.html",
        description=__doc__,
        epilog=EVAL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for name, field in EvalParams.model_fields.items():
        flags = [f"--{name.replace('_', '-')}"] + ([f"--{name}"] if "_" in name else [])
        parser.add_argument(*flags, dest=name, default=argparse.SUPPRESS, **argument_kwargs(name, field))
    parser.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    """Run the ``evaluate`` flow in this process; print the verdict and where the page is."""
    try:
        params = EvalParams(**{k: v for k, v in vars(args).items() if k in EvalParams.model_fields})
    except ValidationError as exc:
        print(f"error: invalid eval options:\n{exc}", file=sys.stderr)
        return EXIT_FATAL
    from vqa_distill.cli.prefect_api import use_prefect_api
    from vqa_distill.errors import FatalRunError
    from vqa_distill.flow_state import run_flow
    from vqa_distill.student.judged.setup import prepare_eval

    try:
        prepare_eval(params)  # bad input is one plain line here, before a Prefect server or a flow run
        use_prefect_api()
    except FatalRunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FATAL
    from flows.evaluate import evaluate
    from vqa_distill.student.judged.report import EvalOutcome

    run = run_flow(evaluate(params, return_state=True))
    if isinstance(run.result, BaseException):
        print(f"error: {run.result}", file=sys.stderr)
        return EXIT_FATAL
    outcome = run.result if isinstance(run.result, EvalOutcome) else EvalOutcome(**run.result)
    print(outcome.headline)
    print(f"page: {outcome.html_path}")
    print(f"numbers: {outcome.json_path}")
    return EXIT_OK
