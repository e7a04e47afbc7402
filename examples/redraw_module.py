"""A feature-map module that redraws its frequencies every N training calls (docs/auditing.md, style 2).

``RandomFeatureMap`` takes ``[batch, heads, length, dim_head]`` float32 tensors, scales them by
dim_head^(-1/4) and a learned temperature, and returns FAVOR+ features, so φ(q)ᵀφ(k) estimates
exp(t²·qᵀk/√d). It holds its orthogonal frequencies in a buffer and redraws them, from torch's global
generator, every ``redraw_interval`` calls in training mode (or when ``redraw_projection()`` is called).
"""

import math
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from global_rng_sampler import gaussian_orthogonal_random_matrix  # noqa: E402


class RandomFeatureMap(nn.Module):
    def __init__(self, dim_head: int, nb_features: int = 64, redraw_interval: int = 1000):
        super().__init__()
        self.dim_head, self.nb_features, self.redraw_interval = dim_head, nb_features, redraw_interval
        self.temperature = nn.Parameter(torch.ones(()))
        self.register_buffer("projection", gaussian_orthogonal_random_matrix(nb_features, dim_head))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def redraw_projection(self) -> None:
        self.projection.copy_(gaussian_orthogonal_random_matrix(self.nb_features, self.dim_head))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
            if int(self.calls) % self.redraw_interval == 0:
                self.redraw_projection()
        x = x * (self.dim_head**-0.25) * self.temperature
        proj = x @ self.projection.t()
        return torch.exp(proj - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(self.nb_features)
