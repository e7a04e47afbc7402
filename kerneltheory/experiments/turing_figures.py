"""Fits, figures and summary of the kernelized Turing study (:mod:`kerneltheory.experiments.turing`); each
figure is redrawn only when its data changed (:mod:`kerneltheory.experiments.study`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..io import save_figure_atomic
from ..turing import kernelized as K
from .study import draw_if_changed

DPI = 130

def _fit(x, y) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        return np.nan
    return float(np.polyfit(x[ok], y[ok], 1)[0])


def slopes(beta: pd.DataFrame) -> pd.DataFrame:
    rows = []
    usable = beta[(beta.beta_min > 0.0101) & np.isfinite(beta.beta_min)]
    for (cons, layer), df in usable.groupby(["construction", "layer"]):
        xname = "n" if (cons == "perez" and layer == 1) else "T"
        predicted = {("perez", 3): 5.0, ("perez", 1): 0.0, ("bits", 1): 0.0, ("bits", 3): 0.0}[(cons, layer)]
        pooled_x, pooled_y = [], []
        for machine, g in df.groupby("machine"):
            x, y = np.log(g[xname].to_numpy(float)), np.log(g.beta_min.to_numpy(float))
            ys = np.log(g.beta_sufficient.to_numpy(float)) if g.beta_sufficient.notna().all() else None
            rows.append(dict(construction=cons, layer=layer, machine=machine, x=xname, slope=_fit(x, y),
                             slope_sufficient=_fit(x, ys) if ys is not None else np.nan,
                             predicted=predicted, points=len(g)))  # fmt: skip
            if len(g) >= 2:
                pooled_x.append(x - x.mean())
                pooled_y.append(y - y.mean())
        if pooled_x:
            rows.append(dict(construction=cons, layer=layer, machine=-1, x=xname,
                             slope=_fit(np.concatenate(pooled_x), np.concatenate(pooled_y)),
                             slope_sufficient=np.nan, predicted=predicted, points=len(df)))  # fmt: skip
    return pd.DataFrame(rows)


def _integer_ticks(ax, values) -> None:
    from matplotlib.ticker import NullFormatter

    ax.set_xticks(values)
    ax.set_xticklabels([str(int(v)) for v in values])
    ax.xaxis.set_minor_formatter(NullFormatter())


def figures(beta: pd.DataFrame, success: pd.DataFrame, fits: pd.DataFrame, out: Path) -> list[Path]:
    """``beta_min.png`` (from the minimal β and the slopes) and ``success.png`` (from the random-feature
    success), each drawn only when its data changed; returns the paths drawn."""
    drawn = []
    params = {"dpi": DPI, "theme": "whitegrid/paper", "version": 1}
    if not beta.empty:  # --parts features runs no β search: there is nothing to draw
        path, new = draw_if_changed(out / "beta_min.png", {"beta": beta, "fits": fits}, params,
                                    lambda p: _beta_figure(beta, fits, p))
        drawn += [path] if new else []
    if not success.empty:
        path, new = draw_if_changed(out / "success.png", {"success": success}, params,
                                    lambda p: _success_figure(success, p))
        drawn += [path] if new else []
    return drawn


def _theme():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    return plt, sns


def _beta_figure(beta: pd.DataFrame, fits: pd.DataFrame, path: Path) -> None:
    plt, sns = _theme()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    # Pérez layer 3
    ax = axes[0]
    d3 = beta[(beta.construction == "perez") & (beta.layer == 3) & (beta.beta_min > 0.0101)].copy()
    if not d3.empty:
        d3["machine"] = d3.machine.astype(str)
        sns.lineplot(data=d3, x="T", y="beta_min", hue="machine", marker="o", ax=ax, palette="tab10")
        sns.lineplot(data=d3, x="T", y="beta_sufficient", hue="machine", ax=ax, palette="tab10", linestyle=":",
                     legend=False)  # fmt: skip
        t = np.array(sorted(d3["T"].unique()), dtype=float)
        anchor = float(np.exp(np.log(d3.beta_min).mean()))
        tm = float(np.exp(np.log(t).mean()))
        for p, style in ((5, "--"), (3, "-."), (2, (0, (1, 3)))):
            ax.plot(
                t, anchor * (t / tm) ** p, color="grey", linestyle=style, lw=1, label=f"predicted ∝ T^{p}"
            )
        pooled = fits[(fits.construction == "perez") & (fits.layer == 3) & (fits.machine == -1)].slope
        title = "Pérez layer 3 (last write)"
        if len(pooled):
            slope = float(pooled.iloc[0])
            ax.plot(
                t, anchor * (t / tm) ** slope, color="black", lw=2, label=f"fitted, pooled: ∝ T^{slope:.2f}"
            )
            title += f": pooled slope {slope:.2f}"
        ax.set(
            xscale="log",
            yscale="log",
            title=title + "\n(coloured dotted: proved sufficient β)",
            ylabel="minimal β",
        )
        _integer_ticks(ax, t)
        ax.legend(fontsize=6, ncol=2)
    # Pérez layer 1
    ax = axes[1]
    d1 = beta[(beta.construction == "perez") & (beta.layer == 1)].copy()
    if not d1.empty:
        d1["machine"] = d1.machine.astype(str)
        sns.lineplot(data=d1, x="n", y="beta_min", hue="machine", marker="o", ax=ax)
        ax.axhline(K.PEREZ_LAYER1_BETA, color="black", linestyle=":", label="proved bound β* ≈ 2.25")
        n = np.array(sorted(d1.n.unique()), dtype=float)
        ax.plot(n, d1.beta_min.min() * np.log(n) / np.log(n.min()), "k--", lw=1, label="∝ log n (prediction)")
        ax.set(
            xscale="log", title="Pérez layer 1 (input lookup) against n", ylabel="minimal β", ylim=(0, None)
        )
        _integer_ticks(ax, n)
        ax.legend(fontsize=7)
    # bits
    ax = axes[2]
    db = beta[beta.construction == "bits"].copy()
    if not db.empty:
        db["layer"] = "layer " + db.layer.astype(str)
        sns.lineplot(data=db, x="T", y="beta_min", hue="layer", style="machine", marker="o", ax=ax)
        ax.set(xscale="log", title="bit positions (every gap ≥ 2)", ylabel="minimal β", ylim=(0, None))
        _integer_ticks(ax, np.array(sorted(db["T"].unique()), dtype=float))
        ax.legend(fontsize=6, ncol=2, loc="center right")
    fig.tight_layout()
    try:
        save_figure_atomic(fig, path, dpi=DPI)
    finally:
        plt.close(fig)


def _success_figure(success: pd.DataFrame, path: Path) -> None:
    plt, sns = _theme()
    rate = success.groupby(["estimator", "b", "T", "m"], as_index=False).exact.mean()
    rate["bits"] = "b = " + rate.b.astype(str) + " (T = " + rate["T"].astype(str) + ")"
    g = sns.relplot(data=rate, x="m", y="exact", hue="estimator", col="bits", kind="line", marker="o",
                    height=3.6, aspect=1.2)  # fmt: skip
    g.set(xscale="log", ylim=(-0.03, 1.03))
    g.set_titles("{col_name}")
    g.set_axis_labels("number of random features m", "P(trace exact)")
    g.figure.suptitle(
        f"input lookup by random features for exp(β qᵀk), β = {success.beta.iloc[0]:g}", y=1.03
    )
    try:
        save_figure_atomic(g.figure, path, dpi=DPI, bbox_inches="tight")  # FacetGrid.savefig's default
    finally:
        plt.close(g.figure)


def _md(df: pd.DataFrame, fmt: str = ".3g", index: bool = False) -> str:
    """A markdown table without the optional ``tabulate`` dependency."""
    if index:
        df = df.reset_index()

    def cell(v):
        if isinstance(v, float | np.floating):
            return format(v, fmt) if np.isfinite(v) else str(v)
        return str(v)

    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def summary(beta: pd.DataFrame, success: pd.DataFrame, fits: pd.DataFrame, scale: str) -> str:
    lines = [f"# Kernelized Turing constructions ({scale} scale)", ""]
    lines.append(
        "Slopes of log(minimal β) against log T (log n for Pérez layer 1); machine −1 = pooled fit.\n"
    )
    lines.append(_md(fits, ".2f") if not fits.empty else "(none)")
    lines.append("\nMinimal β per cell:\n")
    cols = ["construction", "layer", "machine", "T", "n", "b", "beta_min", "beta_sufficient", "max_head"]
    lines.append(_md(beta[cols]) if not beta.empty else "(none: no β part has been run at this scale)")
    if not success.empty:
        lines.append(
            "\nFraction of exact traces with random features (input lookup of the bit construction):\n"
        )
        table = success.groupby(["estimator", "b", "m"]).exact.mean().unstack("m")
        lines.append(_md(table, ".2f", index=True))
    return "\n".join(lines) + "\n"
