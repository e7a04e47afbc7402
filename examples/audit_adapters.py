"""The adapters that put the four example implementations under kerneltheory's checks (docs/auditing.md).

Each style takes at most ten lines; the command line audits the objects defined here, e.g.

    kerneltheory audit examples/audit_adapters.py:masked_attention --attention --dim 8
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from global_rng_sampler import (  # noqa: E402
    gaussian_orthogonal_random_matrix,
    positive_features,
    unfolded_orthogonal_random_matrix,
)
from masked_attention import LinearSelfAttention  # noqa: E402
from oprf_style import OPRFFeatures  # noqa: E402
from redraw_module import RandomFeatureMap  # noqa: E402

from kerneltheory import kernels  # noqa: E402
from kerneltheory.testing.adapters import (  # noqa: E402
    attention_from_module,
    bind_statistics,
    from_module,
    global_rng_sampler,
    module_frequencies,
)


# 1. A sampler that draws from torch's global generator (CLI: --global-rng).
def orf_frequencies():
    return gaussian_orthogonal_random_matrix(16, 8)


def unfolded_frequencies():
    return unfolded_orthogonal_random_matrix(16, 8)


def orf_features():
    w = gaussian_orthogonal_random_matrix(64, 8).double()
    return lambda x: positive_features(x, w)


# 2. An nn.Module that redraws its frequencies; it scales inputs by d^(-1/4), so its kernel is exp(xᵀy/√d).
redraw_features = from_module(RandomFeatureMap(8, 64), layout="BHLd", redraw="redraw_projection")
redraw_frequencies = module_frequencies(RandomFeatureMap(8, 64), "projection", redraw="redraw_projection")
attention_kernel = kernels.input_scaled(kernels.softmax, 8**-0.25)

# 3. A data-dependent map, bound to the statistics of one reference sequence.
reference = 0.3 * torch.randn(2, 32, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
oprf_features = bind_statistics(global_rng_sampler(lambda: OPRFFeatures(8, 64)), *reference, fit="fit")

# 4. An attention module with PyTorch's key_padding_mask (True = padding), [B, L, H, d] inputs.
masked_attention = attention_from_module(lambda m: LinearSelfAttention(8, m), layout="BLHd",
                                         mask="key_padding_mask", mask_keeps=False)
causal_attention = attention_from_module(lambda m: LinearSelfAttention(8, m, causal=True), layout="BLHd",
                                         mask="key_padding_mask", mask_keeps=False)
