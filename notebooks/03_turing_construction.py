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
# # The Turing construction, exact and kernelized
#
# MATH.md §6, [proofs/turing.md](../proofs/turing.md), [proofs/rank_bound.md](../proofs/rank_bound.md).
# Pérez, Marinković & Barceló build a Transformer (one encoder layer, three decoder layers, width
# 2|Q| + 4|Γ| + 11, hardmax attention, rational arithmetic) whose decoder emits one configuration of a Turing
# machine per step. Here we run it against the reference interpreter, then replace hardmax by kernels:
#
# 1. exp(β·score) needs β ≈ log(n)/gap: gap 1 for the input lookup (layer 1), but a gap of order T⁻⁵ for
#    the last-write lookup (layer 3), so β must grow like T⁵;
# 2. with ±1 bit positions (Wei, Chen & Ma) every gap is ≥ 1, and exp(β qᵀk) = Π_l(cosh βq_l + k_l sinh βq_l)
#    is an *exact* feature map of dimension 2^b: linear attention with it is softmax attention;
# 3. a finite random feature map is not exact, and a rank-D attention matrix cannot select one key each for
#    more than D queries.
#
# `KT_SMOKE=1` shrinks the machines and the number of steps.

# %%
import os

import torch

from kerneltheory.turing import BitTransformer, PerezTransformer, random_machine, random_word
from kerneltheory.turing import kernelized as K

SMOKE = os.environ.get("KT_SMOKE") == "1"
STEPS = 16 if SMOKE else 40
machine = random_machine(0, num_states=3, num_symbols=4)
word = random_word(1, machine, 4)
reference = machine.run(word, STEPS)
print("head positions c(t):", reference.heads)

# %% [markdown]
# ## The exact construction reproduces the machine

# %%
perez = PerezTransformer(machine)  # Fractions and hardmax
assert perez.width == 2 * machine.num_states + 4 * machine.num_symbols + 11
assert perez.run(word, STEPS) == reference
print(f"width {perez.width}: {STEPS} steps exact")

# %% [markdown]
# ## exp(β·score) instead of hardmax: the β each lookup needs
#
# The smallest β (bisection, float64) that keeps every step exact, against the score gaps the construction
# predicts. Layer 3's gap shrinks like T⁻⁵ (`revisit_gap`), and the β it needs grows accordingly.

# %%
gap3 = K.layer3_gap(reference)
beta1 = K.perez_minimal_beta(machine, word, STEPS, layer=1)
beta3 = K.perez_minimal_beta(machine, word, STEPS, layer=3)
print(f"layer 1 (gap 1): β* = {beta1:.3g}")
print(
    f"layer 3 (gap {gap3:.2e}): β* = {beta3:.3g}; sufficient bound {K.layer3_sufficient_beta(reference):.3g}"
)
assert beta3 > 10 * beta1
for t in (10, 20, 40, 80):
    print(f"revisit gap at t = {t}: {K.revisit_gap(t, t - 1, t - 3):.2e}  (≈ 4/(3t⁵) = {4 / (3 * t**5):.2e})")

# %% [markdown]
# ## Bit positions and the exact cosh/sinh feature map
#
# With b bits per position, every selection score gap is ≥ 1, so a moderate β suffices for all T ≤ 2^b − 2
# steps. For keys k ∈ {±1}^b the identity exp(β qᵀk) = φ_q(q)ᵀφ_k(k) holds with 2^b features.

# %%
b = 5
bits = BitTransformer(machine, b)
assert bits.first_error(word, machine.run(word, min(STEPS, 2**b - 2))) is None
beta_bits = K.bit_minimal_beta(machine, word, min(STEPS, 2**b - 2), b)
print(f"bit construction (b = {b}): hardmax exact; exp(β·score) exact from β* = {beta_bits:.3g}")

feature_map = K.CoshSinhMap(beta=1.5)
g = torch.Generator().manual_seed(0)
q = torch.randn(3, b, generator=g, dtype=torch.float64)
keys = torch.randint(0, 2, (7, b), generator=g).double() * 2 - 1
exact = torch.exp(1.5 * q @ keys.T)
via_features = feature_map.query(q) @ feature_map.key(keys).T
print("max |exp(β qᵀk) − φ(q)ᵀφ(k)| =", float((exact - via_features).abs().max()))
torch.testing.assert_close(via_features, exact, rtol=1e-9, atol=1e-12 * float(exact.max()))  # sums of ±terms

# %% [markdown]
# ## Random features are not exact
#
# Random positive features estimate exp(β qᵀk) without bias, but one draw carries an error that the
# selection margin must absorb at every step. The fraction of seeds whose whole trace stays exact:

# %%
settings = [(4.0, 64), (4.0, 512)] if SMOKE else [(2.0, 64), (4.0, 64), (4.0, 512), (8.0, 512), (8.0, 4096)]
seeds = range(2 if SMOKE else 8)
steps = min(STEPS, 2**b - 2)
for beta, features in settings:
    ok = K.random_feature_success(machine, word, steps, b, beta=beta, num_features=features, seeds=seeds)
    print(f"β = {beta:g}, m = {features:5d}: {sum(ok)}/{len(ok)} exact traces")

# %% [markdown]
# ## The rank obstruction
#
# diag(z)⁻¹Φ(Q)Φ(K)ᵀ has rank ≤ D, so its distance to any n×n permutation is ≥ √(n − D) (Eckart–Young):
# a fixed finite map cannot select a different key for each of more than D queries.

# %%
n = 16
perm = torch.eye(n, dtype=torch.float64)[torch.randperm(n, generator=g)]
for rank in (4, 8, 16):
    best = K.best_rank_error(perm, rank)
    print(f"D = {rank:2d}: best rank-D error {best:.3f} ≥ bound {K.permutation_distance_bound(n, rank):.3f}")
    assert best >= K.permutation_distance_bound(n, rank) - 1e-12
