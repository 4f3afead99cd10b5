"""What the training process will see: CUDA devices (after ``CUDA_VISIBLE_DEVICES``), bf16 support, or CPU.

The probe runs in a child process with the same ``CUDA_VISIBLE_DEVICES`` as training, so that the
calling process (a Prefect worker, a test) never initialises CUDA or holds GPU memory itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field

from vqa_distill.errors import ConfigError

PROBE_TIMEOUT_S = 120
_PROBE = """
import json, torch
info = {"cuda": torch.cuda.is_available(), "count": 0, "bf16": False, "names": [], "memory_gib": []}
if info["cuda"]:
    info["count"] = torch.cuda.device_count()
    info["bf16"] = bool(torch.cuda.is_bf16_supported())
    for i in range(info["count"]):
        props = torch.cuda.get_device_properties(i)
        info["names"].append(props.name)
        info["memory_gib"].append(round(props.total_memory / 2**30, 1))
print(json.dumps(info))
"""


@dataclass(frozen=True)
class DeviceInfo:
    """The accelerator a training run gets; ``count == 0`` means CPU."""

    count: int = 0
    bf16: bool = False
    names: list[str] = field(default_factory=list)
    memory_gib: list[float] = field(default_factory=list)

    @property
    def is_cuda(self) -> bool:
        """True when training runs on at least one CUDA device."""
        return self.count > 0

    def describe(self) -> str:
        """One line for logs and the metrics table."""
        if not self.is_cuda:
            return "CPU"
        return ", ".join(f"{n} ({m} GiB)" for n, m in zip(self.names, self.memory_gib, strict=False))


CPU = DeviceInfo()


def visible_devices_env(device_ids: list[str]) -> dict[str, str]:
    """The environment that restricts a child process to ``device_ids`` (empty: no GPU at all)."""
    return {"CUDA_VISIBLE_DEVICES": ",".join(device_ids)}


def probe_device(device_ids: list[str]) -> DeviceInfo:
    """Ask a child process with ``CUDA_VISIBLE_DEVICES=device_ids`` what torch sees there."""
    if not device_ids:
        return CPU
    env = {**os.environ, **visible_devices_env(device_ids)}
    try:
        out = subprocess.run(
            [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=True
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"could not query CUDA devices {device_ids}: {exc}") from exc
    info = json.loads(out.stdout.strip().splitlines()[-1])
    if not info["cuda"]:
        return CPU
    return DeviceInfo(count=info["count"], bf16=info["bf16"], names=info["names"], memory_gib=info["memory_gib"])


def choose_dtype(requested: str, device: DeviceInfo) -> str:
    """Resolve ``auto``: bfloat16 on a GPU that supports it, float16 on an older GPU, float32 on the CPU."""
    if requested != "auto":
        return requested
    if not device.is_cuda:
        return "float32"
    return "bfloat16" if device.bf16 else "float16"
