"""The frequency law: a distribution over the rows ω_i of a frequency matrix W ∈ R^{m×d}.

Every law exposes ``sample(num_features, generator, batch=R) -> [R, m, d]`` (one tensor operation for all R
draws) and, where a closed form exists, its characteristic function ψ and moment generating function M.
The target kernel of an estimator is derived from these (MATH.md §1, proofs/one_rule.md):

* trigonometric features estimate Re ψ(x − y) (times the component's weights);
* positive features h(x) exp(ωᵀx) estimate h(x) h(y) M(x + y).

A law whose rows only approximate another law (structured, quasi-Monte Carlo, moment-matched, ...) names that
law as its :attr:`reference`; its estimators target the reference's kernel and their unbiasedness claim says how
close the rows come. A law with no closed form (generative, learnable Fastfood) has ``reference = None`` and its
estimators are compared against a large Monte Carlo reference.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from .._normal import standard_normal
from .._validation import (
    check_device,
    check_dtype,
    check_generator,
    check_generator_device,
    check_int,
    check_points,
)

RowMarginal = Literal["exact", "asymptotic", "no"]


class ClosedFormUnavailable(LookupError):
    """Raised when a law (or an estimator) has no closed form for the requested quantity."""


class SpectralLaw(nn.Module):
    """Base class of frequency laws.

    Subclasses set the class attributes and implement :meth:`_sample`; laws with closed forms return ``self`` from
    :attr:`reference` (the default, None, makes the target a Monte Carlo reference over the law's own draws, and the
    closed forms are not read) and override :meth:`char_fn` and :meth:`mgf`, and :meth:`log_mgf` (and
    ``log_char_fn`` where the parent defines it) when they subclass a law that defines those: the estimators read
    the log forms, and the claim matrix rejects (ValueError) a law whose two spellings disagree
    (:func:`kerneltheory.testing.matrix.verify_estimator`).

    Attributes:
        name: registry name of the law (``"gaussian"``, ``"orthogonal"``, ...).
        row_marginal: how each row's marginal law relates to :attr:`reference`: ``"exact"`` (every row is
            distributed exactly as the reference, so every estimator linear in single-row terms is unbiased),
            ``"asymptotic"`` (the bias vanishes as m → ∞) or ``"no"`` (a bias that does not vanish with m).
        rows_marginally_gaussian: whether each row is exactly N(mean, cov) of a Gaussian reference.
        iid_rows: whether the m rows of one draw are independent (closed-form variances assume this).
        independent_blocks: whether a draw is made of independent blocks of rows (ORF, SORF, Fastfood, SimRF):
            the sampler checks then test independence across blocks.
        independent_norms: whether the row norms within a block are independent (ORF's χ_d scaling).
        learnable: whether the law has trainable parameters.
        device_generator: whether :meth:`sample` accepts a generator on the law's device (a CUDA generator
            for a law on a GPU), drawing there instead of on the CPU. A device's stream differs from the CPU's
            for the same seed and is reproducible only on the same device type and PyTorch version.
    """

    name: ClassVar[str] = "law"
    row_marginal: ClassVar[RowMarginal] = "exact"
    rows_marginally_gaussian: ClassVar[bool] = False
    iid_rows: ClassVar[bool] = False
    independent_blocks: ClassVar[bool] = False
    independent_norms: ClassVar[bool] = False
    learnable: ClassVar[bool] = False
    device_generator: ClassVar[bool] = False
    proof: ClassVar[str | None] = None

    def __init__(self, dim: int, *, dtype: torch.dtype = torch.float64, device=None):
        super().__init__()
        self.dim = check_int(dim, "dim", minimum=1)
        device = check_device(device)
        # An empty buffer carries the law's dtype and device, so both follow .to(...) and .double() etc.
        self.register_buffer(
            "_anchor", torch.empty(0, dtype=check_dtype(dtype), device=device), persistent=False
        )

    @property
    def dtype(self) -> torch.dtype:
        return self._anchor.dtype

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    # -- sampling ---------------------------------------------------------------------------------
    def sample(self, num_features: int, generator: torch.Generator, batch: int | None = None) -> torch.Tensor:
        """Draw W. Returns ``[m, d]`` when ``batch`` is None, else ``[batch, m, d]`` (R independent draws).

        Randomness comes only from ``generator``: a CPU generator (samples are moved to the law's device), or,
        for laws with :attr:`device_generator`, a generator on the law's device (drawn there; another stream).
        """
        m = check_int(num_features, "num_features", minimum=1)
        check_generator(generator)
        check_generator_device(generator, self.device, f"the {self.name} law", allowed=self.device_generator)
        r = 1 if batch is None else check_int(batch, "batch", minimum=1)
        w = self._sample(m, generator, r)
        if w.shape != (r, m, self.dim):
            raise RuntimeError(
                f"{type(self).__name__}._sample returned shape {tuple(w.shape)}, expected {(r, m, self.dim)}"
            )
        return w[0] if batch is None else w

    def _sample(
        self, m: int, generator: torch.Generator, r: int
    ) -> torch.Tensor:  # pragma: no cover - abstract
        raise ClosedFormUnavailable(f"{type(self).__name__} does not define a sampler")

    def _normal(self, shape, generator: torch.Generator) -> torch.Tensor:
        """Standard normals drawn in float64 on ``generator``'s device and moved to the law's device and dtype."""
        return standard_normal(shape, generator).to(self.device, self.dtype)

    # -- closed forms -----------------------------------------------------------------------------
    @property
    def reference(self) -> SpectralLaw | None:
        """The law whose ψ and M define the target kernel (``self`` for laws with closed forms)."""
        return None

    @property
    def has_closed_form(self) -> bool:
        return self.reference is not None

    def char_fn(self, tau: torch.Tensor) -> torch.Tensor:
        """Re ψ(τ) = E cos(ωᵀτ) for ``tau`` of shape ``[..., d]``; returns ``[...]``."""
        raise ClosedFormUnavailable(f"the {self.name} law has no closed-form characteristic function")

    def mgf(self, z: torch.Tensor) -> torch.Tensor:
        """M(z) = E exp(ωᵀz) for ``z`` of shape ``[..., d]``; returns ``[...]``."""
        raise ClosedFormUnavailable(f"the {self.name} law has no closed-form moment generating function")

    def log_mgf(self, z: torch.Tensor) -> torch.Tensor:
        return torch.log(self.mgf(z))

    def _check_arg(self, t: torch.Tensor, name: str) -> torch.Tensor:
        return check_points(t, name, dim=self.dim, min_rank=1)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
