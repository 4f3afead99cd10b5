"""The ledger's Batch API side: old ledger files upgraded, claims that never take a key twice and are split
into parts, the in-flight filter."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.support.helpers import make_images
from vqa_distill.teacher.batch.book import PENDING, RELEASED, BatchBook, BatchRow
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.ledger.records import (
    LEDGER_FILE,
    STATUS_ANSWERED,
    STATUS_FAILED,
    STATUS_SUBMITTED,
    Ledger,
)
from vqa_distill.teacher.params import TeacherParams
from vqa_distill.teacher.run.plan import plan_run

# The records table as the first ledger files have it (no batch column).
OLD_SCHEMA = """
CREATE TABLE records (
    key TEXT PRIMARY KEY, status TEXT NOT NULL, image_path TEXT NOT NULL, rel_path TEXT NOT NULL,
    sha256 TEXT NOT NULL, prompt TEXT NOT NULL, system TEXT, model TEXT NOT NULL, params TEXT NOT NULL,
    answer TEXT, finish_reason TEXT, error_class TEXT, error_message TEXT, status_code INTEGER,
    prompt_tokens INTEGER, completion_tokens INTEGER, latency_s REAL, attempts INTEGER NOT NULL DEFAULT 1,
    flow_run_id TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
INSERT INTO records VALUES ('k1', 'answered', '/i/a.png', 'a.png', 'aa', 'p', NULL, 'm', '{}', 'an answer',
    'stop', NULL, NULL, NULL, 10, 5, 0.1, 1, 'run-1', '2025-01-01T00:00:00', '2025-01-01T00:00:00');
"""


def test_an_old_ledger_file_gets_the_batch_column_once(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / LEDGER_FILE) as db:
        db.executescript(OLD_SCHEMA)
    for _ in range(2):  # opening again changes nothing
        with Ledger(tmp_path) as ledger:
            [record] = ledger.records()
            assert (record.key, record.answer, record.batch_id) == ("k1", "an answer", None)
            assert ledger.keys_with_status(STATUS_ANSWERED) == {"k1"} and ledger.done_keys() == {"k1"}
    with sqlite3.connect(tmp_path / LEDGER_FILE) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(records)")]
    assert columns.count("batch_id") == 1


def _request(rel: str) -> TeacherRequest:
    return TeacherRequest(image_path=f"/i/{rel}", rel_path=rel, sha256=rel * 4, prompt="p", system=None,
                          model="gpt-4o-mini", params={})  # fmt: skip


def _row(tag: str, requests: int) -> BatchRow:
    return BatchRow(tag=tag, batch_id=None, status=PENDING, part=1, parts=1, requests=requests, bytes=10,
                    model="gpt-4o-mini", base_url="http://x/v1", api_key_block=None, flow_run_id="run-1")  # fmt: skip


def test_claims_take_only_keys_without_an_answer_and_are_adopted_or_released(tmp_path: Path) -> None:
    new, failed, answered = _request("new.png"), _request("failed.png"), _request("answered.png")
    with Ledger(tmp_path) as ledger, BatchBook(ledger) as book:
        from vqa_distill.teacher.answers.outcomes import failure_record

        ledger.record(failure_record(failed, RuntimeError("x"), attempts=1, flow_run_id="r0", started_at="t"))
        done = failure_record(answered, RuntimeError("x"), attempts=1, flow_run_id="r0", started_at="t")
        done.status, done.answer = STATUS_ANSWERED, "yes"
        ledger.record(done)

        assert book.claim(_row("s1-p1", 3), [new, failed, answered]) == [new, failed]
        assert ledger.in_flight_keys() == {new.key, failed.key}
        assert ledger.get(answered.key).status == STATUS_ANSWERED  # type: ignore[union-attr]
        assert [row.tag for row in book.pending()] == ["s1-p1"]
        assert book.claim(_row("s2-p1", 2), [new, failed]) == []  # in flight: never claimed twice

        book.adopt("s1-p1", "batch_1", "validating", "file-1")
        assert {r.key for r in ledger.in_batch("batch_1")} == {new.key, failed.key}
        assert book.pending() == []  # s2-p1 claimed nothing: released at once, nothing to settle
        assert [row.batch_id for row in book.uncollected()] == ["batch_1"]

        other = _request("other.png")
        book.claim(_row("s3-p1", 1), [other])
        assert book.release("s3-p1") == 1 and ledger.get(other.key) is None  # back to "not answered"
        assert {row.tag: row.status for row in book.rows()}["s3-p1"] == RELEASED

        # An answer replaces the submitted record (the batch's own line is then a duplicate); a failure
        # never replaces an answer.
        answer = failure_record(new, RuntimeError("x"), attempts=1, flow_run_id="r9", started_at="t")
        answer.status, answer.answer = STATUS_ANSWERED, "online"
        assert ledger.record(answer) is True
        assert (
            ledger.record(
                failure_record(new, RuntimeError("late"), attempts=1, flow_run_id="r9", started_at="t")
            )
            is False
        )
        assert ledger.get(new.key).answer == "online"  # type: ignore[union-attr]
        assert ledger.get(failed.key).status == STATUS_SUBMITTED  # type: ignore[union-attr]
        assert book.run_id() == book.run_id()


def test_the_plan_leaves_keys_in_flight_out(tmp_path: Path) -> None:
    make_images(tmp_path / "images", 3)
    params = TeacherParams(images=str(tmp_path / "images"), out=str(tmp_path / "out"), prompts=["p"])
    with Ledger(params.out) as ledger, BatchBook(ledger) as book:
        first = plan_run(params, ledger)
        assert len(first.to_ask) == 3 and first.in_flight == 0
        book.claim(_row("s1-p1", 2), first.to_ask[:2])
        second = plan_run(params, ledger)
        assert [r.key for r in second.to_ask] == [first.to_ask[2].key]
        assert second.in_flight == 2 and second.keys == first.keys  # the dataset still covers them
        assert ledger.get(first.to_ask[0].key).status == STATUS_SUBMITTED  # type: ignore[union-attr]
        assert STATUS_FAILED not in {r.status for r in ledger.records()}


def test_a_claim_is_split_into_its_parts_and_its_unwritable_keys_become_failures(tmp_path: Path) -> None:
    from vqa_distill.teacher.answers.outcomes import failure_record

    one, two, three, broken = (_request(f"{name}.png") for name in ("one", "two", "three", "broken"))
    with Ledger(tmp_path) as ledger, BatchBook(ledger) as book:
        claim = _row("s1-p1", 4)
        assert book.claim(claim, [one, two, three, broken]) == [one, two, three, broken]
        first = BatchRow(**{**claim.__dict__, "parts": 2, "requests": 1, "bytes": 100})
        second = BatchRow(**{**claim.__dict__, "tag": "s1-p2", "part": 2, "parts": 2, "requests": 2, "bytes": 200})
        unreadable = failure_record(broken, RuntimeError("cannot decode"), attempts=1, flow_run_id="run-1", started_at="t")
        book.split(claim, [(first, [one.key]), (second, [two.key, three.key])], [unreadable])

        assert {r.key: r.batch_id for r in ledger.records(STATUS_SUBMITTED)} == {
            one.key: "s1-p1", two.key: "s1-p2", three.key: "s1-p2"
        }  # fmt: skip
        failed = ledger.get(broken.key)
        assert failed is not None and (failed.status, failed.batch_id) == (STATUS_FAILED, None)
        assert [(r.tag, r.status, r.part, r.parts, r.requests, r.bytes) for r in book.pending()] == [
            ("s1-p1", PENDING, 1, 2, 1, 100), ("s1-p2", PENDING, 2, 2, 2, 200)
        ]  # fmt: skip

        nothing = _row("s2-p1", 1)
        other = _request("other.png")
        assert book.claim(nothing, [other]) == [other]
        lost = failure_record(other, RuntimeError("gone"), attempts=1, flow_run_id="run-1", started_at="t")
        book.split(nothing, [], [lost])  # no line written: the claim is released, the key failed
        assert {r.tag: r.status for r in book.rows()}["s2-p1"] == RELEASED
        assert ledger.get(other.key).status == STATUS_FAILED  # type: ignore[union-attr]
