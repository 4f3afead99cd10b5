"""The student trains on the pixels the teacher was sent: an EXIF-rotated photo, a PNG with transparency
and a 16-bit X-ray go through the real ``generate`` flow (offline teacher), then real ms-swift trains the
tiny Qwen-VL on the dataset it built.

The offline teacher fingerprints every picture it decodes (its size and RGB pixels); ms-swift's own
loader, ``swift.template.vision_utils.load_image``, must read the very same pixels from each row. Given
the original files it reads the photo sideways, the glass dark and the X-ray white.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.helpers import chat_requests, params_for
from tests.support.tricky_images import tricky_images
from vqa_distill.cli.flow_runs import run_generate_flow
from vqa_distill.dataset.build import read_jsonl
from vqa_distill.offline_teacher.rules.images import fingerprint_of
from vqa_distill.student import training
from vqa_distill.student.params import TrainParams


def test_ms_swift_loads_and_trains_on_the_pixels_the_teacher_was_sent(
    tmp_path: Path, teacher: Any, api_key_env: str, tiny_model: Path
) -> None:
    from swift.template.vision_utils import load_image

    images = tricky_images(tmp_path / "images")
    originals = {name: path.read_bytes() for name, path in images.items()}
    params = params_for(tmp_path / "images", tmp_path / "out", teacher.base_url)
    outcome = run_generate_flow(params, show_progress=False)
    assert outcome.summary is not None and outcome.summary.failed == 0
    seen_by_teacher = {fp for request in chat_requests(teacher.stats()) for fp in request["fingerprints"]}
    assert len(seen_by_teacher) == 3

    train_file = tmp_path / "out" / "train.jsonl"
    rows = read_jsonl(train_file)
    assert len(rows) == 3
    read_by_student = {row["images"][0]: fingerprint_of(load_image(row["images"][0])) for row in rows}
    assert set(read_by_student.values()) == seen_by_teacher, "ms-swift reads other pixels than the teacher saw"

    train = TrainParams(
        dataset=[str(train_file)], model_id_or_path=str(tiny_model), output_dir=str(tmp_path / "checkpoints"),
        cuda_devices="cpu", max_steps=1, gradient_accumulation_steps=1, split_dataset_ratio=0, eval_limit=0,
        num_proc=1, logging_steps=1,
    )  # fmt: skip
    prepared = training.prepare(train, log=lambda _: None)
    assert (prepared.total_rows, prepared.dropped_rows) == (3, 0)  # every row reaches ms-swift
    summary = training.train(prepared)
    assert summary.global_step == 1 and summary.checkpoint is not None
    assert {name: path.read_bytes() for name, path in images.items()} == originals  # originals untouched
