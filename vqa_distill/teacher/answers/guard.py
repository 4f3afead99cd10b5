"""The last look before paying: a request answered, or carried by a batch, since the run planned is not asked.

A run plans once, then asks for minutes or hours. Meanwhile another run (a nightly refresh, a shard's
re-run, a Batch API submit) may answer a key or claim it. The plan cannot see that; one read of the
key just before each paid attempt (its first and its retries) can. The read runs off the event loop,
and a ledger that cannot be read now does not stop the ask: the content key still guards the write.
"""

from __future__ import annotations

from vqa_distill.errors import LedgerUnavailable, PermanentTeacherError
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.ledger.records import DONE_STATUSES, STATUS_SUBMITTED, Ledger, TeacherRecord


async def answered_since_planned(ledger: Ledger, request: TeacherRequest) -> TeacherRecord | None:
    """Return the answer another run recorded for ``request`` since the plan; None when it is still to ask.

    Raises PermanentTeacherError when a Batch API batch carries the key: its answer is on its way
    (``collect`` records it), and asking online too would pay twice.
    """
    try:
        held = await ledger.get_async(request.key)
    except LedgerUnavailable:
        return None
    if held is None:
        return None
    if held.status in DONE_STATUSES:
        return held
    if held.status == STATUS_SUBMITTED:
        raise PermanentTeacherError(
            f"{request.rel_path}: carried by Batch API batch {held.batch_id or '(being created)'} since this run "
            "planned; collect-batches records its answer"
        )
    return None
