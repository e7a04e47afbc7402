"""Seaborn figures of a sweep: the measured variance with its 95% band, the closed forms drawn beside it.

Colour = curve (the series label), line style = what is drawn: the measurement (solid, markers, with the
band s² ± 1.96·SE(s²) shaded; a band whose lower end is ≤ 0 is drawn down to 1% of the estimate, as a log
axis cannot show it), the closed form (dashed), the iid closed form (dotted), the ORF theory (dash-dot).
The y axis is logarithmic, the x axis as the figure's configuration says.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

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
PLOT_STYLE = {"dpi": 110, "version": 3}
Y_LABELS = {"variance": "Var φ(x)ᵀφ(y) (one draw)", "relative_variance": "Var / K(x, y)²"}


def plot_figure(frame: pd.DataFrame, config: FigureConfig, path: str | Path) -> Path:
    """Draw the figure of ``config`` from its tidy ``frame`` and write it (PNG, atomically) to ``path``.

    Seaborn's style and colour-blind palette, drawn with matplotlib's own calls on a constrained layout, so the
    figure is laid out once and rendered twice (the tight bounding box keeps a legend wider than the panels; a
    FacetGrid with ``tight_layout`` drew it four times)."""
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
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    with sns.axes_style("whitegrid"), sns.plotting_context("paper"):
        fig = plt.figure(figsize=(2.8 * 1.25 * cols, 2.8 * rows + 0.6), layout="constrained")
        try:
            axes = fig.subplots(rows, cols, sharex=True, squeeze=False).flat
            for ax in list(axes)[len(panels):]:
                ax.remove()
            for i, (ax, panel) in enumerate(zip(fig.axes, panels, strict=False)):
                band = agg[agg["panel"] == panel]
                for label in labels:
                    b = band[band["label"] == label].sort_values("x")
                    if b.empty:
                        continue
                    lo = b["lo"].where(b["lo"] > 0, 0.01 * b["measured"])
                    ax.fill_between(b["x"], lo, b["hi"], color=palette[label], alpha=0.18, linewidth=0)
                    for k in kinds:
                        curve = b[["x", k]].dropna()
                        if curve.empty:
                            continue
                        dashes = STYLES[k][0]
                        ax.plot(curve["x"], curve[k], color=palette[label], linewidth=1.2,
                                linestyle=(0, dashes) if dashes else "-")
                        if k == "measured":
                            ax.scatter(curve["x"], curve[k], color=palette[label], s=16, linewidth=0, zorder=3)
                ax.set_yscale("log")
                ax.set_xscale(config.xscale, **({"base": 2} if config.xscale == "log" else {}))
                ax.set_title(panel or config.title, fontsize=9)
                if i + cols >= len(panels):  # the lowest panel of its column (the x axis is shared)
                    ax.set_xlabel(X_LABELS[config.x])
                ax.set_ylabel(Y_LABELS[config.y])
            handles = [Line2D([], [], color=palette[lab], marker="o", label=lab) for lab in labels]
            handles += [
                Line2D(
                    [],
                    [],
                    color="0.3",
                    linestyle=(0, STYLES[k][0]) if STYLES[k][0] else "-",
                    marker=STYLES[k][1],
                    label="measured (95% band)" if k == "measured" else KIND_NAMES[k],
                )
                for k in kinds
            ]
            fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5), frameon=False,
                       fontsize=8)
            fig.suptitle(config.title, fontsize=10)
            path = save_figure_atomic(fig, path, dpi=PLOT_STYLE["dpi"], bbox_inches="tight")  # a wide legend
        finally:
            plt.close(fig)
    return path
