"""Decide ms-swift's ``model_type`` and ``template`` for a student model, before anything loads it.

ms-swift guesses both from the directory name and ``config.json``'s architecture. For a local directory
with an unregistered name that guess is ambiguous (Qwen2-VL's architecture also serves QVQ, Qwen2.5-VL's
also MiMo-VL) and ms-swift stops with "Multiple possible types found". We resolve both here and always
pass them, so a run never depends on what the directory happens to be called.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from vqa_distill.errors import ModelNotFoundError

# config.json "model_type" -> (ms-swift model_type, ms-swift template)
LOCAL_TYPES: dict[str, tuple[str, str]] = {
    "qwen2_vl": ("qwen2_vl", "qwen2_vl"),
    "qwen2_5_vl": ("qwen2_5_vl", "qwen2_5_vl"),
    "qwen3_vl": ("qwen3_vl", "qwen3_vl"),
    "qwen3_vl_moe": ("qwen3_vl_moe", "qwen3_vl"),
}
# Hub names, checked in order (the first match wins): pattern -> (model_type, template)
HUB_PATTERNS: tuple[tuple[str, tuple[str, str]], ...] = (
    (r"qwen3-vl-.*a\d+b", ("qwen3_vl_moe", "qwen3_vl")),
    (r"qwen3-vl", ("qwen3_vl", "qwen3_vl")),
    (r"qwen2\.5-vl|qwen2_5-vl", ("qwen2_5_vl", "qwen2_5_vl")),
    (r"qvq", ("qwen2_vl", "qvq")),
    (r"qwen2-vl", ("qwen2_vl", "qwen2_vl")),
)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
SUPPORTED = "Qwen2-VL, Qwen2.5-VL, Qwen3-VL"


@dataclass(frozen=True)
class ResolvedModel:
    """A student model as ms-swift will be told about it."""

    model: str  # absolute directory, or the hub id as given
    model_type: str
    template: str
    is_local: bool


def resolve_model(model_id_or_path: str, *, model_type: str | None = None, template: str | None = None) -> ResolvedModel:
    """Resolve a local directory (by its config.json) or a hub id (by its name); overrides win.

    Raises ModelNotFoundError naming the path when it does not exist or is of an unknown type.
    """
    path = Path(model_id_or_path).expanduser()
    if path.exists():
        found_type, found_template = _local_types(path)
        return ResolvedModel(str(path.resolve()), model_type or found_type, template or found_template, True)
    if not HUB_ID.match(model_id_or_path):
        raise ModelNotFoundError(f"model path {model_id_or_path!r} does not exist")
    guessed = hub_types(model_id_or_path)
    if guessed is None:
        if model_type is None:
            raise ModelNotFoundError(
                f"{model_id_or_path!r} is not a local directory and not a hub id of a supported model "
                f"({SUPPORTED}); pass an existing model directory, or --model_type and --template"
            )
        guessed = (model_type, template or model_type)
    return ResolvedModel(model_id_or_path, model_type or guessed[0], template or guessed[1], False)


def hub_types(hub_id: str) -> tuple[str, str] | None:
    """Return (model_type, template) for a hub id of a supported family, else None."""
    name = hub_id.rsplit("/", 1)[-1].lower()
    for pattern, types in HUB_PATTERNS:
        if re.search(pattern, name):
            return types
    return None


def _local_types(path: Path) -> tuple[str, str]:
    """Read ``config.json`` of a local model directory and map its model_type."""
    if not path.is_dir():
        raise ModelNotFoundError(f"model path {str(path)!r} is a file, not a model directory")
    if (path / "adapter_config.json").exists():
        raise ModelNotFoundError(
            f"{str(path)!r} is an adapter checkpoint, not a model: pass its base model as --model_id_or_path "
            "(and the checkpoint as --resume_from_checkpoint to continue it)"
        )
    config_path = path / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelNotFoundError(f"model directory {str(path)!r} has no config.json") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelNotFoundError(f"cannot read {str(config_path)!r}: {exc}") from exc
    config_type = config.get("model_type")
    if config_type not in LOCAL_TYPES:
        raise ModelNotFoundError(
            f"model {str(path)!r} has model_type {config_type!r} in config.json; supported: "
            f"{', '.join(LOCAL_TYPES)} ({SUPPORTED})"
        )
    return LOCAL_TYPES[config_type]
