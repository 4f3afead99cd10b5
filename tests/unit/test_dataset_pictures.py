"""One picture for teacher and student: a dataset row points at the image as the teacher was sent it.

ms-swift's loader (``swift.template.vision_utils.load_image``) is ``Image.open(path).convert("RGB")``:
given the original files it would read the phone photo sideways, the glass dark and the X-ray white.
The copies live in the run folder, named by content, and a rebuild reuses them without decoding.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from tests.support.tricky_images import ALPHA, ROTATED, SIXTEEN_BIT, mean_grey, sent_to_teacher, tricky_images
from vqa_distill.dataset import pictures
from vqa_distill.dataset.build import build_dataset, read_jsonl
from vqa_distill.teacher.endpoint.models import model_spec
from vqa_distill.teacher.endpoint.request import request_key
from vqa_distill.teacher.images.budget import PixelBudget
from vqa_distill.teacher.images.discovery import file_sha256
from vqa_distill.teacher.ledger.records import STATUS_ANSWERED, Ledger, TeacherRecord
from vqa_distill.teacher.params import DEFAULT_MAX_PIXELS

SMALL_BUDGET = 64 * 64  # under every test image's size: the teacher is sent a downscaled picture
TILES_MODEL = "gpt-4o-mini"  # sent at the run's budget as it is
GRID_MODEL = "qwen-vl-max"  # sent at the size Qwen's processor keeps: sides a multiple of 28


def student_loader() -> Callable[[str], Image.Image]:
    """What ms-swift's ``load_image`` does with a path (``swift/template/vision_utils.py``); the real one is
    called by tests/integration/test_student_sees_teacher_pixels.py (importing ms-swift starts a child process)."""

    def load_image(path: str) -> Image.Image:
        image = Image.open(path)
        return image.convert("RGB") if image.mode != "RGB" else image

    return load_image


def answered(image: Path, budget: int, model: str = TILES_MODEL) -> TeacherRecord:
    """A ledger record of ``model``'s answer about ``image``, asked in a run of pixel budget ``budget``."""
    sha, prompt, params = file_sha256(image), "Describe it.", {"detail": "auto", "max_pixels": budget}
    return TeacherRecord(
        key=request_key(sha256=sha, prompt=prompt, system=None, model=model, params=params), status=STATUS_ANSWERED,
        image_path=str(image), rel_path=image.name, sha256=sha, prompt=prompt, system=None, model=model,
        params=params, answer=f"About {image.name}.", finish_reason="stop",
    )  # fmt: skip


def build(
    out: Path, images: dict[str, Path], budget: int, model: str = TILES_MODEL, **options: object
) -> tuple[dict[str, str], object]:
    """Record an answer per image, build the dataset; return each image's row picture by name, and the report."""
    with Ledger(out) as ledger:
        for image in images.values():
            ledger.record(answered(image, budget, model))
        report = build_dataset(ledger, out, **options)  # type: ignore[arg-type]
    rows = read_jsonl(out / "train.jsonl")
    by_answer = {row["messages"][-1]["content"]: row["images"][0] for row in rows}
    return {name: by_answer[f"About {name}."] for name in images}, report


@pytest.mark.parametrize(
    ("model", "budget"),
    [(TILES_MODEL, DEFAULT_MAX_PIXELS), (TILES_MODEL, SMALL_BUDGET), (GRID_MODEL, DEFAULT_MAX_PIXELS)],
    ids=["full-size", "downscaled", "on-qwens-grid"],
)
def test_the_student_loads_the_pixels_the_teacher_was_sent(tmp_path: Path, model: str, budget: int) -> None:
    images = tricky_images(tmp_path / "images")
    originals = {name: path.read_bytes() for name, path in images.items()}
    load = student_loader()
    row_pictures, _ = build(tmp_path / "out", images, budget, model)
    sent_at = model_spec(model).budget(budget)  # what the teacher's preparation is given for this model
    differences = []
    for name, picture in row_pictures.items():
        teacher, student = sent_to_teacher(images[name], sent_at), load(picture)
        if (student.size, student.tobytes()) != (teacher.size, teacher.tobytes()):
            differences.append(
                f"{name}: the student reads {student.size}, mean grey {mean_grey(student):.0f}; "
                f"the teacher saw {teacher.size}, mean grey {mean_grey(teacher):.0f}"
            )
    assert differences == []
    upright = load(row_pictures[ROTATED])
    assert upright.height > upright.width and upright.getpixel((upright.width // 2, 2))[0] > 150  # red on top
    assert mean_grey(load(row_pictures[ALPHA])) > 150  # clear glass on white, not black
    assert 100 < mean_grey(load(row_pictures[SIXTEEN_BIT])) < 160  # a grey ramp, not clipped to white
    sides = [side for picture in row_pictures.values() for side in load(picture).size]
    assert sent_at.multiple == 1 or all(side % sent_at.multiple == 0 for side in sides)
    assert {name: path.read_bytes() for name, path in images.items()} == originals  # originals untouched


def test_copies_are_content_addressed_in_the_run_folder_and_a_rebuild_decodes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = tricky_images(tmp_path / "images")
    out = tmp_path / "out"
    row_pictures, report = build(out, images, DEFAULT_MAX_PIXELS)
    for name, picture in row_pictures.items():
        path = Path(picture)
        assert path.is_absolute() and path.parent == (out / "images").resolve()
        assert path.name == f"{file_sha256(images[name])}-{DEFAULT_MAX_PIXELS}.jpg"
        assert path.read_bytes() == base64.b64decode(  # byte for byte what the teacher was sent
            pictures.prepare_image(images[name], DEFAULT_MAX_PIXELS).data_url.partition(",")[2]
        )
    assert report.images_copied == 3 and report.images_dir == str((out / "images").resolve())  # type: ignore[attr-defined]
    stamps = {picture: Path(picture).stat().st_mtime_ns for picture in row_pictures.values()}

    def no_decoding(*_: object) -> None:
        raise AssertionError("a rebuild must not decode an image whose copy exists")

    monkeypatch.setattr(pictures, "prepare_image", no_decoding)
    again, report = build(out, images, DEFAULT_MAX_PIXELS)
    assert again == row_pictures and report.images_copied == 0  # type: ignore[attr-defined]
    assert {picture: Path(picture).stat().st_mtime_ns for picture in again.values()} == stamps


def test_an_image_changed_since_the_teacher_saw_it_keeps_its_copy_or_leaves_the_dataset(tmp_path: Path) -> None:
    images = tricky_images(tmp_path / "images")
    out = tmp_path / "out"
    before, _ = build(out, images, DEFAULT_MAX_PIXELS)
    rotated_copy = Path(before[ROTATED]).read_bytes()
    Image.new("RGB", (40, 40), "white").save(images[ROTATED], format="JPEG")  # both overwritten after the teacher
    Image.new("RGB", (40, 40), "white").save(images[ALPHA], format="PNG")  # saw them,
    Path(before[ALPHA]).unlink()  # and the glass's copy lost: nothing holds what the teacher saw of it any more
    with Ledger(out) as ledger:
        report = build_dataset(ledger, out)
    rows = read_jsonl(out / "train.jsonl")
    assert {row["messages"][-1]["content"]: row["images"][0] for row in rows} == {
        f"About {ROTATED}.": before[ROTATED], f"About {SIXTEEN_BIT}.": before[SIXTEEN_BIT]
    }
    assert Path(before[ROTATED]).read_bytes() == rotated_copy  # still the teacher's picture, not the new file
    (reason,) = report.invalid_reasons
    assert reason.startswith(f"{images[ALPHA]}: image changed since the teacher saw it")


def test_the_review_page_shows_the_teachers_picture_and_names_the_original(tmp_path: Path) -> None:
    images = tricky_images(tmp_path / "images")
    build(tmp_path / "out", images, DEFAULT_MAX_PIXELS, review=10)
    page = (tmp_path / "out" / "review.html").read_text(encoding="utf-8")
    shown = re.findall(r'<img src="data:image/jpeg;base64,([^"]+)" alt="([^"]+)"', page)
    assert sorted(alt for _, alt in shown) == sorted(images)
    for data, name in shown:
        with Image.open(io.BytesIO(base64.b64decode(data))) as thumbnail:
            teacher = sent_to_teacher(images[name], DEFAULT_MAX_PIXELS)
            assert abs(mean_grey(thumbnail) - mean_grey(teacher)) < 12, name  # the glass light, the X-ray grey
            assert (thumbnail.width > thumbnail.height) == (teacher.width > teacher.height), name  # upright
        assert str(images[name]) in page  # the original's path, for a person to find the source
    stats = json.loads((tmp_path / "out" / "dataset_stats.json").read_text(encoding="utf-8"))
    assert {row["image_path"] for row in stats["review_preview"]} == {str(p) for p in images.values()}


def test_copies_of_many_images_are_made_once_each_in_threads(tmp_path: Path) -> None:
    folders = [tricky_images(tmp_path / f"set{index}") for index in range(3)]
    small = PixelBudget(SMALL_BUDGET)
    sources = [pictures.Source(str(path), file_sha256(path), small) for images in folders for path in images.values()]
    twin = tmp_path / "twin.png"  # the same bytes at another path: one copy serves both
    twin.write_bytes(Path(sources[1].path).read_bytes())
    twin_source = pictures.Source(str(twin), sources[1].sha256, small)
    missing = pictures.Source(str(tmp_path / "gone.jpg"), "0" * 64, small)
    copies = pictures.make_copies(tmp_path / "out", [*sources, twin_source, missing], threads=4)
    assert copies.made == len(sources) and copies.paths[twin_source] == copies.paths[sources[1]]
    assert copies.problems == {missing: f"image file missing: {missing.path}"}
    assert len(list((tmp_path / "out" / "images").iterdir())) == len(sources)  # no temp files left behind
