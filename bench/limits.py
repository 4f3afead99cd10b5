"""Benchmark the rate gate against an offline teacher that enforces OpenAI-style RPM and TPM limits.

For each row, a fresh offline teacher enforces the limits (per model, refilling continuously, counting
prompt tokens + the requested output cap, as OpenAI does) and bills images with its own copy of
OpenAI's per-model rules. The client is the library itself (``RateGate`` + ``ask`` on the real
``openai`` client, an asyncio loop, no Prefect) sending generated 12 MP camera-like JPEGs, prepared
once and reused. Each row reports the share of requests answered 429 (target <= 1 %) and the tokens
per minute the endpoint counted as a share of its TPM (target >= 0.90).

Rows: gpt-4o-mini and gpt-4.1-mini with the model table's image rules; then gpt-4o-mini estimated
with the old rule (gpt-4o's 85 + 170 per tile for every model), through today's gate and through the
old gate (no header following, no back-off: only Retry-After pauses), so the gain is a ratio.

Limits are the defaults (500 RPM, 200,000 TPM) multiplied by ``--scale`` (same ratio, more requests
per minute, so a row of a few minutes holds hundreds of requests); the output says so. The client and
the offline teacher share this machine: at 10x, gpt-4.1-mini needs about 10 requests a second of
12 MP photos, which two busy cores can still serve; a larger scale measures the CPU, not the gate. Each row
starts with the endpoint's token allowance spent, as a long run finds it after its first minute: a
fresh endpoint's full minute of allowance would otherwise hide a client that sends too fast.

Run: .venv/bin/python bench/limits.py [--scale 10] [--duration 150] [--photos 8]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import math
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from openai import OpenAI
from PIL import Image, ImageDraw, ImageFilter

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vqa_distill.errors import TeacherError, TransientTeacherError  # noqa: E402
from vqa_distill.offline_teacher.process import running_teacher_server  # noqa: E402
from vqa_distill.teacher.endpoint.client import ask, make_client  # noqa: E402
from vqa_distill.teacher.endpoint.models import GPT_4O_TILES, ModelSpec, model_spec  # noqa: E402
from vqa_distill.teacher.endpoint.request import TeacherRequest  # noqa: E402
from vqa_distill.teacher.images.prepare import PreparedImage, prepare_image  # noqa: E402
from vqa_distill.teacher.params import DEFAULT_MAX_PIXELS, DEFAULT_MAX_TOKENS, DEFAULT_RPM, DEFAULT_TPM  # noqa: E402
from vqa_distill.teacher.ratelimit.gate import RateGate  # noqa: E402

API_KEY = "sk-bench-limits-not-a-real-key-0000000000"
PROMPT = "Describe the defects."
PHOTO_SIZE = (4000, 3000)  # 12 MP, a phone camera's 4:3
PHOTO_DIR = Path(tempfile.gettempdir()) / "vqa-distill-bench-photos"  # generated once, reused by later runs
JPEG_QUALITY = 90
CONCURRENCY = 64  # requests in flight at most, like a run with --concurrency 64
LATENCY_S = 1.0  # the offline teacher's answer time ...
JITTER_S = 1.0  # ... plus uniform(0, 1) s, about what OpenAI takes for a short vision answer
MAX_ATTEMPTS = 4  # like --max-retries 3
RETRY_DELAY_S = 1.0  # first retry delay, doubling, +-50 % jitter: the flow's retry policy
DRAIN_SLACK_TOKENS = 10  # the drain request's prompt fits in these, so it asks for the whole minute
TPM_TARGET = 0.90
REFUSED_TARGET = 0.01


@dataclass(frozen=True)
class Row:
    """One configuration to measure."""

    model: str
    rule: str  # what the client's estimate used
    gate: str  # "today's" (headers + back-off) or "old" (Retry-After pauses only)
    rules: ModelSpec
    adaptive: bool


@dataclass
class Measured:
    """What the endpoint saw during one row."""

    row: Row
    requests: int
    refused: int  # answered 429
    answered: int
    counted_tokens: int  # prompt + output cap of the answered requests in the span: what TPM counts
    span_s: float  # first to last answered request at the endpoint
    tpm_limit: int

    @property
    def refused_share(self) -> float:
        """Return the share of requests answered 429."""
        return self.refused / self.requests if self.requests else 0.0

    @property
    def tpm_share(self) -> float:
        """Return the tokens per minute the endpoint counted, as a share of its TPM limit."""
        return self.counted_tokens / (self.span_s / 60) / self.tpm_limit if self.span_s > 0 else 0.0


def make_photo(path: Path, seed: int) -> None:
    """Write a camera-like 12 MP JPEG: smooth lighting gradients, sensor noise, shapes with hard edges."""
    rng = np.random.default_rng(seed)
    width, height = PHOTO_SIZE
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, size=3).astype(np.float32)
    slopes = rng.uniform(-60, 60, size=(3, 2)).astype(np.float32)
    channels = [base[c] + slopes[c, 0] * x / width + slopes[c, 1] * y / height for c in range(3)]
    pixels = np.stack(channels, axis=-1)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    shapes = random.Random(seed)
    for _ in range(60):
        x0, y0 = shapes.randrange(width), shapes.randrange(height)
        x1, y1 = x0 + shapes.randrange(50, 900), y0 + shapes.randrange(50, 900)
        colour = tuple(shapes.randrange(256) for _ in range(3))
        kind = shapes.choice(("rectangle", "ellipse", "line"))
        if kind == "line":
            draw.line((x0, y0, x1, y1), fill=colour, width=shapes.randrange(2, 20))
        else:
            getattr(draw, kind)((x0, y0, x1, y1), fill=colour, outline=(0, 0, 0), width=3)
    image = image.filter(ImageFilter.GaussianBlur(1.2))  # a lens, not a vector drawing
    # Surfaces are never flat: blotches of texture at a few scales, then the sensor's grain.
    pixels = np.asarray(image, dtype=np.float32)
    for cells, amplitude in ((12, 30.0), (120, 14.0), (600, 8.0)):
        field = rng.normal(0, 1, size=(cells * 3 // 4, cells)).astype(np.float32)
        texture = Image.fromarray(field).resize((width, height), Image.Resampling.BICUBIC)
        pixels += amplitude * np.asarray(texture, dtype=np.float32)[..., None]
    noisy = pixels + rng.normal(0, 5, size=(height, width, 3)).astype(np.float32)
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB").save(path, "JPEG", quality=JPEG_QUALITY)


def prepared_photos(count: int) -> list[tuple[str, PreparedImage]]:
    """Return ``count`` photos as the client sends them (made once into PHOTO_DIR), with their sha256."""
    PHOTO_DIR.mkdir(parents=True, exist_ok=True)
    photos = []
    for index in range(count):
        path = PHOTO_DIR / f"photo_{index:02d}.jpg"
        if not path.exists():
            make_photo(path, seed=index)
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        photos.append((sha, prepare_image(path, DEFAULT_MAX_PIXELS)))
    return photos


def request_for(index: int, model: str, sha: str) -> TeacherRequest:
    """Return the ``index``-th request: one photo, one prompt, the default generation parameters."""
    return TeacherRequest(
        image_path=str(PHOTO_DIR / f"request_{index}.jpg"),
        rel_path=f"request_{index}.jpg",
        sha256=sha,
        prompt=PROMPT,
        system=None,
        model=model,
        params={"detail": "auto", "max_pixels": DEFAULT_MAX_PIXELS, "max_tokens": DEFAULT_MAX_TOKENS},
    )


async def drive(row: Row, base_url: str, rpm: int, tpm: int, photos: list[tuple[str, PreparedImage]],
                duration_s: float) -> None:
    """Ask for ``duration_s``, ``CONCURRENCY`` in flight, retrying transient errors as the flow would."""
    client = make_client(base_url=base_url, api_key=API_KEY, timeout=120.0)
    gate = RateGate(rpm, tpm, adaptive=row.adaptive)
    stop_at = time.monotonic() + duration_s
    next_index = 0
    jitter = random.Random(0)

    async def worker() -> None:
        nonlocal next_index
        while time.monotonic() < stop_at:
            index, next_index = next_index, next_index + 1
            sha, image = photos[index % len(photos)]
            request = request_for(index, row.model, sha)
            for attempt in range(MAX_ATTEMPTS):
                try:
                    await ask(client, gate, request, image, rules=row.rules)
                    break
                except TransientTeacherError:
                    await asyncio.sleep(RETRY_DELAY_S * 2**attempt * jitter.uniform(0.5, 1.5))
                except TeacherError:
                    break

    try:
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    finally:
        await client.close()


def measure(row: Row, rpm: int, tpm: int, photos: list[tuple[str, PreparedImage]], duration_s: float) -> Measured:
    """Run one row against a fresh offline teacher enforcing ``rpm``/``tpm``; read what it saw."""
    with running_teacher_server(
        api_key=API_KEY, rpm=rpm, tpm=tpm, latency_s=LATENCY_S, jitter_s=JITTER_S, models=[row.model]
    ) as server:
        use_up_allowance(server.base_url, row.model, tpm)
        asyncio.run(drive(row, server.base_url, rpm, tpm, photos, duration_s))
        records = [r for r in server.stats()["requests"] if r.get("fingerprints")]  # the photos, not the drain
    answered = sorted((r for r in records if r["status"] == 200), key=lambda r: r["t"])
    # Tokens per second between the first and the last answered request: the last one's tokens fall
    # after that span, so they are left out.
    counted = sum(int(r.get("counted_tokens") or 0) for r in answered[:-1])
    return Measured(
        row=row,
        requests=len(records),
        refused=sum(1 for r in records if r["status"] == 429),
        answered=len(answered),
        counted_tokens=counted,
        span_s=answered[-1]["t"] - answered[0]["t"] if len(answered) > 1 else 0.0,
        tpm_limit=tpm,
    )


def use_up_allowance(base_url: str, model: str, tpm: int) -> None:
    """Spend the endpoint's token allowance with one text request, as a run well past its first minute finds it.

    A fresh endpoint holds a whole minute of tokens, which would hide for that minute any client that
    sends too fast; a long run meets the steady state, where only the refill is there to take.
    """
    with OpenAI(api_key=API_KEY, base_url=base_url, max_retries=0) as client:
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hello"}], max_tokens=tpm - DRAIN_SLACK_TOKENS
        )


def rows() -> list[Row]:
    """Return the configurations, table rules first."""
    mini = model_spec("gpt-4o-mini")
    old_rule = dataclasses.replace(mini, image_rule=GPT_4O_TILES)
    return [
        Row("gpt-4o-mini", "table: 2,833 + 5,667/tile", "today's", mini, adaptive=True),
        Row("gpt-4.1-mini", "table: patches x 1.62", "today's", model_spec("gpt-4.1-mini"), adaptive=True),
        Row("gpt-4o-mini", "old: 85 + 170/tile", "today's", old_rule, adaptive=True),
        Row("gpt-4o-mini", "old: 85 + 170/tile", "old", old_rule, adaptive=False),
    ]


def print_table(results: list[Measured], scale: float, rpm: int, tpm: int, duration_s: float, photos: int) -> None:
    """Print the results as a Markdown table, with the conditions and the gain as ratios."""
    print(
        f"Limits: {DEFAULT_RPM:,} RPM / {DEFAULT_TPM:,} TPM x {scale:g} = {rpm:,} RPM / {tpm:,} TPM "
        f"(same ratio; scaled so each {duration_s:.0f} s row holds hundreds of requests)."
    )
    print("Each row starts with the endpoint's token allowance spent (a long run's steady state).")
    print(
        f"{photos} generated {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} JPEG photos, prepared once "
        f"(max_pixels {DEFAULT_MAX_PIXELS:,}); max_tokens {DEFAULT_MAX_TOKENS}; {CONCURRENCY} in flight; "
        f"answer latency {LATENCY_S:g} s + up to {JITTER_S:g} s; transient errors retried "
        f"{MAX_ATTEMPTS - 1} times."
    )
    print()
    print("| model | client's image rule | gate | requests | answered | 429s | 429 share | TPM used / limit |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for m in results:
        print(
            f"| {m.row.model} | {m.row.rule} | {m.row.gate} | {m.requests:,} | {m.answered:,} | {m.refused:,} "
            f"| {m.refused_share:.1%} | {m.tpm_share:.2f} |"
        )
    table, old_rule, old = [m for m in results if m.row.model == "gpt-4o-mini"]
    print()
    verdicts = [
        f"{m.row.model}: 429 share {'OK' if m.refused_share <= REFUSED_TARGET else 'MISSED'} "
        f"(<= {REFUSED_TARGET:.0%}), TPM {'OK' if m.tpm_share >= TPM_TARGET else 'MISSED'} (>= {TPM_TARGET:.2f})"
        for m in results
        if m.row.rule.startswith("table")
    ]
    print("Targets: " + "; ".join(verdicts))
    ratio = (
        f"{old.refused_share / table.refused_share:.0f}x the share of 429s"
        if table.refused
        else "against none with the table"
    )
    print(
        f"Gain for gpt-4o-mini: the old rule through the old gate drew {old.refused:,} 429s "
        f"({old.refused_share:.1%} of its requests), {ratio}; through today's gate the old rule still drew "
        f"{old_rule.refused:,} ({old_rule.refused_share:.1%})."
    )


def main() -> None:
    """Run every row and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=10.0, help="multiply the default limits by this")
    parser.add_argument("--duration", type=float, default=150.0, help="seconds each row sends requests")
    parser.add_argument("--photos", type=int, default=8, help="generated photos, reused round-robin")
    args = parser.parse_args()
    rpm, tpm = math.floor(DEFAULT_RPM * args.scale), math.floor(DEFAULT_TPM * args.scale)
    photos = prepared_photos(args.photos)
    results = []
    for row in rows():
        print(f"... {row.model}, {row.rule}, {row.gate} gate", file=sys.stderr, flush=True)
        results.append(measure(row, rpm, tpm, photos, args.duration))
    print_table(results, args.scale, rpm, tpm, args.duration, args.photos)


if __name__ == "__main__":
    main()
