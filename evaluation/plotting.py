"""matplotlib set up for writing files on a server: the Agg backend, chosen before pyplot loads."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt


def save_figure(fig: plt.Figure, path: Path, dpi: int = 110) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


__all__ = ["plt", "save_figure"]
