"""The offline teacher as a judge, through the real ``openai`` client: comparisons and rubric scores.

The requests are the client's own (``teacher.qa.pairwise``, ``teacher.qa.judge``); the offline teacher
reads them like a model would, from the prompt text and the schema, and checks each answer against the
picture it was sent.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.offline_teacher_helpers import async_client, data_url, encode, picture, vision_messages
from vqa_distill.offline_teacher.process import TeacherServerHandle
from vqa_distill.teacher.qa.judge import JUDGE_SYSTEM, judge_format, judge_prompt, parse_judgement
from vqa_distill.teacher.qa.pairwise import PAIRWISE_SYSTEM, pairwise_format, pairwise_prompt, parse_pairwise

JUDGE = "gpt-4o"
QUESTION = "What does this picture show?"
RIGHT = "A 320x240 picture, mostly blue, with a white corner and a red disc."  # blue, white, red; 320x240
WRONG = "A picture of a green field under a yellow sky."


@pytest.fixture
def server(teacher: Any) -> TeacherServerHandle:
    """The session's key-protected server (started by ``running_teacher_server``), reset for this test."""
    assert isinstance(teacher, TeacherServerHandle)
    return teacher


@pytest.fixture(scope="module")
def png_url() -> str:
    """A lossless picture: mostly blue (40, 90, 200), a white rectangle and a red ellipse."""
    return data_url(encode(picture((320, 240), (40, 90, 200)), "PNG"), "image/png")


async def _completion(server: TeacherServerHandle, url: str, system: str, prompt: str, fmt: Any) -> str:
    async with async_client(server) as client:
        completion = await client.chat.completions.create(
            model=JUDGE,
            messages=vision_messages(url, prompt, system=system),
            response_format=fmt,
            temperature=0,
        )
    assert completion.choices[0].finish_reason == "stop"
    return completion.choices[0].message.content or ""


async def _winner(server: TeacherServerHandle, url: str, first: str, second: str) -> tuple[str, str]:
    text = await _completion(
        server, url, PAIRWISE_SYSTEM, pairwise_prompt(QUESTION, first, second), pairwise_format()
    )
    verdict = parse_pairwise(text)
    assert not isinstance(verdict, str), verdict
    return verdict.winner, verdict.reason


async def _score(server: TeacherServerHandle, url: str, answer: str) -> int:
    text = await _completion(server, url, JUDGE_SYSTEM, judge_prompt(QUESTION, answer), judge_format())
    judgement = parse_judgement(text)
    assert not isinstance(judgement, str), judgement
    return judgement.score


async def test_a_right_answer_beats_a_wrong_one_in_either_order(
    server: TeacherServerHandle, png_url: str
) -> None:
    forwards, backwards = (
        await _winner(server, png_url, RIGHT, WRONG),
        await _winner(server, png_url, WRONG, RIGHT),
    )
    assert forwards[0] == "A" and backwards[0] == "B"
    assert "main colour blue" in forwards[1] and "colour green" in forwards[1]
    assert forwards == await _winner(server, png_url, RIGHT, WRONG)  # the same inputs, the same verdict


async def test_equal_answers_tie(server: TeacherServerHandle, png_url: str) -> None:
    assert (await _winner(server, png_url, RIGHT, RIGHT))[0] == "tie"
    assert (await _winner(server, png_url, RIGHT, RIGHT.replace("A 320x240 picture", "A 320 x 240 image")))[
        0
    ] == "tie"
    assert (await _winner(server, png_url, "It is a picture.", "Something, shown clearly."))[0] == "tie"


async def test_the_rubric_scores_a_right_answer_high_and_a_wrong_one_low(
    server: TeacherServerHandle, png_url: str
) -> None:
    assert await _score(server, png_url, RIGHT) >= 4
    assert await _score(server, png_url, WRONG) <= 2
    other = data_url(
        encode(picture((320, 240), (50, 160, 60)), "PNG"), "image/png"
    )  # the same words, a green picture
    assert await _score(server, other, RIGHT) <= 3
    assert (await _winner(server, other, RIGHT, RIGHT.replace("blue", "green")))[0] == "B"
