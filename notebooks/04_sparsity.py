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
# # Sparsity: what a kernelized attention row can and cannot concentrate on
#
# MATH.md §5 and §7, [proofs/sparsity.md](../proofs/sparsity.md), [proofs/rank_bound.md](../proofs/rank_bound.md).
# Softmax attention can put almost all of a row's mass on a few keys. A kernel approximation can only do so
# as far as (a) its estimate of small kernel values is accurate, (b) its kernel has no floor
# min_j κ_ij / max_j κ_ij bounded away from 0, and (c) its rank D allows. Inputs with *planted* keys make the
# softmax target a closed form: each query has k keys at score Δ and all others at 0, so the mass on the planted
# keys is k e^Δ / (k e^Δ + n' − k). `KT_SMOKE=1` shrinks the sizes.

# %%
import math
import os

import torch

import kerneltheory.estimators as E
from kerneltheory import sparsity as S
from kerneltheory.attention import attention_matrix

SMOKE = os.environ.get("KT_SMOKE") == "1"
D_MODEL, N_QUERIES, K_KEYS = (16, 8, 2) if SMOKE else (32, 16, 2)
SEEDS = range(2 if SMOKE else 8)
g = torch.Generator().manual_seed(0)

# %% [markdown]
# ## Planted keys: the softmax target in closed form

# %%
for margin in (0.0, 2.0, 6.0):
    p = S.planted_keys(N_QUERIES, D_MODEL, K_KEYS, margin, g, distractors=8)
    a = p.softmax()
    measured = float(a[p.support].reshape(N_QUERIES, K_KEYS).sum(-1).mean())
    print(
        f"Δ = {margin}: mass on planted keys {measured:.6f} (closed form {p.mass:.6f}), "
        f"entropy {float(S.row_entropy(a).mean()):.4f} (closed form {p.entropy:.4f})"
    )
    assert abs(measured - p.mass) < 1e-12 and abs(float(S.row_entropy(a).mean()) - p.entropy) < 1e-12

# %% [markdown]
# ## Random features as the target sharpens
#
# Linear attention with one draw of positive (FAVOR+) or trig features for SM(q̃, k̃), q̃ = q d^{−1/4}. As Δ
# grows the softmax row concentrates; the approximation's mass on the planted keys lags behind and its KL
# divergence from the softmax row grows (trig rows may be signed: only their argmax is compared).


# %%
def approx_matrix(name: str, p, m: int, seed: int) -> torch.Tensor:
    fm = E.get(name, dim=D_MODEL, num_features=m).draw(torch.Generator().manual_seed(seed))
    scale = D_MODEL**-0.25
    return attention_matrix(p.q * scale, p.k * scale, fm)


m = 64 if SMOKE else 256
print(
    f"{'Δ':>4s} {'softmax mass':>13s} {'FAVOR+ mass':>12s} {'KL(softmax‖FAVOR+)':>19s} {'trig argmax ok':>15s}"
)
for margin in (1.0, 3.0, 6.0):
    p = S.planted_keys(N_QUERIES, D_MODEL, K_KEYS, margin, g, distractors=8)
    ref = p.softmax()
    mass, kl, agree = [], [], []
    for seed in SEEDS:
        a = approx_matrix("positive/orthogonal", p, m, seed)
        mass.append(float(a[p.support].reshape(N_QUERIES, K_KEYS).sum(-1).mean()))
        kl.append(float(S.kl_rows(ref, a).mean()))
        agree.append(float(S.argmax_agreement(ref, approx_matrix("trig/orthogonal", p, m, seed)).mean()))
    print(
        f"{margin:4.1f} {p.mass:13.4f} {sum(mass) / len(mass):12.4f} {sum(kl) / len(kl):19.4f} "
        f"{sum(agree) / len(agree):15.2f}"
    )

# %% [markdown]
# ## Floors: elu + 1 cannot be sharp on bounded inputs
#
# elu(x) + 1 ∈ [e^{−R}, 1 + R] coordinatewise on ‖x‖ ≤ R, so every row has floor ≥ e^{−2R}/(1 + R)² and
# puts at most k/(k + (n' − k)·floor) on any k keys (`top_k_ceiling`), whatever the scores.

# %%
elu = E.get("elu", dim=D_MODEL, num_features=1).draw(g)
p = S.planted_keys(N_QUERIES, D_MODEL, K_KEYS, 6.0, g, distractors=8)
shrink = 1.0 / float(torch.cat([p.q, p.k]).norm(dim=-1).max())  # inputs of radius R = 1
a = attention_matrix(p.q * shrink, p.k * shrink, elu)
floor = float(S.kernel_floor(a).min())
bound = S.elu_floor_bound(1.0)
ceiling = S.top_k_ceiling(bound, a.shape[-1], K_KEYS)
top = float(S.top_k_mass(a, K_KEYS).max())
print(
    f"R = 1: floor {floor:.3g} ≥ bound {bound:.3g}; top-{K_KEYS} mass {top:.3f} ≤ ceiling {ceiling:.3f} "
    f"for any scores, while softmax at Δ = 6 puts {p.mass:.3f} on the planted keys"
)
assert floor >= bound and top <= ceiling + 1e-12 and ceiling < p.mass

# %% [markdown]
# ## The rank ceiling
#
# With a D-dimensional map the attention matrix has rank ≤ D, so its Frobenius distance to the softmax target
# is at least the Eckart–Young tail of the target's singular values (`rank_floor`), whatever the features.

# %%
p = S.planted_keys(N_QUERIES, D_MODEL, 1, 8.0, g)  # one key per query: nearly a permutation
target = p.softmax()
for m in (2, 4, N_QUERIES):
    a = approx_matrix("positive/orthogonal", p, m, 0)
    err = float(torch.linalg.matrix_norm(a - target))
    floor = float(S.rank_floor(target, m))
    print(
        f"D = m = {m:2d}: effective rank {float(S.effective_rank(a)):.2f}, error {err:.3f} ≥ floor {floor:.3f}"
    )
    assert err >= floor - 1e-12
print(
    "target effective rank:",
    round(float(S.effective_rank(target)), 2),
    "of",
    N_QUERIES,
    "| e^Δ =",
    round(math.exp(8.0)),
)
