"""Masking secrets in messages: API keys, URL passwords in both spellings, one-line reasons."""

from __future__ import annotations

import pytest

from vqa_distill.secrecy import mask, masked_reason, url_secrets


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        ("postgresql+psycopg://ledger:s3cret-pw@db.lan:5432/runs", {"s3cret-pw"}),
        ("redis://:a%2Fb%40c%3Ad@127.0.0.1:6379/0", {"a%2Fb%40c%3Ad", "a/b@c:d"}),
        ("redis://127.0.0.1:6379", set()),
        ("postgresql://ledger:@db.lan/runs", set()),
        ("sqlite:////srv/run/ledger.sqlite", set()),
        ("http://[::1", set()),  # not a URL: nothing to take
    ],
)
def test_a_url_gives_its_password_as_written_and_decoded(url: str, secrets: set[str]) -> None:
    assert url_secrets(url) == secrets


def test_plain_secrets_and_url_passwords_are_masked_together() -> None:
    message = "auth sk-live-123456 failed at postgresql://u:hunter22@h/db (password hunter22)"
    assert mask(message, "sk-live-123456", urls=["postgresql://u:hunter22@h/db"]) == (
        "auth *** failed at postgresql://u:***@h/db (password ***)"
    )


def test_a_percent_encoded_password_is_masked_in_both_spellings() -> None:
    url = "redis://:p%40ss-word@h:6379"
    assert mask("AUTH p@ss-word refused for redis://:p%40ss-word@h:6379", urls=[url]) == (
        "AUTH *** refused for redis://:***@h:6379"
    )


def test_a_secret_holding_another_is_masked_whole() -> None:
    assert mask("key abcd-efgh here", "abcd", "abcd-efgh") == "key *** here"


def test_the_mark_and_the_shortest_secret_are_the_callers() -> None:
    assert mask("bad key sk-1234 in request", "sk-1234", mark="[REDACTED]") == "bad key [REDACTED] in request"
    assert mask("an x in text", "x") == "an *** in te***t"  # why a caller may set a floor
    assert mask("an x in text", "x", min_chars=4) == "an x in text"


def test_nothing_to_mask_leaves_the_message_as_it_is() -> None:
    assert mask("all fine", None, "", urls=["redis://localhost:6379"]) == "all fine"


def test_a_reason_is_the_first_line_masked() -> None:
    error = OSError('connection to "db" failed: FATAL: password "hunter22" refused\nDETAIL: SELECT 1\nHINT: none')
    assert masked_reason(error, urls=["postgresql://u:hunter22@db/x"]) == (
        'connection to "db" failed: FATAL: password "***" refused'
    )


def test_a_silent_error_is_named_by_its_class() -> None:
    assert masked_reason(TimeoutError()) == "TimeoutError"
    assert masked_reason(RuntimeError("\n  \n")) == "RuntimeError"


def test_a_reason_masks_plain_secrets_too() -> None:
    assert masked_reason(ValueError("  token tok-9876 expired  "), "tok-9876") == "token *** expired"
