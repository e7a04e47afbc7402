"""The batched QMC scrambles (kerneltheory.spectral.qmc): scipy's laws, reproducibility, block independence.

The scrambles of R draws are built in one array operation; these tests check that a draw has exactly the law of
scipy's scrambled engine (the same L and Δ give the same Sobol' points bit for bit; scipy's own Halton
permutations give its points to a few ulps; the permutations are uniform), and that the stream is a function
of the seed alone (proofs/qmc.md).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.stats
import torch
from scipy.stats import qmc as scipy_qmc

import kerneltheory.estimators as E
from kerneltheory.montecarlo import moments, moments_of_blocks
from kerneltheory.spectral import QuasiMonteCarlo
from kerneltheory.spectral.qmc import (
    GRID_BITS,
    _unscrambled,
    halton_values,
    lms_shift,
    random_lms_columns,
    random_permutations,
    used_digits,
)

ALPHA = 1e-6


def _columns_of(ltm: np.ndarray) -> np.ndarray:
    """Column words (``lms_shift``'s layout) of lower-triangular binary matrices ``[d, 32, 32]``, diagonal 1."""
    d = ltm.shape[0]
    cols = np.zeros((d, GRID_BITS), dtype=np.int64)
    for l, c in itertools.product(range(d), range(GRID_BITS)):
        word = 1 << (GRID_BITS - 1 - c)
        for p in range(c + 1, GRID_BITS):
            word |= int(ltm[l, p, c]) << (GRID_BITS - 1 - p)
        cols[l, c] = word
    return cols


def test_sobol_scramble_is_scipys_map(kt_seed):
    """For the same lower-triangular L and shift Δ, lms_shift gives scipy's scrambled Sobol' points bit for bit
    (scipy applies L to the direction numbers; by linearity over GF(2) that is L applied to each point)."""
    sobol_mod = pytest.importorskip("scipy.stats._sobol")
    if not hasattr(sobol_mod, "_cscramble"):
        pytest.skip("scipy no longer exposes its Sobol' scrambling routine")
    d, m = 5, 64
    rng = np.random.default_rng(kt_seed)
    eng = scipy_qmc.Sobol(d, scramble=False, bits=GRID_BITS)
    word = eng._sv.dtype
    shift = rng.integers(0, 2**GRID_BITS, size=d, dtype=np.uint64).astype(word)
    ltm = np.tril(rng.integers(0, 2, size=(d, GRID_BITS, GRID_BITS), dtype=np.uint64)).astype(word)
    sv = eng._sv.copy()
    sobol_mod._cscramble(dim=d, bits=GRID_BITS, ltm=ltm.copy(), sv=sv)
    eng._sv, eng._shift, eng._quasi = sv, shift.copy(), shift.copy()
    eng._first_point = (shift * eng._scale).reshape(1, -1).astype(np.float64)
    want = (eng.random(m) * 2.0**GRID_BITS).astype(np.int64)
    x = torch.from_numpy((_unscrambled("sobol", d, m) * 2.0**GRID_BITS).astype(np.int64))
    cols = torch.from_numpy(_columns_of(ltm))[None]
    got = lms_shift(x, cols, torch.from_numpy(shift.astype(np.int64))[None], used_digits(m, 2, GRID_BITS))
    np.testing.assert_array_equal(got[0].numpy(), want)
    # Power: a different L (one entry flipped) changes some point.
    ltm2 = ltm.copy()
    ltm2[0, GRID_BITS - 1, 0] ^= 1
    other = lms_shift(
        x, torch.from_numpy(_columns_of(ltm2))[None], torch.from_numpy(shift.astype(np.int64))[None]
    )
    assert not torch.equal(other, got)


def test_random_lms_columns_have_the_law():
    """Diagonal bit always 1, nothing above it, the bits below iid fair (a two-sided binomial test at α)."""
    cols = random_lms_columns(torch.Generator().manual_seed(5), 400, 3)
    for c in range(GRID_BITS):
        top = 1 << (GRID_BITS - 1 - c)
        assert bool(((cols[..., c] & top) != 0).all()) and bool((cols[..., c] < 2 * top).all())
    bits = torch.stack([(cols >> s) & 1 for s in range(GRID_BITS)], -1)  # [400, 3, 32 cols, 32 bit positions]
    below = torch.tensor([[s < GRID_BITS - 1 - c for s in range(GRID_BITS)] for c in range(GRID_BITS)])
    ones, total = int(bits[..., below].sum()), int(bits[..., below].numel())
    assert scipy.stats.binomtest(ones, total, 0.5).pvalue > ALPHA


def test_halton_values_match_scipy_with_its_permutations():
    """With scipy's own digit permutations, halton_values gives scipy's scrambled Halton points (exactly in base 2,
    within 8 ulps of 1 otherwise: the two sum the same digits in different orders)."""
    eng = scipy_qmc.Halton(6, scramble=True, rng=3)
    perms_all = getattr(eng, "_permutations", None)
    if perms_all is None:
        pytest.skip("scipy no longer exposes Halton's digit permutations")
    m = 200
    want = eng.random(m)
    for col, b in enumerate(eng.base):
        perms = torch.from_numpy(np.asarray(perms_all[col], dtype=np.int64))[None]
        p = used_digits(m, b, perms.shape[1])
        got = halton_values(torch.arange(m), b, perms[:, :p], perms[:, p:, 0])[0].numpy()
        err = np.abs(got - want[:, col]).max()
        assert err == 0 if b == 2 else err <= 8 * 2.0**-53


def test_random_permutations_uniform():
    """Each of the 3! (resp. 4!) permutations is equally likely (chi-square at α); rows beyond their size keep
    the identity."""
    rows = 24_000
    sizes = torch.tensor([3, 4]).repeat(rows // 2)
    perm = random_permutations(torch.Generator().manual_seed(11), rows, sizes, 5)
    for size, n_perm in ((3, 6), (4, 24)):
        sel = perm[sizes == size]
        assert torch.equal(sel[:, size:], torch.arange(size, 5).expand(sel.shape[0], -1))
        codes = (sel[:, :size] * torch.tensor([size**k for k in range(size)])).sum(-1)
        _, counts = torch.unique(codes, return_counts=True)
        assert counts.numel() == n_perm
        assert scipy.stats.chisquare(counts.numpy()).pvalue > ALPHA


@pytest.mark.parametrize("sequence", ["sobol", "halton"])
def test_same_seed_same_bits(sequence, kt_seed):
    law = QuasiMonteCarlo(4, std=0.9, sequence=sequence)
    a = law.sample(24, torch.Generator().manual_seed(kt_seed), batch=7)
    b = law.sample(24, torch.Generator().manual_seed(kt_seed), batch=7)
    c = law.sample(24, torch.Generator().manual_seed(kt_seed + 1), batch=7)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len({tuple(w.flatten().tolist()) for w in a}) == 7  # the draws of a batch differ


@pytest.mark.parametrize("sequence", ["sobol", "halton"])
def test_block_split_gives_the_same_moments(sequence, kt_seed):
    """The moment engine seeds each RNG block itself: any split of the blocks merges to the same bits."""
    est = E.get("positive/qmc", dim=3, num_features=8, sequence=sequence)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(kt_seed), dtype=torch.float64) * 0.5
    y = torch.randn(5, 3, generator=torch.Generator().manual_seed(kt_seed + 1), dtype=torch.float64) * 0.5

    def estimates(g, r):
        return est.sample_estimates(x, y, g, r)

    whole = moments(estimates, 40, seed=kt_seed, block=8)
    parts = moments_of_blocks(estimates, 40, seed=kt_seed, block=8, blocks=range(0, 2))
    parts = parts.merge(moments_of_blocks(estimates, 40, seed=kt_seed, block=8, blocks=range(2, 5)))
    for name in ("count", "mean", "m2", "m3", "m4"):
        assert torch.equal(torch.as_tensor(getattr(whole, name)), torch.as_tensor(getattr(parts, name))), name
