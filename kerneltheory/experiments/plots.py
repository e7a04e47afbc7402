"""Seaborn figures of a sweep: the measured variance with its 95% band, the closed forms drawn beside it.

Colour = curve (the series label), line style = what is drawn: the measurement (solid, markers, with the
band s² ± 1.96·SE(s²) shaded; a band whose lower end is ≤ 0 is drawn down to 1% of the estimate, as a log
axis cannot show it), the closed form (dashed), the iid closed form (dotted), the ORF theory (dash-dot).
The y axis is logarithmic, the x axis as the figure's configuration says.

The layout is computed here, in inches, from the number of panels and legend entries (:func:`figure_layout`),
so a figure is rendered once: no constrained layout and no tight bounding box, each of which renders (or
measures every text of) the figure again. Log-axis tick labels are plain Unicode (``10⁻²``, ``6×10⁻¹``,
``2⁴``) rather than mathtext, whose parser dominated the cost of drawing a label, and only the minor ticks
that carry a label are built (:class:`LabelledMinorLocator`).
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import LogFormatterSciNotation, LogLocator

from ..io import save_figure_atomic
from .config import FigureConfig
from .summary import KIND_NAMES, aggregate

STYLES = {
    "measured": (None, "o"),
    "closed_form": ((5, 2), None),
    "iid": ((1, 2), None),
    "orf_bound": ((5, 1.5, 1, 1.5), None),
    "orf_leading": ((8, 2, 1, 2, 1, 2), None),
}
X_LABELS = {
    "num_features": "m (frequencies)",
    "norm": "‖x‖",
    "norm_ratio": "‖y‖ / ‖x‖",
    "angle": "angle between x and y (degrees)",
    "dim": "d (= m)",
}
#: Plotting parameters beyond the configuration; part of each figure's digest (change it to redraw them all).
PLOT_STYLE = {"dpi": 110, "version": 4}
Y_LABELS = {"variance": "Var φ(x)ᵀφ(y) (one draw)", "relative_variance": "Var / K(x, y)²"}

#: Sizes in inches: one panel's axes box, the margins around the grid and the gaps between panels (room for
#: the y tick labels and y label on the left, the panel title above, the x tick labels and x label below).
AX_WIDTH, AX_HEIGHT = 2.75, 2.0
LEFT, RIGHT, SUPTITLE, PANEL_TITLE = 0.78, 0.15, 0.32, 0.3
X_LABELS_HEIGHT, LEGEND_ROW, LEGEND_PAD = 0.48, 0.2, 0.1
#: Legend font size (points); an entry's width is estimated as its handle and padding (3.6 em, matplotlib's
#: handle length 2, text pad 0.8 and half the column spacing 2 counted twice) plus 0.62 em per character,
#: above the mean advance of DejaVu Sans, so an estimated row is never narrower than the drawn one.
LEGEND_FONT, ENTRY_EM, CHAR_EM = 8.0, 3.6, 0.62
SUPTITLE_FONT = 10.0
_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


@dataclass(frozen=True)
class Layout:
    """Where everything goes, in inches: the figure's size, the grid of axes boxes and the legend's columns."""

    width: float
    height: float
    rows: int
    cols: int
    ax_width: float  # AX_WIDTH, or more where the title is wider than the grid
    legend_cols: int
    legend_rows: int
    bottom: float  # from the figure's bottom edge to the lowest row of axes
    top: float  # from the figure's top edge to the highest row of axes
    hgap: float
    vgap: float


def _legend_columns(labels: list[str], width: float) -> int:
    """The most columns (≤ 5) whose estimated width fits in ``width`` inches; matplotlib fills a legend
    column by column, splitting the entries as ``numpy.array_split`` does, and a column is as wide as its
    widest entry."""
    entry = np.array([ENTRY_EM * LEGEND_FONT / 72 + _text_width(s, LEGEND_FONT) for s in labels])
    for ncol in range(min(5, len(labels)), 1, -1):
        if sum(column.max() for column in np.array_split(entry, ncol)) <= width:
            return ncol
    return 1


def _text_width(text: str, points: float) -> float:
    """An upper estimate of the width in inches of ``text`` at ``points`` (no font metrics measured)."""
    return CHAR_EM * len(text) * points / 72


def figure_layout(panels: int, legend_labels: list[str], title: str = "") -> Layout:
    """The figure's geometry for ``panels`` panels (at most 3 a row), a legend of ``legend_labels`` in a
    strip below the grid and a ``title`` above it (the panels widen where the title needs it); a grid with
    empty cells keeps room under every row for x tick labels and a label (the lowest panel of a column
    carries them)."""
    cols = min(3, panels)
    rows = -(-panels // cols)
    hgap = LEFT + 0.05
    vgap = PANEL_TITLE + (X_LABELS_HEIGHT if rows * cols > panels else 0.08)
    width = max(LEFT + cols * AX_WIDTH + (cols - 1) * hgap + RIGHT, _text_width(title, SUPTITLE_FONT) + 0.3)
    legend_cols = _legend_columns(legend_labels, width - 0.2)
    legend_rows = -(-len(legend_labels) // legend_cols)
    bottom = X_LABELS_HEIGHT + legend_rows * LEGEND_ROW + 2 * LEGEND_PAD
    top = SUPTITLE + PANEL_TITLE
    height = top + rows * AX_HEIGHT + (rows - 1) * vgap + bottom
    ax_width = (width - LEFT - RIGHT - (cols - 1) * hgap) / cols
    return Layout(width, height, rows, cols, ax_width, legend_cols, legend_rows, bottom, top, hgap, vgap)


class UnicodeLogFormatter(LogFormatterSciNotation):
    """matplotlib's scientific log formatter (the same ticks labelled, the same values) writing ``2⁴``,
    ``10⁻²``, ``6×10⁻¹`` as plain text instead of mathtext."""

    def __call__(self, x, pos=None) -> str:
        text = super().__call__(x, pos)
        m = re.fullmatch(r"\$\\mathdefault\{(.*)\}\$", text)
        if m is None:
            return text
        body = m.group(1).replace(r"\times", "×")
        body = re.sub(r"\^\{(-?\d+)\}", lambda e: e.group(1).translate(_SUPERSCRIPT), body)
        return body.replace("-", "−")


class LabelledMinorLocator(LogLocator):
    """matplotlib's minor log locator keeping only the ticks its axis's minor formatter labels (all of them
    when the axis spans a fraction of a decade, some or none over more). In seaborn's whitegrid style a
    minor tick has no mark and no grid line, so an unlabelled one draws nothing; building its tick artists
    was the largest cost of a render (about 30 per log axis)."""

    def __call__(self):
        locs = super().__call__()
        formatter = self.axis.get_minor_formatter()
        formatter.set_locs(locs)
        return np.array([x for x in locs if formatter(x)])


def _set_log(ax, which: str, base: float) -> None:
    """A log scale of ``base`` on ``ax``'s ``which`` ("x" or "y") axis, labelled as matplotlib's default
    (decades; minor ticks only when the axis spans few decades) in Unicode, with only labelled minor ticks."""
    getattr(ax, f"set_{which}scale")("log", base=base)
    axis = getattr(ax, f"{which}axis")
    axis.set_major_formatter(UnicodeLogFormatter(base=base))
    axis.set_minor_formatter(UnicodeLogFormatter(base=base, labelOnlyBase=False))
    axis.set_minor_locator(LabelledMinorLocator(base=base, subs="auto"))


def _draw_panel(ax, band: pd.DataFrame, labels: list[str], kinds: list[str], palette: dict) -> None:
    """One panel's curves: per label its 95% band, its measured curve with markers, its closed forms."""
    groups = dict(list(band.sort_values("x", kind="stable").groupby("label", sort=False)))
    for label in labels:
        if label not in groups:
            continue
        b, color = groups[label], palette[label]
        x, measured = b["x"].to_numpy(), b["measured"].to_numpy()
        lo = np.where(b["lo"].to_numpy() > 0, b["lo"].to_numpy(), 0.01 * measured)
        ax.fill_between(x, lo, b["hi"].to_numpy(), color=color, alpha=0.18, linewidth=0)
        for k in kinds:
            y = b[k].to_numpy(dtype=float)
            drawn = ~np.isnan(y)
            if not drawn.any():
                continue
            dashes = STYLES[k][0]
            ax.plot(x[drawn], y[drawn], color=color, linewidth=1.2, linestyle=(0, dashes) if dashes else "-")
            if k == "measured":
                ax.scatter(x[drawn], y[drawn], color=color, s=16, linewidth=0, zorder=3)


@contextmanager
def drawn_figure(frame: pd.DataFrame, config: FigureConfig):
    """The matplotlib figure of ``config`` drawn from its tidy ``frame`` (not yet rendered), open while the
    ``with`` block runs under seaborn's whitegrid style and paper context, closed after it.

    Laid out by :func:`figure_layout` (fixed sizes in inches, the legend in a strip below the panels), so
    rendering it measures no text to place anything."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.lines import Line2D

    agg = aggregate(frame, config.y)
    panels = list(dict.fromkeys(s.panel for s in config.series))
    labels = list(dict.fromkeys(s.label for s in config.series))
    palette = dict(zip(labels, sns.color_palette("colorblind", len(labels)), strict=True))
    kinds = [k for k in STYLES if k == "measured" or agg[k].notna().any()]
    kind_labels = ["measured (95% band)" if k == "measured" else KIND_NAMES[k] for k in kinds]
    lay = figure_layout(len(panels), labels + kind_labels, config.title)
    with sns.axes_style("whitegrid"), sns.plotting_context("paper"):
        fig = plt.figure(figsize=(lay.width, lay.height))
        try:
            fig.subplots_adjust(left=LEFT / lay.width, right=1 - RIGHT / lay.width, bottom=lay.bottom / lay.height,
                                top=1 - lay.top / lay.height, wspace=lay.hgap / lay.ax_width,
                                hspace=lay.vgap / AX_HEIGHT)
            axes = list(fig.subplots(lay.rows, lay.cols, sharex=True, squeeze=False).flat)
            for ax in axes[len(panels):]:
                ax.remove()
            for i, (ax, panel) in enumerate(zip(axes, panels, strict=False)):
                _draw_panel(ax, agg[agg["panel"] == panel], labels, kinds, palette)
                _set_log(ax, "y", 10)
                if config.xscale == "log":
                    _set_log(ax, "x", 2)
                ax.set_title(panel or config.title, fontsize=9, y=1.0)  # y given: no search for tick labels above
                if i + lay.cols >= len(panels):  # the lowest panel of its column (the x axis is shared)
                    ax.xaxis.set_tick_params(labelbottom=True)
                    ax.set_xlabel(X_LABELS[config.x])
                ax.set_ylabel(Y_LABELS[config.y])
            handles = [Line2D([], [], color=palette[lab], marker="o", label=lab) for lab in labels]
            handles += [
                Line2D([], [], color="0.3", linestyle=(0, STYLES[k][0]) if STYLES[k][0] else "-",
                       marker=STYLES[k][1], label=name)
                for k, name in zip(kinds, kind_labels, strict=True)
            ]
            fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, LEGEND_PAD / lay.height),
                       ncol=lay.legend_cols, frameon=False, fontsize=LEGEND_FONT, borderaxespad=0, borderpad=0)
            fig.suptitle(config.title, fontsize=SUPTITLE_FONT, y=1 - 0.1 / lay.height, va="top")
            yield fig
        finally:
            plt.close(fig)


def plot_figure(frame: pd.DataFrame, config: FigureConfig, path: str | Path) -> Path:
    """Draw the figure of ``config`` from its tidy ``frame`` (:func:`drawn_figure`) and write it (PNG,
    atomically) to ``path``: seaborn's style and colour-blind palette, matplotlib's own calls, one render."""
    with drawn_figure(frame, config) as fig:
        return save_figure_atomic(fig, path, dpi=PLOT_STYLE["dpi"])
