"""The ledger's contract, written once and run against each store by a subclass that gives the ``url`` fixture.

What every caller relies on: the key is the primary key, an answer is never replaced by a failure, a
failed record is, a submitted one only by its own batch's outcome or an answer, records come back in
the order they were first written, the exports, the file-hash cache and the Batch API's claims work. tests/unit/test_ledger_contract.py runs it on the run
folder's SQLite file, tests/integration/test_ledger_contract.py on a real PostgreSQL schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vqa_distill.teacher.batch.book import PENDING, RELEASED, BatchBook, BatchRow
from vqa_distill.teacher.endpoint.request import TeacherRequest
from vqa_distill.teacher.ledger.records import (
    FAILED_FILE,
    LEDGER_FILE,
    RESPONSES_FILE,
    STATUS_ANSWERED,
    STATUS_FAILED,
    STATUS_SUBMITTED,
    STATUS_UNUSABLE,
    Ledger,
    TeacherRecord,
    ledger_exists,
)


def _record(key: str, status: str, answer: str | None = None, **extra: object) -> TeacherRecord:
    return TeacherRecord(key=key, status=status, image_path=f"/i/{key}.png", rel_path=f"{key}.png", sha256="ab" * 32,
                         prompt="Describe.", system=None, model="gpt-4o-mini", params={"detail": "low", "max_tokens": 64},
                         answer=answer, **extra)  # type: ignore[arg-type]  # fmt: skip


def _request(name: str) -> TeacherRequest:
    return TeacherRequest(image_path=f"/i/{name}", rel_path=name, sha256=name * 4, prompt="p", system=None,
                          model="gpt-4o-mini", params={})  # fmt: skip


class LedgerContract:
    """The contract's tests; a subclass named ``Test...`` provides ``url`` (None: the folder's SQLite file)."""

    @pytest.fixture
    def url(self) -> str | None:
        raise NotImplementedError("a subclass gives the store under test")

    @pytest.fixture
    def ledger(self, tmp_path: Path, url: str | None) -> Iterator[Ledger]:
        with Ledger(tmp_path / "run", url) as opened:
            yield opened

    def test_an_answer_is_never_replaced_by_a_failure(self, ledger: Ledger) -> None:
        assert ledger.record(_record("k", STATUS_FAILED, error_message="503")) is True
        assert ledger.record(_record("k", STATUS_ANSWERED, "a cat", prompt_tokens=2833, latency_s=1.25)) is True
        assert ledger.record(_record("k", STATUS_FAILED, error_message="late 503")) is False
        assert ledger.record(_record("k", STATUS_ANSWERED, "another cat")) is False  # paid once, kept once
        stored = ledger.get("k")
        assert stored is not None
        assert (stored.status, stored.answer, stored.prompt_tokens, stored.latency_s) == (STATUS_ANSWERED, "a cat", 2833, 1.25)
        assert stored.params == {"detail": "low", "max_tokens": 64}
        assert ledger.done_keys() == {"k"} and ledger.get("missing") is None

    def test_a_failure_and_a_submitted_record_are_replaced(self, ledger: Ledger) -> None:
        ledger.record(_record("f", STATUS_FAILED, error_message="first"))
        assert ledger.record(_record("f", STATUS_FAILED, error_message="second", attempts=3)) is True
        failed = ledger.get("f")
        assert failed is not None and (failed.error_message, failed.attempts) == ("second", 3)
        ledger.record(_record("s", STATUS_SUBMITTED, batch_id="batch_1"))
        assert ledger.record(_record("s", STATUS_UNUSABLE, "cut", finish_reason="length", batch_id="batch_1")) is True
        assert ledger.keys_with_status(STATUS_UNUSABLE) == {"s"} and ledger.done_keys() == {"s"}
        assert ledger.record(_record("s", STATUS_FAILED)) is False

    def test_a_submitted_record_ends_only_with_its_batch_or_an_answer(self, ledger: Ledger) -> None:
        ledger.record(_record("s", STATUS_SUBMITTED, batch_id="batch_B"))
        assert ledger.record(_record("s", STATUS_FAILED, error_message="online 503")) is False  # no batch id
        assert ledger.record(_record("s", STATUS_FAILED, error_message="C's line", batch_id="batch_C")) is False
        assert ledger.in_flight_keys() == {"s"}  # still carried by B: no submit or online run sends it again
        assert ledger.record(_record("s", STATUS_FAILED, error_message="B's line", batch_id="batch_B")) is True
        assert ledger.get("s").error_message == "B's line"  # type: ignore[union-attr]

        ledger.record(_record("t", STATUS_SUBMITTED, batch_id="batch_B"))
        assert ledger.record(_record("t", STATUS_ANSWERED, "paid online meanwhile")) is True  # an answer is kept
        assert ledger.record(_record("t", STATUS_ANSWERED, "B's answer", batch_id="batch_B")) is False
        assert ledger.get("t").answer == "paid online meanwhile"  # type: ignore[union-attr]

    def test_records_come_back_in_first_write_order_and_by_status(self, ledger: Ledger) -> None:
        for key in ("c", "a", "b"):
            ledger.record(_record(key, STATUS_FAILED, flow_run_id="run-1"))
        ledger.record(_record("a", STATUS_ANSWERED, "yes", flow_run_id="run-2"))  # an update keeps its place
        ledger.record(_record("d", STATUS_SUBMITTED, batch_id="batch_9"))
        assert [r.key for r in ledger.records()] == ["c", "a", "b", "d"]
        assert [r.key for r in ledger.records(STATUS_FAILED)] == ["c", "b"]
        assert [r.key for r in ledger.records(STATUS_ANSWERED, STATUS_SUBMITTED)] == ["a", "d"]
        assert ledger.keys_with_status(STATUS_FAILED, STATUS_SUBMITTED) == {"b", "c", "d"}
        assert [r.key for r in ledger.failed_in_run("run-1")] == ["c", "b"] and ledger.failed_in_run("run-2") == []
        assert [r.key for r in ledger.in_batch("batch_9")] == ["d"]
        first = ledger.get("a")
        assert first is not None and first.created_at <= first.updated_at

    def test_export_writes_answers_and_failures(self, ledger: Ledger) -> None:
        ledger.record(_record("a", STATUS_ANSWERED, "zwei Katzen 🐈"))
        ledger.record(_record("u", STATUS_UNUSABLE, "cut"))
        ledger.record(_record("f", STATUS_FAILED))
        assert ledger.export() == (2, 1)
        responses = (ledger.out_dir / RESPONSES_FILE).read_text(encoding="utf-8")
        assert "zwei Katzen 🐈" in responses and len(responses.splitlines()) == 2
        assert len((ledger.out_dir / FAILED_FILE).read_text(encoding="utf-8").splitlines()) == 1

    def test_the_file_hash_cache_knows_unchanged_files_only(self, ledger: Ledger, tmp_path: Path) -> None:
        image = tmp_path / "a.png"
        image.write_bytes(b"x" * 10)
        stat = image.stat()
        assert stat.st_mtime_ns > 2**31  # nanoseconds: a 64-bit column
        ledger.remember_hashes([(str(image), stat.st_size, stat.st_mtime_ns, "h1")])
        ledger.remember_hashes([])
        assert ledger.known_hash(image, stat) == "h1"
        ledger.remember_hashes([(str(image), stat.st_size, stat.st_mtime_ns, "h2")])  # a replaced entry
        assert ledger.known_hash(image, stat) == "h2"
        image.write_bytes(b"y" * 11)
        assert ledger.known_hash(image, image.stat()) is None

    def test_a_folder_has_a_ledger_once_opened(self, tmp_path: Path, url: str | None) -> None:
        assert not ledger_exists(tmp_path / "new", url)
        with Ledger(tmp_path / "new", url) as ledger:
            ledger.record(_record("k", STATUS_ANSWERED, "yes"))
        assert ledger_exists(tmp_path / "new", url)
        assert (tmp_path / "new" / LEDGER_FILE).is_file() == (url is None)
        with Ledger(tmp_path / "new", url) as again:  # opened again: the same records
            assert again.done_keys() == {"k"}

    def test_batch_claims_adoption_and_release(self, ledger: Ledger) -> None:
        new, failed, answered = _request("n.png"), _request("f.png"), _request("a.png")
        ledger.record(_record(failed.key, STATUS_FAILED))
        ledger.record(_record(answered.key, STATUS_ANSWERED, "yes"))
        row = BatchRow(tag="s1-p1", batch_id=None, status=PENDING, part=1, parts=1, requests=3, bytes=2**33,
                       model="gpt-4o-mini", base_url="http://x/v1", api_key_block=None, flow_run_id="run-1")  # fmt: skip
        with BatchBook(ledger) as book:
            assert book.claim(row, [new, failed, answered]) == [new, failed]
            assert ledger.in_flight_keys() == {new.key, failed.key}
            book.adopt("s1-p1", "batch_1", "validating", "file-1")
            assert {r.key for r in ledger.in_batch("batch_1")} == {new.key, failed.key}
            book.update("batch_1", status="completed", counts={"completed": 2})
            assert [(r.batch_id, r.status, r.counts, r.bytes) for r in book.uncollected()] == [
                ("batch_1", "completed", {"completed": 2}, 2**33)
            ]
            book.mark_collected("batch_1", {"answered": 2})
            assert book.uncollected() == [] and [r.tag for r in book.rows("collected_at IS NOT NULL")] == ["s1-p1"]
            other = _request("o.png")
            book.claim(BatchRow(**{**row.__dict__, "tag": "s2-p1"}), [other])
            assert book.release("s2-p1") == 1 and ledger.get(other.key) is None
            assert {r.tag: r.status for r in book.rows()}["s2-p1"] == RELEASED
            assert book.run_id() == book.run_id() and book.params() is None
            book.save_params({"model": "gpt-4o-mini"})
            book.save_params({"model": "gpt-4.1"})
            assert book.params() == {"model": "gpt-4.1"}
