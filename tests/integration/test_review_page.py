"""The review page renders in a real browser: headless Chromium draws every embedded thumbnail.

The page is one static file (no script, no network): a seeded sample of rows, each with its picture as a
base64 JPEG data URL, the question, the answer, the judge's score and any reason it was left out.
Chromium (Debian's ``chromium`` package) loads it from disk; the test reads back each image's decoded
width from the DOM and finds each picture's colour in a screenshot.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.support.chromium import CHROMIUM, chromium
from tests.support.qa_helpers import QA_PICTURES, count_of, qa_images, qa_params, read_artifacts
from vqa_distill.cli.flow_runs import run_generate_flow
from vqa_distill.dataset.review import THUMBNAIL_SIDE_PX

SAMPLE = 6
# Written into a copy of the page: each image's decoded width, once everything has loaded.
PROBE = (
    '<script>window.addEventListener("load",()=>{for(const i of document.images)'
    'i.setAttribute("data-natural-width",i.naturalWidth);document.body.setAttribute("data-loaded","yes")})</script>'
)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs headless Chromium at /usr/bin/chromium (Debian: apt-get install chromium)"
)


def has_colour(screenshot: Image.Image, colour: tuple[int, int, int], tolerance: int = 40, least: int = 200) -> bool:
    """Return whether at least ``least`` pixels of the screenshot are within ``tolerance`` of ``colour``."""
    near = 0
    for count, pixel in screenshot.convert("RGB").getcolors(maxcolors=1 << 24) or []:
        if all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True)):
            near += count
    return near >= least


def test_the_review_page_draws_its_thumbnails_in_chromium(tmp_path: Path, teacher: Any, api_key_env: str) -> None:
    pictures = qa_images(tmp_path / "images", 4, prefix="look")
    teacher.set_faults([{"kind": "refuse", "match_image_size": "72x48"}])
    params = qa_params(
        tmp_path / "images", tmp_path / "out", teacher.base_url, review=SAMPLE, judge_model="gpt-4o", seed=7
    )
    outcome = run_generate_flow(params, show_progress=False)
    assert outcome.summary is not None and outcome.summary.dataset is not None
    page_path = tmp_path / "out" / "review.html"
    page = page_path.read_text(encoding="utf-8")

    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == SAMPLE and all(s.startswith("data:image/jpeg;base64,") for s in sources)
    assert "http://" not in page and "https://" not in page and "<script" not in page  # one static file
    assert page.count("score ") >= 1

    # The same seed draws the same sample: a rerun (nothing asked) writes the same page.
    run_generate_flow(params, show_progress=False)
    assert page_path.read_text(encoding="utf-8") == page

    probed = tmp_path / "probe.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = chromium(tmp_path, "--dump-dom", probed.as_uri())
    assert 'data-loaded="yes"' in dom.stdout, dom.stderr[-2000:]
    widths = [int(w) for w in re.findall(r'data-natural-width="(\d+)"', dom.stdout)]
    assert len(widths) == SAMPLE and all(0 < w <= THUMBNAIL_SIDE_PX for w in widths)

    shot = tmp_path / "review.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,1600", "--hide-scrollbars", page_path.as_uri())
    drawn = Image.open(shot)
    shown = {name for name in re.findall(r'alt="([^"]+)"', page)}
    colours = {path.name: QA_PICTURES[index][1] for index, path in enumerate(pictures)}
    top = [name for name in re.findall(r'alt="([^"]+)"', page)][:3]  # the first rows fit the window
    assert shown and all(has_colour(drawn, colours[name]) for name in top)

    artifact = read_artifacts(outcome.flow_run_id or "")["teacher-review"]
    assert str(page_path.resolve()) in artifact
    assert count_of(read_artifacts(outcome.flow_run_id or "")["teacher-quality"], "left out: refusal") == 3
