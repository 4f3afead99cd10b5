"""A fatal run error ends a flow Failed in one line; the flow's parameters form is unchanged."""

from __future__ import annotations

import inspect
import logging

import pytest

from vqa_distill.errors import ConfigError
from vqa_distill.flow_state import fatal_errors_fail_the_run
from vqa_distill.teacher.params import TeacherParams


@fatal_errors_fail_the_run
async def refusing(params: TeacherParams, only_keys: list[str] | None = None) -> int:
    """Refuse with a user error, or raise a bug when asked for one key."""
    if only_keys:
        raise KeyError(only_keys[0])
    raise ConfigError("the API key was refused: check OPENAI_API_KEY")


async def test_a_fatal_error_becomes_a_failed_state_and_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="vqa_distill"):
        state = await refusing(TeacherParams(images="i", out="o", prompts=["x"]))
    assert state.is_failed() and state.message == "the API key was refused: check OPENAI_API_KEY"
    assert isinstance(await state.aresult(raise_on_failure=False), ConfigError)
    assert [record.getMessage() for record in caplog.records] == ["the API key was refused: check OPENAI_API_KEY"]
    assert not any(record.exc_info for record in caplog.records)


async def test_a_bug_is_not_swallowed() -> None:
    with pytest.raises(KeyError):
        await refusing(TeacherParams(images="i", out="o", prompts=["x"]), only_keys=["k"])


def test_the_signature_keeps_names_defaults_and_evaluated_types() -> None:
    signature = inspect.signature(refusing)
    assert list(signature.parameters) == ["params", "only_keys"]
    assert signature.parameters["params"].annotation is TeacherParams  # not the string "TeacherParams"
    assert signature.parameters["only_keys"].default is None
    assert refusing.__doc__ and refusing.__doc__.startswith("Refuse with a user error")
