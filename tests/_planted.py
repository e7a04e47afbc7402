"""Planted defects shared by the tests of the checks: estimators with a known bug that a check must catch."""

import torch

import kerneltheory.estimators as E
from kerneltheory.estimators import RandomFeatureEstimator
from kerneltheory.features.positive import Positive


class NoNorm(Positive):
    """Positive features exp(ωᵀx)/√m without the exp(−‖x‖²/2) term: a biased estimate of softmax."""

    def log_h(self, x):
        return torch.zeros_like(x[..., :1])


def no_norm(dim: int, m: int) -> RandomFeatureEstimator:
    """The NoNorm map with the standard Gaussian law, as an estimator ``"planted/no-norm"``."""
    return RandomFeatureEstimator(
        "planted/no-norm", NoNorm(), E.get("positive/gaussian", dim, m).law, dim=dim, num_features=m
    )
