"""``python -m vqa_distill.teacher_server``: the same flags as ``vqa-distill teacher-server``."""

from __future__ import annotations

import sys

from vqa_distill.teacher_server.cli import main

if __name__ == "__main__":
    sys.exit(main())
