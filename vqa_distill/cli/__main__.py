"""``python -m vqa_distill.cli``: the same as the ``vqa-distill`` command."""

from __future__ import annotations

import sys

from vqa_distill.cli import main

if __name__ == "__main__":
    sys.exit(main())
