"""The evaluation's page and win-rate chart: order, escaping, counter, placeholders, and PNG bytes.

The page is checked as text here; tests/integration/test_eval_page_browser.py runs its filters in Chromium.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.font_manager  # noqa: F401  # the first import may ask fc-list for fonts: do it at collection, not in a test
import pytest
from PIL import Image

from vqa_distill.student.judged import page as page_module
from vqa_distill.student.judged.cases import EvalCase
from vqa_distill.student.judged.chart import win_rate_chart_png, win_rate_markdown
from vqa_distill.student.judged.page import render_eval_page, shown_count_text, worst_first, write_eval_page
from vqa_distill.student.judged.results import CaseResult, Outcome, PairVerdict, Pick, RateWithCI

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PICKS: dict[Outcome, Pick] = {"win": "student", "loss": "opponent", "tie": "tie"}  # both orders agree
SUMMARY = [
    {"opponent": "teacher", "win-or-tie": "0.50 [0.19, 0.81] (n=6)"},
    {"opponent": "base", "win-or-tie": "-"},
]


def result(
    index: int,
    outcome: Outcome,
    *,
    image: str,
    kind: str = "describe",
    rubric: int | None = 3,
    rouge: float = 0.5,
    student: str = "a cat",
) -> CaseResult:
    """One case with a teacher verdict of ``outcome`` (judged in both orders) and a base verdict."""
    pick: Pick = PICKS[outcome]
    case = EvalCase(
        index=index,
        image=image,
        question=f"What is in picture {index}?",
        reference="a cat on a mat",
        kind=kind,
        prompt="Describe the picture.",
        messages=[{"role": "user", "content": "<image>What is in it?"}],
    )
    return CaseResult(
        case=case,
        answers={"teacher": "a cat on a mat", "student": student, "base": "a dog"},
        degenerate={"student": None, "base": "repetition"},
        rouge_l={"student": rouge, "base": 0.1},
        exact={"student": None, "base": False},
        rubric={"student": rubric, "base": None},
        verdicts={
            "teacher": PairVerdict("teacher", outcome, (pick, pick), ("first reason", "second reason")),
            "base": PairVerdict("base", "win", (None, None), ("base degenerate", "base degenerate")),
        },
    )


@pytest.fixture
def picture(tmp_path: Path) -> str:
    path = tmp_path / "cat.png"
    Image.new("RGB", (640, 480), (200, 40, 40)).save(path)
    return str(path)


def indices(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'<article class="case[^"]*"[^>]* data-index="(\d+)"', page)]


def test_losses_come_first_then_lower_rubric_then_lower_rouge(picture: str) -> None:
    cases = [
        result(0, "win", image=picture, rubric=1),
        result(1, "tie", image=picture),
        result(2, "loss", image=picture, rubric=4, rouge=0.1),
        result(3, "loss", image=picture, rubric=2, rouge=0.9),
        result(4, "loss", image=picture, rubric=2, rouge=0.3),
        result(5, "loss", image=picture, rubric=None),  # no score (a degenerate answer): the worst
    ]
    assert [r.case.index for r in worst_first(cases)] == [5, 4, 3, 2, 1, 0]
    page = render_eval_page(cases, SUMMARY, title="Student vs teacher")
    assert indices(page) == [5, 4, 3, 2, 1, 0]
    assert re.findall(r'data-outcome="(\w+)"', page) == ["loss"] * 4 + ["tie", "win"]


def test_every_text_is_escaped(picture: str) -> None:
    evil = result(0, "loss", image=picture, student="<script>alert('x')</script>", kind='k"ind<b>')
    page = render_eval_page([evil], [{"<th>": "<td>"}], title="<i>title</i>")
    assert page.count("<script>") == 1  # the page's own filter script, nothing from an answer
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert 'data-kind="k&quot;ind&lt;b&gt;"' in page and "<b>" not in page
    assert "<i>" not in page and "&lt;i&gt;title&lt;/i&gt;" in page
    assert "<th>&lt;th&gt;</th>" in page and "<td>&lt;td&gt;</td>" in page


def test_the_page_shows_answers_scores_verdicts_and_the_summary(picture: str, tmp_path: Path) -> None:
    path = write_eval_page(
        tmp_path / "out" / "eval.html", [result(0, "tie", image=picture)], SUMMARY, title="T"
    )
    page = path.read_text(encoding="utf-8")
    assert "<th>opponent</th><th>win-or-tie</th>" in page and "<td>0.50 [0.19, 0.81] (n=6)</td>" in page
    for text in (
        "a cat on a mat",
        "a dog",
        "ROUGE-L 0.50",
        "rubric 3/5",
        "exact match: no",
        "degenerate: repetition",
    ):
        assert text in page
    assert "student shown first: tie · student shown second: tie" in page
    assert "student first: first reason" in page and "decided without a judge" in page
    assert "prompt: Describe the picture." in page
    assert "http://" not in page and "https://" not in page  # nothing to fetch


def test_the_counter_and_filters_list_what_is_there(picture: str) -> None:
    plan: list[tuple[Outcome, str]] = [("win", "b"), ("loss", "a"), ("tie", "a")]
    cases = [result(i, o, image=picture, kind=k) for i, (o, k) in enumerate(plan)]
    page = render_eval_page(cases, [], title="T")
    assert shown_count_text(2, 3) == "2 of 3 shown"
    assert '<span id="shown-count">3 of 3 shown</span>' in page
    kinds = re.search(r'<select id="kind-filter">(.*?)</select>', page)
    outcomes = re.search(r'<select id="outcome-filter">(.*?)</select>', page)
    assert kinds and re.findall(r'value="([^"]+)"', kinds.group(1)) == ["all", "a", "b"]
    assert outcomes and re.findall(r'value="([^"]+)"', outcomes.group(1)) == ["all", "win", "tie", "loss"]
    assert '" of "+cases.length+" shown"' in page  # the script writes the same words as shown_count_text


def test_an_unreadable_image_shows_a_placeholder(picture: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    cases = [
        result(0, "loss", image=str(tmp_path / "missing.jpg")),
        result(1, "tie", image=str(broken)),
        result(2, "win", image=picture),
    ]
    page = render_eval_page(cases, SUMMARY, title="T")
    assert "image unavailable: missing.jpg" in page and "image unavailable: broken.jpg" in page
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 1 and sources[0].startswith("data:image/jpeg;base64,")
    assert len(indices(page)) == 3


def test_each_distinct_image_is_decoded_once(picture: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def counting(path: str) -> str | None:
        seen.append(path)
        return None

    monkeypatch.setattr(page_module, "thumbnail_url", counting)
    render_eval_page([result(i, "win", image=picture) for i in range(4)], [], title="T")
    assert seen == [picture]


def rate(wins: int, ties: int, losses: int) -> RateWithCI:
    n = wins + ties + losses
    share = (wins + ties) / n
    return RateWithCI(wins, ties, losses, share, max(share - 0.2, 0.0), min(share + 0.2, 1.0))


@pytest.mark.parametrize(
    "by_kind",
    [
        {"describe": {"teacher": rate(2, 1, 1)}},
        {
            "describe": {"teacher": rate(2, 1, 1), "base": rate(3, 0, 1)},
            "count": {"teacher": rate(0, 0, 5), "base": rate(1, 1, 2)},
            "read": {"teacher": rate(4, 0, 0)},
            "all": {"teacher": rate(6, 1, 6), "base": rate(4, 1, 3)},
        },
        {},
    ],
    ids=["one-kind", "three-kinds-and-all", "nothing"],
)
def test_the_chart_is_a_png(by_kind: dict[str, dict[str, RateWithCI]]) -> None:
    png = win_rate_chart_png(by_kind, title="student win-or-tie rate")
    assert png.startswith(PNG_MAGIC) and len(png) > 1000
    markdown = win_rate_markdown(png, "95 % Wilson intervals")
    assert markdown.startswith("![student win-or-tie rate by kind](data:image/png;base64,")
    assert markdown.endswith("\n\n95 % Wilson intervals")


def test_blank_runs_and_empty_answers_are_shown_as_marks() -> None:
    from vqa_distill.student.judged.page import visible_text

    assert visible_text("\n" * 110 + "<|unused_7|>") == "\n[110 blank lines]\n<|unused_7|>"
    assert visible_text("a\n\nb") == "a\n\nb"  # a paragraph break stays as it is
    assert visible_text("\n\n\n") == "(empty: 3 whitespace character(s))"
    assert visible_text("") == "(empty)"
