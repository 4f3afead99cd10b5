"""``python -m vqa_distill.offline_teacher``: the same flags as ``vqa-distill teacher-server``."""

from __future__ import annotations

import sys

from vqa_distill.offline_teacher.main import main

if __name__ == "__main__":
    sys.exit(main())
