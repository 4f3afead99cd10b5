"""The answer ledger: every teacher outcome, keyed by request content, in a SQLite file or a PostgreSQL schema."""

from vqa_distill.teacher.ledger.records import Ledger, TeacherRecord

__all__ = ["Ledger", "TeacherRecord"]
