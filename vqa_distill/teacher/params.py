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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vqa_distill.errors import ConfigError
from vqa_distill.teacher.endpoint.models import ReasoningEffort
from vqa_distill.teacher.ratelimit.gate import DEFAULT_MAX_RETRY_AFTER_S

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_RPM = 500  # OpenAI gpt-4o-mini, usage tier 1
DEFAULT_TPM = 200_000
DEFAULT_CONCURRENCY = 32
DEFAULT_MAX_RETRIES = 3  # the original script's --max_retries default
DEFAULT_RETRY_DELAY_S = 1.0  # first backoff step; doubles per attempt, with jitter
DEFAULT_TIMEOUT_S = 60.0
# Tile models fit a high-detail image into 2048x2048 and then a 768-px shortest side before billing,
# patch models into 1536 32-px patches (docs/models.md): pixels past that only cost upload time.
# 1536*1536 keeps detail for every aspect ratio.
DEFAULT_MAX_PIXELS = 1536 * 1536
DEFAULT_MAX_TOKENS = 1024
MAX_QUESTIONS = 20  # questions per image x prompt: past this a model repeats itself
MAX_SHARDS = 64  # parts of one run at most; a part per worker slot is plenty
DEFAULT_SHARD_ATTEMPTS = 3  # runs of one shard at most: the first, and two more after crashes
DEFAULT_SHARD_DEADLINE_H = 24.0  # a parent stops waiting then: a shard still not final is reported, not awaited
DEFAULT_REVIEW_ROWS = 50  # rows sampled into review.html
# LLaVA's three kinds of instruction data, or a mix of them (docs/vqa.md).
QuestionStyle = Literal["mixed", "conversation", "detail", "reasoning"]


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
    rate_limits: bool = Field(
        default=True,
        description="Pace by rpm/tpm. Off: no per-minute limits at all (a self-hosted server: its concurrency paces it).",
    )
    concurrency: int = Field(
        default=DEFAULT_CONCURRENCY, ge=1, le=4096, description="Requests in flight (with auto: at most)."
    )
    concurrency_auto: bool = Field(
        default=True,
        description="Adapt the requests in flight to the endpoint (concurrency 'auto'): latency and overload "
        "answers while it sends no rate-limit headers; its headers rule once it does. Off: concurrency is fixed.",
    )
    max_retries: int = Field(default=DEFAULT_MAX_RETRIES, ge=0, le=20, description="Retries on transient errors.")
    retry_delay: float = Field(
        default=DEFAULT_RETRY_DELAY_S, ge=0, description="First retry delay in seconds (doubles, jittered)."
    )
    timeout: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, description="Seconds to wait for one answer.")
    max_pixels: int = Field(
        default=DEFAULT_MAX_PIXELS, ge=64 * 64, description="Images are downscaled to at most this many pixels."
    )
    detail: Literal["auto", "low", "high"] = Field(default="auto", description="OpenAI image detail level.")
    temperature: float | None = Field(
        default=None, ge=0, le=2, description="Sampling temperature (reasoning models take none)."
    )
    max_tokens: int | None = Field(
        default=DEFAULT_MAX_TOKENS,
        ge=1,
        description="Answer length cap (tokens); sent as max_completion_tokens to reasoning models.",
    )
    reasoning_effort: ReasoningEffort | None = Field(
        default=None, description="Reasoning effort, sent to reasoning models only (o-series, gpt-5)."
    )
    max_retry_after: float = Field(
        default=DEFAULT_MAX_RETRY_AFTER_S,
        ge=0,
        description="Longest wait in seconds the endpoint may ask for; longer ones fail the attempt instead.",
    )
    val_ratio: float = Field(default=0.0, ge=0, lt=1, description="Share of rows held out in val.jsonl.")
    seed: int = Field(default=42, description="Seed of the train/val split.")
    preflight: bool = Field(
        default=True, description="Check endpoint, key and model first (GET /models/{model}, else one tiny call)."
    )
    batch: bool = Field(
        default=False,
        description="Send through the Batch API (half price, answers within 24 h): the run submits and returns; "
        "collect-batches (or `vqa-distill collect`) records the answers and builds the dataset.",
    )
    questions: int | None = Field(
        default=None,
        ge=1,
        le=MAX_QUESTIONS,
        description="Questions the teacher writes per image x prompt, each then answered on its own; "
        "unset: each prompt is the question.",
    )
    question_style: QuestionStyle = Field(
        default="mixed",
        description="Kind of questions: conversation (short facts), detail (descriptions), reasoning (why, what "
        "if), or mixed.",
    )
    conversation: bool = Field(
        default=False, description="One multi-turn row per image (its questions in turn), not one row per question."
    )
    judge_model: str | None = Field(
        default=None, description="Model that scores every (image, question, answer) from 1 to 5; unset: no judge."
    )
    min_score: int | None = Field(default=None, ge=1, le=5, description="Leave out rows the judge scored lower.")
    judge_rpm: int | None = Field(
        default=None, ge=1, description="Requests per minute allowed for the judge model (unset: rpm); its own gate."
    )
    judge_tpm: int | None = Field(
        default=None, ge=100, description="Tokens per minute allowed for the judge model (unset: tpm); its own gate."
    )
    shards: int = Field(
        default=1,
        ge=1,
        le=MAX_SHARDS,
        description="Split the images into this many parts, each a teacher-shard run on cpu-pool (any worker); "
        "1: ask everything in this run.",
    )
    shard_attempts: int = Field(
        default=DEFAULT_SHARD_ATTEMPTS,
        ge=1,
        le=10,
        description="Runs of one shard at most when its worker crashes; each pays only for what the ledger lacks.",
    )
    shard_deadline_h: float = Field(
        default=DEFAULT_SHARD_DEADLINE_H,
        gt=0,
        le=24 * 14,
        description="Hours the parent waits for its shard runs at most; one not final by then fails the run "
        "(its answers so far are kept).",
    )
    review: int = Field(
        default=DEFAULT_REVIEW_ROWS, ge=0, description="Rows sampled into review.html in the run folder (0: none)."
    )

    @model_validator(mode="before")
    @classmethod
    def _concurrency_auto(cls, values: Any) -> Any:
        """``concurrency: auto`` asks for the adaptive limit; a number given alone fixes it (the form has both fields)."""
        if not isinstance(values, dict) or "concurrency" not in values:
            return values
        values = dict(values)
        if values["concurrency"] == "auto":
            del values["concurrency"]
            values["concurrency_auto"] = True
        else:
            values.setdefault("concurrency_auto", False)
        return values

    @field_validator("prompts")
    @classmethod
    def _strip_prompts(cls, prompts: list[str]) -> list[str]:
        """Drop blank prompts; duplicates would pay twice for the same question."""
        return list(dict.fromkeys(p.strip() for p in prompts if p.strip()))

    @model_validator(mode="after")
    def _question_options_need_questions(self) -> TeacherParams:
        """The conversation rows and the judge work on generated questions; only a judge gives scores."""
        if self.questions is None:
            given = [name for name in ("conversation", "judge_model", "min_score") if getattr(self, name)]
            if given:
                raise ValueError(f"{', '.join(given)} work on generated questions: set questions (--questions N)")
        if self.min_score is not None and self.judge_model is None:
            raise ValueError("min_score needs judge_model (--judge-model): only the judge gives scores")
        return self

    @model_validator(mode="after")
    def _shards_are_online(self) -> TeacherParams:
        """A Batch API submit is one quick run already: shards split online asking only."""
        if self.batch and self.shards > 1:
            raise ValueError("shards split online runs: batch mode submits in one run (leave shards at 1)")
        return self

    @model_validator(mode="after")
    def _batch_sends_the_prompts(self) -> TeacherParams:
        """A batch holds fixed requests: questions the teacher writes first need the online mode."""
        if self.batch and self.questions is not None:
            raise ValueError("batch mode sends each prompt as it is: generated questions (questions) need online mode")
        return self

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

    def with_absolute_paths(self) -> TeacherParams:
        """Return these parameters with ``images`` and ``out`` made absolute, here, before they travel.

        A relative folder means something else on every worker (each resolves it in its own checkout,
        and a shared ledger's schema is named from the resolved path), so a run's folders become
        absolute where the run is started, before they are flow parameters of anything else.
        """
        images, out = (str(Path(folder).expanduser().resolve()) for folder in (self.images, self.out))
        return self if (images, out) == (self.images, self.out) else self.model_copy(update={"images": images, "out": out})

    def generation_params(self) -> dict[str, Any]:
        """Return the sampling parameters sent with each request (part of the content key)."""
        params: dict[str, Any] = {"detail": self.detail, "max_pixels": self.max_pixels}
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.max_tokens is not None:
            params["max_tokens"] = self.max_tokens
        # Only when set, so the key of every request made before this option existed is unchanged.
        if self.reasoning_effort is not None:
            params["reasoning_effort"] = self.reasoning_effort
        return params


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML, YAML or JSON config file into a dict of TeacherParams fields (its [teacher] table, or all of it)."""
    data = read_config_file(path)
    return _options(data.get("teacher", data))


def config_table(path: str | Path, name: str) -> dict[str, Any]:
    """One named table of a config file (``student`` for the distil loop) as options; empty when it has none."""
    table = read_config_file(path).get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: '{name}' must be a table of options")
    return _options(table)


def _options(table: dict[str, Any]) -> dict[str, Any]:
    """Option names as the models spell them: dashes become underscores."""
    return {str(k).replace("-", "_"): v for k, v in table.items()}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a TOML, YAML or JSON config file; ConfigError, in one line, for one that cannot be read or is no table."""
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
    return data


def build_params(values: dict[str, Any]) -> TeacherParams:
    """Validate option values into TeacherParams, turning pydantic's error into a ConfigError."""
    if "prompt" in values:
        values["prompts"] = list(values.pop("prompt") or [])
    try:
        return TeacherParams(**values)
    except ValidationError as exc:
        lines = [f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid options:\n  " + "\n  ".join(lines)) from exc
