"""Plan a teacher run: which images exist, which questions they raise, which are already paid for.

Answered keys are filtered here, before any Prefect task exists, so a rerun over 10,000 answered
images creates no task runs and makes no calls. Outcomes spooled during a ledger outage are written
first, and count as answered either way (``Ledger.done_keys``).
"""

from __future__ import annotations

from dataclasses import dataclass

from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.images.discovery import ImageRef, SkippedFile, discover_images
from vqa_distill.teacher.ledger.records import Ledger
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.qa.plan import QAPlan, plan_questions


@dataclass
class RunPlan:
    """The images found and the requests to send now (``to_ask``) or skip (already answered)."""

    images: list[ImageRef]
    skipped: list[SkippedFile]
    duplicate_files: list[str]
    requests: list[TeacherRequest]
    to_ask: list[TeacherRequest]
    already_answered: int
    in_flight: int = 0  # in a Batch API batch not collected yet: neither asked nor answered now
    staged: QAPlan | None = None  # questions mode: the image x prompt units; ``to_ask`` stays empty

    @property
    def keys(self) -> list[str]:
        """Every request key of the run, answered or not (the dataset is built from these)."""
        return [r.key for r in self.requests]

    @property
    def pending(self) -> int:
        """What is left to ask: requests, or in questions mode image x prompt units with work left."""
        return len(self.to_ask) + (len(self.staged.jobs) if self.staged else 0)

    def describe(self) -> str:
        """Say in one log line what the run has to do."""
        return (
            f"{len(self.images)} images, {len(self.requests)} requests: "
            f"{self.already_answered} already answered, {self.pending} to ask"
        )


def plan_run(params: TeacherParams, ledger: Ledger, only_keys: set[str] | None = None) -> RunPlan:
    """Discover images, build one request per unique image x prompt, and drop those already answered.

    ``only_keys`` restricts the requests to send (re-asking a run's failed images); the dataset still
    covers every request of the folder.
    """
    ledger.flush_spool()  # outcomes paid while the database was away go in before anything is read
    prompts = params.all_prompts()
    hashes = ledger.hash_cache()  # one query for the folder, not one per image
    images, skipped = discover_images(params.images, known_hash=hashes, run_folder=params.out)
    ledger.remember_hashes(hashes.changed((ref.path, ref.size_bytes, ref.mtime_ns, ref.sha256) for ref in images))
    generation = params.generation_params()
    done = ledger.done_keys()
    in_flight = ledger.in_flight_keys()  # never asked twice: the batch's answer is on its way
    seen: set[str] = set()
    first_file_of: dict[str, str] = {}
    duplicates: list[str] = []
    requests: list[TeacherRequest] = []
    to_ask: list[TeacherRequest] = []
    already = flying = 0
    unique: list[ImageRef] = []
    for ref in images:
        if ref.sha256 in first_file_of:  # same bytes as an earlier file: asked once, under that file
            duplicates.append(ref.path)
            continue
        first_file_of[ref.sha256] = ref.path
        unique.append(ref)
        if params.questions is not None:  # questions mode: planned per image x prompt below
            continue
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
            elif key in in_flight:
                flying += 1
            elif only_keys is None or key in only_keys:
                to_ask.append(request)
    staged = None
    if params.questions is not None:
        staged = plan_questions(unique, prompts, params, ledger, only_keys)
        requests, already = staged.requests, staged.already_answered
    return RunPlan(
        staged=staged,
        images=images,
        skipped=skipped,
        duplicate_files=duplicates,
        requests=requests,
        to_ask=to_ask,
        already_answered=already,
        in_flight=flying,
    )


