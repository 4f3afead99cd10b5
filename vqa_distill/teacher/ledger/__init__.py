"""The answer ledger: every teacher outcome, keyed by request content, in a SQLite file or a PostgreSQL schema."""

from vqa_distill.teacher.ledger.identity import (
    LedgerMark,
    check_shared_ledger,
    mark_shared_ledger,
    refuse_other_ledgers,
)
from vqa_distill.teacher.ledger.records import Ledger, TeacherRecord

__all__ = ["Ledger", "LedgerMark", "TeacherRecord", "check_shared_ledger", "mark_shared_ledger", "refuse_other_ledgers"]
