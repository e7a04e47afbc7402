"""Two user-written random feature maps for the softmax kernel SM(x, y) = exp(xᵀy), in dimension 8.

``good_prf`` is Performer's positive random features, φ(x) = exp(Wx − ‖x‖²/2)/√m, which is unbiased and
strictly positive. ``broken_prf`` forgets the −‖x‖²/2 term, a bug that keeps every feature positive and
finite but biases the estimate by exp((‖x‖² + ‖y‖²)/2). The toolkit tells them apart:

    kerneltheory audit examples/user_feature_maps.py:good_prf --kernel softmax --dim 8 \\
        --claims unbiased positive finite                   # exit status 0
    kerneltheory audit examples/user_feature_maps.py:broken_prf --kernel softmax --dim 8 \\
        --claims unbiased positive finite                   # exit status 1

or, from Python, ``kerneltheory.testing.check_feature_map(good_prf, kernels.softmax, dim=8, claims=...)``.
Each function is called once per draw with a seeded CPU ``torch.Generator`` and returns the feature map.
"""

import math

import torch

DIM, NUM_FEATURES = 8, 64


def good_prf(generator: torch.Generator):
    w = torch.randn(NUM_FEATURES, DIM, generator=generator, dtype=torch.float64)
    return lambda x: torch.exp(x @ w.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(NUM_FEATURES)


def broken_prf(generator: torch.Generator):
    w = torch.randn(NUM_FEATURES, DIM, generator=generator, dtype=torch.float64)
    return lambda x: torch.exp(x @ w.T) / math.sqrt(NUM_FEATURES)
