"""Helpers shared by the offline teacher's tests: pictures, data URLs, messages and clients."""

from __future__ import annotations

import base64
import io
from typing import Any

import openai
from PIL import Image, ImageDraw

from vqa_distill.offline_teacher.process import TeacherServerHandle

CLIENT_TIMEOUT_S = 20.0  # generous: the suite shares two cores with other work


def picture(size: tuple[int, int] = (320, 240), colour: tuple[int, int, int] = (40, 90, 200)) -> Image.Image:
    """Return a picture with some structure, so colours, brightness and edges are not trivial."""
    image = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.rectangle((0, 0, w // 3, h // 3), fill=(250, 250, 250))
    draw.ellipse((w // 2, h // 2, w - 1, h - 1), fill=(200, 30, 30))
    return image


def encode(image: Image.Image, fmt: str = "JPEG", **save: Any) -> bytes:
    """Return ``image`` saved as ``fmt``."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def data_url(raw: bytes, mime: str = "image/jpeg") -> str:
    """Return ``raw`` as a base64 data URL declaring ``mime``."""
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


def picture_url(size: tuple[int, int] = (320, 240), colour: tuple[int, int, int] = (40, 90, 200)) -> str:
    """Return a JPEG data URL of ``picture(size, colour)``."""
    return data_url(encode(picture(size, colour)))


def vision_messages(
    url: str, prompt: str | None = "Describe the defects.", detail: str = "high", system: str | None = None
) -> list[Any]:
    """Return a conversation: an optional system message, then the prompt (if any) and one image."""
    messages: list[Any] = [{"role": "system", "content": system}] if system else []
    content: list[dict[str, Any]] = [{"type": "text", "text": prompt}] if prompt is not None else []
    content.append({"type": "image_url", "image_url": {"url": url, "detail": detail}})
    return [*messages, {"role": "user", "content": content}]


def text_messages(prompt: str) -> list[Any]:
    """Return a one-message conversation without images."""
    return [{"role": "user", "content": prompt}]


def async_client(handle: TeacherServerHandle, **options: Any) -> openai.AsyncOpenAI:
    """Return the real async client for ``handle``, with its key and no retries of its own."""
    options.setdefault("timeout", CLIENT_TIMEOUT_S)
    return openai.AsyncOpenAI(
        base_url=handle.base_url, api_key=handle.api_key or "any", max_retries=0, **options
    )


def sync_client(handle: TeacherServerHandle, **options: Any) -> openai.OpenAI:
    """Return the real sync client for ``handle``, with its key and no retries of its own."""
    options.setdefault("timeout", CLIENT_TIMEOUT_S)
    return openai.OpenAI(base_url=handle.base_url, api_key=handle.api_key or "any", max_retries=0, **options)
