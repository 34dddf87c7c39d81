"""The figure plumbing every plot shares: matplotlib's Figure class, and PNG writing via Agg."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kcli.errors import KcliError, install_hint

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 110
CURVE_SIZE = (6.4, 4.0)  # inches: 704 x 440 pixels at DPI


def _figure_class() -> type[Figure]:
    """matplotlib's Figure, or a KcliError saying how to install it."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise KcliError(f"plots need matplotlib: {install_hint('plots')}") from None
    return Figure


def _save(fig: Figure, path: Path) -> Path:
    """Lay out and write `fig` as a PNG through the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI, format="png")
    return path
