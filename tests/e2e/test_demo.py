"""``vqa-distill demo`` as a user runs it: the sample images, the offline teacher, the tiny student on the CPU.

The demo must end with a student that answers held-out images like the teacher, well ahead of the
untrained base model, and say so on stdout. About 2-3 minutes on 2 cores: it is the whole demo.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.helpers import run_cli
from vqa_distill.errors import EXIT_OK

SCORES = re.compile(
    r"^student ROUGE-L (?P<student>\d+\.\d+) vs base (?P<base>\d+\.\d+) \([+-]\d+\.\d+\) on 3 held-out image\(s\); "
    r"loss (?P<first>\d+\.\d+) → (?P<last>\d+\.\d+) over (?P<steps>\d+) steps$",
    re.MULTILINE,
)


def test_demo_student_learns_to_answer_held_out_images_like_the_teacher(tmp_path: Path) -> None:
    result = run_cli("demo", "--out", str(tmp_path / "run"), "--model-dir", str(tmp_path / "model"), timeout=900)
    assert result.returncode == EXIT_OK, result.stdout[-3000:] + result.stderr[-3000:]
    found = SCORES.search(result.stdout)
    assert found, result.stdout[-3000:]
    student, base = float(found["student"]), float(found["base"])
    assert student - base >= 0.2, found.group(0)
    assert float(found["last"]) < float(found["first"]) / 4 and int(found["steps"]) == 120
    assert "teacher: 12 answered now, 0 already answered, 0 failed" in result.stdout
    # The closing example shows the three answers side by side.
    assert re.search(r"^  teacher: Overall: The image is a ", result.stdout, re.MULTILINE), result.stdout[-2000:]
    assert re.search(r"^  student: ", result.stdout, re.MULTILINE) and re.search(r"^  base: ", result.stdout, re.MULTILINE)
    assert (tmp_path / "model" / "config.json").is_file()
    assert list((tmp_path / "run" / "checkpoints").glob("v*/checkpoint-120/model.safetensors"))
