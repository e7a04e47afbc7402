# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Unbiasedness: one rule for every spectral estimator
#
# MATH.md §1 and [proofs/one_rule.md](../proofs/one_rule.md). For a frequency law p with characteristic
# function ψ and moment generating function M:
#
# * trigonometric features cos/sin(ωᵀx) estimate **Re ψ(x − y)** (Bochner; proofs/trig_unbiased.md),
# * positive features h(x)·exp(ωᵀx) estimate **h(x)h(y)·M(x + y)** (proofs/positive_unbiased.md).
#
# With ω ~ N(0, I), M(z) = exp(‖z‖²/2), so h(x) = exp(−‖x‖²/2) gives
# h(x)h(y)M(x + y) = exp(−‖x‖²/2 − ‖y‖²/2 + ‖x + y‖²/2) = exp(xᵀy) = SM(x, y).
#
# This notebook checks the rule symbolically, then measures it: R seeded draws of every estimator through the
# moment engine, against the target kernel the estimator derives from its law. `KT_SMOKE=1` shrinks every size
# (CI runs it that way).

# %%
import math
import os

import sympy as sp
import torch

import kerneltheory.estimators as E
from kerneltheory import kernels
from kerneltheory.montecarlo import mean_test_statistic, moments
from kerneltheory.testing import check_feature_map

SMOKE = os.environ.get("KT_SMOKE") == "1"
DRAWS = 2_048 if SMOKE else 65_536
print(f"smoke mode: {SMOKE}; {DRAWS} draws per estimator")

# %% [markdown]
# ## The rule, symbolically (one coordinate)
#
# For ω ~ N(0, 1): E e^{ωz} = e^{z²/2} and E cos(ωτ) = e^{−τ²/2}. Multiply over the d independent coordinates
# of ω to get the d-dimensional identities.

# %%
w, z, tau, x, y = sp.symbols("omega z tau x y", real=True)
density = sp.exp(-(w**2) / 2) / sp.sqrt(2 * sp.pi)
mgf = sp.simplify(sp.integrate(sp.exp(w * z) * density, (w, -sp.oo, sp.oo)))
char = sp.simplify(sp.integrate(sp.cos(w * tau) * density, (w, -sp.oo, sp.oo)))
print("M(z) =", mgf, "   Re ψ(τ) =", char)
assert sp.simplify(mgf - sp.exp(z**2 / 2)) == 0 and sp.simplify(char - sp.exp(-(tau**2) / 2)) == 0
# positive features with h(x) = exp(-x²/2): h(x) h(y) M(x + y) is the softmax kernel exp(xy)
assert sp.simplify(sp.exp(-(x**2) / 2 - y**2 / 2) * mgf.subs(z, x + y) - sp.exp(x * y)) == 0

# %% [markdown]
# ## Measured: every estimator's mean against its target
#
# One draw of an estimator gives φ(x_p)ᵀφ(y_p) for P input pairs; `moments` runs R draws in seeded blocks and
# returns per-pair means and standard errors in float64. z = (mean − K)/SE is approximately N(0, 1) when the
# estimator is unbiased; the structured SORF law is biased by design (rows only approximately Gaussian,
# proofs/structured_bias.md), so its z grows with R.

# %%
d, m = 8, 16
g = torch.Generator().manual_seed(0)
xs = torch.randn(6, d, generator=g, dtype=torch.float64)
xs = 0.5 * xs / xs.norm(dim=-1, keepdim=True)
ys = torch.randn(6, d, generator=g, dtype=torch.float64)
ys = 0.5 * ys / ys.norm(dim=-1, keepdim=True)

rows = []
for name in [
    "trig/gaussian",
    "positive/gaussian",
    "positive/orthogonal",
    "hyperbolic/gaussian",
    "gerf/gaussian",
    "oprf/orthogonal",
    "trig/fastfood",
    "trig/sorf",
]:
    est = E.get(name, dim=d, num_features=m)
    target = est.kernel_pairs(xs, ys)
    mom = moments(lambda gen, r, est=est: est.sample_estimates(xs, ys, gen, r), DRAWS, seed=1, block=1024)
    zs = mean_test_statistic(mom, target)
    rows.append(
        (name, est.claims.unbiased, float(zs.abs().max()), float((mom.mean / target - 1).abs().max()))
    )
print(f"{'estimator':22s} {'claimed':10s} {'max |z|':>8s} {'max rel. error':>15s}")
for name, claim, zmax, rel in rows:
    print(f"{name:22s} {claim:10s} {zmax:8.2f} {rel:15.2e}")

# %%
# The claimed-exact estimators pass at a per-table false-failure rate of about 1e-6 (|z| < 5.5 for 48 tests).
for name, claim, zmax, _ in rows:
    if claim == "exact":
        assert zmax < 5.5, (name, zmax)

# %% [markdown]
# ## The same engine on your own feature map
#
# `check_feature_map` turns each claim into a calibrated hypothesis test. Performer's positive features pass;
# forgetting the −‖x‖²/2 term in the exponent (a classic bug) makes the mean exp(xᵀy + ‖x‖²/2 + ‖y‖²/2)
# instead of SM, and the unbiasedness checks reject it.


# %%
def performer(gen, d=4, m=32, bug=False):
    w = torch.randn(m, d, generator=gen, dtype=torch.float64)
    shift = 0.0 if bug else 0.5

    def phi(x):
        return torch.exp(x @ w.T - shift * (x * x).sum(-1, keepdim=True)) / math.sqrt(m)

    return phi


claims = {"unbiased", "positive", "finite"}
bad = check_feature_map(lambda gen: performer(gen, bug=True), kernels.softmax, dim=4, claims=claims)
print("buggy map passed:", bad.passed)
assert not bad.passed
if not SMOKE:  # 4096 Python-level draws per check: skipped in smoke mode
    good = check_feature_map(performer, kernels.softmax, dim=4, claims=claims)
    print(good)
    assert good.passed
