"""Typed parameters of the teacher stage: one model shared by the CLI, config files and the Prefect form.

Secrets are not parameters: Prefect stores and displays flow parameters, so the API key comes from
the environment (``OPENAI_API_KEY``) or a Prefect Secret block named in ``api_key_block``.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vqa_distill.errors import ConfigError

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_RPM = 500  # OpenAI gpt-4o-mini, usage tier 1
DEFAULT_TPM = 200_000
DEFAULT_CONCURRENCY = 32
DEFAULT_MAX_RETRIES = 3  # the original script's --max_retries default
DEFAULT_RETRY_DELAY_S = 1.0  # first backoff step; doubles per attempt, with jitter
DEFAULT_TIMEOUT_S = 60.0
# OpenAI fits a high-detail image into 2048x2048 and then to a 768-px shortest side before billing:
# pixels past 2048x768-ish only cost upload time. 1536*1536 keeps detail for every aspect ratio.
DEFAULT_MAX_PIXELS = 1536 * 1536
DEFAULT_MAX_TOKENS = 1024


class TeacherParams(BaseModel):
    """Everything a teacher run needs except the secret; rendered as a form in the Prefect UI."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    images: str = Field(description="Folder of images, walked recursively.")
    out: str = Field(description="Run folder: ledger, responses.jsonl, failed.jsonl, train.jsonl, val.jsonl.")
    prompts: list[str] = Field(default_factory=list, description="User prompts; each image is asked each one.")
    prompt_file: str | None = Field(default=None, description="Text file with more prompts, one per line.")
    system: str | None = Field(default=None, description="Optional system prompt sent with every request.")
    model: str = Field(default=DEFAULT_MODEL, description="Teacher model name at the endpoint.")
    base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint (proxy, vLLM, Azure); default: OpenAI."
    )
    api_key_block: str | None = Field(
        default=None, description="Name of a Prefect Secret block holding the API key (else OPENAI_API_KEY)."
    )
    rpm: int = Field(default=DEFAULT_RPM, ge=1, description="Requests per minute allowed at the endpoint.")
    tpm: int = Field(default=DEFAULT_TPM, ge=100, description="Tokens per minute allowed at the endpoint.")
    concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1, le=4096, description="Requests in flight.")
    max_retries: int = Field(default=DEFAULT_MAX_RETRIES, ge=0, le=20, description="Retries on transient errors.")
    retry_delay: float = Field(
        default=DEFAULT_RETRY_DELAY_S, ge=0, description="First retry delay in seconds (doubles, jittered)."
    )
    timeout: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, description="Seconds to wait for one answer.")
    max_pixels: int = Field(
        default=DEFAULT_MAX_PIXELS, ge=64 * 64, description="Images are downscaled to at most this many pixels."
    )
    detail: Literal["auto", "low", "high"] = Field(default="auto", description="OpenAI image detail level.")
    temperature: float | None = Field(default=None, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int | None = Field(default=DEFAULT_MAX_TOKENS, ge=1, description="Answer length cap (tokens).")
    val_ratio: float = Field(default=0.0, ge=0, lt=1, description="Share of rows held out in val.jsonl.")
    seed: int = Field(default=42, description="Seed of the train/val split.")
    preflight: bool = Field(default=True, description="Check endpoint, key and model with one call first.")

    @field_validator("prompts")
    @classmethod
    def _strip_prompts(cls, prompts: list[str]) -> list[str]:
        """Drop blank prompts; duplicates would pay twice for the same question."""
        return list(dict.fromkeys(p.strip() for p in prompts if p.strip()))

    def all_prompts(self) -> list[str]:
        """Return the prompts given inline plus those of ``prompt_file``, in order, without repeats."""
        prompts = list(self.prompts)
        if self.prompt_file:
            path = Path(self.prompt_file)
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ConfigError(f"cannot read prompt file {path}: {exc.strerror or exc}") from exc
            prompts += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        prompts = list(dict.fromkeys(prompts))
        if not prompts:
            raise ConfigError("no prompt given: pass --prompt TEXT or --prompt-file FILE")
        return prompts

    def generation_params(self) -> dict[str, Any]:
        """Return the sampling parameters sent with each request (part of the content key)."""
        params: dict[str, Any] = {"detail": self.detail, "max_pixels": self.max_pixels}
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.max_tokens is not None:
            params["max_tokens"] = self.max_tokens
        return params


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML, YAML or JSON config file into a dict of TeacherParams fields."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix in {".yaml", ".yml"}:
            data = yaml.safe_load(text) or {}
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"config file {path} must end in .toml, .yaml, .yml or .json")
    except (tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table of options")
    section = data.get("teacher", data)
    return {str(k).replace("-", "_"): v for k, v in section.items()}


def build_params(values: dict[str, Any]) -> TeacherParams:
    """Validate option values into TeacherParams, turning pydantic's error into a ConfigError."""
    if "prompt" in values:
        values["prompts"] = list(values.pop("prompt") or [])
    try:
        return TeacherParams(**values)
    except ValidationError as exc:
        lines = [f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid options:\n  " + "\n  ".join(lines)) from exc
