"""The ``evaluate`` flow: the student answers, the judge compares, the report shows where it wins and loses.

One ``answer-locally`` task (GPU-tagged; skipped when an answers file is given), then one ``judge-pair``
run per pair and order and one ``judge-answer`` run per rubric, under the judge's rate gate and a
bound on runs in flight. A call the ledger already holds (this evaluation ran before) is read, not
asked. The run's artifacts: the summary table, the verdict with its chart, a link to ``eval.html``.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_link_artifact, acreate_markdown_artifact, acreate_table_artifact

from tasks.evaluate import answer_cases
from tasks.judge import judge_all
from vqa_distill.flow_state import fatal_errors_fail_the_run
from vqa_distill.student.judged.assemble import assemble
from vqa_distill.student.judged.inference import read_answers
from vqa_distill.student.judged.params import EvalParams
from vqa_distill.student.judged.plan import plan_judging as plan_calls
from vqa_distill.student.judged.report import EvalOutcome, summary_markdown, write_report
from vqa_distill.student.judged.setup import prepare_eval
from vqa_distill.student.judged.summary import summarize
from vqa_distill.teacher.ledger.records import Ledger

SUMMARY_KEY, VERDICT_KEY, PAGE_KEY = "eval-summary", "eval-verdict", "eval-page"


@flow(name="evaluate", log_prints=False, validate_parameters=True)
@fatal_errors_fail_the_run
async def evaluate(params: EvalParams) -> EvalOutcome:
    """Judge the student against the teacher (and the base model), per question kind; write eval.html.

    Args:
        params: The rows (a run's val.jsonl), the student (checkpoint or answers file), the judge, inference.
            The judge's API key is not a parameter: it comes from OPENAI_API_KEY or the named Secret block.
    """
    logger = get_run_logger()
    setup = prepare_eval(params)
    logger.info(
        "%d case(s) from %s; judge %s; report in %s",
        len(setup.cases),
        params.dataset,
        setup.judge.model,
        setup.out,
    )
    if params.answers_file:
        answers = read_answers(Path(params.answers_file), len(setup.cases))
    else:
        answers = answer_cases(setup, params)
    plan = plan_calls(setup.cases, answers, setup.judge, rubric=params.rubric)
    with Ledger(setup.out) as ledger:
        records, counts = await judge_all(
            plan, setup.judge, ledger, batch_wait_s=params.batch_wait_minutes * 60
        )
    results = assemble(setup.cases, answers, plan, records)
    summary = summarize(results)
    title = f"{Path(params.checkpoint or params.answers_file or '').name} judged by {setup.judge.model}"
    files = write_report(
        setup.out, results, summary, judge_model=setup.judge.model, counts=counts, title=title
    )
    await acreate_table_artifact(key=SUMMARY_KEY, table=summary.table(), description=summary.headline())
    markdown = summary_markdown(summary, files, judge_model=setup.judge.model, counts=counts)
    await acreate_markdown_artifact(key=VERDICT_KEY, markdown=markdown, description="The student judged")
    await acreate_link_artifact(key=PAGE_KEY, link=files.html_path.as_uri(), link_text=files.html_path.name)
    logger.info("%s", summary.headline())
    return EvalOutcome.of(summary, files)
