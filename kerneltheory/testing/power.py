r"""The power of the unbiasedness check against planted defects and of the variance check against wrong claimed
variances, and the time to a verdict.

``python -m kerneltheory.testing.power --out docs/power.md`` writes the tables of docs/power.md:

* **Power table** — for each planted defect of :mod:`~kerneltheory.testing.planted` and each size, the rate at
  which :func:`~kerneltheory.testing.check_feature_map` (claim ``unbiased``, quick budget, α = 10⁻⁶) rejects the
  defective map over independent seeds, with the median number of draws it used, next to the **oracle**: the
  power of a two-sided z-test on the single most sensitive pair of the same inputs, with the defective map's
  true mean and standard deviation (measured on 2¹⁶ independent draws) at the same number of draws (4096) and
  the same per-check level. The oracle knows where the defect is and how large the variance is; no check that
  has to look at every pair can beat it, so the ratio says how much the engine pays for looking everywhere.
* **Variance table** — for the correct map and a claimed variance of :data:`VARIANCE_FACTORS` times the true closed
  form (:func:`true_variance`), the rate at which the claim ``variance`` is rejected, with the refused reports and the
  oracle: a z-test of s² on the most sensitive pair with the true σ² and μ₄.
* **Time to verdict** — draws, wall time and CPU time to a verdict on a 2% scale error and a 5% norm-law defect of
  positive features (the latter passes at this budget: docs/power.md's detection rate), a 50% norm-law defect of
  trig features, and a correct map, with the fixed-budget, per-draw evaluation (``sequential=False, batched=False``: how
  every check ran before) and with sequential looks and batched draws; methods timed in turns.
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import time
from collections.abc import Sequence

import torch
from scipy import stats

from .. import kernels, theory
from .._validation import check_int
from ..io import write_text_atomic
from .planted import DEFECTS, planted_map
from .verify import check_feature_map

SIZES = {
    "scale": (1e-4, 1e-3, 0.02),
    "bandwidth": (0.005, 0.01, 0.02),
    "norm law": (0.02, 0.05, 0.1),
    "sign bias": (0.01, 0.02, 0.05),
    "coupling": (0.01, 0.02, 0.05),
    "per position": (0.001, 0.005, 0.01),
}
VARIANCE_FACTORS = (0.9, 1.1, 1.25, 1.5)  # claimed variance = factor × the true closed form
TRIG_SIZES = {"bandwidth": (0.005, 0.01, 0.02), "norm law": (0.1, 0.25, 0.5), "coupling": (0.02, 0.05, 0.2)}
DIM = 4


def _batched(defect: str, size: float, dim: int, component: str):
    base = planted_map(defect, size, dim=dim, component=component)

    def sample(g, batch=None):
        return base(g, batch=batch)

    return sample


def oracle_power(defect: str, size: float, checks: int, alpha: float, *, dim: int, component: str,
                 draws: int = 4096) -> float:
    """Power of the best single-pair z-test with the true mean and variance (module docstring)."""
    kernel = kernels.softmax if component == "positive" else kernels.gaussian
    xs, est = _oracle_estimates(planted_map(defect, size, dim=dim, component=component), dim)
    target = torch.diagonal(kernel(xs, xs.flip(0)))
    shift = (est.mean(0) - target).abs() / est.std(0).clamp_min(1e-300) * math.sqrt(draws)
    return _z_power(float(shift.max()), alpha / checks)


def _oracle_estimates(sample, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The oracles' 72 points of norm ≤ 0.5 (64 random directions and norms, the axes ±e_i/2) and the estimates
    ``[65536, 72]`` of ``sample``'s map at the pairs (x_i, x_{71−i}), from one fixed seed."""
    gen = torch.Generator().manual_seed(12345)
    x = torch.randn(64, dim, generator=gen, dtype=torch.float64)
    x = 0.5 * x / x.norm(dim=-1, keepdim=True) * torch.rand(64, 1, generator=gen, dtype=torch.float64)
    xs = torch.cat([x, torch.eye(dim, dtype=torch.float64) * 0.5, -torch.eye(dim, dtype=torch.float64) * 0.5])
    fm = sample(torch.Generator().manual_seed(54321), batch=65536)
    q, k = fm if isinstance(fm, tuple) else (fm, fm)
    ys = xs.flip(0)
    # eight points at a time: the same numbers as all at once, a ninth of the memory ([65536, 8, 64] per side)
    return xs, torch.cat([(q(xs[i:i + 8]) * k(ys[i:i + 8])).sum(-1) for i in range(0, xs.shape[0], 8)], dim=1)


def _z_power(shift: float, level: float) -> float:
    """The power of a two-sided z-test at ``level`` against a mean shift of ``shift`` standard errors."""
    z = stats.norm.isf(level / 2)
    return float(stats.norm.sf(z - shift) + stats.norm.cdf(-z - shift))


def true_variance(component: str, num_features: int = 64):
    """``variance(x, y)``: the closed-form ``[n, n']`` variance of the correct planted map (``component``, m =
    ``num_features``): (1 − k²)²/(2m) for trig features of the Gaussian kernel, softmax_positive_variance for positive
    features (proofs/trig_variance.md, proofs/positive_variance.md)."""
    if component == "trig":
        return lambda x, y: theory.gaussian_kernel_trig_variance(kernels.gaussian(x, y), num_features)
    return lambda x, y: theory.softmax_positive_variance(x[:, None, :], y[None, :, :], num_features)


def variance_oracle_power(factor: float, checks: int, alpha: float, *, dim: int, component: str,
                          draws: int = 4096) -> float:
    """Power of the best single-pair z-test of s² against a claimed variance ``factor``·σ², with the correct map's
    true σ² and fourth central moment μ₄ (2¹⁶ draws): s² has standard error √((μ₄ − σ⁴)/n) at n = ``draws``."""
    return _z_power(abs(factor - 1) * _variance_precision(dim, component) * math.sqrt(draws), alpha / checks)


@functools.cache
def _variance_precision(dim: int, component: str) -> float:
    """max over the oracle's pairs of σ²/√(μ₄ − σ⁴) for the correct map (the s² z-shift per unit relative error of
    the claim and per √n), from 2¹⁶ draws."""
    _, est = _oracle_estimates(planted_map("scale", 0.0, dim=dim, component=component), dim)
    centred = est - est.mean(0)
    var, mu4 = centred.pow(2).mean(0), centred.pow(4).mean(0)
    spread = (mu4 - var**2).clamp_min(0).sqrt()
    keep = (var > 0) & (spread > 0)
    return float((var[keep] / spread[keep]).max())


def variance_power_rows(seeds: int, *, dim: int = DIM, component: str = "positive") -> list[dict]:
    """The rate at which the claim ``variance`` is rejected when the claimed closed form is the true one times each
    of :data:`VARIANCE_FACTORS`, for the correct map (``planted_map("scale", 0)``), over ``seeds`` seeds."""
    seeds = check_int(seeds, "seeds", minimum=1)
    kernel = kernels.softmax if component == "positive" else kernels.gaussian
    sample, true = _batched("scale", 0.0, dim, component), true_variance(component)
    correct = check_feature_map(sample, kernel, dim=dim, claims={"variance"}, variance=true, seed=0)
    rows = []
    for factor in VARIANCE_FACTORS:
        claimed = lambda x, y, f=factor: f * true(x, y)  # noqa: E731
        rejected, refused, used = 0, 0, []
        for s in range(seeds):
            report = check_feature_map(sample, kernel, dim=dim, claims={"variance"}, variance=claimed, seed=s)
            rejected += report.status == "FAILED"
            refused += report.status == "REFUSED"
            used.append(max(c.sample_size for c in report.checks))
        rows.append(dict(component=component, factor=factor, power=rejected / seeds, refused=refused, seeds=seeds,
                         median_draws=int(statistics.median(used)),
                         oracle=variance_oracle_power(factor, len(correct.checks), correct.alpha, dim=dim,
                                                      component=component)))
    return rows


def power_rows(seeds: int, *, dim: int = DIM, component: str = "positive") -> list[dict]:
    seeds = check_int(seeds, "seeds", minimum=1)
    rows = []
    sizes = SIZES if component == "positive" else TRIG_SIZES
    kernel = kernels.softmax if component == "positive" else kernels.gaussian
    # the per-family level of the oracle: α over the checks of a correct map's report (a defective map's report may
    # stop before its statistical checks, at the exact row-wise check, and hold a single row)
    correct = check_feature_map(_batched("scale", 0.0, dim, component), kernel, dim=dim, claims={"unbiased"}, seed=0)
    checks = len(correct.checks)
    for defect in (d for d in DEFECTS if d in sizes):
        for size in sizes[defect]:
            rejected, used, report = 0, [], None
            for s in range(seeds):
                report = check_feature_map(_batched(defect, size, dim, component),
                                           kernels.softmax if component == "positive" else kernels.gaussian,
                                           dim=dim, claims={"unbiased"}, seed=s)
                rejected += report.status == "FAILED"
                used.append(max(c.sample_size for c in report.checks))
            rows.append(dict(component=component, defect=defect, size=size, power=rejected / seeds, seeds=seeds,
                             median_draws=int(statistics.median(used)),
                             oracle=oracle_power(defect, size, checks, correct.alpha, dim=dim,
                                                 component=component)))
    return rows


def _timed(fn) -> tuple[object, float, float]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def verdict_rows(repeats: int = 3, *, dim: int = DIM) -> list[dict]:
    cases = [("positive", "scale", 0.02), ("positive", "norm law", 0.05), ("trig", "norm law", 0.5),
             ("positive", "correct", 0.0)]
    modes = {"fixed budget, per draw": dict(sequential=False, batched=False),
             "sequential, batched": dict(sequential=True, batched=True)}
    rows = []
    for component, defect, size in cases:
        d_name = "scale" if defect == "correct" else defect
        for mode in modes:
            rows.append(dict(case=f"{component}: {defect} {size:g}" if size else f"{component}: {defect}", mode=mode,
                             draws=0, wall=[], cpu=[], status=""))
        for _ in range(repeats):  # the two modes in turns
            for row, kw in zip(rows[-2:], modes.values(), strict=True):
                sample = _batched(d_name, size, dim, component)
                kernel = kernels.softmax if component == "positive" else kernels.gaussian
                rep, wall, cpu = _timed(lambda kw=kw, sample=sample, kernel=kernel: check_feature_map(
                    sample, kernel, dim=dim, claims={"unbiased"}, seed=1, **kw))
                row["wall"].append(wall)
                row["cpu"].append(cpu)
                row["draws"] = max(c.sample_size for c in rep.checks)
                row["status"] = rep.status
    for row in rows:
        row["wall"] = statistics.median(row["wall"])
        row["cpu"] = statistics.median(row["cpu"])
    return rows


def markdown(power: Sequence[dict], verdict: Sequence[dict], command: str,
             variance: Sequence[dict] = ()) -> str:
    out = ["# Power of the checks and time to a verdict", "",
           f"Generated by `{command}` (module `kerneltheory.testing.power`); positive random features for the "
           f"softmax kernel and trigonometric features for the Gaussian kernel, d = {DIM}, m = 64, the quick budget "
           "(at most 4096 draws), α = 10⁻⁶ for the whole report, the claim `unbiased` (the claim `variance` in "
           "its own section). Planted defects: "
           "`kerneltheory.testing.planted`.", "",
           "The oracle is a two-sided z-test with the defective map's true mean and variance (2¹⁶ draws) on the "
           "single most sensitive of 72 pairs of norm ≤ 0.5 (random directions and the axes ±e_i), at the check's "
           "per-family level and 4096 draws: it knows where the defect is. The check can beat it where an input "
           "makes the estimate deterministic: at x = y = 0 a positive map returns exactly 1, so any scale error is "
           "caught by the rounding-floor comparison at the first look; a per-position parameter makes a row's "
           "features depend on its place in the batch, which the row-wise check sees in one draw, before any "
           "statistics (proofs/verification.md item 13(d)). Positive features see "
           "a norm-law defect only at norms where their tails are too heavy for this budget (the norm sweep stops "
           "at ‖x‖ = 1), trigonometric features see it on the sweep's larger norms. How far the sweep reaches is "
           "decided per seed by its pilot's draws (verify.sweep_radii), so a norm-law row's rate over these few seeds "
           "can overstate it on others: a seed whose sweep stops early tests no large norm.", "",
           "## Detection rate against planted defects", "",
           "| features | defect | size | detection rate | seeds | median draws used | oracle z-test |",
           "|---|---|---|---|---|---|---|"]
    for r in power:
        out.append(f"| {r['component']} | {r['defect']} | {r['size']:g} | {r['power']:.2f} | {r['seeds']} | "
                   f"{r['median_draws']} | {r['oracle']:.2f} |")
    if variance:
        out += ["", "## Detection rate against wrong variance claims", "",
                "The correct map (no planted defect) with the claim `variance` against a closed form that is the true "
                f"one times a factor: {', '.join(f'{f:g}' for f in VARIANCE_FACTORS)} (`kerneltheory.testing.power."
                "true_variance`: (1 − k²)²/(2m) for trig features of the Gaussian kernel, the positive-feature "
                "variance of the softmax kernel). A refused report (pairs whose tails are too heavy for the "
                "budget to test s², never a pass) counts as not detected; the refused column counts them. The oracle "
                "is a two-sided z-test of s² on the single most sensitive of the same 72 pairs, with the true σ² "
                "and fourth central moment μ₄ (2¹⁶ draws; s² has standard error √((μ₄ − σ⁴)/n)) at 4096 draws and "
                "the check's per-family level.", "",
                "| features | claimed variance | detection rate | refused | seeds | median draws used "
                "| oracle z-test |",
                "|---|---|---|---|---|---|---|"]
        for r in variance:
            out.append(f"| {r['component']} | {r['factor']:g} × true | {r['power']:.2f} | {r['refused']} | "
                       f"{r['seeds']} | {r['median_draws']} | {r['oracle']:.2f} |")
    out += ["", "## Time to a verdict", "",
            "Medians of 3 runs, the two modes timed in turns in one process (one thread). \"Fixed budget, per "
            "draw\" is how every check ran before the sequential engine: one call of the sampler per draw and one "
            "look after the whole budget; the inputs are the same in both modes.", "",
            "| case | mode | verdict | draws | wall (s) | CPU (s) |", "|---|---|---|---|---|---|"]
    for r in verdict:
        out.append(f"| {r['case']} | {r['mode']} | {r['status']} | {r['draws']} | {r['wall']:.2f} | {r['cpu']:.2f} |")
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kerneltheory.testing.power",
                                     description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--out", required=True, help="the Markdown file to write")
    parser.add_argument("--seeds", type=int, default=20, help="independent seeds per defect size (>= 1)")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    torch.set_num_threads(1)
    command = f"python -m kerneltheory.testing.power --out {args.out} --seeds {args.seeds}"
    text = markdown(power_rows(args.seeds) + power_rows(args.seeds, component="trig"), verdict_rows(), command,
                    variance_power_rows(args.seeds, component="trig") + variance_power_rows(args.seeds))
    write_text_atomic(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
