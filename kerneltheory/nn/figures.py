"""Figures (seaborn) and the Markdown summary of the kernel-learning experiment, from its tidy tables."""

from __future__ import annotations

from pathlib import Path

from ..io import save_figure_atomic

__all__ = ["draw_figures", "summary_markdown"]


def _palette(kernels):
    import seaborn as sns

    return dict(zip(kernels, sns.color_palette("tab20", len(kernels)), strict=True))


def _order(df):
    from .experiment import KERNELS

    present = set(df["kernel"])
    return [k for k in KERNELS if k in present] + sorted(present - set(KERNELS))


def _length_axis(ax, lengths) -> None:
    """A log₂ x-axis with one labelled tick per sequence length and no minor ticks."""
    ns = sorted({int(n) for n in lengths})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns, labels=[str(n) for n in ns])
    ax.minorticks_off()


def _save(fig, path: Path) -> Path:
    return save_figure_atomic(fig, path, dpi=120, bbox_inches="tight")


def draw_figures(results, trace, cost, out: Path) -> dict[str, Path]:
    """accuracy.png, cost.png, kernel_distance.png, positivity.png under ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    order = _order(results)
    pal = _palette(order)
    paths = {}

    tasks = list(dict.fromkeys(results["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        d = results[results["task"] == task]
        sns.lineplot(
            d,
            x="length",
            y="test_accuracy",
            hue="kernel",
            hue_order=order,
            palette=pal,
            marker="o",
            errorbar=("pi", 100),
            ax=ax,
            legend=ax is axes[0][-1],
        )
        base = d.groupby("length")["majority_baseline"].mean()
        ax.plot(base.index, base.values, ls="--", color="gray", label="majority")
        ax.set(title=f"{task}: held-out accuracy (range over seeds)", xlabel="sequence length n")
        _length_axis(ax, d["length"])
    axes[0][-1].legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=7)
    paths["accuracy"] = _save(fig, out / "accuracy.png")
    plt.close(fig)

    if len(cost):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for ax, col, title in (
            (axes[0], "time_per_step_ms", "time per training step (ms)"),
            (axes[1], "peak_memory_mb", "peak memory of one step (MiB)"),
        ):
            sns.lineplot(
                cost.astype({col: float, "length": int}),
                x="length",
                y=col,
                hue="kernel",
                hue_order=_order(cost),
                palette=pal,
                marker="o",
                ax=ax,
                legend=ax is axes[1],
            )
            ax.set(yscale="log", title=title, xlabel="sequence length n", ylabel=col)
            _length_axis(ax, cost["length"])
        axes[1].legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=7)
        paths["cost"] = _save(fig, out / "cost.png")
        plt.close(fig)

    learn = trace[trace["kernel"].isin(results.loc[results["kernel_params"] > 0, "kernel"].unique())]
    if len(learn):
        tasks_l = list(dict.fromkeys(learn["task"]))
        fig, axes = plt.subplots(3, len(tasks_l), figsize=(5.5 * len(tasks_l), 10.5), squeeze=False)
        metrics = (
            ("spectrum_shift", "spectrum shift E‖ω₁ − ω₀‖ / E‖ω₀‖ (shared noise)", "linear"),
            ("attention_distance", "TV(attention rows), learned vs initial (RKS may exceed 1)", "linear"),
            ("kernel_distance", "Δ = mean|κ₁ − κ₀| / mean|κ₀| on held-out pairs", "log"),
        )
        for r, (col, title, yscale) in enumerate(metrics):
            for c, task in enumerate(tasks_l):
                ax = axes[r][c]
                d = learn[learn["task"] == task]
                if yscale == "log":
                    d = d[d["step"] > 0]
                sns.lineplot(
                    d,
                    x="step",
                    y=col,
                    hue="kernel",
                    hue_order=_order(learn),
                    palette=pal,
                    style="length",
                    errorbar=None,
                    ax=ax,
                    legend=(r == 0 and c == len(tasks_l) - 1),
                )
                ax.set(yscale=yscale, title=f"{task}: {title}", xlabel="training step", ylabel=col)
                if col == "attention_distance":  # signed (RKS) kernels leave the frame: row sums near 0
                    ax.set_ylim(0, 1.2)
        axes[0][-1].legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=7)
        fig.tight_layout()
        paths["kernel_distance"] = _save(fig, out / "kernel_distance.png")
        plt.close(fig)

    pos = trace[trace["kernel"].isin(results.loc[results["positive_claim"], "kernel"].unique())]
    pos = pos[pos["kernel"] != "softmax"]
    if len(pos):
        g = sns.relplot(
            pos,
            x="step",
            y="min_log_feature",
            hue="kernel",
            hue_order=_order(pos),
            palette=pal,
            style="length",
            col="task",
            kind="line",
            errorbar=None,
            height=3.6,
            aspect=1.25,
        )
        g.set_titles("{col_name}: min log φ over a held-out batch")
        g.set_axis_labels("training step", "min log φ (finite ⇒ φ > 0)")
        paths["positivity"] = _save(g.figure, out / "positivity.png")
        plt.close(g.figure)
    return paths


def _fmt(mean, sd=None, digits=2):
    if sd is None or sd != sd:  # NaN sd (one seed)
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _steps_to_solve(trace, order, threshold: float = 0.95) -> list[str]:
    """Per (task, n): the first checkpoint whose held-out accuracy reaches ``threshold``, per seed."""
    hit = trace[trace["test_accuracy"] >= threshold]
    cols = sorted({(t, n) for t, n in zip(hit["task"], hit["length"], strict=True)})
    if not cols:
        return []
    seeds = sorted(set(trace["seed"]))
    lines = [
        f"## First checkpoint with held-out accuracy ≥ {threshold} (per seed {seeds}; — = not reached)",
        "",
    ]
    lines.append("| kernel | " + " | ".join(f"{t} n={n}" for t, n in cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    for k in order:
        row = []
        for t, n in cols:
            cell = []
            for sd in seeds:
                d = hit[
                    (hit["kernel"] == k) & (hit["task"] == t) & (hit["length"] == n) & (hit["seed"] == sd)
                ]
                cell.append(str(int(d["step"].min())) if len(d) else "—")
            row.append(", ".join(cell))
        lines.append(f"| {k} | " + " | ".join(row) + " |")
    lines.append("")
    return lines


def _z(d) -> str:
    """min over cells of Δ / stderr for Monte Carlo Δ; "exact" when every Δ came from closed forms."""
    mc = d[~d["kernel_distance_exact"].astype(bool)]
    if not len(mc):
        return "exact"
    return f"{(mc['kernel_distance'] / mc['kernel_distance_stderr']).min():.1f}"


def summary_markdown(results, cost, trace) -> str:
    """The tables of the docs: accuracy, cost, kernel movement and positivity (regenerated by the run)."""
    order = _order(results)
    lines = ["# Kernel-learning experiment: summary", ""]
    scale = ", ".join(sorted(set(results["scale"])))
    device = ", ".join(sorted(set(results["device"])))
    lines += [f"Scale `{scale}`, device `{device}`, seeds {sorted(set(results['seed']))}.", ""]

    cols = sorted({(t, n) for t, n in zip(results["task"], results["length"], strict=True)})
    lines += ["## Held-out accuracy (mean ± sd over seeds)", ""]
    lines.append("| kernel | " + " | ".join(f"{t} n={n}" for t, n in cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    base = results.groupby(["task", "length"])["majority_baseline"].mean()
    for k in order:
        row = []
        for t, n in cols:
            d = results[(results["kernel"] == k) & (results["task"] == t) & (results["length"] == n)]
            row.append(_fmt(d["test_accuracy"].mean(), d["test_accuracy"].std()) if len(d) else "—")
        lines.append(f"| {k} | " + " | ".join(row) + " |")
    lines.append("| *majority class* | " + " | ".join(f"{base[(t, n)]:.2f}" for t, n in cols) + " |")
    lines.append("")

    lines += _steps_to_solve(trace, order)

    cost_tables = (
        ("time_per_step_ms", "Time per training step (ms, median)", 1),
        ("peak_memory_mb", "Peak memory of one training step (MiB)", 2),
    )
    for col, title, digits in cost_tables if len(cost) else ():
        ns = sorted(set(cost["length"]))
        lines += [f"## {title}, cost sweep (batch {int(cost['batch'].iloc[0])})", ""]
        lines.append("| kernel | " + " | ".join(f"n={n}" for n in ns) + " |")
        lines.append("|---|" + "---|" * len(ns))
        for k in _order(cost):
            vals = [cost[(cost["kernel"] == k) & (cost["length"] == n)][col] for n in ns]
            lines.append(
                f"| {k} | "
                + " | ".join(_fmt(v.mean(), digits=digits) if len(v) else "—" for v in vals)
                + " |"
            )
        lines.append("")

    lines += ["## Kernel movement and positivity (all cells of each kernel)", ""]
    lines.append(
        "| kernel | kernel params | spectrum shift (mean, range) | TV attention final (mean, range) | "
        "Δ final (median, range) | "
        "Δ / MC stderr (min over cells) | min log φ | all φ > 0 | positive claim | non-finite steps | "
        "time/step ms (train cells) |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for k in order:
        d = results[results["kernel"] == k]
        dist, tv, sh = d["kernel_distance"], d["attention_distance"], d["spectrum_shift"]
        mlog = d["min_log_feature"].min()
        shift = "—" if sh.isna().all() else f"{sh.mean():.3f} ({sh.min():.3f}–{sh.max():.3f})"
        lines.append(
            f"| {k} | {int(d['kernel_params'].iloc[0])} | {shift} | {tv.mean():.3f} ({tv.min():.3f}–{tv.max():.3f}) | "
            f"{dist.median():.3g} ({dist.min():.3g}–{dist.max():.3g}) | "
            f"{_z(d)} | {'—' if mlog != mlog else f'{mlog:.2f}'} | "
            f"{bool(d['all_positive'].all())} | {bool(d['positive_claim'].all())} | "
            f"{int(d['nonfinite_steps'].sum())} | {d['time_per_step_ms'].median():.1f} |"
        )
    lines.append("")
    return "\n".join(lines)
