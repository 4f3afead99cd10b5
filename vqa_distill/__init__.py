"""vqa-distill: distil an OpenAI-compatible vision teacher into a fine-tuned Qwen-VL student."""

from __future__ import annotations

__version__ = "0.1.0"
