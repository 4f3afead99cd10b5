"""Draw the loss curve of a run as a PNG (written beside the checkpoint and embedded in a Prefect artifact).

``new_figure`` and ``figure_png`` are the one way every chart here is drawn and encoded (the loss
curve, the evaluation's win rates, the distil loop's curve).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # matplotlib is imported when a chart is drawn, not with this module
    from matplotlib.figure import Figure


def loss_curve_png(
    loss_points: Sequence[tuple[int, float]], eval_points: Sequence[tuple[int, float]], *, title: str
) -> bytes:
    """Render training (and validation) loss by optimizer step; returns PNG bytes."""
    figure = new_figure()
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
    return figure_png(figure)


def new_figure(width: float = 6.4, height: float = 3.6) -> Figure:
    """A matplotlib figure drawn off-screen (Agg: no display on workers, no GUI toolkit import)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def figure_png(figure: Figure, *, tight: bool = False) -> bytes:
    """Encode ``figure`` as PNG bytes (``tight``: crop to what is drawn)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight" if tight else None)
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
