"""What is asked of the teacher, and the content key that makes sure it is paid for once.

The key hashes everything that changes the answer: the image bytes, the prompt, the system prompt,
the model and the generation parameters (including the pixel budget and detail, which change what
the model sees). It leaves out the file's name and the endpoint: a renamed or copied photo, or the same
model behind a proxy, is not asked again.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, computed_field

KEY_VERSION = 1


def request_key(*, sha256: str, prompt: str, system: str | None, model: str, params: dict[str, Any]) -> str:
    """Return the hex content key of one teacher request."""
    canonical = json.dumps(
        {"v": KEY_VERSION, "image": sha256, "prompt": prompt, "system": system or "", "model": model,
         "params": params},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class TeacherRequest(BaseModel):
    """One image x prompt question; plain data, so Prefect can hash and display it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image_path: str
    rel_path: str
    sha256: str
    prompt: str
    system: str | None
    model: str
    params: dict[str, Any]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def key(self) -> str:
        """The content key (see module docstring)."""
        return request_key(
            sha256=self.sha256, prompt=self.prompt, system=self.system, model=self.model, params=self.params
        )

    @property
    def file_name(self) -> str:
        """The image's file name, used to name task runs."""
        return self.rel_path.rsplit("/", 1)[-1]
