"""Summaries of a figure's tidy table: the measurement against its closed forms, one row per curve."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import THEORY

KIND_NAMES = {
    "closed_form": "closed form",
    "iid": "iid closed form",
    "orf_bound": "ORF bound (Performer Thm 2)",
    "orf_leading": "ORF leading term (Yu et al.)",
}


def aggregate(frame: pd.DataFrame, y: str = "variance") -> pd.DataFrame:
    """Per (panel, label, x): the mean over the point's P pairs of the measured variance, its 95% interval
    and every closed form (divided by the kernel² first when ``y == "relative_variance"``)."""
    cols = ["variance", "variance_lo", "variance_hi", *THEORY]
    f = frame.copy()
    if y == "relative_variance":
        k2 = f["kernel"] ** 2
        for c in cols:
            f[c] = f[c] / k2
    keys = ["panel", "label", "x"]
    agg = f.groupby(keys, sort=False)[cols].mean().reset_index()
    return agg.rename(columns={"variance": "measured", "variance_lo": "lo", "variance_hi": "hi"})


def summarize(frame: pd.DataFrame) -> list[dict]:
    """One row per curve: the closed form it is compared with (its own, else the iid one), the median and
    range over the points of measured/closed form, the largest |z| = |s² − V|/SE(s²) over the pairs, how many
    (point, pair) cells put the closed form outside the 95% interval, and, where drawn, how many exceed
    Performer's bound significantly (lower end of the interval above the bound)."""
    rows = []
    for (panel, label), g in frame.groupby(["panel", "label"], sort=False):
        ref_kind = "closed_form" if g["closed_form"].notna().all() else "iid"
        ref = g[ref_kind]
        ratio = (g.groupby("x")["variance"].mean() / ref.groupby(g["x"]).mean()).to_numpy()
        z = ((g["variance"] - ref) / g["variance_se"]).to_numpy()
        outside = int(((ref < g["variance_lo"]) | (ref > g["variance_hi"])).sum())
        row = {
            "panel": panel,
            "label": label,
            "estimator": g["estimator"].iloc[0],
            "versus": KIND_NAMES[ref_kind],
            "points": int(g["x"].nunique()),
            "cells": int(len(g)),
            "ratio_median": float(np.median(ratio)),
            "ratio_min": float(ratio.min()),
            "ratio_max": float(ratio.max()),
            "max_abs_z": float(np.abs(z).max()),
            "outside_95": outside,
            "max_kurtosis": float(g["kurtosis"].max()),
        }
        bound = g["orf_bound"]
        if bound.notna().any():
            ok = bound.notna()
            row["bound_exceeded"] = int((g.loc[ok, "variance_lo"] > bound[ok]).sum())
            row["bound_cells"] = int(ok.sum())
        lead = g["orf_leading"]
        if lead.notna().any():
            row["leading_ratio_median"] = float(np.median((g["variance"] / lead).to_numpy()))
        rows.append(row)
    return rows


def summary_table(rows: list[dict]) -> list[dict]:
    """The summary rows formatted for a Markdown table."""
    out = []
    for r in rows:
        extra = []
        if "bound_exceeded" in r:
            extra.append(f"above the ORF bound in {r['bound_exceeded']}/{r['bound_cells']}")
        if "leading_ratio_median" in r:
            extra.append(f"measured/leading term {r['leading_ratio_median']:.3g}")
        out.append(
            {
                "panel": r["panel"],
                "curve": r["label"],
                "estimator": r["estimator"],
                "versus": r["versus"],
                "measured/closed form (median, range)": (
                    f"{r['ratio_median']:.3g} [{r['ratio_min']:.3g}, {r['ratio_max']:.3g}]"
                ),
                "max abs z": f"{r['max_abs_z']:.2g}",
                "outside 95% band": f"{r['outside_95']}/{r['cells']}",
                "max kurtosis": f"{r['max_kurtosis']:.3g}",
                "notes": "; ".join(extra),
            }
        )
    return out
