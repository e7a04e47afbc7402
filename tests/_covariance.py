"""Shared by the covariance tests (tests/test_covariance_new.py, tests/test_orf_covariance.py): the Monte Carlo
check of Cov(K̂(x, y_j), K̂(x, y_k)) of one draw against a closed form, with the engine's calibrated mean check."""

from __future__ import annotations

import torch

from kerneltheory.montecarlo import Moments
from kerneltheory.testing.checks import mean_check

ALPHA = 1e-6
CHUNK = 4000  # draws evaluated at once


def error_products(est, q: torch.Tensor, k: torch.Tensor, g: torch.Generator, draws: int) -> torch.Tensor:
    """``[draws, nq·n(n − 1)/2]``: the products (K̂_j − K_j)(K̂_k − K_k), j < k, per query, one row per draw, centred
    at the exact kernel (the maps are unbiased), so their mean is C_jk exactly."""
    kern = est.kernel(q, k)
    j, l = torch.triu_indices(k.shape[0], k.shape[0], offset=1)
    prods = []
    for s0 in range(0, draws, CHUNK):
        fq, fk = est.draw(g, batch=min(CHUNK, draws - s0)).pair(q, k)
        err = fq @ fk.transpose(-1, -2) - kern  # [r, nq, n]
        prods.append((err[..., j] * err[..., l]).flatten(1))
    return torch.cat(prods)


def off_diagonal(cov: torch.Tensor) -> torch.Tensor:
    """The entries j < k of ``cov`` ``[nq, n, n]``, in the order of :func:`error_products`."""
    j, l = torch.triu_indices(cov.shape[-1], cov.shape[-1], offset=1)
    return cov[..., j, l].flatten()


def covariance_check(prods: torch.Tensor, cov: torch.Tensor, name: str, seed: int):
    """mean_check of the off-diagonal error products against ``cov`` ``[nq, n, n]``: studentised CLT with the
    skewness correction and the kurtosis guard (refused when the tails are too heavy), Bonferroni over the
    entries, α = 1e-6. (The diagonal is the variance, tested exactly against ``estimator.variance`` and against
    draws by the variance tests; its squares have far heavier tails.)"""
    return mean_check(Moments.from_samples(prods), off_diagonal(cov), alpha=ALPHA, name=f"covariance: {name}",
                      seed=seed, claim="covariance")


def standard_errors(prods: torch.Tensor) -> torch.Tensor:
    """The standard error of each column mean of ``prods``."""
    return prods.std(0) / prods.shape[0] ** 0.5
