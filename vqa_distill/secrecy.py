"""Keep secrets out of messages: the one place that masks API keys and URL passwords before text is shown.

Every message that may reach a log, a ledger row or the Prefect UI passes through ``mask`` when it
could echo a secret: an endpoint repeating the API key, a driver quoting its connection URL. A URL's
password is masked in both spellings, as written in the URL (percent-encoded) and as the driver sees
it (decoded), since either may come back in an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

MASK = "***"


def url_secrets(url: str) -> set[str]:
    """Return every spelling of a URL's password that a message may hold: as written, and decoded."""
    try:
        written = urlsplit(url).password
    except ValueError:  # an unbalanced "[" in the host: no URL to take a password from
        return set()
    return {written, unquote(written)} if written else set()


def mask(
    message: str, *secrets: str | None, urls: Iterable[str] = (), mark: str = MASK, min_chars: int = 1
) -> str:
    """Return ``message`` with each secret and each URL's password replaced by ``mark``.

    ``min_chars``: shorter secrets are left alone (an API key such as ``x``, which local servers
    accept, would otherwise garble every message). The longest secrets go first, so one that holds
    another is masked whole.
    """
    found = {secret for secret in secrets if secret}
    for url in urls:
        found |= url_secrets(url)
    for secret in sorted(found, key=len, reverse=True):
        if len(secret) >= min_chars:
            message = message.replace(secret, mark)
    return message


def masked_reason(error: BaseException, *secrets: str | None, urls: Iterable[str] = (), mark: str = MASK) -> str:
    """Return the first line of what ``error`` says (its class name when it says nothing), secrets masked.

    One line: drivers append the SQL, its parameters and hints below the first, none of which
    belongs in a message that names a server.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return mask(lines[0] if lines else type(error).__name__, *secrets, urls=urls, mark=mark)
