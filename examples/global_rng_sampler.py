"""Orthogonal random features drawn from torch's *global* generator, in the style of public Performer code.

``gaussian_orthogonal_random_matrix(nb_rows, nb_columns)`` stacks blocks of Haar-random orthogonal rows and
scales each row by the norm of a Gaussian vector, so every row is marginally N(0, I). It calls
``torch.randn`` without a generator, like most code in the wild; ``kerneltheory.testing.adapters`` runs it
reproducibly from a seeded generator (docs/auditing.md, style 1). ``orthogonal_matrix_chunk`` folds the
signs of R's diagonal into Q; ``unfolded_orthogonal_random_matrix`` is the common variant that does not, whose
rows are not Haar (torch.linalg.qr makes R_11 < 0 whenever G_11 > 0, so Q_11 is always negative).
"""

import math

import torch


def orthogonal_matrix_chunk(cols: int, fold_signs: bool = True) -> torch.Tensor:
    block = torch.randn(cols, cols)
    q, r = torch.linalg.qr(block)
    if fold_signs:
        q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    return q.t()


def gaussian_orthogonal_random_matrix(nb_rows: int, nb_columns: int, fold_signs: bool = True) -> torch.Tensor:
    nb_blocks = math.ceil(nb_rows / nb_columns)
    blocks = [orthogonal_matrix_chunk(nb_columns, fold_signs) for _ in range(nb_blocks)]
    final = torch.cat(blocks)[:nb_rows]
    multiplier = torch.randn(nb_rows, nb_columns).norm(dim=1)
    return multiplier.unsqueeze(1) * final


def unfolded_orthogonal_random_matrix(nb_rows: int, nb_columns: int) -> torch.Tensor:
    return gaussian_orthogonal_random_matrix(nb_rows, nb_columns, fold_signs=False)


def positive_features(x: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    """FAVOR+ features exp(Wx − ‖x‖²/2)/√m of the softmax kernel exp(xᵀy)."""
    m = projection.shape[0]
    return torch.exp(x @ projection.t() - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(m)
