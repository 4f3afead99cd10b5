"""Headless Chromium for the page tests: one way to start it, no network services, sandbox off (root in CI)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; .ci/run installs it
BROWSER_TIMEOUT_S = 120


def chromium(tmp_path: Path, *args: str, budget_ms: int = 10_000) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with ``args`` (a URL, --dump-dom, --screenshot=...) and a virtual-time budget."""
    argv = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", f"--virtual-time-budget={budget_ms}", *args,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False)


def chromium_dom(tmp_path: Path, url: str, budget_ms: int = 15_000) -> str:
    """Load ``url`` and return the DOM as the page's scripts left it."""
    return chromium(tmp_path, "--dump-dom", url, budget_ms=budget_ms).stdout


def visible_text(dom: str) -> str:
    """The page's words, tags, scripts and styles left out."""
    text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", dom, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", text).split())
