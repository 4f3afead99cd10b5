"""Run the generate flow in this process and turn its final state into a summary or a fatal error."""

from __future__ import annotations

from dataclasses import dataclass

from vqa_distill import progress
from vqa_distill.errors import FatalRunError
from vqa_distill.flow_state import run_flow
from vqa_distill.progress.text import progress_line
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.run.summary import RunSummary


@dataclass
class FlowOutcome:
    """The run's summary, or the reason it could not proceed."""

    summary: RunSummary | None
    fatal: str | None = None
    flow_run_id: str | None = None


def run_generate_flow(params: TeacherParams, *, show_progress: bool = True, only_keys: list[str] | None = None) -> FlowOutcome:
    """Run ``generate`` with a progress bar; fatal errors, and a Prefect server lost mid-run, come back as text."""
    from flows.generate import generate
    from vqa_distill.cli.api_outage import ApiWatch

    watch = ApiWatch(params.out)
    with _progress_bar(show_progress), watch:
        run = run_flow(generate(params, only_keys=only_keys, return_state=True))
    if watch.message:  # the run ended (or could not start) without its server: the ledger keeps the answers
        return FlowOutcome(summary=None, fatal=watch.message)
    if isinstance(run.result, RunSummary):
        return FlowOutcome(summary=run.result, flow_run_id=run.flow_run_id)
    if isinstance(run.result, FatalRunError):
        return FlowOutcome(summary=None, fatal=str(run.result), flow_run_id=run.flow_run_id)
    if isinstance(run.result, BaseException):
        raise run.result
    return FlowOutcome(summary=RunSummary.model_validate(run.result), flow_run_id=run.flow_run_id)


class _progress_bar:
    """A rich progress bar fed by the run's tally: done/total, then spend, projected total and ETA.

    The words come from ``progress_line``, the same function behind the progress artifact's
    description, so the terminal and the Prefect UI agree.
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __enter__(self) -> None:
        if not self.enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._bar = Progress(
            TextColumn("asking the teacher"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[line]}"),
            transient=False,
        )  # fmt: skip
        self._task = self._bar.add_task("ask", total=None, line="")
        self._bar.start()
        progress.add_listener(self._update)

    def _update(self, tally: progress.Tally) -> None:
        snapshot = tally.snapshot()
        self._bar.update(self._task, completed=snapshot.done, total=snapshot.total, line=progress_line(snapshot))

    def __exit__(self, *exc_info: object) -> None:
        if self.enabled:
            progress.remove_listener(self._update)
            self._bar.stop()
