"""Draw the loss curve of a run as a PNG (written beside the checkpoint and embedded in a Prefect artifact)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path


def loss_curve_png(
    loss_points: Sequence[tuple[int, float]], eval_points: Sequence[tuple[int, float]], *, title: str
) -> bytes:
    """Render training (and validation) loss by optimizer step; returns PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")  # no display on workers, and no GUI toolkit import
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 3.6), dpi=100)
    axes = figure.add_subplot()
    if loss_points:
        axes.plot(*zip(*loss_points, strict=True), marker=".", label="train loss")
    if eval_points:
        axes.plot(*zip(*eval_points, strict=True), marker="o", linestyle="--", label="validation loss")
    if not loss_points and not eval_points:
        axes.text(0.5, 0.5, "no loss was logged", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    if loss_points or eval_points:
        axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_png(png: bytes, path: Path) -> Path:
    """Write PNG bytes to ``path``; returns it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path


def markdown_image(png: bytes, *, alt: str, caption: str = "") -> str:
    """Markdown that shows the PNG inline (a data URI), for a Prefect markdown artifact."""
    encoded = base64.b64encode(png).decode("ascii")
    text = f"![{alt}](data:image/png;base64,{encoded})"
    return f"{text}\n\n{caption}" if caption else text
