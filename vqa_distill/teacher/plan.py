"""Plan a teacher run: which images exist, which questions they raise, which are already paid for.

Answered keys are filtered here, before any Prefect task exists, so a rerun over 10,000 answered
images creates no task runs and makes no calls.
"""

from __future__ import annotations

from dataclasses import dataclass

from vqa_distill.teacher.discovery import ImageRef, SkippedFile, discover_images
from vqa_distill.teacher.ledger import Ledger
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.request import TeacherRequest


@dataclass
class RunPlan:
    """The images found and the requests to send now (``to_ask``) or skip (already answered)."""

    images: list[ImageRef]
    skipped: list[SkippedFile]
    duplicate_files: list[str]
    requests: list[TeacherRequest]
    to_ask: list[TeacherRequest]
    already_answered: int

    @property
    def keys(self) -> list[str]:
        """Every request key of the run, answered or not (the dataset is built from these)."""
        return [r.key for r in self.requests]


def plan_run(params: TeacherParams, ledger: Ledger, only_keys: set[str] | None = None) -> RunPlan:
    """Discover images, build one request per unique image x prompt, and drop those already answered.

    ``only_keys`` restricts the requests to send (re-asking a run's failed images); the dataset still
    covers every request of the folder.
    """
    prompts = params.all_prompts()
    images, skipped = discover_images(params.images, known_hash=ledger.known_hash)
    ledger.remember_hashes((ref.path, ref.size_bytes, ref.mtime_ns, ref.sha256) for ref in images)
    generation = params.generation_params()
    done = ledger.done_keys()
    seen: set[str] = set()
    first_file_of: dict[str, str] = {}
    duplicates: list[str] = []
    requests: list[TeacherRequest] = []
    to_ask: list[TeacherRequest] = []
    already = 0
    for ref in images:
        if ref.sha256 in first_file_of:  # same bytes as an earlier file: asked once, under that file
            duplicates.append(ref.path)
            continue
        first_file_of[ref.sha256] = ref.path
        for prompt in prompts:
            request = TeacherRequest(
                image_path=ref.path,
                rel_path=ref.rel_path,
                sha256=ref.sha256,
                prompt=prompt,
                system=params.system,
                model=params.model,
                params=generation,
            )
            key = request.key
            if key in seen:
                continue
            seen.add(key)
            requests.append(request)
            if key in done:
                already += 1
            elif only_keys is None or key in only_keys:
                to_ask.append(request)
    return RunPlan(
        images=images,
        skipped=skipped,
        duplicate_files=duplicates,
        requests=requests,
        to_ask=to_ask,
        already_answered=already,
    )


