"""The evaluation's page works in a real browser: headless Chromium decodes every thumbnail and runs the filters.

The page is written from CaseResults built here (real JPEG and PNG pictures, two kinds, every outcome,
one unreadable picture). A probe script, added to a copy of the page, records the DOM after load and
after each filter change into a ``<pre>``, which ``--dump-dom`` prints (as test_review_page.py does).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.support.chromium import CHROMIUM, chromium
from vqa_distill.dataset.review import THUMBNAIL_SIDE_PX
from vqa_distill.student.judged.cases import EvalCase
from vqa_distill.student.judged.page import write_eval_page
from vqa_distill.student.judged.results import CaseResult, Outcome, PairVerdict, Pick

PICKS: dict[Outcome, Pick] = {"win": "student", "loss": "opponent", "tie": "tie"}  # both orders agree
# Records each picture's state, then sets the filters one after another and records what is shown.
PROBE = """<script>window.addEventListener("load",()=>{
const cases=Array.from(document.querySelectorAll(".case"));
const shown=()=>cases.filter(c=>getComputedStyle(c).display!=="none").map(c=>[c.dataset.kind,c.dataset.outcome]);
const out={images:Array.from(document.images).map(i=>[i.complete,i.naturalWidth]),
 placeholders:document.querySelectorAll(".noimage").length,first:cases[0].dataset.outcome,title:document.title,steps:[]};
const record=l=>out.steps.push({label:l,shown:shown(),counter:document.getElementById("shown-count").textContent});
const set=(id,v)=>{const s=document.getElementById(id);s.value=v;s.dispatchEvent(new Event("change"));};
record("all");set("kind-filter","count");record("count");set("outcome-filter","loss");record("count+loss");
set("kind-filter","all");record("loss");set("outcome-filter","all");record("all again");
const pre=document.createElement("pre");pre.id="probe";pre.textContent=JSON.stringify(out);document.body.appendChild(pre);
});</script>"""

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs headless Chromium at /usr/bin/chromium (Debian: apt-get install chromium)",
)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """No Prefect server: the page is plain data and a browser (replaces tests/conftest.py's session server)."""
    yield None


def case_result(index: int, image: Path, kind: str, outcome: Outcome) -> CaseResult:
    """A case judged against the teacher (both orders agree with ``outcome``) and the base."""
    pick: Pick = PICKS[outcome]
    case = EvalCase(
        index=index,
        image=str(image),
        question=f"Question {index} about {image.name}?",
        reference=f"the teacher's answer {index}",
        kind=kind,
        prompt=f"{kind} prompt",
        messages=[{"role": "user", "content": f"<image>Question {index}?"}],
    )
    return CaseResult(
        case=case,
        answers={
            "teacher": case.reference,
            "student": f"<script>document.title='pwned {index}'</script>",
            "base": "?",
        },
        degenerate={"student": None, "base": None},
        rouge_l={"student": 0.1 * index, "base": 0.2},
        exact={"student": None, "base": None},
        rubric={"student": 1 + index % 5, "base": 3},
        verdicts={
            "teacher": PairVerdict("teacher", outcome, (pick, pick), ("why first", "why second")),
            "base": PairVerdict("base", "tie", ("student", "opponent"), ("A", "B")),
        },
    )


def pictures(folder: Path) -> list[Path]:
    """Two JPEGs, one PNG with transparency, and a file that is no picture at all."""
    folder.mkdir()
    paths = [folder / "red.jpg", folder / "green.jpg", folder / "blue.png", folder / "broken.jpg"]
    Image.new("RGB", (800, 600), (220, 30, 30)).save(paths[0], quality=90)
    Image.new("RGB", (300, 500), (30, 200, 30)).save(paths[1], quality=90)
    Image.new("RGBA", (120, 90), (30, 30, 220, 128)).save(paths[2])
    paths[3].write_bytes(b"this is not a jpeg")
    return paths


def probe(tmp_path: Path, page: Path) -> dict[str, Any]:
    """Load a probed copy of ``page`` in Chromium and return what the probe recorded."""
    probed = tmp_path / "probe.html"
    probed.write_text(
        page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8"
    )
    dom = chromium(tmp_path, "--dump-dom", probed.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.DOTALL)
    assert found, dom.stderr[-2000:]
    recorded: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return recorded


def test_the_eval_page_decodes_its_thumbnails_and_filters_in_chromium(tmp_path: Path) -> None:
    red, green, blue, broken = pictures(tmp_path / "images")
    plan: list[tuple[Path, str, Outcome]] = [  # (picture, kind, outcome vs teacher)
        (red, "describe", "win"),
        (green, "describe", "tie"),
        (blue, "count", "loss"),
        (red, "count", "win"),
        (green, "count", "tie"),
        (blue, "describe", "loss"),
        (broken, "count", "loss"),
    ]
    cases = [case_result(i, image, kind, outcome) for i, (image, kind, outcome) in enumerate(plan)]
    summary = [{"opponent": "teacher", "win-or-tie": "0.57"}, {"opponent": "base", "win-or-tie": "1.00"}]
    page = write_eval_page(tmp_path / "eval.html", cases, summary, title="Student vs teacher")
    text = page.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text  # one self-contained file

    seen = probe(tmp_path, page)
    assert len(seen["images"]) == 6 and seen["placeholders"] == 1  # the unreadable picture: a placeholder
    assert all(complete and 0 < width <= THUMBNAIL_SIDE_PX for complete, width in seen["images"])
    assert seen["first"] == "loss"
    assert seen["title"] == "Student vs teacher"  # the answers' <script> is text: it never ran

    steps = {step["label"]: step for step in seen["steps"]}
    assert steps["all"]["counter"] == "7 of 7 shown" and len(steps["all"]["shown"]) == 7
    assert [o for _, o in steps["all"]["shown"]][:3] == ["loss"] * 3  # worst first
    assert {k for k, _ in steps["count"]["shown"]} == {"count"} and steps["count"][
        "counter"
    ] == "4 of 7 shown"
    assert (
        steps["count+loss"]["shown"] == [["count", "loss"]] * 2
        and steps["count+loss"]["counter"] == "2 of 7 shown"
    )
    assert {o for _, o in steps["loss"]["shown"]} == {"loss"} and steps["loss"]["counter"] == "3 of 7 shown"
    assert steps["all again"]["counter"] == "7 of 7 shown"
