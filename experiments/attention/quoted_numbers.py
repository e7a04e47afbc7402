"""The numbers quoted in proofs/attention_audit.md (items 13 and 14(c)), recomputed.

Run from the repository root (one torch thread; the whole run took 25–35 min of CPU on this project's 2-core machine):

    OMP_NUM_THREADS=1 python experiments/attention/quoted_numbers.py experiments/attention/quoted_numbers.json

``--only PART`` (repeatable) runs some parts; ``--seeds N`` scales every part's seed count by N/60 (a quick look).
Each part is written to the output as soon as it is done (atomically), and a part already in the output is not
recomputed, so a stopped run resumes.

The attention is a correct float64 FAVOR+ (positive features of ``positive/gaussian``, d = 8, q and k scaled by
d^{-1/4}, :func:`kerneltheory.attention.linear_attention` with its legal default stabiliser), audited as
:func:`~kerneltheory.testing.attention_audit.check_attention` audits it: its default inputs (L = 16, std 0.3) and seeds,
grid m = 64, 256, 1024, 4096.

* ``slope_rows_by_draws`` (item 13, "Measured"): for 60 audit seeds, the three slope rows' errors (consistency,
  stabiliser[scale], stabiliser[shift]) at 1024 draws per m, analysed by
  :func:`~kerneltheory.testing.attention_checks.mse_slope_check` on their first 64, 256 and all 1024 draws: per row
  and draw count, the mean and largest z of the rows it did not refuse, how many it refused, and the same for the
  slope-only test it replaced (weighted least squares of log MSE on log m over the same m ≥ ρ², z = (ĝ + 1)/SE);
  and what assumption (A) of item 13(c) rests on: the fitted b = B/A, and over the inputs where all four counts are
  kept, ĝ + 1 of the curvature fit with equal weights (the remainder the 1/m term does not remove) beside the bound D
  on it with ρ² as the scale and with ρ; the range of ρ over the inputs.
* ``slope_rows_tail``: 1000 audit seeds, ``check_attention(checks=["consistency", "stabiliser"])`` at its default
  64 draws; per row, the share refused and, among the others, how many p-values fall at or below α′ = 0.05, 0.01,
  10⁻³ and 10⁻⁴ (a calibrated row rejects at most α′ of them), with the one-sided binomial tail P(≥ that many)
  under α′.
* ``planted`` (item 13's last paragraph): :func:`~kerneltheory.testing.attention_checks.attention_convergence_check`
  at 64 draws, 20 seeds, on the grids 16…4096 (its default) and 16…16384, for three defects (the sampler W·1.1; the
  ‖x‖² term dropped, tests/_planted.py; the per-key stabiliser
  :func:`~kerneltheory.testing.attention_checks.per_key_max`), and 40 seeds for the correct iid and ORF estimators:
  the range of z, the refusals, the critical z at α = 10⁻⁶.
* ``order_misses`` (item 14(c)): the order row (:func:`~kerneltheory.testing.attention_exact.order_row`, causal,
  L = 513) on a chunked causal attention whose carried state drops its normaliser, chunk sizes C = 32, 64, 100, 128,
  200, 256, 257: per C, over its seeds, how many draws of the permutation let it pass (a miss); and the correct
  chunked attention, which must pass every one.
* ``fixed_norm_power`` (docs/auditing.md, the power of the default rows): 20 seeds of the default audit and of the
  opt-in ``bias`` row on a FAVOR+ attention whose orthogonal rows all have norm √d (biased by up to 2.2 %) and on the
  correct one with χ_d norms: how many pass.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time

import numpy as np
import torch
from scipy import stats

from kerneltheory import estimators as E
from kerneltheory.attention import linear_attention
from kerneltheory.testing.attention_audit import SCALE, SHIFT, _errors, check_attention
from kerneltheory.testing.attention_checks import (
    asymptotic_grid,
    attention_convergence_check,
    mse_slope_check,
    per_key_max,
    remainder_bound,
    tail_weight,
    weighted_fit,
    wls_slope,
)
from kerneltheory.testing.attention_exact import _inputs, order_row
from kerneltheory.testing.seeds import seed_for

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests"))
from _planted import no_norm  # noqa: E402  (the dropped-‖x‖² map of the test suite)
from test_attention_audit_exact import NAMESPACE as CHUNKED  # noqa: E402  (its chunked causal attention)

D, LENGTH, STD, MS, DRAWS = 8, 16, 0.3, (64, 256, 1024, 4096), 1024
ROWS = ("consistency", "stabiliser[scale]", "stabiliser[shift]")


def favor(m: int, g: torch.Generator):
    fm = E.get("positive/gaussian", D, m).draw(g)
    s = D**-0.25
    return lambda q, k, v, mask=None: linear_attention(q * s, k * s, v, fm)


def _row_inputs(seed: int) -> dict[str, tuple]:
    """The inputs and seeds of check_attention's three slope rows at ``seed`` (attention_audit.check_attention)."""
    q, k, v = _inputs(1, LENGTH, D, STD, torch.Generator().manual_seed(seed_for("attention inputs", seed)))
    shift = torch.nn.functional.normalize(torch.ones(D, dtype=torch.float64), dim=0) * SHIFT * STD * math.sqrt(D)
    return {"consistency": ((q, k, v), seed_for("consistency", seed)),
            "stabiliser[scale]": ((q * SCALE, k / SCALE, v), seed_for("stabiliser scale", seed)),
            "stabiliser[shift]": ((q, k + shift, v), seed_for("stabiliser shift", seed))}


def _slope_only(ms, errors, q, k) -> float | None:
    """z = (ĝ + 1)/SE of the slope-only fit (log MSE + v/2 on log m, weights 1/v) over the m ≥ ρ², None if < 3."""
    kept = asymptotic_grid(ms, tail_weight(q, k))
    if len(kept) < 3:
        return None
    sq = [(errors[ms.index(m)] ** 2).flatten(1).mean(1) for m in kept]
    mse = np.array([float(e.mean()) for e in sq])
    v = np.array([float(e.var()) / e.numel() for e in sq]) / mse**2
    slope, se, _ = wls_slope(np.log(kept), np.log(mse) + 0.5 * v, v)
    return (slope + 1.0) / se


def _assumption_a(ms, errors, q, k) -> dict | None:
    """What item 13(c)'s assumption (A) rests on, on the m ≥ ρ² of ``ms``: the fitted b = B/A (the 1/m coefficient of
    log MSE, weighted fit), and, where all four counts are kept, ĝ + 1 of the fit with equal weights (the part of the
    slope the 1/m term does not remove) with the bound D on it under (A) (ρ² as the scale) and under the smaller
    scale ρ. None when fewer than three counts are kept."""
    rho = tail_weight(q, k)
    kept = asymptotic_grid(ms, rho)
    if len(kept) < 3:
        return None
    sq = [(errors[ms.index(m)] ** 2).flatten(1).mean(1) for m in kept]
    mse = np.array([float(e.mean()) for e in sq])
    v = np.array([float(e.var()) / e.numel() for e in sq]) / mse**2
    m = np.asarray(kept, dtype=np.float64)
    design = np.stack([np.ones_like(m), np.log(m), m.min() / m], axis=1)
    y = np.log(mse) + 0.5 * v
    c, _, _, _ = weighted_fit(design, y, v, 2)
    out = {"b": c * m.min()}
    if len(kept) == len(ms):
        g, _, row, _ = weighted_fit(design, y, np.ones_like(v), 1)
        out.update(remainder=g + 1.0, bound=remainder_bound(kept, row, rho), bound_rho=remainder_bound(kept, row,
                                                                                                       math.sqrt(rho)))
    return out


def _mean_se(xs: list[float]) -> dict:
    return {"mean": float(np.mean(xs)) if xs else None,
            "stderr": float(np.std(xs, ddof=1) / math.sqrt(len(xs))) if len(xs) > 1 else None, "count": len(xs)}


def _summary(zs: list[float | None]) -> dict:
    tested = [z for z in zs if z is not None]
    return {"mean_z": float(np.mean(tested)) if tested else None,
            "stderr_mean_z": float(np.std(tested, ddof=1) / math.sqrt(len(tested))) if len(tested) > 1 else None,
            "max_z": max(tested) if tested else None, "tested": len(tested), "refused": len(zs) - len(tested)}


def slope_rows_by_draws(seeds: int) -> dict:
    z = {(row, r, kind): [] for row in ROWS for r in (64, 256, DRAWS) for kind in ("curvature", "slope_only")}
    fits = {(row, r): [] for row in ROWS for r in (64, 256, DRAWS)}
    for seed in range(seeds):
        for row, ((q, k, v), s) in _row_inputs(seed).items():
            errors = _errors(favor, "softmax", False, q, k, v, list(MS), DRAWS, s)
            for r in (64, 256, DRAWS):
                part = [e[:r] for e in errors]
                fits[(row, r)].append(_assumption_a(list(MS), part, q, k))
                res = mse_slope_check(list(MS), part, alpha=1e-6, base=dict(name=row, claim="consistency", alpha=1e-6,
                                                                             sample_size=r * len(MS), seed=s),
                                      regime=(q, k))
                z[(row, r, "curvature")].append(None if res.refused else float(res.statistic))
                z[(row, r, "slope_only")].append(_slope_only(list(MS), part, q, k))
    out = {"seeds": seeds, "grid": list(MS), "draws": [64, 256, DRAWS]}
    for (row, r, kind), zs in z.items():
        out.setdefault(row, {}).setdefault(kind, {})[str(r)] = _summary(zs)
    for (row, r), fs in fits.items():
        fs = [f for f in fs if f is not None]
        four = [f for f in fs if "remainder" in f]
        out[row].setdefault("assumption_a", {})[str(r)] = {
            "b": _mean_se([f["b"] for f in fs]) | {"min": min(f["b"] for f in fs), "max": max(f["b"] for f in fs)},
            "remainder_equal_weights": _mean_se([f["remainder"] for f in four]),
            "bound_rho_squared": _mean_se([f["bound"] for f in four]),
            "bound_rho": _mean_se([f["bound_rho"] for f in four]),
        }
    rhos = [tail_weight(*inputs[:2]) for seed in range(seeds) for inputs, _ in _row_inputs(seed).values()]
    out["rho_range"] = [min(rhos), max(rhos)]
    return out


def slope_rows_tail(seeds: int) -> dict:
    levels = (0.05, 0.01, 1e-3, 1e-4)
    p = {row: [] for row in ROWS}
    for seed in range(seeds):
        for c in check_attention(favor, dim=D, checks=["consistency", "stabiliser"], seed=seed).checks:
            row = c.name.split(":")[0]
            p[row].append(None if c.refused else float(c.p_value))
    out = {"seeds": seeds, "draws": 64, "grid": list(MS)}
    for row, ps in p.items():
        tested = [x for x in ps if x is not None]
        out[row] = {"tested": len(tested), "refused": len(ps) - len(tested),
                    "rejections": {str(a): sum(x <= a for x in tested) for a in levels},
                    "binomial_tail": {str(a): float(stats.binom.sf(sum(x <= a for x in tested) - 1, len(tested), a))
                                      for a in levels}}
    return out


def _biased_sampler(m):
    return E.get("positive/gaussian", D, m, std=1.1)  # W·1.1: ω ~ N(0, 1.21 I)


def planted(seeds: int) -> dict:
    cases = {"sampler W·1.1": (_biased_sampler, True, seeds),
             "dropped ‖x‖²": (lambda m: no_norm(D, m), True, seeds),
             "per-key stabiliser": ("positive/gaussian", per_key_max, seeds),
             "correct iid": ("positive/gaussian", True, 2 * seeds),
             "correct ORF": ("positive/orthogonal", True, 2 * seeds)}
    out = {"draws": 64, "alpha": 1e-6, "critical_z": float(stats.norm.isf(1e-6))}
    for grid in ((16, 64, 256, 1024, 4096), (16, 64, 256, 1024, 4096, 16384)):
        res = {}
        for label, (est, stab, n) in cases.items():
            rows = [attention_convergence_check(est, dim=D, seed=s, alpha=1e-6, stabilise=stab, ms=grid)
                    for s in range(n)]
            zs = [float(r.statistic) for r in rows if not r.refused]
            failed = sum(not r.passed and not r.refused for r in rows)
            res[label] = {"seeds": n, "refused": n - len(zs), "failed": failed,
                          "min_z": min(zs) if zs else None, "max_z": max(zs) if zs else None}
        out[f"{grid[0]}..{grid[-1]}"] = res
    return out


def _chunked_attention(chunk: int, carry: bool):
    """The chunked causal attention of tests/test_attention_audit_exact.py (its ``chunked``), in chunks of ``chunk``;
    ``carry=False`` drops the carried state's normaliser."""
    features, chunked = CHUNKED["features"], CHUNKED["chunked"]

    def attention(m, g):
        w = torch.randn(m, D, generator=g, dtype=torch.float64)
        keep = lambda k: torch.ones(k.shape[:2], dtype=torch.bool)  # noqa: E731
        return lambda q, k, v, mask=None: chunked(features(q, w), features(k, w, keep(k)), v, carry, chunk=chunk)
    return attention


def order_misses(seeds: int) -> dict:
    length, out = 2 * 256 + 1, {}
    for chunk, n in ((32, seeds), (64, 6 * seeds), (100, seeds), (128, 5 * seeds), (200, seeds), (256, 5 * seeds),
                     (257, seeds)):
        misses = correct_failures = 0
        for seed in range(n):
            sets = [_inputs(1, length, D, STD, torch.Generator().manual_seed(seed_for("order inputs", seed)))]
            s = seed_for("order", seed)
            misses += order_row(_chunked_attention(chunk, False), sets, 256, 1e-6, s, True).passed
            correct_failures += not order_row(_chunked_attention(chunk, True), sets, 256, 1e-6, s, True).passed
        out[str(chunk)] = {"seeds": n, "misses": misses, "correct_attention_not_passed": correct_failures}
    return {"length": length, "m": 256, "chunks": out}


def _orf(fixed_norm: bool):
    """FAVOR+ on ``positive/orthogonal`` frequencies; ``fixed_norm`` rescales every row to norm √d (all rows the norm
    of a typical Gaussian vector instead of χ_d norms, an option of public ORF code): E exp(ωᵀx) is then
    ₀F₁(; d/2; d‖x‖²/4), not exp(‖x‖²/2), a bias of −0.15 %, −0.59 % and −2.2 % at ‖x‖² = 0.25, 0.5 and 1 (d = 8)."""
    def attention(m: int, g: torch.Generator):
        fm = E.get("positive/orthogonal", D, m).draw(g)
        if fixed_norm:
            fm.w = torch.nn.functional.normalize(fm.w, dim=-1) * math.sqrt(D)
        s = D**-0.25
        return lambda q, k, v, mask=None: linear_attention(q * s, k * s, v, fm, mask=mask)
    return attention


def fixed_norm_power(seeds: int) -> dict:
    out = {}
    for name, fixed in (("orf_fixed_norm", True), ("orf_chi_norms", False)):
        default = [check_attention(_orf(fixed), dim=D, seed=s).passed for s in range(seeds)]
        bias = [check_attention(_orf(fixed), dim=D, checks=["bias"], seed=s).checks[0] for s in range(seeds)]
        out[name] = {"seeds": seeds, "default_audit_passed": sum(default),
                     "bias_row": {"passed": sum(b.passed for b in bias),
                                  "failed": sum(b.status == "failed" for b in bias),
                                  "z_range": [min(b.statistic for b in bias), max(b.statistic for b in bias)]}}
    return out


PARTS = {"slope_rows_by_draws": (slope_rows_by_draws, 60), "slope_rows_tail": (slope_rows_tail, 1000),
         "planted": (planted, 20), "order_misses": (order_misses, 60), "fixed_norm_power": (fixed_norm_power, 20)}


def _write(path: str, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
    os.replace(tmp, path)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--only", action="append", choices=sorted(PARTS))
    ap.add_argument("--seeds", type=int, default=60, help="scale every part's seeds by SEEDS/60 (default 60)")
    args = ap.parse_args(argv)
    if args.seeds < 1:
        ap.error(f"--seeds must be >= 1, got {args.seeds}")
    data = json.load(open(args.out)) if os.path.exists(args.out) else {}
    for name in args.only or PARTS:
        if name in data and data[name].get("scale") == args.seeds:
            continue
        fn, seeds = PARTS[name]
        t0, c0 = time.perf_counter(), time.process_time()
        data[name] = fn(max(1, round(seeds * args.seeds / 60)))
        data[name].update(scale=args.seeds, cpu_seconds=round(time.process_time() - c0, 1),
                          wall_seconds=round(time.perf_counter() - t0, 1), torch=torch.__version__)
        _write(args.out, data)
        print(f"{name}: {data[name]['cpu_seconds']} s of CPU", flush=True)


if __name__ == "__main__":
    main()
