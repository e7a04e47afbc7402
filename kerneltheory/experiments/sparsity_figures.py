"""The sparsity study's figures (seaborn), each redrawn only when its data changed
(:func:`kerneltheory.experiments.study.draw_if_changed`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import sparsity as S
from ..io import save_figure_atomic
from .study import figure_drawn, figure_stale

#: The tables each figure is drawn from (its digest covers them and STYLE).
FIGURE_DATA = {
    "fig_temperature.png": ("temperature",),
    "fig_vs_m.png": ("temperature",),
    "fig_planted.png": ("planted",),
    "fig_performer.png": ("performer",),
    "fig_floors.png": ("floors", "saturation"),
    "fig_retrieval.png": ("retrieval",),
}
STYLE = {"dpi": 120, "theme": "whitegrid/paper", "version": 1}

def _metric_grid(plt, sns, sel, x: str, metrics):
    """A 2 × 2 grid, one metric per panel against ``x``, one line per estimator (legend in the first)."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
    for ax, (col, title, logy) in zip(axes.flat, metrics, strict=True):
        sns.lineplot(sel, x=x, y=col, hue="estimator", marker="o", ax=ax, errorbar=None, legend=ax is axes.flat[0])
        ax.set(title=title, ylabel="")
        if logy:
            ax.set_yscale("log")
    axes.flat[0].legend(fontsize=7, ncol=2)
    return fig, axes


def figures(out: Path, results: dict) -> list[Path]:
    """Draw the figures of the parts in ``results`` under ``out`` whose data changed; returns the paths drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    paths = []
    pending = {}

    def stale(name: str) -> bool:
        if not all(k in results for k in FIGURE_DATA[name]):
            return False
        data = {k: results[k] for k in FIGURE_DATA[name]}
        pending[name] = figure_stale(out / name, data, {"figure": name, **STYLE})
        return pending[name] is not None

    def save(fig, name):
        try:
            paths.append(save_figure_atomic(fig, out / name, dpi=STYLE["dpi"], bbox_inches="tight"))
            figure_drawn(out / name, pending[name])
        finally:
            plt.close(fig)

    metrics = [
        ("kl_median", "median KL(softmax ‖ Â) per row", True),
        ("argmax", "argmax agreement", False),
        ("entropy_gap", "entropy gap H(Â) − H(A)", False),
        ("small_rel_err", "median rel. error of the smallest 25% weights", True),
    ]
    if "temperature" in results:
        t = results["temperature"].replace([np.inf, -np.inf], np.nan)
        if stale("fig_temperature.png"):
            mmax = max(t["m"])
            sel = t[(t["m"] == mmax) | (t["m"] == 0)]
            fig, axes = _metric_grid(plt, sns, sel, "target_entropy", metrics)
            for ax in axes.flat:
                ax.set(xlabel="softmax mean normalised row entropy (← sparser)")
                ax.invert_xaxis()
            fig.suptitle(
                f"Approximation quality against sparsity (random features at m = {mmax}; deterministic maps)"
            )
            save(fig, "fig_temperature.png")

        if stale("fig_vs_m.png"):
            mid = sorted(set(t["target_entropy"]))[len(set(t["target_entropy"])) // 2]
            sel = t[(t["m"] > 0) & (t["target_entropy"] == mid)]
            fig, axes = _metric_grid(plt, sns, sel, "m", metrics)
            for ax in axes.flat:
                ax.set(xscale="log")
                ax.set_xticks(sorted(sel["m"].unique()), [str(int(v)) for v in sorted(sel["m"].unique())])
                ax.minorticks_off()
            fig.suptitle(f"Approximation quality against m (softmax entropy {mid})")
            save(fig, "fig_vs_m.png")

    if stale("fig_planted.png"):
        p = results["planted"][results["planted"]["error"] == ""]
        p = p[p["k"] == p["k"].min()]
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        mref = sorted(set(p["m"]) - {0})[len(set(p["m"]) - {0}) // 2]
        sel = p[(p["m"] == mref) | (p["m"] == 0)]
        sns.lineplot(
            sel, x="margin", y="planted_mass", hue="estimator", marker="o", ax=axes[0], errorbar=None
        )
        exact = sel.drop_duplicates("margin").sort_values("margin")
        axes[0].plot(exact["margin"], exact["planted_mass_softmax"], "k--", label="softmax (exact)")
        axes[0].set(title=f"mass on the planted key (k = {p['k'].min()}, m = {mref})", ylabel="")
        axes[0].legend(fontsize=6, ncol=2)
        big = p[p["margin"] == p["margin"].max()]
        sns.scatterplot(big, x="feature_dim", y="frob", hue="estimator", ax=axes[1], legend=False)
        dd = np.unique(np.concatenate([[1], np.sort(big["feature_dim"].unique())]))
        n0, nk0 = int(big["n"].iloc[0]), int(big["n_keys"].iloc[0])
        floor = [
            S.planted_rank_floor(n0, nk0, int(p["k"].min()), float(p["margin"].max()), int(x)) for x in dd
        ]
        axes[1].plot(dd, floor, "k-", drawstyle="steps-post", label="Eckart–Young floor")
        axes[1].set(
            xscale="log",
            yscale="log",
            title=f"‖A − Â‖_F at margin {p['margin'].max()} (n = {n0} rows)",
            xlabel="feature dimension D",
        )
        axes[1].legend()
        sns.scatterplot(big, x="feature_dim", y="erank", hue="estimator", ax=axes[2], legend=False)
        axes[2].plot(dd, dd, "k:", label="erank = D")
        axes[2].axhline(float(big["erank_softmax"].iloc[0]), color="k", ls="--", label="softmax target")
        axes[2].set(xscale="log", yscale="log", title="effective rank of Â", xlabel="feature dimension D")
        axes[2].legend()
        save(fig, "fig_planted.png")

    if stale("fig_performer.png"):
        pf = results["performer"]
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for ax, path in zip(axes, ["z fixed, tau grows", "norms fixed, angle grows"], strict=True):
            sel = pf[pf["path"] == path]
            for i, (label, grp) in enumerate(sel.groupby("estimator", sort=False)):
                col = sns.color_palette()[i]
                ax.errorbar(
                    grp["sm"], grp["relmse"], yerr=2 * grp["se"], fmt="o", color=col, ms=4, label=label
                )
                if grp["theory"].notna().all():
                    ax.plot(grp["sm"], grp["theory"], "-", color=col, lw=1)
            ax.set(
                xscale="log",
                yscale="log",
                xlabel="SM(x, y)",
                ylabel="relative MSE E(Ŝ/SM − 1)²",
                title=f"{path} (m = {int(sel['m'].iloc[0])}; lines: theory)",
                ylim=(1e-7, None),
            )
            ax.invert_xaxis()
        axes[0].legend(fontsize=7)
        save(fig, "fig_performer.png")

    if stale("fig_floors.png"):
        fl, sat = results["floors"], results["saturation"]
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for i, (label, grp) in enumerate(fl.groupby("map", sort=False)):
            col = sns.color_palette()[i]
            g0 = (
                grp.groupby("radius")
                .agg(floor_min=("floor_min", "min"), bound=("bound", "min"))
                .reset_index()
            )
            axes[0].plot(g0["radius"], g0["floor_min"], "o-", color=col, label=f"{label} (measured min)")
            axes[0].plot(g0["radius"], g0["bound"], "--", color=col, label=f"{label} (proved bound)")
        axes[0].set(
            xscale="log",
            yscale="log",
            xlabel="input radius R",
            ylabel="min κ / max κ",
            title="kernel floors on ‖x‖ ≤ R",
            ylim=(1e-40, 2),
        )
        axes[0].set_xticks(sorted(fl["radius"].unique()), [f"{r:g}" for r in sorted(fl["radius"].unique())])
        axes[0].minorticks_off()
        axes[0].legend(fontsize=6)
        sns.lineplot(sat, x="beta", y="entropy", hue="map", marker="o", ax=axes[1], errorbar=None)
        axes[1].set(
            xscale="log",
            xlabel="input scale β (q, k → √β q, √β k)",
            ylabel="mean normalised row entropy",
            title="sharpening by temperature",
        )
        save(fig, "fig_floors.png")

    if stale("fig_retrieval.png"):
        rt = results["retrieval"]
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        sns.lineplot(
            rt,
            x="length",
            y="accuracy",
            hue="kernel",
            style="learned_kernel",
            marker="o",
            ax=ax,
            errorbar=("pi", 100) if rt["seed"].nunique() > 1 else None,
        )
        ax.axhline(float(rt["chance"].mean()), color="k", ls=":", label="chance")
        ax.set_xscale("log")
        ax.set_xticks(sorted(rt["length"].unique()), [str(int(v)) for v in sorted(rt["length"].unique())])
        ax.minorticks_off()
        ax.set(
            xlabel="sequence length n (sparsity k/n)",
            ylabel="test accuracy",
            title=f"retrieval (parity of k = {int(rt['planted'].iloc[0])} planted tokens)",
        )
        ax.legend(fontsize=7)
        save(fig, "fig_retrieval.png")
    return paths
