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
# # The variance formulas, derived and measured
#
# MATH.md §4, [proofs/positive_variance.md](../proofs/positive_variance.md),
# [proofs/trig_variance.md](../proofs/trig_variance.md),
# [proofs/orthogonal_variance.md](../proofs/orthogonal_variance.md).
# One draw averages m iid single-frequency terms, so its variance is the single-term variance over m:
#
# * positive, h(x)e^{ωᵀx}: a term is h(x)h(y)e^{ωᵀz}, z = x + y, with second moment h²h²·M(2z):
#   **Var = h(x)²h(y)²(M(2z) − M(z)²)/m**; for SM this is SM²(e^{‖z‖²} − 1)/m;
# * paired trig: a term is cos(ωᵀτ), τ = x − y, and cos² = (1 + cos 2ωᵀτ)/2:
#   **Var = ((1 + Re ψ(2τ))/2 − Re ψ(τ)²)/m**; for the Gaussian kernel k this is (1 − k²)²/(2m).
#
# Every number below comes from `kerneltheory.theory` (one source of truth) or from the moment engine.
# `KT_SMOKE=1` shrinks the sizes.

# %%
import os
import tempfile

import numpy as np
import sympy as sp
import torch

import kerneltheory.estimators as E
from kerneltheory import theory
from kerneltheory.experiments import FigureConfig, ScaleSpec, Series, run_figure, summary_table
from kerneltheory.montecarlo import moments
from kerneltheory.report import markdown_table

SMOKE = os.environ.get("KT_SMOKE") == "1"
DRAWS = 2_048 if SMOKE else 131_072

# %% [markdown]
# ## Symbolically, in one dimension

# %%
w, z, tau = sp.symbols("omega z tau", real=True)
density = sp.exp(-(w**2) / 2) / sp.sqrt(2 * sp.pi)


def expect(f):
    return sp.simplify(sp.integrate(f * density, (w, -sp.oo, sp.oo)))


x, y = sp.symbols("x y", real=True)
h = lambda u: sp.exp(-(u**2) / 2)  # noqa: E731
term = h(x) * h(y) * sp.exp(w * (x + y))  # one positive feature product
var_positive = sp.simplify(expect(term**2) - expect(term) ** 2)
sm = sp.exp(x * y)
claimed = sm**2 * (sp.exp((x + y) ** 2) - 1)
assert sp.simplify(var_positive - claimed) == 0
k = sp.exp(-(tau**2) / 2)
var_trig = sp.simplify(expect(sp.cos(w * tau) ** 2) - expect(sp.cos(w * tau)) ** 2)
assert sp.simplify(var_trig - (1 - k**2) ** 2 / 2) == 0
print("positive:", claimed, "   paired trig:", sp.factor(var_trig))

# %% [markdown]
# ## The general formula and its specialisation agree
#
# `theory.positive_variance` takes the law's log-MGF; `theory.softmax_positive_variance` is MATH.md's closed
# form for N(0, I). Both must give the same number, and so must the estimator's own `variance_pairs`.

# %%
d, m = 16, 16
g = torch.Generator().manual_seed(0)
xs = torch.randn(5, d, generator=g, dtype=torch.float64) / 5
ys = torch.randn(5, d, generator=g, dtype=torch.float64) / 5
zz = xs + ys
general = theory.positive_variance(
    -0.5 * ((xs**2).sum(-1) + (ys**2).sum(-1)), 0.5 * (zz**2).sum(-1), 2.0 * (zz**2).sum(-1), m
)
special = theory.softmax_positive_variance(xs, ys, m)
estimator = E.get("positive/gaussian", dim=d, num_features=m).variance_pairs(xs, ys)
torch.testing.assert_close(general, special, rtol=1e-12, atol=0)
torch.testing.assert_close(estimator, special, rtol=1e-12, atol=0)
print(special)

# %% [markdown]
# ## Measured against closed form: a small sweep
#
# The experiments library (`kerneltheory.experiments`, the code behind `kerneltheory variance` and the
# report's figures) measures the variance of every curve at every point from seeded draws and draws the
# closed form beside it. The band is s² ± 1.96·SE(s²), the asymptotic standard error from the fourth moment.

# %%
config = FigureConfig(
    name="notebook_sweep",
    title="Variance against m (d = 16, ‖x‖ = ‖y‖ = 0.6, 60°)",
    x="num_features",
    fixed={"dim": 16, "num_features": 16, "norm": 0.6, "norm_ratio": 1.0, "angle": 60.0, "pairs": 1},
    scales={"quick": ScaleSpec((4, 16) if SMOKE else (2, 4, 8, 16, 32, 64), DRAWS, 1024)},
    series=(
        Series("positive/gaussian", "iid", "positive"),
        Series("positive/orthogonal", "orthogonal", "positive", theory=("iid", "orf_bound")),
        Series("trig/gaussian", "iid", "trig"),
        Series("trig/orthogonal", "orthogonal", "trig", theory=("iid",)),
    ),
)
out = tempfile.mkdtemp(prefix="kt_notebook_")
result = run_figure(config, out_dir=out, progress=False)
table = summary_table(result.summary)
print(markdown_table(table, list(table[0])))
try:
    from IPython.display import Image, display

    display(Image(filename=str(result.png)))
except ImportError:  # run as a plain script
    print("figure:", result.png)

# %%
iid = result.frame[result.frame.estimator.isin(["positive/gaussian", "trig/gaussian"])]
z = ((iid["variance"] - iid["closed_form"]) / iid["variance_se"]).abs()
assert z.max() < 5.5, z.max()  # the iid closed forms hold (false-failure rate ~1e-6 over these cells)
orth = result.frame[result.frame.estimator == "trig/orthogonal"]
print("orthogonal / iid variance (trig):", (orth["variance"] / orth["iid"]).round(3).tolist())

# %% [markdown]
# ## Heavy tails: why positive-feature variances are measured where ‖x + y‖ is moderate
#
# A positive term e^{ωᵀz} is log-normal: its fourth moment grows like e^{6‖z‖²}. The sample variance is
# unbiased, but its distribution is so skewed that it sits *below* the true value most of the time and
# catches up through rare huge draws. With ‖z‖² = 4 the running estimate lags the closed form:

# %%
d, m = 4, 1
est = E.get("positive/gaussian", dim=d, num_features=m)
xh = torch.zeros(1, d, dtype=torch.float64)
xh[0, 0] = 1.0
true = float(est.variance_pairs(xh, xh))  # ‖z‖² = 4
running = []
moments(
    lambda gen, r: est.sample_estimates(xh, xh, gen, r),
    DRAWS * 4,
    seed=3,
    block=512,
    chunk=DRAWS // 2,
    callback=lambda mom: running.append((mom.count, float(mom.variance[0]) / true)),
)
for count, ratio in running:
    print(f"R = {count:8d}: measured / closed form = {ratio:.3f}")
print("median ratio:", np.median([r for _, r in running]).round(3))
