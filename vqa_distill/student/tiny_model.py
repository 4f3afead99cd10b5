"""Build a tiny, randomly initialised Qwen-VL model directory that ms-swift trains offline in seconds.

The real Qwen-VL checkpoints are gigabytes and live on a hub this project may not reach. A model
built from a config with small dimensions exercises the same code paths (ms-swift's model loader,
template, LoRA, merge, inference) on a laptop CPU. ms-swift's Qwen-VL templates hard-code
``<|image_pad|>`` = 151655, so the offline tokenizer keeps every Qwen special token at its real id
and the vocabulary at Qwen's 151936 rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

Arch = Literal["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]
ARCHES: tuple[Arch, ...] = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")

VOCAB_SIZE = 151936
FIRST_SPECIAL_ID = 151643
# Qwen's added tokens, in id order from FIRST_SPECIAL_ID; (content, special).
QWEN_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    # Qwen3's additions; the Qwen3-VL template looks for <think> in answers.
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)
IMAGE_PAD_ID = FIRST_SPECIAL_ID + 12
VIDEO_PAD_ID = FIRST_SPECIAL_ID + 13
VISION_START_ID = FIRST_SPECIAL_ID + 9
VISION_END_ID = FIRST_SPECIAL_ID + 10
EOS_ID = FIRST_SPECIAL_ID + 2  # <|im_end|>
PAD_ID = FIRST_SPECIAL_ID  # <|endoftext|>

# Tiny dimensions: hidden 32, 2 layers, vision depth 2. Head dim 16 at every width (heads = hidden / 16),
# so the M-RoPE sections always sum to 8.
HIDDEN = 32
HEAD_DIM = 16
LAYERS = 2
VISION_DEPTH = 2

# Qwen2-VL's chat template (used by the processor's apply_chat_template; ms-swift uses its own).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_model(
    out_dir: str | Path,
    *,
    arch: Arch = "qwen2_5_vl",
    seed: int = 0,
    hidden: int = HIDDEN,
    layers: int = LAYERS,
    merges: int = 0,
) -> Path:
    """Write a random-weight Qwen-VL model of ``arch`` with an offline tokenizer into ``out_dir``.

    ``hidden`` (a multiple of 16) and ``layers`` size the text model; ``merges`` > 0 gives the tokenizer up
    to that many BPE merges learned from Python's bundled documentation, so English words take a few tokens
    instead of one per byte (rows get 3x shorter, as with Qwen's real tokenizer). Returns the directory.
    The default takes seconds and about 15 MB: 10 MB of bfloat16 weights (the tied embedding has Qwen's
    full vocabulary) and a 5 MB tokenizer.
    """
    import torch

    if arch not in ARCHES:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHES)}")
    if hidden < HEAD_DIM or hidden % HEAD_DIM:
        raise ValueError(f"hidden must be a positive multiple of {HEAD_DIM}, got {hidden}")
    if layers < 1 or merges < 0:
        raise ValueError(f"need layers >= 1 and merges >= 0, got {layers} and {merges}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = _model_config(arch, hidden=hidden, layers=layers)
    model_cls = _model_class(arch)
    # Stored in bfloat16 like the real checkpoints (and half the bytes); ms-swift upcasts on CPU.
    model = model_cls(config).to(torch.bfloat16)
    model.generation_config.eos_token_id = [EOS_ID, PAD_ID]
    model.generation_config.pad_token_id = PAD_ID
    model.save_pretrained(out, safe_serialization=True)
    _build_processor(arch, merges=merges).save_pretrained(out)
    return out


def _model_class(arch: Arch) -> Any:
    """Return the transformers class that holds ``arch``'s weights."""
    import transformers

    names = {
        "qwen2_vl": "Qwen2VLForConditionalGeneration",
        "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
        "qwen3_vl": "Qwen3VLForConditionalGeneration",
    }
    return getattr(transformers, names[arch])


def _model_config(arch: Arch, *, hidden: int = HIDDEN, layers: int = LAYERS) -> Any:
    """Return a tiny config of ``arch`` that keeps Qwen's vocabulary and vision token ids."""
    import transformers

    heads = hidden // HEAD_DIM
    text: dict[str, Any] = {
        "vocab_size": VOCAB_SIZE,
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "max_position_embeddings": 4096,
        "bos_token_id": PAD_ID,
        "eos_token_id": EOS_ID,
        "pad_token_id": PAD_ID,
        # Tied like the real 2B/3B models; halves the size (the vocabulary dominates it).
        "tie_word_embeddings": True,
    }
    ids: dict[str, Any] = {
        "image_token_id": IMAGE_PAD_ID,
        "video_token_id": VIDEO_PAD_ID,
        "vision_start_token_id": VISION_START_ID,
        "vision_end_token_id": VISION_END_ID,
        "tie_word_embeddings": True,
    }
    if arch == "qwen3_vl":
        text |= {
            "head_dim": HEAD_DIM,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5_000_000.0,
                "mrope_section": [4, 2, 2],
                "mrope_interleaved": True,
            },
        }
        vision = {
            "depth": VISION_DEPTH,
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_heads": heads,
            "out_hidden_size": hidden,
            "patch_size": 16,
            "num_position_embeddings": 144,
            "deepstack_visual_indexes": [0],
        }
        return transformers.Qwen3VLConfig(text_config=text, vision_config=vision, **ids)
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [2, 3, 3]}
    if arch == "qwen2_5_vl":
        vision = {
            "depth": VISION_DEPTH,
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_heads": heads,
            "out_hidden_size": hidden,
            "fullatt_block_indexes": [VISION_DEPTH - 1],
        }
        return transformers.Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids)
    vision = {"depth": VISION_DEPTH, "embed_dim": hidden, "hidden_size": hidden, "num_heads": heads, "mlp_ratio": 2}
    return transformers.Qwen2VLConfig(text_config=text, vision_config=vision, **ids)


def _build_processor(arch: Arch, *, merges: int = 0) -> Any:
    """Return the arch's processor around an offline byte-level BPE tokenizer with Qwen's special ids."""
    import transformers

    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=_byte_level_tokenizer(merges),
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    patch = 16 if arch == "qwen3_vl" else 14
    # Used by transformers' processor (plain peft/transformers inference); ms-swift resizes images itself
    # (qwen_vl_utils' MAX_PIXELS, and --max_pixels).
    pixels = {"shortest_edge": 56 * 56, "longest_edge": (patch * 2) ** 2 * 256}
    image_processor = transformers.Qwen2VLImageProcessor(patch_size=patch, merge_size=2, size=pixels)
    if arch == "qwen3_vl":
        video_processor: Any = transformers.Qwen3VLVideoProcessor(patch_size=patch, merge_size=2)
        processor_cls: Any = transformers.Qwen3VLProcessor
    else:
        video_processor = transformers.Qwen2VLVideoProcessor(patch_size=patch, merge_size=2)
        processor_cls = (
            transformers.Qwen2_5_VLProcessor if arch == "qwen2_5_vl" else transformers.Qwen2VLProcessor
        )
    return processor_cls(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


def _byte_level_tokenizer(merges: int = 0) -> Any:
    """A byte-level BPE with ``merges`` learned merges whose vocabulary puts Qwen's added tokens at their real ids.

    The 256 byte symbols come first, then one token per merge in the order learned; filler entries pad
    the vocabulary so that the first added token lands on 151643: the model's embedding rows and
    ms-swift's hard-coded ids then agree with the tokenizer.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = ByteLevel.alphabet()
    vocab = {symbol: index for index, symbol in enumerate(sorted(alphabet))}
    pairs = learned_merges(merges) if merges else []
    for left, right in pairs:
        vocab.setdefault(left + right, len(vocab))
    for index in range(len(vocab), FIRST_SPECIAL_ID):
        vocab[f"<|unused_{index}|>"] = index
    for offset, (content, _special) in enumerate(QWEN_ADDED_TOKENS):
        vocab[content] = FIRST_SPECIAL_ID + offset
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_tokens([AddedToken(c, special=s, normalized=False) for c, s in QWEN_ADDED_TOKENS if not s])
    tokenizer.add_special_tokens([AddedToken(c, special=True, normalized=False) for c, s in QWEN_ADDED_TOKENS if s])
    return tokenizer


def learned_merges(count: int) -> list[tuple[str, str]]:
    """Up to ``count`` byte-level BPE merges learned from Python's bundled documentation (pydoc_data).

    The corpus ships with every Python, so the merges are learned offline, the same on every run, in
    about a second; it is ordinary English prose, so common words become one or two tokens.
    """
    from pydoc_data.topics import topics

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from tokenizers.pre_tokenizers import ByteLevel

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=len(ByteLevel.alphabet()) + count,
        min_frequency=2,
        initial_alphabet=ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator((topics[key] for key in sorted(topics)), trainer)
    merged = json.loads(tokenizer.to_str())["model"]["merges"]
    pairs = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merged]
    return [(str(left), str(right)) for left, right in pairs[:count]]


def describe(model_dir: str | Path) -> dict[str, Any]:
    """Summarise a built model dir: architecture, file count and size (for the CLI's report)."""
    path = Path(model_dir)
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return {"path": str(path), "architectures": config.get("architectures"), "bytes": size}
