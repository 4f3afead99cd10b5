"""No 60-second window exceeds the TPM with 1536^2 photos, counted by the offline teacher as they arrive.

gpt-4o-mini bills a 1536x1536 photo 25,501 tokens (4 tiles at 2,833 + 5,667), 26,525 with the answer
cap: eight times the token bucket's capacity at 200,000 TPM. The gate once admitted one whenever its
bucket was empty, every 8.09 s, so the eighth photo reached the endpoint 56.6 s after the first:
212,200 tokens in one minute. The run is a real ``generate`` flow through the real client; the
server enforces the TPM and records each request's arrival and counted tokens. One measurement of a
little over a minute.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import TEST_API_KEY
from tests.support.helpers import chat_requests, make_images, params_for
from vqa_distill.cli.flow_runs import run_generate_flow
from vqa_distill.offline_teacher.process import running_teacher_server

TPM = 200_000  # the default --tpm, gpt-4o-mini's tier 1
PHOTOS = 8  # the eighth is the one that broke the minute
MINUTE_S = 60.0


def heaviest_minute(times: list[float], amounts: list[int]) -> int:
    """Return the most counted in any closed 60-second window."""
    return max(
        sum(a for t, a in zip(times[i:], amounts[i:], strict=True) if t - t0 <= MINUTE_S) for i, t0 in enumerate(times)
    )


def test_1536_photos_never_put_more_than_the_tpm_into_a_minute(tmp_path: Path, monkeypatch: object) -> None:
    make_images(tmp_path / "images", PHOTOS, size=(1536, 1536))
    with running_teacher_server(api_key=TEST_API_KEY, tpm=TPM) as server:
        monkeypatch.setenv("OPENAI_API_KEY", TEST_API_KEY)  # type: ignore[attr-defined]
        params = params_for(
            tmp_path / "images", tmp_path / "out", server.base_url,
            model="gpt-4o-mini", rpm=500, tpm=TPM, concurrency=PHOTOS, max_tokens=1024,
        )  # fmt: skip
        run_generate_flow(params, show_progress=False)
        stats = server.stats()
    photos = sorted(chat_requests(stats), key=lambda r: r["t"])
    assert [r["status"] for r in photos] == [200] * PHOTOS  # every photo answered, none refused
    assert all(r["counted_tokens"] >= 26_525 for r in photos)  # each one far above the bucket's 3,333
    times = [r["t"] for r in photos]
    counted = [r["counted_tokens"] for r in photos]
    heaviest = heaviest_minute(times, counted)
    print(f"1536^2 photos on gpt-4o-mini: heaviest minute {heaviest:,} tokens of {TPM:,} TPM")
    assert heaviest <= TPM
    assert times[-1] - times[0] > MINUTE_S  # the eighth waited for the first to leave the minute
